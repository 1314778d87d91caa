"""A camera's whole configuration (its stream, what to watch for, how to record), and the
cameras installers add over the API, kept in the index for every worker to pick up."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from sqlalchemy import JSON, Boolean, Index, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from analytics.config import ZoneConfig
from analytics.gate import GateConfig
from analytics.pipeline import CameraRules
from analytics.privacy import PrivacyConfig
from analytics.quality import QualityConfig
from analytics.rules import LineConfig
from ingest.config import CameraConfig as StreamCameraConfig
from storage.config import RecordingConfig
from storage.database.engine import Base, Database, UTCDateTime, utcnow
from storage.database.sealing import CredentialSealer, SealError

log = logging.getLogger(__name__)

# Over the network only: a camera added over the API must not read the API node's own files.
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "gb28181")
CREDENTIALS = ("username", "password")
ROW_FIELDS = ("id", "site", "name", "url", "enabled", *CREDENTIALS)


class CameraRow(Base):
    """A camera added over the API (issue 6), next to those in the YAML config.

    `username` and `password` are stored sealed (storage/database/sealing.py: the keys are in a file
    apart from the index) and opened by the workers that log in with them; the API takes them
    but never returns them (write-only), and logs redact them.
    `config` holds the rest of the camera's config section (zones, lines, detect, ...) as JSON,
    validated by the API with the same pydantic model as the YAML.

    Example:
        >>> CameraRow(id="gate", site="hq", name="Gate", url="rtsp://10.0.0.5/live").site
        'hq'
    """

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    url: Mapped[str] = mapped_column(String(1024))
    username: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    password: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_cameras_site", "site"),)


class CameraConfig(StreamCameraConfig):
    """A camera's stream (ingest) and what to watch for on it (analytics)."""

    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    motion: GateConfig = Field(default_factory=GateConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)

    def rules(self) -> CameraRules:
        """What analytics watches for on this camera."""
        return CameraRules(
            self.id, self.site, self.zones, self.lines, self.motion, self.quality, self.privacy
        )


class NetworkCameraConfig(CameraConfig):
    """A camera given over the API: a network stream (no local files, no demo loops).

    Example:
        >>> NetworkCameraConfig(id="door", site="shop-7", url="file:///etc/passwd")
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for NetworkCameraConfig
          Value error, a camera added over the API streams over the network: rtsp, ...
    """

    @model_validator(mode="after")
    def _network_only(self) -> NetworkCameraConfig:
        for url in (self.url, self.detect_url):
            if url is not None and urlsplit(url).scheme.lower() not in NETWORK_SCHEMES:
                raise ValueError(
                    "a camera added over the API streams over the network: "
                    + ", ".join(NETWORK_SCHEMES)
                )
        if self.loop:
            raise ValueError("loop is for demo files, not cameras added over the API")
        return self


class ApiCameras:
    """The cameras added over the API. Credentials are stored sealed for the workers to log
    in with and never given back: `get` and `list` answer configurations, whose passwords are
    secrets that serialise as stars.

    Example:
        >>> from cryptography.fernet import Fernet
        >>> database = Database.connect("sqlite://")
        >>> cameras = ApiCameras(database, CredentialSealer([Fernet.generate_key()]))
        >>> cameras.put(NetworkCameraConfig(id="door", site="shop-7",
        ...                                 url="rtsp://admin:pw@10.0.0.9/live"))
        >>> cameras.get("door").password.get_secret_value(), cameras.get("door").url
        ('pw', 'rtsp://10.0.0.9/live')
        >>> with database.sessions() as session:
        ...     session.get(CameraRow, "door").password.startswith("sealed:")
        True
    """

    def __init__(self, database: Database, sealer: CredentialSealer) -> None:
        self.database = database
        self.sealer = sealer

    def camera_of(self, row: CameraRow) -> NetworkCameraConfig:
        """The configuration a stored row describes, its credentials opened."""
        fields = {name: getattr(row, name) for name in ROW_FIELDS}
        for name in CREDENTIALS:
            if fields[name] is not None:
                fields[name] = self.sealer.open(fields[name])
        return NetworkCameraConfig.model_validate({**row.config, **fields})

    def list(self, sites: Sequence[str] | None = None) -> list[NetworkCameraConfig]:
        """Every stored camera (of `sites`), by id; a row no longer valid (a model changed
        under it) is left out rather than failing the rest."""
        statement = select(CameraRow).order_by(CameraRow.id)
        if sites is not None:
            statement = statement.where(CameraRow.site.in_(list(sites)))
        with self.database.sessions() as session:
            rows = session.scalars(statement).all()
        cameras = []
        for row in rows:
            try:
                cameras.append(self.camera_of(row))
            except ValidationError:
                continue
            except SealError as exc:
                log.error("camera %s is left out: %s", row.id, exc)
        return cameras

    def beside(
        self, configured: Sequence[CameraConfig], sites: Sequence[str] | None = None
    ) -> builtins.list[CameraConfig]:  # `list` is a method here
        """The cameras of the config file, then those stored here (of `sites`) whose id the
        config file does not have: the config file's wins an id both have."""
        taken = {camera.id for camera in configured}
        return [*configured, *(c for c in self.list(sites) if c.id not in taken)]

    def get(self, camera_id: str) -> NetworkCameraConfig | None:
        with self.database.sessions() as session:
            row = session.get(CameraRow, camera_id)
        return self.camera_of(row) if row is not None else None

    def put(self, camera: NetworkCameraConfig) -> None:
        """Store a camera, replacing one of the same id."""
        rest: dict[str, Any] = camera.model_dump(mode="json", exclude=set(ROW_FIELDS))
        secret: SecretStr | None = camera.password
        password = None if secret is None else secret.get_secret_value()
        row = CameraRow(
            id=camera.id,
            site=camera.site,
            name=camera.name,
            url=camera.url,
            enabled=camera.enabled,
            username=self.sealer.seal_or_none(camera.username),
            password=self.sealer.seal_or_none(password),
            config=rest,
        )
        with self.database.sessions.begin() as session:
            session.merge(row)

    def delete(self, camera_id: str) -> bool:
        with self.database.sessions.begin() as session:
            row = session.get(CameraRow, camera_id)
            if row is None:
                return False
            session.delete(row)
            return True

    def reseal(self) -> int:
        """Seal again every stored credential under the first key: those stored before
        sealing, and those of an older key after a rotation. Each row only if it did not
        change meanwhile; answers how many rows were sealed again."""
        with self.database.sessions() as session:
            rows = session.execute(
                select(CameraRow.id, CameraRow.username, CameraRow.password)
            ).all()
        resealed = 0
        for camera_id, *stored in rows:
            try:
                fresh = [None if value is None else self.sealer.reseal(value) for value in stored]
            except SealError as exc:
                log.error("camera %s: %s", camera_id, exc)
                continue
            if fresh == stored:
                continue
            with self.database.sessions.begin() as session:
                changed = session.execute(
                    update(CameraRow)
                    .where(CameraRow.id == camera_id)
                    .where(CameraRow.username.is_not_distinct_from(stored[0]))
                    .where(CameraRow.password.is_not_distinct_from(stored[1]))
                    .values(dict(zip(CREDENTIALS, fresh, strict=True)))
                )
            resealed += changed.rowcount  # type: ignore[attr-defined]
        return resealed
