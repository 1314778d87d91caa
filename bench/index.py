"""The event index at scale: insert rates and the console's query latencies on 1M events,
SQLite and PostgreSQL. One JSON line.

Per backend, a fresh database migrated to head gets `--rows` events (20 sites, 400 cameras,
12 types, over 30 days, the newest 0.1% still active) in transactions of 50,000 rows
(`executemany` on SQLite, `COPY` on PostgreSQL) with the secondary indexes dropped and built
again after (`generate_s`). Each of the console's queries then runs `--queries` times with
random parameters through `EventIndex.list_events` (50 rows, newest first, loaded as ORM
objects as the API does): `newest` (no filter), `camera` (one camera), `type_time` (one type
in a random one-day window), `next_page` (one camera, a cursor at a random point) and
`site_active` (a site's active events: the live wall); p50 and p99 in milliseconds. Then the
write rates into the full, indexed table: `recorder_events_per_s`, events written as the
recorder writes them (`add_event` at the start, `store_clip` with the clip at the end: two
transactions each), `one_per_txn_rows_per_s` (one INSERT per transaction) and
`bulk_rows_per_s` (`--bulk` rows in batches of 50,000).

SQLite is the default file in WAL mode (synchronous=NORMAL: a commit does not wait for the
disk); PostgreSQL is Debian's server started as in the tests (tests/postgres.py) but with its
default durability (every commit flushes the WAL). Both are analysed after the load
(PostgreSQL: VACUUM ANALYZE, as autovacuum does after inserts); SQLite picks the same plans
without statistics.

Usage:
    .venv/bin/python bench/index.py [--rows 1000000] [--queries 200] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from decode import log
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from common.types import Box, Event
from storage.database.index import EventIndex, EventQuery, EventRow
from tests.postgres import running_postgres

SITES = [f"site{n:02d}" for n in range(20)]
CAMERAS = [f"{site}-cam{n:02d}" for site in SITES for n in range(20)]
TYPES = [
    "zone_intrusion", "loitering", "line_crossing", "crowd", "wrong_way", "illegal_parking",
    "after_hours", "abandoned_object", "removed_object", "video_loss", "frozen_frame",
    "occlusion",
]  # fmt: skip
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
COLUMNS = [
    "id", "site", "camera_id", "type", "label", "zone", "severity", "detail", "alarm_method",
    "alarm_type", "state", "started_at", "ended_at", "score", "box", "snapshot_key",
    "snapshot_sha256", "clip_key", "clip_sha256", "clip_start", "clip_end", "created_at",
    "updated_at",
]  # fmt: skip
BATCH = 50_000


def rows(count: int, seed: int = 1, zone: str = "") -> Iterator[tuple[Any, ...]]:
    """`count` events in start order (with jitter), as tuples of COLUMNS; times are UTC text
    ending in `zone` (SQLite stores them as text without one; PostgreSQL takes "+00")."""
    rng = random.Random(seed)
    step = SPAN / count
    active_from = int(count * 0.999)
    base = T0.replace(tzinfo=None)

    def stamp(moment: datetime) -> str:
        return moment.isoformat(" ", "microseconds") + zone

    for n in range(count):
        camera = rng.choice(CAMERAS)
        started = base + step * n + timedelta(seconds=rng.uniform(-60, 60))
        ended = started + timedelta(seconds=rng.uniform(5, 120))
        active = n >= active_from
        key = f"{camera[:6]}/{camera}/{started:%Y/%m/%d}/{n:032x}"
        start_text, end_text = stamp(started), stamp(ended)
        yield (
            f"{n:032x}", camera[:6], camera, rng.choice(TYPES), "person", "zone1", "high", "",
            5, 2, "active" if active else "ended", start_text, None if active else end_text,
            rng.random(), "[0.1, 0.2, 0.3, 0.4]", f"{key}.jpg", "ab" * 32,
            None if active else f"{key}.mp4", None if active else "cd" * 32,
            stamp(started - timedelta(seconds=5)),
            None if active else stamp(ended + timedelta(seconds=5)), start_text, end_text,
        )  # fmt: skip


def insert_rows(index: EventIndex, batch: list[tuple[Any, ...]]) -> None:
    """One transaction: `executemany` on SQLite, `COPY` on PostgreSQL."""
    raw = index.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if index.engine.dialect.name == "sqlite":
            marks = ", ".join("?" * len(COLUMNS))
            cursor.executemany(
                f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({marks})",
                batch,
            )
        else:
            with cursor.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def zone(index: EventIndex) -> str:
    return "" if index.engine.dialect.name == "sqlite" else "+00"


def generate(index: EventIndex, count: int) -> float:
    """Fill the table with `count` events: secondary indexes dropped while loading and built
    again after (sorting once beats `count` random B-tree inserts); return the seconds."""
    started = time.perf_counter()
    indexes = list(EventRow.__table__.indexes)  # type: ignore[attr-defined]
    with index.engine.begin() as connection:
        for dropped in indexes:
            dropped.drop(connection)
    generated = rows(count, zone=zone(index))
    loaded = 0
    while loaded < count:
        batch = [next(generated) for _ in range(min(BATCH, count - loaded))]
        insert_rows(index, batch)
        loaded += len(batch)
        if loaded % 200_000 == 0 or loaded == count:
            log(f"  loaded {loaded} rows, {loaded / (time.perf_counter() - started):.0f}/s")
    with index.engine.begin() as connection:
        for created in indexes:
            created.create(connection)
    return time.perf_counter() - started


def bulk_rate(index: EventIndex, count: int) -> float:
    """Rows per second of batches of BATCH rows into the full, indexed table."""
    generated = ((f"bulk{row[0][4:]}", *row[1:]) for row in rows(count, 5, zone(index)))
    started = time.perf_counter()
    loaded = 0
    while loaded < count:
        batch = [next(generated) for _ in range(min(BATCH, count - loaded))]
        insert_rows(index, batch)
        loaded += len(batch)
    return count / (time.perf_counter() - started)


def analyze(index: EventIndex) -> None:
    """Statistics (and PostgreSQL's visibility map, for index-only scans), as autovacuum
    would have them after a load; SQLite picks the same plans without them."""
    raw = index.engine.raw_connection()
    try:
        if index.engine.dialect.name == "sqlite":
            raw.cursor().execute("ANALYZE")
            raw.commit()
        else:
            connection = raw.driver_connection
            connection.autocommit = True  # type: ignore[union-attr]
            connection.execute("VACUUM ANALYZE events")  # type: ignore[union-attr]
            connection.autocommit = False  # type: ignore[union-attr]
    finally:
        raw.close()


def recorder_rate(index: EventIndex, events: int) -> float:
    """Events per second written as the recorder does: start, then end with the clip."""
    rng = random.Random(2)
    now = (T0 + SPAN).timestamp()
    started = time.perf_counter()
    for n in range(events):
        camera = rng.choice(CAMERAS)
        event = Event(
            camera_id=camera,
            site=camera[:6],
            type=rng.choice(TYPES),
            label="person",
            zone="zone1",
            severity="high",
            started_at=now + n,
            last_seen_at=now + n,
            best_score=0.8,
            best_box=Box(0.1, 0.2, 0.3, 0.4),
        )
        index.add_event(event)
        end = datetime.fromtimestamp(now + n + 30, UTC)
        index.store_clip(event, end, (f"x/{event.id}.mp4", "ab" * 32, 1000), (end, end))
    return events / (time.perf_counter() - started)


def one_per_transaction_rate(index: EventIndex, count: int) -> float:
    generated = rows(count, seed=3)
    statement = insert(EventRow.__table__)  # type: ignore[arg-type]
    started = time.perf_counter()
    for n in range(count):
        values = dict(zip(COLUMNS, next(generated), strict=True))
        values["id"] = f"one{n:029x}"
        values["box"] = [0.1, 0.2, 0.3, 0.4]
        for name, value in values.items():  # through SQLAlchemy's types, as the code writes
            if name.endswith(("_at", "_start", "_end")) and value is not None:
                values[name] = datetime.fromisoformat(value).replace(tzinfo=UTC)
        with index.engine.begin() as connection:
            connection.execute(statement, values)
    return count / (time.perf_counter() - started)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3), "p99_ms": round(p99 * 1000, 3)}


def query_latencies(index: EventIndex, repetitions: int, total: int) -> dict[str, Any]:
    rng = random.Random(4)

    def window() -> EventQuery:
        start = T0 + timedelta(seconds=rng.uniform(0, (SPAN - timedelta(days=1)).total_seconds()))
        return EventQuery(type=rng.choice(TYPES), start=start, end=start + timedelta(days=1))

    queries: dict[str, Callable[[], EventQuery]] = {
        "newest": lambda: EventQuery(),
        "camera": lambda: EventQuery(camera_id=rng.choice(CAMERAS)),
        "type_time": window,
        "next_page": lambda: EventQuery(
            camera_id=rng.choice(CAMERAS), before_seq=rng.randint(1, total)
        ),
        "site_active": lambda: EventQuery(site=rng.choice(SITES), state="active"),
    }
    figures: dict[str, Any] = {}
    for name, make in queries.items():
        for _ in range(5):  # warm the caches and the connection pool
            index.list_events(make())
        samples, returned = [], []
        for _ in range(repetitions):
            query = dataclasses.replace(make(), limit=50)
            began = time.perf_counter()
            found = index.list_events(query)
            samples.append(time.perf_counter() - began)
            returned.append(len(found))
        figures[name] = {**percentiles(samples), "rows_median": statistics.median(returned)}
    return figures


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="xueliang-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'index.db'}"
    else:
        with running_postgres() as server:
            yield server.create_database()


def run(backend: str, count: int, repetitions: int, writes: int, bulk_rows: int) -> dict[str, Any]:
    with database(backend) as url:
        index = EventIndex.connect(url)
        try:
            log(f"{backend}: generating {count} events")
            generate_s = generate(index, count)
            analyze(index)
            log(f"{backend}: queries")
            latencies = query_latencies(index, repetitions, count)
            log(f"{backend}: recorder writes")
            recorder = recorder_rate(index, writes)
            single = one_per_transaction_rate(index, writes)
            bulk = bulk_rate(index, bulk_rows)
            with index.sessions() as session:
                stored = session.scalar(select(func.count()).select_from(EventRow))
            assert stored == count + 2 * writes + bulk_rows, stored
        finally:
            index.close()
    return {
        "generate_s": round(generate_s, 1),
        "bulk_rows_per_s": round(bulk),
        "recorder_events_per_s": round(recorder, 1),
        "one_per_txn_rows_per_s": round(single, 1),
        "queries": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="events to load")
    parser.add_argument("--queries", type=int, default=200, help="repetitions of each query")
    parser.add_argument("--writes", type=int, default=1000, help="events for the write rates")
    parser.add_argument("--bulk", type=int, default=100_000, help="rows for the bulk rate")
    parser.add_argument("--backends", default="sqlite,postgresql")
    arguments = parse_arguments(parser, rows=2000, queries=3, writes=20, bulk=1000)
    began = time.perf_counter()
    result: dict[str, Any] = {"rows": arguments.rows}
    for backend in arguments.backends.split(","):
        result[backend] = run(
            backend, arguments.rows, arguments.queries, arguments.writes, arguments.bulk
        )
    result["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
