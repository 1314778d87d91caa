"""Configuration owned by the ingest stage: cameras' sources and stream handling."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ingest.redact import strip_userinfo

SUPPORTED_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "file")
IDENTIFIER = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class CameraConfig(StrictModel):
    """One camera: where its stream is and how to log in (credentials kept out of the URL).

    Example:
        >>> cam = CameraConfig(id="gate", site="hq", url="rtsp://admin:pw@10.0.0.5/live")
        >>> cam.url, cam.username, cam.password.get_secret_value()
        ('rtsp://10.0.0.5/live', 'admin', 'pw')
    """

    id: str = Field(pattern=IDENTIFIER)
    name: str = ""
    site: str = Field(pattern=IDENTIFIER)
    url: str
    username: str | None = None
    password: SecretStr | None = None
    transport: Literal["tcp", "udp"] = "tcp"
    loop: bool = Field(False, description="replay a file source forever (demos)")
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _move_credentials_out_of_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            bare, user, password = strip_userinfo(data["url"])
            if user is not None or password is not None:
                data = {**data, "url": bare}
                data.setdefault("username", user)
                if password is not None:
                    data.setdefault("password", password)
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in SUPPORTED_SCHEMES:
            raise ValueError(
                f"unsupported URL scheme {scheme!r}; expected one of {', '.join(SUPPORTED_SCHEMES)}"
            )
        if scheme != "file" and not urlsplit(url).hostname:
            raise ValueError("URL has no host")
        return url

    @property
    def is_file(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "file"

    def open_url(self) -> str:
        """The URL to hand to the demuxer, credentials included. Never log it."""
        parts = urlsplit(self.url)
        if self.is_file:
            return parts.path
        if self.username is None:
            return self.url
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.get_secret_value(), safe="")
        return urlunsplit(
            SplitResult(parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, "")
        )


class IngestConfig(StrictModel):
    """How stream workers connect, keep packets and report health."""

    ring_s: float = Field(120.0, gt=0, description="seconds of encoded packets kept per camera")
    ring_max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    open_timeout_s: float = Field(10.0, gt=0)
    watchdog_s: float = Field(
        5.0, gt=0, description="no packet for this long: the stream is stalled, reconnect"
    )
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    heartbeat_s: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _check_backoff(self) -> IngestConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self
