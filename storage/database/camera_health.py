"""Camera heartbeats: each camera's latest status, its health minute by minute, and its
latest picture, written by the worker that holds the camera's lease and read by the API."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import JSON, Float, Index, Integer, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest.camera import CameraHealth
from storage.database.engine import Base, Database, UTCDateTime, to_datetime, utcnow


class CameraStatusRow(Base):
    """A camera's latest heartbeat, written by the worker that holds its lease."""

    __tablename__ = "camera_status"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[str | None] = mapped_column(String(256), nullable=True)
    input_fps: Mapped[float] = mapped_column(Float, default=0.0)
    decode_fps: Mapped[float] = mapped_column(Float, default=0.0)
    expected_fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    bitrate_kbps: Mapped[float] = mapped_column(Float, default=0.0)
    decoded_frames: Mapped[list[int]] = mapped_column(JSON, default=list)
    corrupt_packets: Mapped[int] = mapped_column(Integer, default=0)
    decode_errors: Mapped[int] = mapped_column(Integer, default=0)
    timestamp_jumps: Mapped[int] = mapped_column(Integer, default=0)
    media_lost: Mapped[int] = mapped_column(Integer, default=0)
    media_dropped: Mapped[int] = mapped_column(Integer, default=0)
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    last_frame_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    offline_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @classmethod
    def of(cls, health: CameraHealth, site: str, worker_id: str) -> CameraStatusRow:
        """The row of a heartbeat: `health`'s figures as they are (the columns are named as
        its fields), epoch times as datetimes, texts cut to their columns.

        Example:
            >>> health = CameraHealth(
            ...     camera_id="gate", state="online", reasons=("ok",), input_fps=10.0,
            ...     decode_fps=9.5, expected_fps=10.0, bitrate_kbps=800.0, decoded_frames=(50,),
            ...     corrupt_packets=0, decode_errors=0, timestamp_jumps=0, media_lost=0,
            ...     media_dropped=0, reconnects=1,
            ...     last_frame_at=1700000000.0, offline_since=None, error=None)
            >>> row = CameraStatusRow.of(health, "hq", "w1")
            >>> row.reasons, row.decoded_frames, row.last_frame_at.year, row.worker_id
            ('ok', [50], 2023, 'w1')
        """
        figures = {field.name: getattr(health, field.name) for field in dataclasses.fields(health)}
        figures.update(
            reasons="; ".join(health.reasons)[:256] or None,
            decoded_frames=list(health.decoded_frames),
            last_frame_at=to_datetime(health.last_frame_at),
            offline_since=to_datetime(health.offline_since),
            error=health.error[:256] if health.error else None,
        )
        return cls(**figures, site=site, worker_id=worker_id, updated_at=utcnow())


# Camera states from better to worse: a minute of history keeps the worst one seen in it.
HEALTH_ORDER = ("online", "degraded", "connecting", "offline")


def worse_state(first: str, second: str) -> str:
    """The worse of two camera states (one not in HEALTH_ORDER counts as the worst).

    Example:
        >>> worse_state("online", "degraded"), worse_state("offline", "connecting")
        ('degraded', 'offline')
    """

    def rank(state: str) -> int:
        return HEALTH_ORDER.index(state) if state in HEALTH_ORDER else len(HEALTH_ORDER)

    return second if rank(second) > rank(first) else first


class CameraHealthRow(Base):
    """One minute (UTC) of a camera's health, folded from its heartbeats in that minute by
    `Heartbeats.put_status`: the worst state seen, the lowest and mean frame rates,
    the mean bitrate and the reconnects made. The retention sweep trims old minutes."""

    __tablename__ = "camera_health"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    heartbeats: Mapped[int] = mapped_column(Integer)
    input_fps_min: Mapped[float] = mapped_column(Float)
    input_fps_avg: Mapped[float] = mapped_column(Float)
    decode_fps_min: Mapped[float] = mapped_column(Float)
    decode_fps_avg: Mapped[float] = mapped_column(Float)
    bitrate_kbps_avg: Mapped[float] = mapped_column(Float)
    reconnects: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_camera_health_minute", "minute"),)  # for trimming old minutes

    @classmethod
    def first(cls, status: CameraStatusRow, minute: datetime, reconnects: int) -> CameraHealthRow:
        """The minute as its first heartbeat, `status`, describes it."""
        input_fps, decode_fps = status.input_fps or 0.0, status.decode_fps or 0.0
        return cls(
            camera_id=status.camera_id,
            minute=minute,
            site=status.site,
            state=status.state,
            heartbeats=1,
            input_fps_min=input_fps,
            input_fps_avg=input_fps,
            decode_fps_min=decode_fps,
            decode_fps_avg=decode_fps,
            bitrate_kbps_avg=status.bitrate_kbps or 0.0,
            reconnects=reconnects,
        )

    def add(self, status: CameraStatusRow, reconnects: int) -> None:
        """Fold one more heartbeat of the minute in.

        Example:
            >>> at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
            >>> point = CameraHealthRow.first(
            ...     CameraStatusRow(camera_id="gate", site="hq", state="online", input_fps=10.0,
            ...                     decode_fps=10.0, bitrate_kbps=900.0), at, 0)
            >>> point.add(CameraStatusRow(camera_id="gate", site="hq", state="degraded",
            ...                           input_fps=4.0, decode_fps=4.0, bitrate_kbps=300.0), 1)
            >>> point.state, point.heartbeats, point.input_fps_min, point.input_fps_avg
            ('degraded', 2, 4.0, 7.0)
        """
        input_fps, decode_fps = status.input_fps or 0.0, status.decode_fps or 0.0
        self.heartbeats += 1
        self.state = worse_state(self.state, status.state)
        self.site = status.site
        self.input_fps_min = min(self.input_fps_min, input_fps)
        self.decode_fps_min = min(self.decode_fps_min, decode_fps)
        # Running means: the minute's sum is never stored, only its count.
        self.input_fps_avg += (input_fps - self.input_fps_avg) / self.heartbeats
        self.decode_fps_avg += (decode_fps - self.decode_fps_avg) / self.heartbeats
        bitrate = status.bitrate_kbps or 0.0
        self.bitrate_kbps_avg += (bitrate - self.bitrate_kbps_avg) / self.heartbeats
        self.reconnects += reconnects


class CameraPictureRow(Base):
    """A camera's latest picture (a small JPEG of its newest keyframe, faces blurred where
    the camera has privacy on), for the console's camera grid; one row per camera."""

    __tablename__ = "camera_pictures"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Heartbeats:
    """The heartbeat tables of the database, each read or write in its own transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def put_picture(self, row: CameraPictureRow) -> None:
        with self.database.sessions.begin() as session:
            session.merge(row)

    def picture(self, camera_id: str) -> CameraPictureRow | None:
        with self.database.sessions() as session:
            return session.get(CameraPictureRow, camera_id)

    def put_status(self, row: CameraStatusRow) -> None:
        """Store a camera's heartbeat as its latest status and fold it into its minute of
        history (CameraHealthRow), in one transaction: two reads and two writes by key."""
        minute = (row.updated_at or utcnow()).astimezone(UTC).replace(second=0, microsecond=0)
        # Two workers may report one camera while its lease moves: the one whose new row
        # lost the race finds the other's row on its second try.
        for attempt in (1, 2):
            try:
                with self.database.sessions.begin() as session:
                    self._fold_heartbeat(session, row, minute)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    @staticmethod
    def _fold_heartbeat(session: Session, row: CameraStatusRow, minute: datetime) -> None:
        # The status before this heartbeat: merge would load it anyway (no extra query).
        before = session.get(CameraStatusRow, row.camera_id)
        # The counter runs since the worker started the camera: lower than before, or of
        # another worker, it started again and all of it is new.
        reconnects = row.reconnects or 0
        same = before is not None and before.worker_id == row.worker_id
        counted = before.reconnects if before is not None and same else None
        if counted is not None and reconnects >= counted:
            reconnects -= counted
        session.merge(row)
        point = session.get(CameraHealthRow, (row.camera_id, minute))
        if point is None:
            session.add(CameraHealthRow.first(row, minute, reconnects))
        else:
            point.add(row, reconnects)

    def history(self, camera_id: str, since: datetime) -> Sequence[CameraHealthRow]:
        """The camera's minutes of history from `since` on, oldest first."""
        statement = (
            select(CameraHealthRow)
            .where(CameraHealthRow.camera_id == camera_id, CameraHealthRow.minute >= since)
            .order_by(CameraHealthRow.minute)
        )
        with self.database.sessions() as session:
            return session.scalars(statement).all()

    def statuses(self) -> dict[str, CameraStatusRow]:
        with self.database.sessions() as session:
            return {r.camera_id: r for r in session.scalars(select(CameraStatusRow)).all()}
