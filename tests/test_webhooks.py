"""Webhooks end to end: a real HTTP receiver on loopback checks every signature, fails twice
and then takes the delivery; a receiver that stays down ends in the dead letter, and a replay
delivers it once it is back."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.config import ApiConfig
from common.types import Event
from storage.database.accounts import SiteRow
from storage.database.engine import to_datetime
from storage.database.index import EventIndex
from storage.database.webhooks import WebhookOutboxRow, Webhooks
from storage.media.objects import ObjectStore, object_key
from tests.apiclient import LOCAL_PEERS, Receiver, Served, make_key, verified
from tests.events import person_event
from tests.servers import free_port

pytestmark = pytest.mark.integration

FAST_RETRIES = ApiConfig(webhook_retry_min_s=0.3, webhook_retry_max_s=1.0, egress=LOCAL_PEERS)


def stored_event(index: EventIndex, store: ObjectStore, site: str) -> tuple[Event, bytes]:
    """An event whose clip is in S3, as the recorder leaves it."""
    now = time.time()
    event = person_event(camera_id=f"cam-{site}", site=site, started_at=now, ended_at=now)
    index.add_event(event)
    clip = secrets.token_bytes(1024)
    key = object_key(site, event.camera_id, now, f"{event.id}.mp4")
    stored = store.put(key, clip, "video/mp4", {"event-id": event.id})
    ended = to_datetime(now)
    index.store_clip(event, ended, (key, stored.sha256, stored.size), (ended, ended))
    return event, clip


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def served(index: EventIndex, object_store: ObjectStore) -> Iterator[Served]:
    with index.sessions.begin() as session:
        session.add_all(SiteRow(id=site, name=site) for site in ("shop-a", "shop-b"))
    with Served(index, FAST_RETRIES, heartbeat_stale_s=30, store=object_store) as running:
        yield running


def subscribe(served: Served, key: str, url: str, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"http://127.0.0.1:{served.port}/api/webhooks",
        json={"name": "shop a alarms", "url": url, "changes": ["clip"], **fields},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_a_signed_delivery_is_retried_until_the_receiver_takes_it(
    served: Served, index: EventIndex, object_store: ObjectStore
) -> None:
    receiver = Receiver(failures=2)
    key = make_key(index, "shop", ["shop-a"])
    hook = subscribe(served, key, receiver.url, sites=["shop-a"])
    try:
        event, clip = stored_event(index, object_store, "shop-a")
        stored_event(index, object_store, "shop-b")  # another site: never sent here
        wait_until(lambda: len(receiver.requests) >= 3, 30, "three attempts")
        time.sleep(1.5)  # no fourth one comes, and nothing of shop-b
        assert len(receiver.requests) == 3
        assert len({headers["X-Xueliang-Delivery"] for headers, _ in receiver.requests}) == 1
        for headers, body in receiver.requests:
            assert verified(hook["secret"], headers, body)
            assert not verified("another secret", headers, body)
            document = json.loads(body)
            assert document["type"] == "event.clip" and document["event"]["id"] == event.id
            assert headers["X-Xueliang-Delivery"] == str(document["id"])
        link = json.loads(receiver.requests[-1][1])["media"]["clip"]
        assert httpx.get(link, timeout=10).content == clip  # a working presigned link

        log = httpx.get(
            f"http://127.0.0.1:{served.port}/api/webhooks/{hook['id']}/deliveries",
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        assert [(d["event_id"], d["state"]) for d in log] == [(event.id, "delivered")]
        assert [a["status_code"] for a in log[0]["attempts"]] == [500, 500, 200]
    finally:
        receiver.close()


def test_a_receiver_that_stays_down_ends_in_the_dead_letter_and_replay_delivers(
    served: Served, index: EventIndex, object_store: ObjectStore
) -> None:
    port = free_port()  # nothing listens there yet
    key = make_key(index, "operator")
    hook = subscribe(served, key, f"http://127.0.0.1:{port}/hook", max_attempts=3)
    api = f"http://127.0.0.1:{served.port}/api/webhooks/{hook['id']}/deliveries"
    auth = {"Authorization": f"Bearer {key}"}
    event, _ = stored_event(index, object_store, "shop-b")

    def state() -> str:
        log = httpx.get(api, headers=auth).json()
        return str(log[0]["state"]) if log else "none"

    wait_until(lambda: state() == "dead", 30, "dead-lettered after three attempts")
    delivery = httpx.get(api, headers=auth).json()[0]
    assert len(delivery["attempts"]) == 3 and all(
        a["status_code"] is None for a in delivery["attempts"]
    )
    assert "ConnectError" in delivery["attempts"][0]["error"]

    receiver = Receiver(port=port)
    try:
        time.sleep(1.5)
        assert receiver.requests == []  # dead: not retried on its own
        replayed = httpx.post(f"{api}/{delivery['id']}/replay", headers=auth)
        assert replayed.status_code == 204
        wait_until(lambda: len(receiver.requests) == 1, 15, "the replay delivered")
        wait_until(lambda: state() == "delivered", 10, "marked delivered")
        assert verified(hook["secret"], *receiver.requests[0])
        assert json.loads(receiver.requests[0][1])["event"]["id"] == event.id
    finally:
        receiver.close()


def test_keys_manage_only_their_sites_webhooks(served: Served, index: EventIndex) -> None:
    base = f"http://127.0.0.1:{served.port}/api/webhooks"
    shop_a = {"Authorization": f"Bearer {make_key(index, 'shop', ['shop-a'])}"}
    shop_b = {"Authorization": f"Bearer {make_key(index, 'shop', ['shop-b'])}"}
    body = {"name": "n", "url": "https://example.invalid/hook", "sites": ["shop-a"]}
    assert httpx.post(base, json={**body, "sites": []}, headers=shop_a).status_code == 422
    assert httpx.post(base, json={**body, "url": "ftp://x/y"}, headers=shop_a).status_code == 422
    assert httpx.post(base, json={**body, "sites": ["shop-b"]}, headers=shop_a).status_code == 404
    made = httpx.post(base, json=body, headers=shop_a).json()
    assert [h["id"] for h in httpx.get(base, headers=shop_a).json()] == [made["id"]]
    assert httpx.get(base, headers=shop_b).json() == []
    assert httpx.get(f"{base}/{made['id']}", headers=shop_b).status_code == 404
    assert httpx.delete(f"{base}/{made['id']}", headers=shop_b).status_code == 404
    assert "secret" not in httpx.get(f"{base}/{made['id']}", headers=shop_a).json()
    assert httpx.delete(f"{base}/{made['id']}", headers=shop_a).status_code == 204


def test_deliveries_are_counted_by_state(index: EventIndex) -> None:
    hooks = Webhooks(index)
    assert hooks.delivery_counts() == {}
    with index.sessions.begin() as session:
        session.add_all(
            WebhookOutboxRow(
                subscription_id="s1", event_id=f"e{n}", feed_id=n, payload={}, state=state
            )
            for n, state in enumerate(["pending", "dead", "pending", "delivered"])
        )
    assert hooks.delivery_counts() == {"pending": 2, "dead": 1, "delivered": 1}
