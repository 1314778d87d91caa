"""Configuration owned by the GB/T 28181 signalling service."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from common.config import StrictModel


class Gb28181Config(StrictModel):
    """The platform as a GB/T 28181 SIP server: its identity, where it listens, and how long a
    device's registration and silence last. Installers set the same ID, domain, address, port
    and password in each device."""

    enabled: bool = False
    id: str = Field("34020000002000000001", pattern=r"^\d{20}$", description="our 20-digit SIP ID")
    domain: str = Field("3402000000", pattern=r"^\d{10}$", description="the SIP domain (10 digits)")
    realm: str | None = Field(None, description="digest realm; default: the domain")
    host: str = Field("0.0.0.0", description="where the service listens (UDP and TCP)")
    address: str | None = Field(
        None, description="our address as devices reach it (in our requests); default: host"
    )
    port: int = Field(5060, ge=1, le=65535)
    password: SecretStr | None = Field(
        None,
        description="the password of devices with none of their own nor their site's; none: "
        "such devices are refused",
    )
    timezone: str = Field("Asia/Shanghai", description="of the Date devices set their clocks by")
    expires_min_s: int = Field(60, ge=10, description="shortest registration accepted")
    expires_max_s: int = Field(86400, ge=60, description="longer ones are cut to this")
    keepalive_s: float = Field(60.0, gt=0, description="the keepalive interval devices use")
    keepalive_misses: int = Field(3, ge=1, description="missed keepalives that make one offline")
    max_message_bytes: int = Field(65535, ge=4096, le=1 << 20)
    nonce_s: float = Field(300.0, gt=0, description="a digest nonce is good for this long")
    source_rate_per_s: float = Field(
        200.0, gt=0, description="messages per second one address may send on average"
    )
    source_burst: int = Field(1000, ge=1, description="messages one address may send at once")

    @model_validator(mode="after")
    def _expiry_bounds(self) -> Self:
        if self.expires_min_s > self.expires_max_s:
            raise ValueError("expires_min_s is above expires_max_s")
        return self

    @property
    def digest_realm(self) -> str:
        return self.realm or self.domain
