"""The API at scale: the event list's latency over HTTP against the bare index query, and the
live WebSocket fan-out of 1,000 events/s to 50 clients. One JSON line.

Per backend (SQLite; PostgreSQL too with `--postgres`), a fresh index gets `--events` events
as bench/index.py makes them (`generate`: 20 sites, 400 cameras, 12 types over 30 days), one in
five still `new` and the others acknowledged, resolved or false alarms, and an admin key. The
API (`api.app.create_app`, its live hub and webhook dispatcher running) is served by uvicorn on
loopback in this process (tests/apiclient.py `Served`; no S3 behind it).

- queries: pages of 50, newest first, `--queries` times each with random parameters, through
  one keep-alive `httpx.Client` sending the key (`GET /api/events`: HTTP, the key's check, the
  query, the JSON) and, call by call alternately, through `EventIndex.list_events` in this
  process (the bare query, the native baseline): `newest` (no filter), `site` (one site),
  `status_new` (`?status=new`) and `cursor` (`cursor` at a random point). p50 and p99 in ms,
  and `ratio_p50` / `ratio_p99` = API / index. `healthz` times `GET /healthz`: the HTTP floor
  of this server and client (uvicorn's pure-Python h11; no key, no query).
- live: `--clients` WebSocket clients on `/api/live/ws` with the key (a thread each,
  `websockets.sync`, in `--client-procs` processes of their own so that they do not take the
  server's GIL; permessage-deflate on, as browsers ask, unless `--no-compression`). Then
  `--writers` processes index events at `--rate` a second for `--seconds`, paced every 10 ms and
  catching up when late, `started_at` = the wall time of the insert: `--writer batch` (default)
  writes each tick's events in one transaction, the rows and feed entries `add_event` writes;
  `--writer add_event` calls `EventIndex.add_event` per event (a transaction each, about 1.6 ms
  of CPU: one process stays under 1,000/s). Each client keeps the `started` messages' lag
  (receive wall time - `started_at`). Reported: `inserted` and the achieved `insert_rate`,
  `delivered` of `expected` (clients x inserted), lag p50, p99 and max over all clients and its
  median per second of inserts (`lag_p50_ms_by_second`; growing: the fan-out falls behind),
  `drain_s` (from the last insert until every client had every event; null if they never did:
  stalled for `--drain` s, or every client closed), `lagging_closes` (clients the server closed
  with 1013, 20,000 messages behind), where messages waited at worst (`feed_backlog_max`: feed
  entries the hub had not read yet; it reads every 0.2 s, at most 500 a round, api/live.py and
  storage/database/feed.py; `queued_max`: messages waiting for one client, a round's worth sent
  as one frame, a JSON array),
  the CPU cores each side used while messages were delivered (`cpu_cores`; `api` is one process,
  one GIL, so at most 1) and `api_cpu_us_per_message`. The clients and writers share the
  machine's cores with the server: on a small machine they take CPU the server would use.

Usage:
    .venv/bin/python bench/api.py [--events 100000] [--queries 200] [--clients 50]
        [--rate 1000] [--seconds 10] [--writer batch|add_event] [--writers 1]
        [--no-compression] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
from array import array
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any, cast

from decode import log
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import FastAPI
from index import CAMERAS, SITES, TYPES, analyze, database, generate, percentiles
from sqlalchemy import func, select, text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api.config import ApiConfig
from api.live import LiveHub
from common.types import Event
from storage.database.index import EventFeedRow, EventIndex, EventQuery
from tests.apiclient import Served, make_key

PAGE = 50
TICK_S = 0.01


def cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def set_statuses(index: EventIndex) -> None:
    """One event in five still new, the others through the operator's workflow."""
    with index.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE events SET status = CASE seq % 5 WHEN 0 THEN 'new' "
                "WHEN 1 THEN 'acknowledged' WHEN 2 THEN 'false_alarm' ELSE 'resolved' END"
            )
        )


def query_latencies(
    index: EventIndex, client: httpx.Client, repetitions: int, total: int
) -> dict[str, Any]:
    """The event list through the API and through the index, call by call, alternating."""
    rng = random.Random(4)
    queries: dict[str, Callable[[], dict[str, str]]] = {
        "newest": lambda: {},
        "site": lambda: {"site": rng.choice(SITES)},
        "status_new": lambda: {"status": "new"},
        "cursor": lambda: {"cursor": str(rng.randint(PAGE + 1, total))},
    }

    def through_api(params: dict[str, str]) -> int:
        response = client.get("/api/events", params={**params, "limit": str(PAGE)})
        response.raise_for_status()
        return len(response.json()["items"])

    def through_index(params: dict[str, str]) -> int:
        cursor = params.get("cursor")
        query = EventQuery(
            site=params.get("site"),
            status=params.get("status"),
            before_seq=int(cursor) if cursor else None,
            limit=PAGE,
        )
        return len(index.list_events(query))

    healthz = []
    for n in range(repetitions + 5):
        began = time.perf_counter()
        client.get("/healthz").raise_for_status()
        if n >= 5:
            healthz.append(time.perf_counter() - began)
    figures: dict[str, Any] = {"healthz": percentiles(healthz)}
    for name, make in queries.items():
        for _ in range(5):  # warm the caches and the connection pools
            through_api(make())
            through_index(make())
        samples: dict[str, list[float]] = {"api": [], "index": []}
        for n in range(repetitions):
            params = make()
            order = [("api", through_api), ("index", through_index)]
            for side, call in order if n % 2 else order[::-1]:
                began = time.perf_counter()
                found = call(params)
                samples[side].append(time.perf_counter() - began)
                assert found == PAGE, (name, side, found)
        api, bare = percentiles(samples["api"]), percentiles(samples["index"])
        figures[name] = {
            "api_p50_ms": api["p50_ms"],
            "api_p99_ms": api["p99_ms"],
            "index_p50_ms": bare["p50_ms"],
            "index_p99_ms": bare["p99_ms"],
            "ratio_p50": round(api["p50_ms"] / bare["p50_ms"], 2),
            "ratio_p99": round(api["p99_ms"] / bare["p99_ms"], 2),
        }
    return figures


def writer(
    url: str,
    rate: float,
    seconds: float,
    batched: bool,
    seed: int,
    go: ProcessEvent,
    out: Connection,
) -> None:
    """A process indexing events, `rate` a second for `seconds` (paced every TICK_S, catching
    up when late): each tick's in one transaction (`batched`), else one `add_event` each."""
    index = EventIndex.connect(url)
    rng = random.Random(seed)

    def event() -> Event:
        camera = rng.choice(CAMERAS)
        now = time.time()
        return Event(
            camera_id=camera,
            site=camera[:6],
            type=rng.choice(TYPES),
            label="person",
            zone="zone1",
            severity="high",
            started_at=now,
            last_seen_at=now,
        )

    out.send("ready")
    go.wait()
    cpu = cpu_s()
    start = time.monotonic()
    inserted = ticks = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = min(int(rate * elapsed) + 1, int(rate * seconds))
        if batched and due > inserted:
            events = [event() for _ in range(due - inserted)]
            with index.sessions.begin() as session:  # the rows and feed entries of add_event
                for started in events:
                    session.add(EventIndex._new_row(started))
                    session.add(
                        EventFeedRow(event_id=started.id, site=started.site, kind="started")
                    )
            inserted = due
        while inserted < due and time.monotonic() - start < seconds:
            index.add_event(event())
            inserted += 1
        ticks += 1
        time.sleep(max(0.0, start + ticks * TICK_S - time.monotonic()))
    took = time.monotonic() - start
    index.close()
    out.send({"inserted": inserted, "seconds": took, "cpu_s": cpu_s() - cpu})


def clients(
    url: str, key: str, count: int, compress: bool, stop: ProcessEvent, state: Any, out: Connection
) -> None:
    """A process of `count` WebSocket clients, a thread each, recording every `started`
    message's event start and lag until `stop`; `state` is [messages, connections closed]."""
    headers = {"Authorization": f"Bearer {key}"}
    compression = "deflate" if compress else None
    connections = [
        connect(url, additional_headers=headers, open_timeout=30, compression=compression)
        for _ in range(count)
    ]
    counts = [0] * count
    starts = [array("d") for _ in range(count)]
    lags = [array("d") for _ in range(count)]
    codes: list[int | None] = [None] * count

    def read(n: int) -> None:
        connection = connections[n]
        try:
            for frame in connection:  # each frame: a JSON array of messages
                now = time.time()
                for data in json.loads(frame):
                    if data["kind"] != "event" or data["change"] != "started":
                        continue
                    started = datetime.fromisoformat(data["event"]["started_at"]).timestamp()
                    starts[n].append(started)
                    lags[n].append(now - started)
                    counts[n] += 1
        except ConnectionClosed:
            pass
        codes[n] = connection.close_code

    threads = [threading.Thread(target=read, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    out.send("connected")
    cpu = cpu_s()
    while not stop.wait(0.05):
        state[0], state[1] = sum(counts), sum(not thread.is_alive() for thread in threads)
    spent = cpu_s() - cpu
    for connection in connections:
        connection.close()
    for thread in threads:
        thread.join(10)
    all_starts, all_lags = array("d"), array("d")
    for n in range(count):
        all_starts.extend(starts[n])
        all_lags.extend(lags[n])
    out.send(
        {"counts": counts, "codes": codes, "starts": all_starts, "lags": all_lags, "cpu_s": spent}
    )


def fan_out(
    index: EventIndex, url: str, served: Served, key: str, arguments: argparse.Namespace
) -> dict[str, Any]:
    """Clients connected, writers at `rate`, until every client has every event, every client
    was closed or deliveries stalled for `drain` seconds."""
    began = time.perf_counter()
    hub = cast(LiveHub, cast(FastAPI, served.server.config.app).state.hub)
    context = multiprocessing.get_context("spawn")
    stop, go = context.Event(), context.Event()
    socket_url = f"ws://127.0.0.1:{served.port}/api/live/ws"
    each, extra = divmod(arguments.clients, arguments.client_procs)
    readers: list[tuple[Any, Connection, Any]] = []
    for n in range(arguments.client_procs):
        state = context.Array("q", 2)
        mine, theirs = context.Pipe()
        share = each + (n < extra)
        process = context.Process(
            target=clients,
            args=(socket_url, key, share, not arguments.no_compression, stop, state, theirs),
            daemon=True,
        )
        process.start()
        readers.append((process, mine, state))
    writers: list[tuple[Any, Connection]] = []
    for n in range(arguments.writers):
        mine, theirs = context.Pipe()
        rate = arguments.rate / arguments.writers
        batched = arguments.writer == "batch"
        process = context.Process(
            target=writer, args=(url, rate, arguments.seconds, batched, n, go, theirs), daemon=True
        )
        process.start()
        writers.append((process, mine))
    for _, pipe in writers:
        assert pipe.recv() == "ready"
    for _, pipe, _ in readers:
        assert pipe.recv() == "connected"
    deadline = time.monotonic() + 30
    while hub.clients < arguments.clients:  # subscribed after the handshake
        assert time.monotonic() < deadline, f"{hub.clients} of {arguments.clients} subscribed"
        time.sleep(0.05)
    log(f"  {arguments.clients} clients subscribed; writing {arguments.rate:g} events/s")
    queued_before = hub.delivered
    peaks = {"feed_backlog": 0, "queued": 0}

    def sample() -> None:
        """Where messages wait: feed entries the hub has not read, a client's queue."""
        with index.sessions() as session:
            newest = int(session.scalar(select(func.max(EventFeedRow.id))) or 0)
        backlog = newest - hub._reader.cursor
        queued = max((s.pending for s in list(hub._subscribers)), default=0)
        peaks["feed_backlog"] = max(peaks["feed_backlog"], backlog)
        peaks["queued"] = max(peaks["queued"], queued)

    cpu = cpu_s()
    start = time.monotonic()
    go.set()
    for _, pipe in writers:
        while not pipe.poll(0.05):
            sample()
    wrote_each = [pipe.recv() for _, pipe in writers]
    for process, _ in writers:
        process.join()
    wrote = {key: sum(w[key] for w in wrote_each) for key in ("inserted", "cpu_s")}
    writing_s = max(w["seconds"] for w in wrote_each)
    written_at = time.monotonic()
    expected = arguments.clients * wrote["inserted"]
    log(f"  {wrote['inserted']} events in {writing_s:.1f} s; draining")
    last = 0
    active_until, active_cpu = time.monotonic(), cpu_s()
    drained: float | None = None
    while time.monotonic() - active_until < arguments.drain:
        total = sum(int(state[0]) for _, _, state in readers)
        if total != last:
            last, active_until, active_cpu = total, time.monotonic(), cpu_s()
        if total >= expected:
            drained = time.monotonic() - written_at
            break
        if sum(int(state[1]) for _, _, state in readers) == arguments.clients:
            break  # every client was closed
        sample()
        time.sleep(0.05)
    active = active_until - start
    stop.set()
    results = [pipe.recv() for _, pipe, _ in readers]
    for process, _, _ in readers:
        process.join(15)
    # A handler learns that its client left only when a send fails: one more event ends them
    # (else uvicorn's shutdown cancels them after its grace period, with a traceback each).
    now = time.time()
    index.add_event(
        Event(
            camera_id=CAMERAS[0],
            site=SITES[0],
            type=TYPES[0],
            label="person",
            zone="zone1",
            severity="high",
            started_at=now,
            last_seen_at=now,
        )
    )
    deadline = time.monotonic() + 5
    while hub.clients and time.monotonic() < deadline:
        time.sleep(0.05)
    counts = [c for r in results for c in r["counts"]]
    codes = [c for r in results for c in r["codes"]]
    starts = [s for r in results for s in r["starts"]]
    lags = [lag for r in results for lag in r["lags"]]
    first = min(starts) if starts else 0.0
    by_second: dict[int, list[float]] = {}
    for started, lag in zip(starts, lags, strict=True):
        by_second.setdefault(int(started - first), []).append(lag)
    lag = percentiles(lags) if lags else {"p50_ms": None, "p99_ms": None}
    api_cpu = active_cpu - cpu
    return {
        "clients": arguments.clients,
        "compression": not arguments.no_compression,
        "writer": f"{arguments.writer} x{arguments.writers}",
        "target_rate": arguments.rate,
        "inserted": wrote["inserted"],
        "insert_rate": round(wrote["inserted"] / writing_s, 1),
        "insert_s": round(writing_s, 2),
        "expected": expected,
        "delivered": len(lags),
        "delivered_share": round(len(lags) / expected, 4) if expected else None,
        "per_client_min": min(counts),
        "per_client_max": max(counts),
        "hub_queued": hub.delivered - queued_before,
        "lag_p50_ms": lag["p50_ms"],
        "lag_p99_ms": lag["p99_ms"],
        "lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
        "lag_p50_ms_by_second": [
            round(statistics.median(by_second[s]) * 1000) for s in sorted(by_second)
        ],
        "drain_s": round(drained, 2) if drained is not None else None,
        "lagging_closes": codes.count(1013),
        "feed_backlog_max": peaks["feed_backlog"],
        "queued_max": peaks["queued"],
        "delivering_s": round(active, 2),
        "cpu_cores": {
            "api": round(api_cpu / active, 2),
            "clients": round(sum(r["cpu_s"] for r in results) / active, 2),
            "writer": round(wrote["cpu_s"] / writing_s, 2),
        },
        "api_cpu_us_per_message": round(api_cpu / len(lags) * 1e6, 1) if lags else None,
        "seconds": round(time.perf_counter() - began, 1),
    }


def run(backend: str, arguments: argparse.Namespace) -> dict[str, Any]:
    with database(backend) as url:
        index = EventIndex.connect(url)
        try:
            log(f"{backend}: generating {arguments.events} events")
            generate_s = generate(index, arguments.events)
            set_statuses(index)
            analyze(index)
            key = make_key(index, "admin")
            settings = ApiConfig(rate_per_s=1e9, burst=10**9)
            with Served(index, settings, heartbeat_stale_s=30) as served:
                base = f"http://127.0.0.1:{served.port}"
                headers = {"Authorization": f"Bearer {key}"}
                with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                    log(f"{backend}: queries")
                    queries = query_latencies(index, client, arguments.queries, arguments.events)
                log(f"{backend}: live fan-out")
                live = fan_out(index, url, served, key, arguments)
        finally:
            index.close()
    return {"generate_s": round(generate_s, 1), "queries": queries, "live": live}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the index")
    parser.add_argument("--queries", type=int, default=200, help="repetitions of each query")
    parser.add_argument("--clients", type=int, default=50, help="live WebSocket clients")
    parser.add_argument("--client-procs", type=int, default=2, help="processes of the clients")
    parser.add_argument("--rate", type=float, default=1000, help="events indexed a second")
    parser.add_argument("--seconds", type=float, default=10, help="seconds of writing")
    parser.add_argument(
        "--writer",
        choices=["batch", "add_event"],
        default="batch",
        help="a transaction per 10 ms tick, or one per event (EventIndex.add_event)",
    )
    parser.add_argument("--writers", type=int, default=1, help="writer processes")
    parser.add_argument(
        "--no-compression", action="store_true", help="clients without permessage-deflate"
    )
    parser.add_argument("--drain", type=float, default=10, help="give up after so long stalled")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL after SQLite")
    arguments = parse_arguments(
        parser, events=2000, queries=3, clients=2, client_procs=1, rate=50, seconds=1, drain=5
    )
    began = time.perf_counter()
    result: dict[str, Any] = {"events": arguments.events}
    for backend in ["sqlite", "postgresql"] if arguments.postgres else ["sqlite"]:
        result[backend] = run(backend, arguments)
    result["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
