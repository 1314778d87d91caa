"""The event index on SQLite and on a real PostgreSQL: same queries, same answers; migrations.

Each query test runs on both backends and checks the answer against the same filter applied
in Python to the events it stored, so both backends must give identical results.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from minio import Minio
from sqlalchemy import Column, Integer, MetaData, Table, select

from api.app import create_app
from api.config import ApiConfig
from common.types import Box, Event
from storage.database.camera_health import CameraStatusRow, Heartbeats
from storage.database.cameras import CameraRow
from storage.database.engine import Base, IndexDatabaseError
from storage.database.feed import FeedReader
from storage.database.index import EventIndex, EventQuery
from storage.database.leases import CameraLeases, ChoreRow, ChoreTurns
from storage.database.migrations import (
    MODEL_MODULES,
    alembic_config,
    script_directory,
    target_metadata,
)
from storage.database.webhooks import WebhookOutboxRow
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, api_client
from tests.events import person_event
from tests.postgres import PASSWORD, PostgresServer
from tests.servers import free_port

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SITES = ["hq", "north", "south"]
TYPES = ["zone_intrusion", "loitering", "line_crossing", "video_loss"]


def make_events() -> list[Event]:
    """240 events over 3 sites, 6 cameras, 4 types; every 3 share a start time (ties)."""
    events = []
    for n in range(240):
        site = SITES[n % 3]
        started = (T0 + timedelta(minutes=10 * (n // 3))).timestamp()
        event = person_event(
            camera_id=f"{site}-cam{(n // 3) % 2}",
            site=site,
            type=TYPES[(n // 2) % 4],
            started_at=started,
            best_score=0.5 + (n % 5) / 10,
            best_box=Box(0.1, 0.2, 0.3, 0.4),
            alarm=(5, 2) if n % 4 == 0 else None,
            id=f"ev{n:04d}",
        )
        events.append(event)
    return events


@pytest.fixture
def stored(index: EventIndex) -> tuple[EventIndex, list[Event]]:
    """The events indexed as the recorder does; every fourth one ended, with its clip."""
    events = make_events()
    for n, event in enumerate(events):
        index.add_event(event)
        if n % 4 == 1:
            ended = datetime.fromtimestamp(event.started_at, UTC) + timedelta(seconds=30)
            clip = (f"{event.site}/{event.camera_id}/{event.id}.mp4", "ab" * 32, 1000)
            index.store_clip(event, ended, clip, (ended, ended))
    return index, events


def expected(
    events: list[Event], predicate: Callable[[Event, int], bool], limit: int = 1000
) -> list[str]:
    """Ids matching `predicate(event, position)`, newest (last stored) first."""
    matching = [e.id for n, e in enumerate(events) if predicate(e, n)]
    return matching[::-1][:limit]


def where(**fields: str) -> Callable[[Event, int], bool]:
    """A predicate: the event's attributes equal `fields`."""
    return lambda event, _: all(getattr(event, k) == v for k, v in fields.items())


def ids(index: EventIndex, **filters: object) -> list[str]:
    return [row.id for row in index.list_events(EventQuery(limit=1000, **filters))]  # type: ignore[arg-type]


def ended(position: int) -> bool:
    return position % 4 == 1


def at(event: Event) -> datetime:
    return datetime.fromtimestamp(event.started_at, UTC)


@pytest.mark.integration
def test_each_filter_alone(stored: tuple[EventIndex, list[Event]]) -> None:
    index, events = stored
    assert ids(index) == expected(events, lambda e, n: True)
    for site in SITES:
        assert ids(index, site=site) == expected(events, where(site=site))
    for camera in ("hq-cam0", "south-cam1"):
        assert ids(index, camera_id=camera) == expected(events, where(camera_id=camera))
    for kind in TYPES:
        assert ids(index, type=kind) == expected(events, where(type=kind))
    assert ids(index, state="ended") == expected(events, lambda e, n: ended(n))
    assert ids(index, state="active") == expected(events, lambda e, n: not ended(n))
    assert ids(index, site="nowhere") == []


@pytest.mark.integration
def test_time_ranges_are_half_open(stored: tuple[EventIndex, list[Event]]) -> None:
    index, events = stored
    start, end = T0 + timedelta(hours=2), T0 + timedelta(hours=5)  # both on tied starts
    assert ids(index, start=start) == expected(events, lambda e, n: at(e) >= start)
    assert ids(index, end=end) == expected(events, lambda e, n: at(e) < end)
    window = ids(index, start=start, end=end)
    assert window == expected(events, lambda e, n: start <= at(e) < end)
    assert len(window) == 3 * 18  # 18 ten-minute slots of three events each
    # The same instant in another time zone is the same range.
    shanghai = start.astimezone(datetime.now().astimezone().tzinfo)
    assert ids(index, start=shanghai, end=end) == window


@pytest.mark.integration
def test_combined_filters(stored: tuple[EventIndex, list[Event]]) -> None:
    index, events = stored
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=9)
    cases: list[tuple[dict[str, object], Callable[[Event, int], bool]]] = [
        (
            {"site": "hq", "type": "loitering"},
            lambda e, n: e.site == "hq" and e.type == "loitering",
        ),
        ({"site": "north", "camera_id": "north-cam1"}, lambda e, n: e.camera_id == "north-cam1"),
        ({"site": "hq", "camera_id": "north-cam1"}, lambda e, n: False),
        (
            {"type": "video_loss", "start": start, "end": end},
            lambda e, n: e.type == "video_loss" and start <= at(e) < end,
        ),
        (
            {"camera_id": "south-cam0", "start": start},
            lambda e, n: e.camera_id == "south-cam0" and at(e) >= start,
        ),
        (
            {"site": "south", "state": "ended", "end": end},
            lambda e, n: e.site == "south" and ended(n) and at(e) < end,
        ),
        (
            {"site": "hq", "camera_id": "hq-cam1", "type": "zone_intrusion", "state": "active"},
            lambda e, n: e.camera_id == "hq-cam1" and e.type == "zone_intrusion" and not ended(n),
        ),
    ]
    for filters, predicate in cases:
        assert ids(index, **filters) == expected(events, predicate), filters


@pytest.mark.integration
def test_pagination_walks_every_match_once(stored: tuple[EventIndex, list[Event]]) -> None:
    """Pages of 7 (so page edges split groups of events with the same start) by cursor."""
    index, events = stored
    later = T0 + timedelta(hours=3)
    cases: list[tuple[dict[str, object], Callable[[Event, int], bool]]] = [
        ({}, lambda e, n: True),
        ({"site": "north"}, lambda e, n: e.site == "north"),
        (
            {"type": "loitering", "start": later},
            lambda e, n: e.type == "loitering" and at(e) >= later,
        ),
    ]
    for filters, predicate in cases:
        seen: list[str] = []
        cursor: int | None = None
        while True:
            page = index.list_events(EventQuery(limit=7, before_seq=cursor, **filters))  # type: ignore[arg-type]
            seen += [row.id for row in page]
            if len(page) < 7:
                break
            cursor = page[-1].seq
        assert seen == expected(events, predicate), filters
    # A cursor is a position, not a row: events added meanwhile do not shift older pages.
    first = index.list_events(EventQuery(limit=7))
    index.add_event(dataclasses.replace(make_events()[0], id="late"))
    after = index.list_events(EventQuery(limit=7, before_seq=first[-1].seq))
    assert [r.id for r in after] == expected(events, lambda e, n: True)[7:14]


@pytest.mark.integration
def test_an_end_updates_or_creates_the_row(index: EventIndex) -> None:
    started = make_events()[0]
    index.add_event(started)
    index.add_event(started)  # a repeated start is ignored
    end = T0 + timedelta(seconds=42)
    index.store_clip(started, end, ("hq/clip.mp4", "ab" * 32, 1000), (T0, end))
    row = index.get_event(started.id)
    assert row is not None and row.state == "ended" and row.ended_at == end
    assert (
        row.clip_sha256 == "ab" * 32 and row.alarm_method == 5 and row.box == [0.1, 0.2, 0.3, 0.4]
    )
    assert row.started_at == T0 and row.started_at.tzinfo is not None

    # An end stored before its start (a short event whose start waited): the row is created,
    # and the late start leaves it alone.
    short = make_events()[1]
    index.end_event(short, end, clip_error="no packets")
    index.add_event(short)
    rows = index.list_events(EventQuery())
    assert [r.id for r in rows] == [short.id, started.id]
    assert rows[0].state == "ended" and rows[0].clip_error == "no packets"
    assert [(e.kind, e.event_id) for e in FeedReader(index, after=0).read()] == [
        ("started", started.id),
        ("clip", started.id),
        ("ended", short.id),
    ]
    assert index.get_event("missing") is None


def test_events_a_dead_worker_left_active_are_ended(index: EventIndex) -> None:
    gate = [replace(e, camera_id="gate") for e in make_events()[:3]]
    elsewhere = replace(make_events()[3], camera_id="door")
    for event in [*gate, elsewhere]:
        index.add_event(event)
    index.end_event(gate[1], at(gate[1]))
    taken_over = at(gate[2]) + timedelta(seconds=1)
    assert index.end_orphans("gate", taken_over, "interrupted") == 2
    for event in (gate[0], gate[2]):
        row = index.get_event(event.id)
        assert row is not None and row.state == "ended"
        assert row.ended_at == taken_over and row.clip_error == "interrupted"
    finished, other = index.get_event(gate[1].id), index.get_event(elsewhere.id)
    assert finished is not None and finished.clip_error is None
    assert other is not None and other.state == "active"
    assert index.end_orphans("gate", taken_over, "interrupted") == 0


@pytest.mark.integration
def test_camera_heartbeats_are_upserted(index: EventIndex) -> None:
    beat = T0 + timedelta(minutes=1)
    Heartbeats(index).put_status(
        CameraStatusRow(camera_id="gate", site="hq", state="online", decoded_frames=[1, 2])
    )
    Heartbeats(index).put_status(
        CameraStatusRow(camera_id="gate", site="hq", state="offline", error="eof", updated_at=beat)
    )
    Heartbeats(index).put_status(CameraStatusRow(camera_id="yard", site="hq", state="connecting"))
    statuses = Heartbeats(index).statuses()
    assert sorted(statuses) == ["gate", "yard"]
    assert statuses["gate"].state == "offline" and statuses["gate"].error == "eof"
    assert statuses["gate"].updated_at == beat


@pytest.mark.integration
def test_leases_share_cameras_and_expire(index: EventIndex) -> None:
    cameras = [f"cam{n}" for n in range(5)]
    first = CameraLeases(index, "w1", lease_s=30)
    assert first.balance(cameras) == set(cameras)
    second = CameraLeases(index, "w2", lease_s=30)
    assert second.balance(cameras) == set()  # all held and not expired
    held = first.balance(cameras)  # two live workers now: w1 keeps its share of 3
    assert len(held) == 3
    taken = second.balance(cameras)
    assert taken == set(cameras) - held
    first.leave()
    assert second.balance(cameras) == set(cameras)

    # A lease not renewed in time is free to take.
    quick = CameraLeases(index, "w3", lease_s=-1)  # expires at once
    second.leave()
    assert quick.balance(["solo"]) == {"solo"}
    assert CameraLeases(index, "w4", lease_s=30).balance(["solo"]) == {"solo"}


@pytest.mark.integration
def test_one_process_of_the_deployment_takes_each_turn_of_a_chore(index: EventIndex) -> None:
    nodes = [ChoreTurns(index, f"api-{n}") for n in range(4)]
    done: list[str] = []
    barrier = threading.Barrier(len(nodes))

    def round_at(node: ChoreTurns, at: datetime) -> None:
        barrier.wait()  # all four try at once
        if node.take("retention", 3600, at):
            done.append(node.holder)

    for hour in range(3):
        at = T0 + timedelta(hours=hour, seconds=1)
        threads = [threading.Thread(target=round_at, args=(node, at)) for node in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(done) == hour + 1  # exactly one per round
    assert not nodes[0].take("retention", 3600, T0 + timedelta(hours=2, minutes=59))  # not due
    ran: list[str] = []
    assert nodes[0].run("audit", 60, lambda: ran.append("api-0"))  # chores are independent
    assert not nodes[1].run("audit", 60, lambda: ran.append("api-1"))  # due in a minute
    assert ran == ["api-0"]
    with index.sessions() as session:
        row = session.get(ChoreRow, "retention")
        assert row is not None and row.holder == done[-1]
        assert row.due_at == T0 + timedelta(hours=3, seconds=1)


@pytest.mark.integration
def test_outbox_and_api_cameras_round_trip(index: EventIndex) -> None:
    due = T0 + timedelta(seconds=5)
    with index.sessions.begin() as session:
        session.add(
            WebhookOutboxRow(
                subscription_id="shop-7",
                event_id="ev0001",
                payload={"type": "zone_intrusion", "box": [0.1, 0.2]},
                next_attempt_at=due,
            )
        )
        session.add(
            CameraRow(
                id="gate",
                site="hq",
                name="Gate",
                url="rtsp://10.0.0.5/live",
                username="admin",
                password="hunter2",
                config={"zones": [{"name": "door"}]},
            )
        )
    with index.sessions() as session:
        pending = session.scalars(
            select(WebhookOutboxRow).where(
                WebhookOutboxRow.state == "pending", WebhookOutboxRow.next_attempt_at <= due
            )
        ).all()
        assert [(r.event_id, r.payload, r.attempts) for r in pending] == [
            ("ev0001", {"type": "zone_intrusion", "box": [0.1, 0.2]}, 0)
        ]
        camera = session.get(CameraRow, "gate")
        assert camera is not None and camera.enabled is True and camera.password == "hunter2"
        assert camera.config == {"zones": [{"name": "door"}]} and camera.updated_at.tzinfo


def schema_differences(url: str) -> list[object]:
    index = EventIndex.connect(url)
    try:
        with index.engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), target_metadata()))
    finally:
        index.close()


@pytest.mark.integration
def test_migrations_give_exactly_the_models_schema(index_url: str) -> None:
    """Fails when a model changes without a migration: write one (storage/database/migrations)."""
    assert schema_differences(index_url) == []


def test_the_schema_comparison_sees_a_change() -> None:
    """The check above is not blind: a column the migrations lack is a difference."""
    index = EventIndex.connect("sqlite://")
    changed = MetaData()
    for table in target_metadata().tables.values():
        table.to_metadata(changed)
    Table("workers", changed, Column("cpu", Integer), extend_existing=True)
    with index.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), changed)
    assert [d[0] for d in differences] == ["add_column"]


def test_every_module_with_tables_is_listed_for_migrations() -> None:
    """A module that defines tables on Base must be in MODEL_MODULES (and have a migration),
    or its tables would be missing from a migrated database."""
    for package in ("common", "ingest", "analytics", "storage", "api", "gb28181", "xueliang"):
        for module in pkgutil.walk_packages(
            importlib.import_module(package).__path__, f"{package}."
        ):
            if module.name != "storage.database.migrations.env" and not module.name.endswith(
                "__main__"
            ):
                importlib.import_module(module.name)
    defined = {mapper.class_.__module__ for mapper in Base.registry.mappers}
    assert defined <= set(MODEL_MODULES), (
        f"add to storage.database.migrations.MODEL_MODULES: {defined}"
    )


@pytest.mark.integration
def test_downgrade_and_upgrade_again(index_url: str) -> None:
    index = EventIndex.connect(index_url)
    config = alembic_config()
    with index.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    index.close()
    assert schema_differences(index_url) == []


LEGACY_SQLITE_SCHEMA = """
CREATE TABLE events (
    seq INTEGER NOT NULL, id VARCHAR(32) NOT NULL, site VARCHAR(64) NOT NULL,
    camera_id VARCHAR(64) NOT NULL, type VARCHAR(32) NOT NULL, label VARCHAR(32) NOT NULL,
    zone VARCHAR(64) NOT NULL, severity VARCHAR(8) NOT NULL, detail VARCHAR(64) NOT NULL,
    alarm_method INTEGER, alarm_type INTEGER, state VARCHAR(16) NOT NULL,
    started_at DATETIME NOT NULL, ended_at DATETIME, score FLOAT NOT NULL, box JSON,
    snapshot_key VARCHAR(256), snapshot_sha256 VARCHAR(64), clip_key VARCHAR(256),
    clip_sha256 VARCHAR(64), clip_start DATETIME, clip_end DATETIME, clip_error VARCHAR(256),
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
    PRIMARY KEY (seq), UNIQUE (id)
);
CREATE INDEX ix_events_camera_started ON events (camera_id, started_at);
CREATE INDEX ix_events_site_started ON events (site, started_at);
CREATE INDEX ix_events_type_started ON events (type, started_at);
CREATE TABLE camera_status (
    camera_id VARCHAR(64) NOT NULL, site VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL,
    reasons VARCHAR(256), input_fps FLOAT NOT NULL, decode_fps FLOAT NOT NULL,
    expected_fps FLOAT, bitrate_kbps FLOAT NOT NULL, decoded_frames JSON NOT NULL,
    corrupt_packets INTEGER NOT NULL, decode_errors INTEGER NOT NULL,
    timestamp_jumps INTEGER NOT NULL, reconnects INTEGER NOT NULL, last_frame_at DATETIME,
    offline_since DATETIME, error VARCHAR(256), worker_id VARCHAR(64),
    updated_at DATETIME NOT NULL, PRIMARY KEY (camera_id)
);
CREATE TABLE camera_leases (
    camera_id VARCHAR(64) NOT NULL, worker_id VARCHAR(64), expires_at DATETIME NOT NULL,
    PRIMARY KEY (camera_id)
);
CREATE TABLE workers (
    worker_id VARCHAR(64) NOT NULL, seen_at DATETIME NOT NULL, PRIMARY KEY (worker_id)
);
INSERT INTO events VALUES (1, 'old1', 'hq', 'gate', 'zone_intrusion', 'person', 'door', 'high',
    '', 5, 2, 'ended', '2026-01-05 10:00:00.000000', '2026-01-05 10:00:30.000000', 0.9,
    '[0.1, 0.2, 0.3, 0.4]', NULL, NULL, 'hq/gate/old1.mp4', NULL, NULL, NULL, NULL,
    '2026-01-05 10:00:01.000000', '2026-01-05 10:00:31.000000');
"""
"""What `Base.metadata.create_all` of the code before migrations made (SQLite), with a row."""


def test_a_database_from_before_migrations_is_stamped_and_works(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(LEGACY_SQLITE_SCHEMA)
    index = EventIndex.connect(f"sqlite:///{path}")
    with index.engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
        assert set(heads) == set(script_directory().get_heads())
        assert compare_metadata(MigrationContext.configure(connection), target_metadata()) == []
    old = index.get_event("old1")
    assert old is not None and old.started_at == datetime(2026, 1, 5, 10, tzinfo=UTC)
    index.add_event(make_events()[0])
    assert [r.id for r in index.list_events(EventQuery(site="hq"))] == ["ev0000", "old1"]
    index.close()
    with sqlite3.connect(path) as connection:  # still WAL, as every index file
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_unmigrated_database_of_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            LEGACY_SQLITE_SCHEMA.replace("clip_error VARCHAR(256),", "").split("INSERT")[0]
        )
    with pytest.raises(IndexDatabaseError) as caught:
        EventIndex.connect(f"sqlite:///{path}")
    message = str(caught.value)
    assert str(path) in message and "clip_error" in message and "baseline" in message
    with sqlite3.connect(path) as connection:  # left as it was
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        assert "alembic_version" not in tables


def test_a_database_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    EventIndex.connect(url).close()
    with sqlite3.connect(tmp_path / "new.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(IndexDatabaseError, match="at revision 9999, which this program"):
        EventIndex.connect(url)


@pytest.mark.integration
def test_processes_starting_together_migrate_once(index_url: str) -> None:
    errors: list[BaseException] = []

    def open_index() -> None:
        try:
            EventIndex.connect(index_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_index) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert schema_differences(index_url) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://admin:topsecret@db.example/x", "mysql://***@db.example/x: unsupported"),
        ("postgres//admin:topsecret@db.example/x", "***@db.example/x: not a database URL"),
        ("postgresql+psycopg2://admin:topsecret@127.0.0.1/x", "driver not available"),
    ],
)
def test_bad_urls_are_named_without_the_password(url: str, shown: str) -> None:
    with pytest.raises(IndexDatabaseError) as caught:
        EventIndex.connect(url)
    assert shown in str(caught.value)
    assert "topsecret" not in str(caught.value) and "admin" not in str(caught.value)


def test_an_unreachable_server_is_named_without_the_password() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(IndexDatabaseError) as caught:
        EventIndex.connect(f"postgresql://admin:topsecret@127.0.0.1:{port}/xueliang")
    message = str(caught.value)
    assert message.startswith(f"event index postgresql+psycopg://***@127.0.0.1:{port}/xueliang:")
    assert "refused" in message.lower() and "topsecret" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.integration
def test_a_wrong_password_is_named_without_it(postgres: PostgresServer) -> None:
    with pytest.raises(IndexDatabaseError) as caught:
        EventIndex.connect(postgres.url(password="wrong-Secret-1"))
    message = str(caught.value)
    assert f"127.0.0.1:{postgres.port}/postgres" in message and "password" in message
    assert "wrong-Secret-1" not in message and PASSWORD not in message


def test_the_api_pages_with_any_cursor_on_either_backend(index: EventIndex) -> None:
    """Cursors are event numbers, 32-bit in the index; a larger one means "from the newest"
    (on PostgreSQL it used to overflow the query's INTEGER parameter: a 500)."""
    for event in make_events()[:3]:
        index.add_event(event)
    store = ObjectStore(Minio("127.0.0.1:9", "key", "secret", secure=False), "unused")
    app = create_app(index, store, [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index) as http:
        for cursor in ("2147483648", "999999999999999999"):
            page = http.get(f"/api/events?cursor={cursor}")
            assert page.status_code == 200 and len(page.json()["items"]) == 3, page.text
