"""Every route of the served OpenAPI schema, asked about site B by keys of site A: no data of B
comes back, and another site's object answers exactly as a missing one; no key is a 401.

A route added without a sample body below fails the matrix: cover it."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig
from storage.database.accounts import ApiKeys, SiteRow
from storage.database.alarms import AlarmPanelRow, AlarmPanels
from storage.database.camera_health import CameraPictureRow, Heartbeats
from storage.database.cameras import ApiCameras, NetworkCameraConfig
from storage.database.devices import GbDevices
from storage.database.engine import to_datetime
from storage.database.index import EventIndex
from storage.database.webhooks import WebhookOutboxRow, Webhooks
from storage.media.objects import ObjectStore, object_key
from tests.apiclient import LOCAL_PEERS, SEALER, make_key
from tests.events import person_event

pytestmark = pytest.mark.integration

SITE_A, SITE_B = "shop-a", "shop-b"
ACCOUNTS = {SITE_A: "A1", SITE_B: "B1"}  # their alarm panels' accounts
DEVICES = {SITE_A: "34020000001320000001", SITE_B: "34020000001320000002"}  # GB/T 28181
NOW = datetime.now(UTC)
# Bodies by route, made for a target (the path values by parameter name).
SAMPLE_BODIES: dict[tuple[str, str], Callable[[dict[str, str]], dict[str, Any]]] = {
    ("PUT", "/api/events/{event_id}/hold"): lambda t: {"reason": "case 17"},
    ("POST", "/api/events/{event_id}/actions"): lambda t: {"action": "acknowledge"},
    ("POST", "/api/keys"): lambda t: {"name": "desk", "role": "shop", "sites": [t["site_id"]]},
    ("PUT", "/api/sites/{site_id}"): lambda t: {"name": "Shop", "timezone": "Asia/Shanghai"},
    ("POST", "/api/gb28181/devices/{device_id}/approve"): lambda t: {"site": t["site_id"]},
    ("PUT", "/api/sites/{site_id}/gb28181"): lambda t: {
        "password": "Site-Pa55",
        "auto_approve_prefix": "3402000000",
    },
    ("POST", "/api/cameras"): lambda t: {
        "id": "cam-new",
        "site": t["site_id"],
        "url": "rtsp://127.0.0.1:1/new",
    },
    ("PUT", "/api/cameras/{camera_id}"): lambda t: {
        "id": t["camera_id"],
        "site": t["site_id"],
        "url": "rtsp://127.0.0.1:1/changed",
    },
    ("POST", "/api/cameras/probe"): lambda t: {"url": "rtsp://127.0.0.1:1/x", "timeout_s": 1},
    ("POST", "/api/webhooks"): lambda t: {
        "name": "alarms",
        "url": "https://receiver.invalid/hook",
        "sites": [t["site_id"]],
    },
    ("PUT", "/api/sites/{site_id}/alarm-panel"): lambda t: {
        "account": t["account"],
        "zones": {"1": [t["camera_id"]]},
    },
    ("POST", "/api/sites/{site_id}/arm"): lambda t: {"armed": True},
    ("POST", "/api/alarms"): lambda t: {"account": t["account"], "zone": "1", "code": 130},
    ("POST", "/api/session"): lambda t: {"key": "xl_0123456789ab_not-a-key"},
}
# Endless streams: their scope is checked by tests/test_live.py.
STREAMS = {("GET", "/api/live/events")}
# The console's login and logout: about the caller's own session, not a site.
SESSIONS = {("POST", "/api/session"), ("DELETE", "/api/session")}
# Routes about the caller or a stream, not a site: only checked for leaking nothing of B.
SITELESS = {("GET", "/api/me"), ("POST", "/api/cameras/probe")}
SAMPLE_QUERIES: dict[str, str] = {
    "start": (NOW - timedelta(hours=1)).isoformat(),
    "end": NOW.isoformat(),
}


@dataclass
class World:
    """An API with two sites, each with a camera and an event whose media are stored."""

    app: FastAPI
    index: EventIndex
    events: dict[str, str]  # site -> event id
    webhooks: dict[str, tuple[str, int]]  # site -> a subscription and one of its deliveries
    admin_key: str
    admin_key_id: str

    def client(self, key: str | None) -> TestClient:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return TestClient(self.app, headers=headers, raise_server_exceptions=False)


def build_world(root: Path, store: ObjectStore) -> World:
    index = EventIndex.connect(f"sqlite:///{root / f'index-{secrets.token_hex(3)}.db'}")
    cameras = [
        NetworkCameraConfig(id=f"cam-{site[-1]}", site=site, url=f"rtsp://127.0.0.1/{site}")
        for site in (SITE_A, SITE_B)
    ]
    for camera in cameras:  # added over the API: every camera route applies to them
        ApiCameras(index, SEALER).put(camera)
        Heartbeats(index).put_picture(
            CameraPictureRow(camera_id=camera.id, site=camera.site, jpeg=b"\xff\xd8 picture",
                             taken_at=NOW)
        )  # fmt: skip
    events = {}
    with index.sessions.begin() as session:
        for site in (SITE_A, SITE_B):
            session.add(SiteRow(id=site, name=site.upper(), timezone="Asia/Shanghai"))
    for site, device in DEVICES.items():
        GbDevices(index, SEALER).approve(device, site, "gate", "Device-Pa55")
    for camera in cameras:
        started = (NOW - timedelta(minutes=30)).timestamp()
        event = person_event(
            camera_id=camera.id,
            site=camera.site,
            started_at=started,
            last_seen_at=started + 5,
            ended_at=started + 5,
        )
        index.add_event(event)
        media = {}
        for name, kind in (("clip", "video/mp4"), ("snapshot", "image/jpeg")):
            key = object_key(camera.site, camera.id, started, f"{event.id}.{name}")
            media[name] = store.put(key, secrets.token_bytes(256), kind, {"event-id": event.id})
        end, clip, snapshot = to_datetime(started + 5), media["clip"], media["snapshot"]
        index.store_clip(event, end, (clip.key, clip.sha256, clip.size), (end, end))
        index.store_snapshot(event, end, snapshot.key, snapshot.sha256, snapshot.size)
        events[camera.site] = event.id
    webhooks = {}
    for site, event_id in events.items():
        hook, _ = Webhooks(index).create("alarms", "https://receiver.invalid/h", "t", sites=[site])
        with index.sessions.begin() as session:
            delivery = WebhookOutboxRow(
                subscription_id=hook.id, event_id=event_id, feed_id=1, payload={"change": "clip"}
            )
            session.add(delivery)
            session.flush()
            webhooks[site] = (hook.id, delivery.id)
    for camera in cameras:
        AlarmPanels(index).put(
            AlarmPanelRow(
                site=camera.site, account=ACCOUNTS[camera.site], zones={"1": [camera.id]},
                pre_alarm_s=30.0, post_alarm_s=10.0, gated_types=[], schedule=[],
            )
        )  # fmt: skip
    row, admin_key = ApiKeys(index).create("root", "admin", [], True, by="tests")
    settings = ApiConfig(egress=LOCAL_PEERS)
    app = create_app(index, store, [], settings, heartbeat_stale_s=5, sealer=SEALER)
    return World(app, index, events, webhooks, admin_key, row.id)


def routes(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    schema = app.openapi()
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def request_for(
    world: World, method: str, path: str, operation: dict[str, Any], target: dict[str, str]
) -> tuple[str, dict[str, str], dict[str, Any] | None]:
    """The route asked about `target` (path values by parameter name), with its required
    query values and, where it takes one, a site or camera filter of the target's."""
    url = path
    for name, value in target.items():
        url = url.replace("{" + name + "}", value)
    assert "{" not in url, f"{method} {path}: no sample value for a path parameter"
    params = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] != "query":
            continue
        if name in SAMPLE_QUERIES and parameter.get("required"):
            params[name] = SAMPLE_QUERIES[name]
        elif name == "site":
            params[name] = target["site_id"]
        elif name == "camera":
            params[name] = target["camera_id"]
        else:
            assert not parameter.get("required"), f"{method} {path}: no sample for {name}"
    body = None
    if "requestBody" in operation:
        assert (method, path) in SAMPLE_BODIES, f"{method} {path}: add a sample body"
        body = SAMPLE_BODIES[(method, path)](target)
    return url, params, body


def ask(
    client: TestClient, method: str, url: str, params: dict[str, str], body: Any
) -> httpx.Response:
    answer: httpx.Response = client.request(
        method, url, params=params, json=body, follow_redirects=False
    )
    return answer


def target_of(world: World, site: str) -> dict[str, str]:
    return {
        "event_id": world.events.get(site, "no-such-event"),
        "camera_id": f"cam-{site[-1]}",
        "site_id": site,
        "key_id": world.admin_key_id,
        "webhook_id": world.webhooks[site][0] if site in world.webhooks else "no-such-hook",
        "delivery_id": str(world.webhooks[site][1]) if site in world.webhooks else "0",
        "account": ACCOUNTS.get(site, "0"),
        "device_id": DEVICES.get(site, "0" * 20),
    }


def b_markers(world: World) -> list[str]:
    return [world.events[SITE_B], SITE_B, "cam-b", DEVICES[SITE_B]]


@pytest.fixture
def world(tmp_path: Path, object_store: ObjectStore) -> World:
    return build_world(tmp_path, object_store)


def test_every_route_needs_a_key(world: World) -> None:
    anonymous, forged = world.client(None), world.client("xl_0123456789ab_forged")
    revoked = make_key(world.index, "operator")
    ApiKeys(world.index).revoke(revoked.split("_")[1])
    for method, path, operation in routes(world.app):
        url, params, body = request_for(world, method, path, operation, target_of(world, SITE_A))
        if path == "/healthz":
            assert ask(anonymous, method, url, params, body).status_code == 200
            continue
        for client in (anonymous, forged, world.client(revoked)):
            answer = ask(client, method, url, params, body)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized"
            assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ["shop", "installer"])
def test_keys_of_site_a_get_nothing_of_site_b(
    role: str, tmp_path: Path, object_store: ObjectStore
) -> None:
    checked = 0
    for method, path, operation in routes(build_world(tmp_path, object_store).app):
        if path == "/healthz" or (method, path) in STREAMS | SESSIONS:
            continue
        # A world of its own per route: the admin's control request may change or delete.
        world = build_world(tmp_path, object_store)
        key_a = make_key(world.index, role, [SITE_A])  # type: ignore[arg-type]
        as_a = world.client(key_a)
        url, params, body = request_for(world, method, path, operation, target_of(world, SITE_B))
        answer = ask(as_a, method, url, params, body)
        where = f"{role} of {SITE_A}: {method} {path} -> {answer.status_code} {answer.text[:300]}"
        if answer.status_code == 200 or (method, path) in SITELESS:
            for marker in b_markers(world):  # (a 404 names the id it was asked about)
                assert marker not in answer.text, where
        if (method, path) in SITELESS:
            assert answer.status_code in (200, 403, 502), where
            checked += 1
            continue
        assert answer.status_code in (200, 403, 404), where
        if answer.status_code == 404:
            # Exactly what the same request about an object that does not exist gets.
            special = {"delivery_id": "987654", "account": "ABCDEF", "device_id": "9" * 20}
            missing = {
                name: special.get(name, f"missing-{name}") for name in target_of(world, SITE_B)
            }
            url_m, params_m, body_m = request_for(world, method, path, operation, missing)
            nothing = ask(as_a, method, url_m, params_m, body_m)
            assert nothing.status_code == 404, where
            expected = nothing.text
            for name, value in missing.items():
                expected = expected.replace(value, target_of(world, SITE_B)[name])
            assert answer.text == expected, where
        # The control: the same request by the admin does reach site B's object.
        control = ask(world.client(world.admin_key), method, url, params, body)
        assert control.status_code < 400 or re.search(r"no recording", control.text), (
            f"admin: {method} {path} -> {control.status_code} {control.text[:300]}"
        )
        if control.status_code == 200 and method == "GET" and answer.status_code == 200:
            assert any(m in control.text for m in b_markers(world)), f"admin sees no B: {where}"
        checked += 1
    assert checked >= 15  # every route of the schema, not an empty loop


def test_a_key_sees_its_own_site(tmp_path: Path, object_store: ObjectStore) -> None:
    world = build_world(tmp_path, object_store)
    shop = world.client(make_key(world.index, "shop", [SITE_A]))
    page = shop.get("/api/events").json()
    assert [e["id"] for e in page["items"]] == [world.events[SITE_A]]
    assert shop.get(f"/api/events/{world.events[SITE_A]}/clip").status_code == 200
    assert [c["id"] for c in shop.get("/api/cameras").json()] == ["cam-a"]
    assert [s["id"] for s in shop.get("/api/sites").json()] == [SITE_A]
    me = shop.get("/api/me").json()
    assert me["role"] == "shop" and me["sites"] == [SITE_A]
    assert shop.post(f"/api/events/{world.events[SITE_A]}/verify").status_code == 403
    custody = world.client(world.admin_key).get(f"/api/events/{world.events[SITE_A]}/custody")
    assert [(c["action"], c["actor"]) for c in custody.json()] == [("fetch", "shop of tests")]
    body = json.dumps(world.client(world.admin_key).get("/api/keys").json())
    assert "secret" not in body and world.admin_key.split("_", 2)[2] not in body
