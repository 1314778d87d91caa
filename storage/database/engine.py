"""The shared database's engine: its URL, its connection, its schema migrations.

Every process (workers, API, the protocol servers) opens the same database: SQLite (WAL) by
default, PostgreSQL (`postgresql+psycopg://`) for several nodes, the same models and queries
on both. `Database.connect` migrates the schema to head with Alembic (`migrations/`) before
anything else touches it. The tables are defined by the modules that own them on `Base`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, overload

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import DateTime, TypeDecorator, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.pool import NullPool

from common.redact import redact_text


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


@overload
def to_datetime(epoch: float) -> datetime: ...
@overload
def to_datetime(epoch: None) -> None: ...
@overload
def to_datetime(epoch: float | None) -> datetime | None: ...
def to_datetime(epoch: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime (None stays None)."""
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The declarative base of every index table; a module that adds tables to it must be
    listed in `storage.database.migrations.MODEL_MODULES` and come with a migration."""


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
        storage.database.engine.IndexDatabaseError: event index mysql://***@db/x: unsupported \
database (use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE)
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
    from storage.database.migrations import BASELINE, alembic_config

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
    from storage.database.migrations import BASELINE, alembic_config

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
    from storage.database.migrations import alembic_config, script_directory

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


class Database:
    """The shared database, open: its engine and a factory of short sessions.

    Example:
        >>> database = Database.connect("sqlite://")
        >>> with database.sessions() as session:
        ...     session.execute(text("SELECT 1")).scalar()
        1
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str) -> Self:
        """Open the database at `url` (SQLite or PostgreSQL) and migrate its schema to head.

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
        """Close the pooled connections (a test or tool done with this database)."""
        self.engine.dispose()
