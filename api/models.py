"""The API's request and response bodies."""

from __future__ import annotations

import re
import statistics
from datetime import datetime
from typing import Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from common.config import IDENTIFIER, StrictModel
from common.egress import parse_networks
from common.redact import redact_text
from storage.database.accounts import ApiKeyRow, Role, SiteRow
from storage.database.camera_health import CameraStatusRow
from storage.database.cameras import CameraConfig
from storage.database.index import AcknowledgementTimes, EventRow, SiteEventCounts
from storage.database.workflow import Action, EventActionRow, Status


class In(StrictModel):
    """A request body: unknown fields are refused, not ignored (a typo must not pass), and so
    is text with a control character in it."""


class EventOut(BaseModel):
    id: str
    site: str
    camera_id: str
    type: str
    label: str
    zone: str
    severity: str
    detail: str
    alarm_method: int | None
    alarm_type: int | None
    state: str
    status: Status
    started_at: datetime
    ended_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    seconds_to_acknowledge: float | None
    score: float
    box: list[float] | None
    clip_start: datetime | None
    clip_end: datetime | None
    clip_sha256: str | None
    snapshot_sha256: str | None
    has_clip: bool
    has_snapshot: bool
    clip_error: str | None
    clip_origin: Literal["journal", "recording"] | None = Field(
        description="a clip rebuilt after its worker died: from that worker's packets on its "
        "node's disk, or from the camera's 24/7 recording; none: cut as usual"
    )

    @classmethod
    def of(cls, row: EventRow) -> EventOut:
        """The row's public fields; storage keys stay inside, only whether media exist."""
        public = {name: getattr(row, name) for name in cls.model_fields if hasattr(row, name)}
        acknowledged = row.acknowledged_at
        return cls(
            **public,
            seconds_to_acknowledge=(
                (acknowledged - row.started_at).total_seconds() if acknowledged else None
            ),
            has_clip=row.clip_key is not None,
            has_snapshot=row.snapshot_key is not None,
        )


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class ActionIn(In):
    action: Action
    note: str = Field("", max_length=1024)


class ActionOut(BaseModel):
    action: str
    from_status: str
    to_status: str
    actor: str
    note: str
    at: datetime

    @classmethod
    def of(cls, row: EventActionRow) -> ActionOut:
        return cls(
            action=row.action,
            from_status=row.from_status,
            to_status=row.to_status,
            actor=row.actor,
            note=row.note,
            at=row.at,
        )


class SiteFigures(BaseModel):
    """A site on the map: where it is, and its events that started in the range."""

    id: str
    name: str
    latitude: float | None
    longitude: float | None
    grid_id: str
    events: int
    high: int = Field(description="of them, high severity")

    @classmethod
    def of(cls, counts: SiteEventCounts) -> SiteFigures:
        site = counts.site
        return cls(
            id=site.id,
            name=site.name,
            latitude=site.latitude,
            longitude=site.longitude,
            grid_id=site.grid_id,
            events=counts.events,
            high=counts.high,
        )


class ResponseStats(BaseModel):
    """How fast events were acknowledged: the "5-minute response circle" figure."""

    events: int
    acknowledged: int
    median_seconds: float | None
    p90_seconds: float | None
    within_5_minutes: float | None = Field(description="share of acknowledged events")

    @classmethod
    def of(cls, times: AcknowledgementTimes) -> ResponseStats:
        waits = times.waits
        return cls(
            events=times.events,
            acknowledged=len(waits),
            median_seconds=statistics.median(waits) if waits else None,
            p90_seconds=waits[min(len(waits) - 1, int(0.9 * len(waits)))] if waits else None,
            within_5_minutes=sum(w <= 300 for w in waits) / len(waits) if waits else None,
        )


class VerificationOut(BaseModel):
    """One stored object of the event, re-read and re-hashed; or (`custody`) the event's
    custody entries, each against its hash and its links (expected: the last entry's stored
    hash; actual: that entry's hash recomputed)."""

    kind: Literal["clip", "snapshot", "custody"]
    ok: bool
    expected_sha256: str
    actual_sha256: str | None
    problem: str


class CustodyCheckOut(BaseModel):
    """The whole custody log checked: every entry against its hash and links, the head, and
    the anchors in object storage."""

    ok: bool
    entries: int
    anchors: int
    problems: list[str]


class HoldIn(In):
    reason: str = Field(min_length=1, max_length=256)


class CustodyOut(BaseModel):
    seq: int = Field(description="the entry's place in the whole custody log")
    sha256: str = Field(description="its hash, over its fields and the entries before it")
    action: str
    actor: str
    client: str | None
    detail: str
    at: datetime
    media: Literal["clip", "snapshot"] | None


CameraState = Literal["connecting", "online", "degraded", "offline", "unknown"]


class CameraOut(BaseModel):
    """A camera as the API shows it: its config (secrets left out) and its last heartbeat."""

    id: str
    name: str
    site: str
    url: str
    detect_url: str | None
    enabled: bool
    source: Literal["config", "api"] = Field(description="the config file's, or added over the API")
    has_password: bool
    # Its last heartbeat (storage.database.camera_health.CameraStatusRow, the same names);
    # the defaults are those of a camera never heard of.
    state: CameraState = "unknown"
    reasons: str | None = None
    input_fps: float = 0.0
    decode_fps: float = 0.0
    expected_fps: float | None = None
    bitrate_kbps: float = 0.0
    decoded_frames: list[int] = Field(default_factory=list)
    corrupt_packets: int = 0
    decode_errors: int = 0
    timestamp_jumps: int = 0
    media_lost: int = Field(0, description="GB/T 28181: RTP packets never received")
    media_dropped: int = Field(
        0, description="GB/T 28181: RTP packets dropped (another source or SSRC, malformed, late)"
    )
    reconnects: int = 0
    last_frame_at: datetime | None = None
    offline_since: datetime | None = None
    error: str | None = None
    worker_id: str | None = None
    heartbeat_at: datetime | None = None

    @classmethod
    def of(
        cls,
        camera: CameraConfig,
        status: CameraStatusRow | None,
        stale_before: datetime,
        source: Literal["config", "api"],
    ) -> CameraOut:
        """A camera with its last heartbeat; a stale heartbeat means offline."""
        configured = {
            "id": camera.id,
            "name": camera.name,
            "site": camera.site,
            "url": redact_text(camera.url),
            "detect_url": redact_text(camera.detect_url) if camera.detect_url else None,
            "enabled": camera.enabled,
            "source": source,
            "has_password": camera.password is not None,
        }
        if status is None:
            return cls(**configured)
        heartbeat = {name: getattr(status, name) for name in HEARTBEAT_FIELDS}
        if status.updated_at < stale_before:  # its worker is gone: the rates are no more
            heartbeat.update(
                state="offline",
                reasons="no heartbeat from the camera's worker",
                input_fps=0.0,
                decode_fps=0.0,
                bitrate_kbps=0.0,
            )
        return cls(**configured, **heartbeat, heartbeat_at=status.updated_at)


# What the API shows of a camera's heartbeat row as it is: the fields named as its columns,
# but the site (the camera's config has it).
HEARTBEAT_FIELDS = tuple(
    name
    for name in CameraOut.model_fields
    if name in CameraStatusRow.__table__.columns and name != "site"
)


class HealthPoint(BaseModel):
    """One minute of a camera's health, folded from the heartbeats of the minute: a
    `CameraHealthRow` (the same names) but for the camera and site."""

    model_config = ConfigDict(from_attributes=True)

    minute: datetime = Field(description="its start (UTC)")
    state: Literal["online", "degraded", "connecting", "offline"] = Field(
        description="the worst seen in the minute"
    )
    heartbeats: int
    input_fps_min: float
    input_fps_avg: float
    decode_fps_min: float
    decode_fps_avg: float
    bitrate_kbps_avg: float
    reconnects: int = Field(description="made during the minute")


class CameraDetail(CameraOut):
    """A camera's health and its whole configuration, but never its credentials."""

    config: dict[str, object] = Field(description="zones, lines, rules, detect, recording...")


class ProbeIn(In):
    url: str = Field(max_length=1024, description="rtsp://, rtmp://, http(s):// (HLS, FLV)")
    username: str | None = Field(None, max_length=256)
    password: SecretStr | None = Field(None, max_length=256)
    transport: Literal["tcp", "udp"] = "tcp"
    timeout_s: float = Field(8.0, gt=0, le=30)
    site: str | None = Field(
        None, description="the site the camera is for: its camera networks may be reached"
    )

    @field_validator("site")
    @classmethod
    def _site_id(cls, site: str | None) -> str | None:
        return None if site is None else SiteIn.check_id(site)


class ProbeOut(BaseModel):
    codec: str
    width: int
    height: int
    fps: float | None
    snapshot_jpeg: str = Field(description="the first picture, base64 JPEG")


class KeyIn(In):
    name: str = Field(min_length=1, max_length=128)
    role: Role
    sites: list[str] = Field(default_factory=list, max_length=1000)
    all_sites: bool = Field(False, description="every site, present and future (admin, operator)")

    @field_validator("sites")
    @classmethod
    def _site_ids(cls, sites: list[str]) -> list[str]:
        return [SiteIn.check_id(site) for site in sites]


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    sites: list[str]
    all_sites: bool
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> KeyOut:
        return cls(
            id=row.id,
            name=row.name,
            role=row.role,
            sites=row.sites,
            all_sites=row.all_sites,
            created_by=row.created_by,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown this once, kept only as a hash")


class LoginIn(In):
    key: str = Field(min_length=1, max_length=128)


class Me(BaseModel):
    key_id: str
    name: str
    role: Role
    sites: list[str] | None = Field(description="null: every site")


TIMEZONES = frozenset(available_timezones())
SITE_ID = re.compile(IDENTIFIER)


class SiteIn(In):
    name: str = Field(min_length=1, max_length=128)
    address: str = Field("", max_length=256)
    grid_id: str = Field("", max_length=64)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    timezone: str = Field("Asia/Shanghai", max_length=64)
    networks: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="private networks its cameras live on (CIDR): keys of the site may reach them",
    )

    @field_validator("networks")
    @classmethod
    def _cidr(cls, networks: list[str]) -> list[str]:
        parse_networks(networks)
        return networks

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        if timezone not in TIMEZONES:
            raise ValueError("not an IANA time zone such as Asia/Shanghai")
        return timezone

    @staticmethod
    def check_id(site_id: str) -> str:
        if not SITE_ID.fullmatch(site_id):
            raise ValueError(f"site ids are lower-case letters, digits, - and _: {site_id!r}")
        return site_id


class SiteOut(SiteIn):
    id: str

    @classmethod
    def of(cls, row: SiteRow) -> SiteOut:
        return cls(
            id=row.id,
            name=row.name,
            address=row.address,
            grid_id=row.grid_id,
            latitude=row.latitude,
            longitude=row.longitude,
            timezone=row.timezone,
            networks=row.networks,
        )


class Health(BaseModel):
    status: Literal["ok"]
