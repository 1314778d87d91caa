"""The event index: the database every process shares.

Events, camera heartbeats and leases, live workers, the webhook outbox and the cameras added over
the API. SQLite (WAL) by default, PostgreSQL (`postgresql+psycopg://`) for several nodes: the
same models and queries on both. `EventIndex.connect` migrates the schema to head with Alembic
(storage/migrations/) before anything else touches it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from common.types import Event
from ingest.redact import redact_text


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
    """The declarative base of every index table; a module that adds tables to it must be
    listed in `storage.migrations.MODEL_MODULES` and come with a migration."""


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
    clip_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    snapshot_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    clip_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clip_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clip_error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # The operator's workflow (storage/workflow.py): new, acknowledged, resolved, false_alarm.
    status: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # The list is newest first by `seq` (the cursor): an equality filter with an index ending
    # in `seq` reads one page of its newest rows and stops. A time range reads the seqs of its
    # rows from a `(column, started_at, seq)` index alone and sorts only those (list_events).
    # Migration 0002 explains; bench/index.py times them.
    __table_args__ = (
        Index("ix_events_camera_started", "camera_id", "started_at", "seq"),
        Index("ix_events_site_started", "site", "started_at", "seq"),
        Index("ix_events_type_started", "type", "started_at", "seq"),
        Index("ix_events_site_seq", "site", "seq"),
        Index("ix_events_camera_seq", "camera_id", "seq"),
        Index("ix_events_type_seq", "type", "seq"),
        Index("ix_events_state_seq", "state", "seq"),
        Index("ix_events_site_type_seq", "site", "type", "seq"),
        Index("ix_events_site_state_seq", "site", "state", "seq"),  # a site's live wall
        Index("ix_events_site_status_seq", "site", "status", "seq"),  # what is still new
        Index("ix_events_status_seq", "status", "seq"),
        Index("ix_events_started", "started_at", "seq"),
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
    `EventIndex.put_camera_status`: the worst state seen, the lowest and mean frame rates,
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
            camera_id=status.camera_id, minute=minute, site=status.site, state=status.state,
            heartbeats=1, input_fps_min=input_fps, input_fps_avg=input_fps,
            decode_fps_min=decode_fps, decode_fps_avg=decode_fps,
            bitrate_kbps_avg=status.bitrate_kbps or 0.0, reconnects=reconnects,
        )  # fmt: skip

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


FeedKind = str  # started, ended, clip, snapshot, status, updated


def event_of_row(row: EventRow, **changes: Any) -> Event:
    """The event an index row describes (as analytics would have made it), with `changes`."""
    started = row.started_at.timestamp()
    ended = row.ended_at.timestamp() if row.ended_at is not None else None
    alarm = (row.alarm_method, row.alarm_type) if row.alarm_method is not None else None
    fields: dict[str, Any] = {
        "camera_id": row.camera_id, "site": row.site, "type": row.type, "label": row.label,
        "zone": row.zone, "severity": row.severity, "started_at": started,
        "last_seen_at": ended or started, "best_score": row.score, "ended_at": ended,
        "detail": row.detail, "alarm": alarm, "id": row.id,
    }  # fmt: skip
    return Event(**{**fields, **changes})


class EventFeedRow(Base):
    """One change of one event, appended in the transaction that makes it: what the live
    streams, webhooks and MQTT read (a transactional outbox), by increasing `id`.

    `kind` is `started`, `ended`, `clip` and `snapshot` (its media are stored), `status` (the
    operator's workflow) or `updated`."""

    __tablename__ = "event_feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_event_feed_at", "at"),)  # for trimming old entries


def feed_kind(values: dict[str, Any]) -> FeedKind:
    """What a `finish_event` with these values tells the feed."""
    if "clip_key" in values:
        return "clip"
    if "snapshot_key" in values:
        return "snapshot"
    return "ended" if values.get("state") == "ended" else "updated"


class CameraLeaseRow(Base):
    """Which worker runs a camera, until when. A lease not renewed in time is free to take."""

    __tablename__ = "camera_leases"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_camera_leases_worker", "worker_id"),)  # renewals, releases


class WorkerRow(Base):
    """A live worker process (any machine), seen at its last lease renewal."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Its latest figures (detector latency, spool, uploads): what the API's /metrics shows.
    stats: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)


class ChoreRow(Base):
    """A deployment-wide chore (retention sweep, evidence audit): when it is next due, and
    the process that took its last turn; for a standing chore (publishing to MQTT), when
    its holder's lease lapses and how far it got."""

    __tablename__ = "chores"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class WebhookOutboxRow(Base):
    """One webhook delivery to make: written in the transaction that stores the event, sent
    and retried by the dispatcher (issue 6) until delivered or given up.

    `state` is `pending` (due at `next_attempt_at`), `delivered` or `dead` (no more tries; a
    replay makes it pending again). One row per subscription and feed entry (`feed_id`).
    No foreign key to `events`: the retention sweeper may delete an event whose delivery record
    is still wanted. The dispatcher's query is `state = 'pending' AND next_attempt_at <= now`.

    Example:
        >>> row = WebhookOutboxRow(subscription_id="shop-7", event_id="e1", payload={"a": 1})
        >>> row.subscription_id, row.payload
        ('shop-7', {'a': 1})
    """

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(64))  # the target it goes to
    event_id: Mapped[str] = mapped_column(String(32))
    feed_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the body's content
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_webhook_outbox_due", "state", "next_attempt_at"),
        Index("ix_webhook_outbox_event", "event_id"),
        Index("ux_webhook_outbox_feed", "subscription_id", "feed_id", unique=True),
    )


class CameraRow(Base):
    """A camera added over the API (issue 6), next to those in the YAML config.

    `username` and `password` are stored sealed (storage/sealing.py: the keys are in a file
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


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters and a page of the event list, newest first; `before_seq` is the cursor."""

    site: str | None = None
    camera_id: str | None = None
    type: str | None = None
    state: str | None = None
    status: str | None = None
    severity: str | None = None
    sites: Sequence[str] | None = None  # the caller's scope: only these sites (None: all)
    start: datetime | None = None
    end: datetime | None = None
    before_seq: int | None = None
    limit: int = 50


class IndexDatabaseError(RuntimeError):
    """The index database cannot be used: bad URL, unreachable, or a schema we cannot migrate.
    The message names the database with its credentials replaced by `***`."""


def describe_url(url: str | URL) -> str:
    """`url` fit for a log or an error: user and password replaced by `***`.

    Example:
        >>> describe_url("postgresql+psycopg://xl:s3cret@db.local:5432/xueliang")
        'postgresql+psycopg://***@db.local:5432/xueliang'
        >>> describe_url("postgres//xl:s3cret@db.local/x")  # not even a URL
        '***@db.local/x'
        >>> describe_url("postgresql://xl:p@ss/w@db.local/x")  # "@" and "/" not escaped
        'postgresql://***@db.local/x'
    """
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    if "@" not in url:
        return redact_text(url)  # no user-info; still hide ?password=... parameters
    # Everything before the last "@" goes, so a password with a stray "@" or "/" cannot leak.
    scheme, separator, _ = url.partition("://")
    kept = "***@" + url.rsplit("@", 1)[1]
    return redact_text(f"{scheme}://{kept}" if separator and "@" not in scheme else kept)


def _reason(exc: BaseException, url: URL) -> str:
    """The first line of a driver error, with the password scrubbed should it be quoted."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(original).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return redact_text(reason)


def parse_index_url(url: str) -> URL:
    """Parse and check an index URL; PostgreSQL without a driver gets psycopg (3).

    Example:
        >>> parse_index_url("postgresql://xl:pw@db/xueliang").drivername
        'postgresql+psycopg'
        >>> parse_index_url("mysql://xl:pw@db/x")
        Traceback (most recent call last):
        ...
        storage.index.IndexDatabaseError: event index mysql://***@db/x: unsupported database \
(use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE)
    """
    usage = "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise IndexDatabaseError(
            f"event index {describe_url(url)}: not a database URL ({usage})"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise IndexDatabaseError(f"event index {describe_url(url)}: unsupported database ({usage})")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the API) never block the worker
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_index_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite the file's directory is created and WAL switched on.

    Raises IndexDatabaseError (URL redacted) for a URL that is no SQLite or PostgreSQL one.
    """
    parsed = parse_index_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            if not _is_memory(parsed):
                Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": 10, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # A server that does not answer fails in seconds, not at the OS's TCP timeout.
            engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except (NoSuchModuleError, ImportError) as exc:
        raise IndexDatabaseError(
            f"event index {describe_url(parsed)}: driver not available ({exc})"
        ) from None
    return engine


def _migration_engine(engine: Engine) -> Engine:
    """An engine whose transactions take SQLite's write lock at BEGIN and include DDL.

    pysqlite starts transactions only before DML, so Alembic's CREATE TABLEs would commit one
    by one and two processes starting together could both migrate. With the driver's own
    transaction handling off and `BEGIN IMMEDIATE` emitted by us, the whole migration is one
    transaction and the second process waits, then finds the schema at head. PostgreSQL has
    transactional DDL and takes an advisory lock instead; an in-memory SQLite has no rivals
    (and a second engine would be a second database).
    """
    if engine.dialect.name != "sqlite" or _is_memory(engine.url):
        return engine
    migrating = create_engine(
        engine.url, poolclass=NullPool, connect_args={"timeout": 60, "check_same_thread": False}
    )

    @event.listens_for(migrating, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None

    @event.listens_for(migrating, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return migrating


# pg_advisory_xact_lock key: any constant, the same in every process ("xueliang" in ASCII).
_MIGRATION_LOCK = 0x7875656C69616E67


@functools.cache
def _baseline_columns() -> dict[str, frozenset[str]]:
    """Table -> column names of the baseline revision, built in a scratch in-memory database."""
    from storage.migrations import BASELINE, alembic_config

    scratch = create_engine("sqlite://")
    with scratch.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, BASELINE)
        inspector = inspect(connection)
        tables = {
            table: frozenset(column["name"] for column in inspector.get_columns(table))
            for table in inspector.get_table_names()
            if table != "alembic_version"
        }
    scratch.dispose()
    return tables


def _stamp_if_legacy(connection: Connection, name: str) -> None:
    """A database made by `create_all` before migrations existed: stamp it as the baseline if
    its tables are the baseline's, refuse it otherwise (migrating an unknown shape is a guess).
    """
    from storage.migrations import BASELINE, alembic_config

    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    baseline = _baseline_columns()
    if "alembic_version" in tables or not tables & baseline.keys():
        return  # migrated before, or empty (other applications' tables are left alone)
    found = {
        table: frozenset(column["name"] for column in inspector.get_columns(table))
        for table in tables & baseline.keys()
    }
    if found != baseline:
        problems = [f"table {t} missing" for t in sorted(baseline.keys() - found.keys())]
        for table in sorted(found):
            if found[table] != baseline[table]:
                missing = sorted(baseline[table] - found[table])
                extra = sorted(found[table] - baseline[table])
                problems.append(f"{table}: columns missing {missing}, unexpected {extra}")
        raise IndexDatabaseError(
            f"event index {name}: has index tables but no migration history (alembic_version),"
            f" and they do not match the baseline schema {BASELINE}: {'; '.join(problems)}. "
            "Move the database aside (a new one is created) or migrate it by hand."
        )
    config = alembic_config()
    config.attributes["connection"] = connection
    command.stamp(config, BASELINE)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def migrate(engine: Engine) -> None:
    """Bring the index schema to head (no-op when it is there): Alembic, under a lock.

    Raises IndexDatabaseError naming the database (credentials redacted) when it cannot be
    reached, is newer than this program, or is an older unmigrated one of another shape.
    """
    from storage.migrations import alembic_config, script_directory

    name = describe_url(engine.url)
    script = script_directory()
    heads = set(script.get_heads())
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        unknown = {rev for rev in current if not _known(script, rev)}
        if unknown:
            raise IndexDatabaseError(
                f"event index {name}: at revision {', '.join(sorted(unknown))}, which this "
                f"program does not know (its newest: {', '.join(sorted(heads))}); run a newer one"
            )
        if current == heads:
            return
        migrating = _migration_engine(engine)
        try:
            with migrating.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                _stamp_if_legacy(connection, name)
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            if migrating is not engine:
                migrating.dispose()
    except DBAPIError as exc:
        raise IndexDatabaseError(f"event index {name}: {_reason(exc, engine.url)}") from None


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
        """Open the index at `url` (SQLite or PostgreSQL) and migrate its schema to head.

        Raises IndexDatabaseError, naming the database without its password, when the URL is
        bad, the server cannot be reached or the schema cannot be migrated.
        """
        engine = create_index_engine(url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        """Close the pooled connections (a test or tool done with this index)."""
        self.engine.dispose()

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
                session.add(EventFeedRow(event_id=event.id, site=event.site, kind="started"))

    def finish_event(self, event: Event, **values: Any) -> None:
        """Set `values` on the event's row, creating the row if its start was never indexed."""
        with self.sessions.begin() as session:
            row = session.scalars(select(EventRow).where(EventRow.id == event.id)).one_or_none()
            if row is None:
                row = self._new_row(event)
                session.add(row)
            for name, value in values.items():
                setattr(row, name, value)
            session.add(EventFeedRow(event_id=event.id, site=event.site, kind=feed_kind(values)))

    def end_orphans(self, camera_id: str, before: datetime, note: str) -> int:
        """End the camera's events still active that started before `before`: those of a
        worker that died (or handed the camera over and will end them itself, overwriting
        this). Returns how many."""
        orphaned = (
            EventRow.camera_id == camera_id,
            EventRow.state == "active",
            EventRow.started_at < before,
        )
        with self.sessions.begin() as session:
            ended = session.execute(select(EventRow.id, EventRow.site).where(*orphaned)).all()
            session.execute(
                update(EventRow)
                .where(*orphaned)
                .values(state="ended", ended_at=before, clip_error=note[:256])
            )
            session.add_all(EventFeedRow(event_id=i, site=s, kind="ended") for i, s in ended)
            return len(ended)

    def get_event(self, event_id: str) -> EventRow | None:
        with self.sessions() as session:
            return session.scalars(select(EventRow).where(EventRow.id == event_id)).one_or_none()

    def list_events(self, query: EventQuery) -> Sequence[EventRow]:
        """A page of events matching `query`, newest (highest `seq`) first."""
        conditions = [
            column == value
            for column, value in (
                (EventRow.site, query.site),
                (EventRow.camera_id, query.camera_id),
                (EventRow.type, query.type),
                (EventRow.state, query.state),
                (EventRow.status, query.status),
                (EventRow.severity, query.severity),
            )
            if value is not None
        ]
        if query.sites is not None:
            conditions.append(EventRow.site.in_(list(query.sites)))
        if query.start is not None:
            conditions.append(EventRow.started_at >= query.start)
        if query.end is not None:
            conditions.append(EventRow.started_at < query.end)
        if query.before_seq is not None:
            conditions.append(EventRow.seq < query.before_seq)
        newest = EventRow.seq.desc()
        if query.start is None and query.end is None:
            statement = select(EventRow).where(*conditions).order_by(newest).limit(query.limit)
        else:
            # Pick the page's seqs from a (column, started_at, seq) index alone, then fetch those
            # rows. Asked for whole rows, PostgreSQL walks the primary key back from the newest
            # event until the range is reached (it assumes matches are spread evenly over seq,
            # but seq follows time), and SQLite sorts whole rows: 150-400 ms on 1M events
            # against about 2 ms this way (bench/index.py).
            page = select(EventRow.seq).where(*conditions).order_by(newest).limit(query.limit)
            statement = select(EventRow).where(EventRow.seq.in_(page)).order_by(newest)
        with self.sessions() as session:
            return session.scalars(statement).all()

    def put_worker_stats(self, worker_id: str, stats: dict[str, float]) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(WorkerRow).where(WorkerRow.worker_id == worker_id).values(stats=stats)
            )

    def worker_stats(self) -> dict[str, dict[str, float]]:
        with self.sessions() as session:
            rows = session.execute(select(WorkerRow.worker_id, WorkerRow.stats)).all()
        return {worker_id: stats for worker_id, stats in rows if stats}

    def put_camera_picture(self, row: CameraPictureRow) -> None:
        with self.sessions.begin() as session:
            session.merge(row)

    def camera_picture(self, camera_id: str) -> CameraPictureRow | None:
        with self.sessions() as session:
            return session.get(CameraPictureRow, camera_id)

    def put_camera_status(self, row: CameraStatusRow) -> None:
        """Store a camera's heartbeat as its latest status and fold it into its minute of
        history (CameraHealthRow), in one transaction: two reads and two writes by key."""
        minute = (row.updated_at or utcnow()).astimezone(UTC).replace(second=0, microsecond=0)
        # Two workers may report one camera while its lease moves: the one whose new row
        # lost the race finds the other's row on its second try.
        for attempt in (1, 2):
            try:
                with self.sessions.begin() as session:
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

    def camera_health(self, camera_id: str, since: datetime) -> Sequence[CameraHealthRow]:
        """The camera's minutes of history from `since` on, oldest first."""
        statement = (
            select(CameraHealthRow)
            .where(CameraHealthRow.camera_id == camera_id, CameraHealthRow.minute >= since)
            .order_by(CameraHealthRow.minute)
        )
        with self.sessions() as session:
            return session.scalars(statement).all()

    def camera_statuses(self) -> dict[str, CameraStatusRow]:
        with self.sessions() as session:
            return {r.camera_id: r for r in session.scalars(select(CameraStatusRow)).all()}
