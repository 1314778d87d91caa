"""Configuration owned by the ingest stage: cameras' sources and stream handling."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from common.config import IDENTIFIER, StrictModel
from common.redact import strip_userinfo
from common.urls import check_url
from ingest.gb28181 import MediaSettings, channel_of_url

SUPPORTED_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "file", "gb28181")


class DetectConfig(StrictModel):
    """What the analytics stage gets of a camera: frame size, rate and which frames decode."""

    width: int | None = Field(
        640, gt=0, multiple_of=2, description="scaled in swscale; None keeps the stream's"
    )
    height: int | None = Field(None, gt=0, multiple_of=2, description="None keeps the aspect ratio")
    fps: float = Field(5.0, gt=0, le=60, description="frames a second handed to analytics")
    decode: Literal["all", "keyframes"] = Field(
        "all", description="keyframes: decode only keyframes (health snapshots, cheap)"
    )

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """The detect size for a stream of `width` x `height`: an exact size if both are
        given, else scaled down (aspect kept) to fit the one given; never scaled up.

        Example:
            >>> DetectConfig(width=640).size_for(1920, 1080), DetectConfig().size_for(352, 288)
            ((640, 360), (352, 288))
        """
        if self.width is not None and self.height is not None:
            return self.width, self.height
        if self.width is not None and width > self.width:
            return self.width, max(2, round(height * self.width / width / 2) * 2)
        if self.height is not None and height > self.height:
            return max(2, round(width * self.height / height / 2) * 2), self.height
        return width, height  # never scaled up


class CameraConfig(StrictModel):
    """One camera: its stream(s) and how to log in (credentials kept out of the URLs).

    `url` is the main stream: it is recorded and, unless `detect_url` (the camera's
    sub-stream) is given, also decoded for analytics. With `detect_url`, the main stream is
    only demuxed (never decoded) and the sub-stream is decoded.

    Example:
        >>> cam = CameraConfig(id="gate", site="hq", url="rtsp://admin:pw@10.0.0.5/live")
        >>> cam.url, cam.username, cam.password.get_secret_value()
        ('rtsp://10.0.0.5/live', 'admin', 'pw')
    """

    id: str = Field(pattern=IDENTIFIER)
    name: str = ""
    site: str = Field(pattern=IDENTIFIER)
    url: str
    detect_url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    transport: Literal["tcp", "udp", "tcp-active"] = Field(
        "tcp",
        description="RTSP: tcp or udp; GB/T 28181: udp, tcp (the device connects to the worker) "
        "or tcp-active (the worker connects to the device)",
    )
    buffer_size: int | None = Field(
        None, gt=0, description="socket receive buffer in bytes (RTSP over UDP)"
    )
    loop: bool = Field(False, description="replay a file source forever (demos)")
    realtime: bool = Field(
        True,
        description="release a file's frames at their own pace, as a camera would; false: "
        "as fast as they decode (frames are still timed and sampled by media time)",
    )
    watchdog_s: float | None = Field(
        None, gt=0, description="overrides ingest.watchdog_s; HLS needs more than a segment"
    )
    enabled: bool = True
    detect: DetectConfig = Field(default_factory=DetectConfig)

    @model_validator(mode="before")
    @classmethod
    def _move_credentials_out_of_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in ("url", "detect_url"):
            if not isinstance(data.get(key), str):
                continue
            try:
                bare, user, password = strip_userinfo(data[key])
            except ValueError:  # not a URL at all: the field's own check says why
                continue
            if user is not None or password is not None:
                data = {**data, key: bare}
                data.setdefault("username", user)
                if password is not None:
                    data.setdefault("password", password)
        return data

    @field_validator("url", "detect_url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        return None if url is None else check_url(url, SUPPORTED_SCHEMES)

    @model_validator(mode="after")
    def _check_transport(self) -> CameraConfig:
        if self.transport == "tcp-active" and not self.url.lower().startswith("gb28181:"):
            raise ValueError("transport tcp-active is for GB/T 28181 channels (gb28181:// URLs)")
        if self.url.lower().startswith("gb28181:"):
            channel_of_url(self.url)
            if self.detect_url is not None:
                raise ValueError("a GB/T 28181 channel has one stream: no detect_url")
        return self

    def open_url(self, url: str) -> str:
        """`url` (one of this camera's) with credentials, for the demuxer. Never log it."""
        parts = urlsplit(url)
        if parts.scheme.lower() == "file":
            return parts.path
        if self.username is None:
            return url
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.get_secret_value(), safe="")
        return urlunsplit(
            SplitResult(parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, "")
        )

    def demux_options(self, url: str, probe_s: float) -> dict[str, str]:
        """FFmpeg options for opening `url`."""
        options: dict[str, str] = {}
        scheme = urlsplit(url).scheme.lower()
        if scheme != "file":
            # FFmpeg's default probe buffers ~3 s of a live stream before the first frame.
            options["analyzeduration"] = str(int(probe_s * 1_000_000))
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = self.transport
        if self.buffer_size is not None:
            options["buffer_size"] = str(self.buffer_size)
        return options


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
    lease_s: float = Field(
        10.0, gt=0, description="a worker that dies has its cameras taken over after this"
    )
    probe_s: float = Field(
        1.0, gt=0, description="how much of a network stream FFmpeg reads to learn its format"
    )
    timestamp_jump_s: float = Field(
        2.0, gt=0, description="a PTS step off real time by more than this is a jump"
    )
    media_address: str = Field(
        "127.0.0.1",
        description="GB/T 28181: the address devices send this worker's video to, as they reach it",
    )
    media_ports: tuple[int, int] | None = Field(
        None, description="GB/T 28181: the ports (low, high) video is received on; None: any"
    )
    degraded_fps_ratio: float = Field(
        0.8, gt=0, le=1, description="input fps below this share of the stream's: degraded"
    )

    @model_validator(mode="after")
    def _check_backoff(self) -> IngestConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        low, high = self.media_ports or (1, 1)
        if not 1 <= low <= high <= 65535:
            raise ValueError("media_ports must be [low, high] with 1 <= low <= high <= 65535")
        return self

    def media(self) -> MediaSettings:
        return MediaSettings(self.media_address, self.media_ports)
