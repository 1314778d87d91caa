"""The API's answers to bad input and to storage trouble (no 500s, nothing half-sent)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from minio import Minio

from api.app import create_app
from api.config import ApiConfig
from common.types import Box
from storage.database.accounts import ApiKeys
from storage.database.cameras import CameraConfig
from storage.database.index import EventIndex
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, api_client
from tests.events import person_event
from tests.servers import CHECKOUT, free_port


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, EventIndex]]:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    # An S3 endpoint where nothing listens: every object request fails at the network.
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "key", "secret", secure=False), "bkt")
    cameras = [
        CameraConfig(
            id="gate", site="hq", url="rtsp://10.0.0.5/live?channel=1&user=admin&pwd=hunter2"
        )
    ]
    app = create_app(index, store, cameras, ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index) as test_client:
        yield test_client, index


def test_bad_query_values_are_422_not_500(client: tuple[TestClient, EventIndex]) -> None:
    http, _ = client
    for query in (
        "cursor=99999999999999999999999",
        "cursor=abc",
        "limit=0",
        "start=0001-01-01T00:00:00%2B01:00",
        "end=9999-12-31T23:00:00-02:00",
        "start=yesterday",
    ):
        response = http.get(f"/api/events?{query}")
        assert response.status_code == 422, query
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["message"], query


@pytest.mark.parametrize(
    ("text", "character"),
    [
        ("ok\r\nX-Injected: 1", "U+000D"),
        ("nul\x00", "U+0000"),
        ("clip\u202e4pm.exe", "U+202E"),
        ("red\x1b[31m", "U+001B"),
    ],
    ids=["line-break", "nul", "bidi-override", "terminal-escape"],
)
def test_text_with_a_control_character_is_refused_naming_the_field_not_the_text(
    client: tuple[TestClient, EventIndex], text: str, character: str
) -> None:
    """A name or note holding a control character could forge a log line or read otherwise
    than it is stored: every request body refuses it, naming the field and the character."""
    http, index = client
    event = person_event()
    index.add_event(event)
    requests = [
        ("POST", "/api/webhooks", {"name": text, "url": "http://10.0.0.9/hook"}, "body.name"),
        ("POST", "/api/keys", {"name": text, "role": "operator", "sites": ["hq"]}, "body.name"),
        ("PUT", "/api/sites/hq", {"name": "HQ", "address": text}, "body.address"),
        ("POST", f"/api/events/{event.id}/actions", {"action": "note", "note": text}, "body.note"),
        ("PUT", f"/api/events/{event.id}/hold", {"reason": text}, "body.reason"),
        (
            "POST",
            "/api/webhooks",
            {"name": "ok", "url": "http://h/", "types": [text]},
            "body.types",
        ),
    ]
    for method, path, body, field in requests:
        response = http.request(method, path, json=body)
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert [f["location"] for f in error["fields"]] == [field], (path, error)
        assert character in error["fields"][0]["message"]
        assert text not in error["message"] + error["fields"][0]["message"]
    assert http.get("/api/webhooks").json() == []


def test_missing_event_and_missing_media_are_404(client: tuple[TestClient, EventIndex]) -> None:
    http, index = client
    assert http.get("/api/events/nope").status_code == 404
    index.add_event(person_event())
    event_id = http.get("/api/events").json()["items"][0]["id"]
    response = http.get(f"/api/events/{event_id}/clip")
    assert response.status_code == 404
    assert "no clip" in response.json()["error"]["message"]


def test_unreachable_storage_is_503_before_any_byte(
    client: tuple[TestClient, EventIndex],
) -> None:
    http, index = client
    event = person_event(last_seen_at=2.0, best_box=Box(0.1, 0.1, 0.2, 0.2), ended_at=2.0)
    ended = datetime.fromtimestamp(2.0, UTC)
    index.store_clip(event, ended, ("hq/gate/1970/01/01/x.mp4", "ab" * 32, 1), (ended, ended))
    response = http.get(f"/api/events/{event.id}/clip")
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "object storage is unreachable"


def test_pagination_walks_every_event_once(client: tuple[TestClient, EventIndex]) -> None:
    http, index = client
    for n in range(7):
        index.add_event(person_event(started_at=float(n)))
    seen: list[str] = []
    url = "/api/events?limit=3"
    while True:
        page = http.get(url).json()
        seen += [e["id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/api/events?limit=3&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen)) == 7


def test_camera_credentials_in_the_query_are_masked(
    client: tuple[TestClient, EventIndex],
) -> None:
    http, _ = client
    text = http.get("/api/cameras").text
    assert "hunter2" not in text and "user=***" in text and "channel=1" in text


def unreachable_store() -> ObjectStore:
    return ObjectStore(Minio(f"127.0.0.1:{free_port()}", "key", "secret", secure=False), "bkt")


def test_admins_make_list_and_revoke_keys(tmp_path: Path) -> None:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    app = create_app(
        index, unreachable_store(), [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER
    )
    with api_client(app, index) as admin, api_client(app, index, "operator") as desk:
        made = admin.post(
            "/api/keys", json={"name": "shop 7 panel", "role": "shop", "sites": ["shop-7"]}
        )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        assert key.startswith("xl_") and made.json()["created_by"] == "admin of tests"
        shop = {"Authorization": f"Bearer {key}"}
        assert admin.get("/api/me", headers=shop).json()["sites"] == ["shop-7"]
        with TestClient(app, headers={"X-API-Key": key}) as by_header:
            assert by_header.get("/api/me").json()["role"] == "shop"
        two = admin.get("/api/me", headers={"X-API-Key": key})  # and the admin's Bearer key
        assert two.status_code == 401 and "two different" in two.json()["error"]["message"]
        listed = admin.get("/api/keys").text
        assert "shop 7 panel" in listed and key.split("_", 2)[2] not in listed
        wide = admin.post("/api/keys", json={"name": "x", "role": "shop", "all_sites": True})
        assert wide.status_code == 422 and "all_sites" in wide.json()["error"]["message"]
        nowhere = admin.post("/api/keys", json={"name": "x", "role": "installer"})
        assert nowhere.status_code == 422
        bad_site = admin.post("/api/keys", json={"name": "x", "role": "shop", "sites": ["A B"]})
        assert bad_site.status_code == 422
        assert desk.post("/api/keys", json={"name": "x", "role": "admin"}).status_code == 403
        assert admin.delete(f"/api/keys/{made.json()['id']}").status_code == 204
        assert admin.get("/api/me", headers=shop).status_code == 401
        assert admin.delete("/api/keys/nope").status_code == 404


def test_admins_put_list_and_remove_sites(tmp_path: Path) -> None:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    app = create_app(
        index, unreachable_store(), [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER
    )
    with api_client(app, index) as admin, api_client(app, index, "shop", ["shop-7"]) as shop:
        made = admin.put("/api/sites/shop-7", json={"name": "Shop 7", "latitude": 31.23})
        assert made.status_code == 200, made.text
        assert made.json() == {
            "id": "shop-7", "name": "Shop 7", "address": "", "grid_id": "", "latitude": 31.23,
            "longitude": None, "timezone": "Asia/Shanghai", "networks": [],
        }  # fmt: skip
        replaced = admin.put("/api/sites/shop-7", json={"name": "Shop 7b", "timezone": "UTC"})
        assert replaced.json()["latitude"] is None and replaced.json()["timezone"] == "UTC"
        assert admin.put("/api/sites/bank-2", json={"name": "Bank 2"}).status_code == 200
        assert [site["id"] for site in admin.get("/api/sites").json()] == ["bank-2", "shop-7"]
        assert [site["name"] for site in shop.get("/api/sites").json()] == ["Shop 7b"]
        assert shop.get("/api/sites/bank-2").status_code == 404  # as a missing one
        assert shop.delete("/api/sites/shop-7").status_code == 403
        assert admin.delete("/api/sites/shop-7").status_code == 204
        assert admin.delete("/api/sites/shop-7").status_code == 404
        assert admin.get("/api/sites/shop-7").status_code == 404


def test_the_api_leaves_its_queries_to_the_database_wing() -> None:
    """The routes call named functions of storage/database/: no module of api/ imports
    SQLAlchemy or opens a session of the database itself."""
    found = []
    for path in sorted((CHECKOUT / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                modules = []
            where = f"{path.relative_to(CHECKOUT)}:{getattr(node, 'lineno', 0)}"
            if any(module.split(".")[0] == "sqlalchemy" for module in modules):
                found.append(f"{where} imports SQLAlchemy")
            if isinstance(node, ast.Attribute) and node.attr == "sessions":
                found.append(f"{where} opens a database session")
    assert not found, "; ".join(found)


def test_each_key_has_a_request_budget(tmp_path: Path) -> None:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    settings = ApiConfig(rate_per_s=0.2, burst=3)
    app = create_app(index, unreachable_store(), [], settings, heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index) as busy, api_client(app, index) as other:
        assert [busy.get("/api/me").status_code for _ in range(3)] == [200, 200, 200]
        refused = busy.get("/api/me")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 5
        assert other.get("/api/me").status_code == 200  # another key's budget is its own


def test_a_body_over_the_limit_is_refused_declared_or_streamed(tmp_path: Path) -> None:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    settings = ApiConfig(max_body_bytes=1024)
    app = create_app(index, unreachable_store(), [], settings, heartbeat_stale_s=5, sealer=SEALER)
    body = b'{"name": "' + b"x" * 2000 + b'", "role": "shop", "sites": ["a"]}'

    def chunks() -> Iterator[bytes]:
        yield from (body[i : i + 256] for i in range(0, len(body), 256))

    with api_client(app, index) as admin:
        declared = admin.post(
            "/api/keys", content=body, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"
        streamed = admin.post(
            "/api/keys", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text
        assert admin.get("/api/keys").json()[0]["name"] == "admin of tests"  # nothing made


def test_the_first_admin_key_comes_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cameras: [{id: gate, site: hq, url: 'rtsp://127.0.0.1/gate'}]\n")
    command = [sys.executable, "-m", "xueliang", "create-key", str(config), "--name", "ops"]
    made = subprocess.run(
        [*command, "--role", "admin", "--all-sites"], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'data' / 'xueliang.db'}")
    principal = ApiKeys(index).authenticate(key)
    assert principal is not None and principal.role == "admin" and principal.sites is None
    assert key not in made.stderr
    refused = subprocess.run(
        [*command, "--role", "shop", "--all-sites"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "all_sites is not allowed" in refused.stderr


def test_the_console_logs_in_with_a_key_into_a_session_cookie(tmp_path: Path) -> None:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    app = create_app(
        index, unreachable_store(), [], ApiConfig(), heartbeat_stale_s=5, sealer=SEALER
    )
    key = ApiKeys(index).create("night desk", "operator", [], True, by="tests")[1]
    index.add_event(person_event())
    with TestClient(app) as browser:
        assert browser.post("/api/session", json={"key": key + "x"}).status_code == 401
        logged_in = browser.post("/api/session", json={"key": key})
        assert logged_in.status_code == 200 and logged_in.json()["name"] == "night desk"
        cookies = logged_in.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("xl_session="))
        assert "HttpOnly" in session and "SameSite=strict" in session and key not in session
        csrf = next(c for c in cookies if c.startswith("xl_csrf=")).split(";")[0].split("=", 1)[1]
        assert browser.get("/api/me").json()["role"] == "operator"  # the cookie alone
        event_id = browser.get("/api/events").json()["items"][0]["id"]
        act = {"action": "acknowledge"}
        forged = browser.post(f"/api/events/{event_id}/actions", json=act)
        assert forged.status_code == 403  # a change without the CSRF header: another page's
        acted = browser.post(
            f"/api/events/{event_id}/actions", json=act, headers={"X-CSRF-Token": csrf}
        )
        assert acted.status_code == 200 and acted.json()["acknowledged_by"] == "night desk"
        token = session.split(";")[0].split("=", 1)[1]
        assert browser.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    with TestClient(app, cookies={"xl_session": token}) as stale:
        assert stale.get("/api/me").status_code == 401  # closed on the server, not just forgotten
