"""Live pushes over a real uvicorn server: WebSocket and Server-Sent Events clients each get
the changes of their key's sites, as they happen, and nothing else."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from api.config import ApiConfig
from common.types import Event
from storage.database.accounts import ApiKeys
from storage.database.camera_health import CameraStatusRow, Heartbeats
from storage.database.engine import utcnow
from storage.database.index import EventIndex
from storage.database.workflow import EventWorkflow
from tests.apiclient import Served, make_key
from tests.events import person_event

pytestmark = pytest.mark.integration


def received(socket: ClientConnection, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count:  # each frame: a JSON array of messages, oldest first
        messages += json.loads(socket.recv(timeout=max(0.01, deadline - time.monotonic())))
    return messages


def nothing_more(socket: ClientConnection, wait: float = 1.0) -> bool:
    try:
        socket.recv(timeout=wait)
    except TimeoutError:
        return True
    return False


def event_in(index: EventIndex, site: str, type: str = "zone_intrusion") -> Event:
    now = time.time()
    event = person_event(camera_id=f"cam-{site}", site=site, type=type, started_at=now)
    index.add_event(event)
    return event


@pytest.fixture
def served(index: EventIndex) -> Iterator[Served]:
    with Served(index, ApiConfig(), heartbeat_stale_s=30) as running:
        yield running


def test_websocket_clients_get_their_sites_changes_as_they_happen(
    served: Served, index: EventIndex
) -> None:
    shop_key, desk_key = make_key(index, "shop", ["shop-a"]), make_key(index, "operator")
    with (
        served.ws(shop_key) as shop,
        served.ws(desk_key) as desk,
        served.ws(desk_key, "?types=loitering") as loitering_only,
    ):
        time.sleep(0.5)  # subscribed before the first change
        a, b = event_in(index, "shop-a"), event_in(index, "shop-b")
        lingering = event_in(index, "shop-a", "loitering")
        started = time.monotonic()
        seen = received(shop, 2)
        assert [(m["change"], m["event"]["id"]) for m in seen] == [
            ("started", a.id), ("started", lingering.id)
        ]  # fmt: skip
        assert time.monotonic() - started < 2.0  # pushed, not found by a poll of the client
        assert [m["event"]["id"] for m in received(desk, 3)] == [a.id, b.id, lingering.id]
        assert [m["event"]["id"] for m in received(loitering_only, 1)] == [lingering.id]

        EventWorkflow(index).act(a.id, "acknowledge", "desk 1")
        change = received(shop, 1)[0]
        assert change["change"] == "status" and change["event"]["status"] == "acknowledged"
        Heartbeats(index).put_status(
            CameraStatusRow(
                camera_id="cam-shop-a", site="shop-a", state="online", updated_at=utcnow()
            )
        )
        camera = received(shop, 1)[0]
        assert camera["kind"] == "camera" and camera["camera"]["state"] == "online"
        received(desk, 2)  # the status change and the camera
        assert nothing_more(shop)  # B's event never came


def test_server_sent_events_stream_the_same(served: Served, index: EventIndex) -> None:
    key = make_key(index, "installer", ["shop-b"])
    url = f"http://127.0.0.1:{served.port}/api/live/events"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as sse:
        assert sse.status_code == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        lines = sse.iter_lines()
        assert next(lines) == ": connected"
        event_in(index, "shop-a")
        b = event_in(index, "shop-b")
        block: list[str] = []
        for line in lines:
            if line == "" and block:
                break
            if line:
                block.append(line)
        fields = dict(line.split(": ", 1) for line in block)
        assert fields["event"] == "event" and int(fields["id"]) > 0
        assert json.loads(fields["data"])["event"]["id"] == b.id


def test_no_key_no_stream(served: Served, index: EventIndex) -> None:
    with pytest.raises(InvalidStatus):
        served.ws(None)
    with pytest.raises(InvalidStatus):
        served.ws("xl_000000000000_forged")
    anonymous = httpx.get(f"http://127.0.0.1:{served.port}/api/live/events", timeout=5)
    assert anonymous.status_code == 401


def test_a_revoked_key_or_a_closed_session_ends_its_open_streams(
    served: Served, index: EventIndex
) -> None:
    """Revoked here (at once) or by another API process (within the key memory): the
    WebSocket closes with 1008 and the SSE stream ends; an event after it reaches neither."""
    admin = {"Authorization": f"Bearer {make_key(index, 'admin')}"}
    api = f"http://127.0.0.1:{served.port}"
    here, elsewhere = make_key(index, "operator"), make_key(index, "operator")
    login = httpx.post(f"{api}/api/session", json={"key": make_key(index, "operator")})
    session = login.cookies["xl_session"]
    with pytest.raises(InvalidStatus):  # the session cookie, sent along by another site's page
        connect(
            f"ws://127.0.0.1:{served.port}/api/live/ws",
            additional_headers={"Cookie": f"xl_session={session}", "Origin": "http://evil.test"},
        )
    with (
        served.ws(here) as revoked_here,
        served.ws(elsewhere) as revoked_elsewhere,
        connect(
            f"ws://127.0.0.1:{served.port}/api/live/ws",
            additional_headers={"Cookie": f"xl_session={session}", "Origin": api},
        ) as logged_out,
        httpx.stream("GET", f"{api}/api/live/events", headers={"X-API-Key": here}) as sse,
    ):
        lines = sse.iter_lines()
        assert next(lines) == ": connected"
        key_id = here.split("_")[1]
        assert httpx.delete(f"{api}/api/keys/{key_id}", headers=admin).status_code == 204
        ApiKeys(index).revoke(elsewhere.split("_")[1])  # as another API process would
        closed = httpx.delete(
            f"{api}/api/session",
            cookies={"xl_session": session, "xl_csrf": login.cookies["xl_csrf"]},
            headers={"X-CSRF-Token": login.cookies["xl_csrf"]},
        )
        assert closed.status_code == 204
        for socket in (revoked_here, revoked_elsewhere, logged_out):
            with pytest.raises(ConnectionClosed) as ended:
                while True:  # camera pushes may come before the close
                    socket.recv(timeout=15)
            assert ended.value.rcvd is not None and ended.value.rcvd.code == 1008
        # The SSE stream ended (a stream left open would time out here), empty after ": connected".
        assert [line for line in lines if line] == []
