"""The event index: the database every process shares (events and camera heartbeats)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    TypeDecorator,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from common.types import Event


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_datetime(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class EventRow(Base):
    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    site: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(String(64), default="")
    alarm_method: Mapped[int | None] = mapped_column(Integer, nullable=True)  # GB/T 28181
    alarm_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    box: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    snapshot_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clip_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    clip_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clip_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clip_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clip_error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_events_camera_started", "camera_id", "started_at"),
        Index("ix_events_site_started", "site", "started_at"),
        Index("ix_events_type_started", "type", "started_at"),
    )


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
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    last_frame_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    offline_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CameraLeaseRow(Base):
    """Which worker runs a camera, until when. A lease not renewed in time is free to take."""

    __tablename__ = "camera_leases"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkerRow(Base):
    """A live worker process (any machine), seen at its last lease renewal."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters and a page of the event list, newest first; `before_seq` is the cursor."""

    site: str | None = None
    camera_id: str | None = None
    type: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    before_seq: int | None = None
    limit: int = 50


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the API) never block the worker
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_index_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite the file's directory is created and WAL switched on."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


class EventIndex:
    """Reads and writes of the index, each in its own short transaction.

    Example:
        >>> index = EventIndex.connect("sqlite://")
        >>> index.list_events(EventQuery())
        []
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str) -> EventIndex:
        index = cls(create_index_engine(url))
        for attempt in range(3):
            try:
                Base.metadata.create_all(index.engine)
                break
            except (OperationalError, ProgrammingError):
                # Another process created the tables between our check and our CREATE.
                if attempt == 2:
                    raise
        return index

    @staticmethod
    def _new_row(event: Event) -> EventRow:
        return EventRow(
            id=event.id,
            site=event.site,
            camera_id=event.camera_id,
            type=event.type,
            label=event.label,
            zone=event.zone,
            severity=event.severity,
            detail=event.detail[:64],
            alarm_method=event.alarm[0] if event.alarm else None,
            alarm_type=event.alarm[1] if event.alarm else None,
            state="active",
            started_at=to_datetime(event.started_at),
            score=event.best_score,
            box=event.best_box.to_list() if event.best_box else None,
        )

    def add_event(self, event: Event) -> None:
        """Index a started event; nothing to do if its end was stored first (a short event
        whose start waited behind others)."""
        with self.sessions.begin() as session:
            found = session.scalars(select(EventRow.seq).where(EventRow.id == event.id)).first()
            if found is None:
                session.add(self._new_row(event))

    def finish_event(self, event: Event, **values: Any) -> None:
        """Set `values` on the event's row, creating the row if its start was never indexed."""
        with self.sessions.begin() as session:
            row = session.scalars(select(EventRow).where(EventRow.id == event.id)).one_or_none()
            if row is None:
                row = self._new_row(event)
                session.add(row)
            for name, value in values.items():
                setattr(row, name, value)

    def get_event(self, event_id: str) -> EventRow | None:
        with self.sessions() as session:
            return session.scalars(select(EventRow).where(EventRow.id == event_id)).one_or_none()

    def list_events(self, query: EventQuery) -> Sequence[EventRow]:
        statement = select(EventRow).order_by(EventRow.seq.desc()).limit(query.limit)
        for column, value in (
            (EventRow.site, query.site),
            (EventRow.camera_id, query.camera_id),
            (EventRow.type, query.type),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if query.start is not None:
            statement = statement.where(EventRow.started_at >= query.start)
        if query.end is not None:
            statement = statement.where(EventRow.started_at < query.end)
        if query.before_seq is not None:
            statement = statement.where(EventRow.seq < query.before_seq)
        with self.sessions() as session:
            return session.scalars(statement).all()

    def put_camera_status(self, row: CameraStatusRow) -> None:
        with self.sessions.begin() as session:
            session.merge(row)

    def camera_statuses(self) -> dict[str, CameraStatusRow]:
        with self.sessions() as session:
            return {r.camera_id: r for r in session.scalars(select(CameraStatusRow)).all()}
