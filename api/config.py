"""Configuration owned by the API stage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from common.config import StrictModel
from common.egress import IPNetwork, parse_networks


class MqttConfig(StrictModel):
    """Events published to an MQTT broker (paho-mqtt), one message per change on
    `PREFIX/SITE/CAMERA/TYPE`. Of the API processes that have it on, one publishes at a time;
    another takes over within 10 s if that one stops."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = Field(None, description="the broker's CA (TLS); default: the system's")
    topic_prefix: str = Field("xueliang", pattern=r"^[^#+]+$")
    qos: Literal[0, 1, 2] = 1


class EgressConfig(StrictModel):
    """Where the platform connects for keys that are not admins' (webhooks, camera probes):
    loopback, link-local and the platform's own services are refused, private ranges only
    inside a site's camera networks (common/egress.py has the rules)."""

    allow: list[str] = Field(
        default_factory=list, description="networks any key may reach (but the services)"
    )
    deny: list[str] = Field(default_factory=list, description="networks no key may reach")

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, texts: list[str]) -> list[str]:
        parse_networks(texts)
        return texts

    def networks(self) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
        """(allow, deny) as networks."""
        return tuple(parse_networks(self.allow)), tuple(parse_networks(self.deny))


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    page_limit: int = Field(200, ge=1, description="largest page of events one request gets")
    export_max_s: float = Field(
        3600.0, gt=0, description="longest recording one request exports (a temporary file)"
    )
    rate_per_s: float = Field(20.0, gt=0, description="requests per second per key, on average")
    burst: int = Field(60, ge=1, description="requests per key at once beyond the rate")
    max_body_bytes: int = Field(1024**2, ge=1024, description="largest request body")
    webhook_retry_min_s: float = Field(2.0, gt=0, description="first retry of a failed delivery")
    webhook_retry_max_s: float = Field(600.0, gt=0, description="longest wait between retries")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    egress: EgressConfig = Field(default_factory=EgressConfig)
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="a console login lasts")
