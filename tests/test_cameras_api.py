"""Installers add, change and remove cameras over the API, after probing them against a real
RTSP server; credentials go in and never come out."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from minio import Minio

from api.app import create_app
from api.config import ApiConfig
from ingest.probe import BAD_CREDENTIALS, NO_STREAM
from storage.database.accounts import SiteRow
from storage.database.cameras import ApiCameras, CameraConfig
from storage.database.index import EventIndex
from storage.media.objects import ObjectStore
from tests.apiclient import LOCAL_PEERS, SEALER, api_client
from tests.servers import RtspCamera, free_port

pytestmark = pytest.mark.integration

USER, PASSWORD = "installer", "Cam-Pa55-7q"


@pytest.fixture(scope="module")
def camera(vtest_h264: Path) -> Iterator[RtspCamera]:
    server = RtspCamera({"door": vtest_h264}, user=USER, password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api(tmp_path: Path) -> tuple[FastAPI, EventIndex]:
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")
    with index.sessions.begin() as session:
        shop = SiteRow(id="shop-7", name="Shop 7", networks=["10.0.0.0/24"])  # its cameras' LAN
        session.add_all([shop, SiteRow(id="bank-2", name="Bank")])
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    yard = CameraConfig(id="yard", site="shop-7", url="rtsp://127.0.0.1:1/yard")
    settings = ApiConfig(egress=LOCAL_PEERS)
    return create_app(index, store, [yard], settings, heartbeat_stale_s=5, sealer=SEALER), index


def test_a_probe_shows_what_the_camera_sends(
    api: tuple[FastAPI, EventIndex], camera: RtspCamera
) -> None:
    app, index = api
    with api_client(app, index, "installer", ["shop-7"]) as installer:
        found = installer.post(
            "/api/cameras/probe",
            json={"url": camera.url("door"), "username": USER, "password": PASSWORD},
        )
        assert found.status_code == 200, found.text
        answer = found.json()
        assert (answer["codec"], answer["width"], answer["height"]) == ("h264", 768, 576)
        assert answer["fps"] == pytest.approx(10, abs=0.5)
        jpeg = np.frombuffer(base64.b64decode(answer["snapshot_jpeg"]), np.uint8)
        picture = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape == (576, 768, 3)
        assert picture.std() > 20  # a picture, not a blank
        in_url = installer.post("/api/cameras/probe", json={"url": camera.url("door", True)})
        assert in_url.status_code == 200  # credentials in the URL work the same

        refused = installer.post(
            "/api/cameras/probe",
            json={"url": camera.url("door"), "username": USER, "password": "wrong-Pa55"},
        )
        assert refused.status_code == 502 and "wrong-Pa55" not in refused.text
        assert refused.json()["error"]["message"] == BAD_CREDENTIALS
        nobody = installer.post(
            "/api/cameras/probe",
            json={"url": f"rtsp://127.0.0.1:{free_port()}/x", "timeout_s": 3},
        )
        assert nobody.status_code == 502
        assert nobody.json()["error"]["message"] == NO_STREAM
        local = installer.post("/api/cameras/probe", json={"url": "file:///etc/passwd"})
        assert local.status_code == 422 and "network" in local.json()["error"]["message"]
    with api_client(app, index, "shop", ["shop-7"]) as shop:
        assert shop.post("/api/cameras/probe", json={"url": camera.url("door")}).status_code == 403


def test_an_installer_adds_changes_and_removes_a_camera(
    api: tuple[FastAPI, EventIndex], camera: RtspCamera
) -> None:
    app, index = api
    door = {
        "id": "door",
        "site": "shop-7",
        "name": "Front door",
        "url": camera.url("door", with_credentials=True),
        "zones": [{"name": "till", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}],
    }
    answers = []
    with api_client(app, index, "installer", ["shop-7"]) as installer:
        added = installer.post("/api/cameras", json=door)
        assert added.status_code == 201, added.text
        assert added.json()["source"] == "api" and added.json()["has_password"]
        assert added.json()["url"] == camera.url("door")  # without the credentials
        assert installer.post("/api/cameras", json=door).status_code == 409
        assert installer.post("/api/cameras", json={**door, "id": "yard"}).status_code == 409
        elsewhere = installer.post("/api/cameras", json={**door, "id": "vault", "site": "bank-2"})
        assert elsewhere.status_code == 404  # as a site that does not exist
        local = installer.post("/api/cameras", json={**door, "id": "f", "url": "file:///x.mp4"})
        assert local.status_code == 422
        listed = installer.get("/api/cameras").json()
        assert [(c["id"], c["source"]) for c in listed] == [("yard", "config"), ("door", "api")]
        detail = installer.get("/api/cameras/door").json()
        assert detail["config"]["zones"][0]["name"] == "till"
        answers += [added.text, installer.get("/api/cameras").text, str(detail)]

        # Changed without credentials in the body: the stored ones are kept.
        changed = {**door, "url": camera.url("door"), "zones": []}
        replaced = installer.put("/api/cameras/door", json=changed)
        assert replaced.status_code == 200, replaced.text
        stored = ApiCameras(index, SEALER).get("door")
        assert stored is not None and stored.zones == [] and stored.username == USER
        assert stored.password is not None and stored.password.get_secret_value() == PASSWORD
        cleared = installer.put("/api/cameras/door", json={**changed, "password": ""})
        assert cleared.status_code == 200 and not cleared.json()["has_password"]
        assert installer.put("/api/cameras/yard", json={**door, "id": "yard"}).status_code == 409
        assert installer.put("/api/cameras/door", json={**door, "id": "x"}).status_code == 422
        answers += [replaced.text, cleared.text]

        assert installer.delete("/api/cameras/door").status_code == 204
        assert installer.get("/api/cameras/door").status_code == 404
        assert installer.delete("/api/cameras/yard").status_code == 409  # the config file's
    with api_client(app, index, "operator") as desk:
        assert desk.post("/api/cameras", json=door).status_code == 403
    for text in answers:
        assert PASSWORD not in text


def test_a_camera_put_back_as_the_api_showed_it_keeps_the_secrets_of_its_urls(
    api: tuple[FastAPI, EventIndex],
) -> None:
    """The console's zone editor saves a camera as GET answered it: URL query secrets starred
    there must not replace the stored ones."""
    app, index = api
    flv = {
        "id": "till", "site": "shop-7", "url": "http://10.0.0.7/live.flv?token=Tk-991&channel=1",
        "detect_url": "http://10.0.0.7/sub.flv?pwd=Sub-42",
    }  # fmt: skip
    with api_client(app, index, "installer", ["shop-7"]) as installer:
        assert installer.post("/api/cameras", json=flv).status_code == 201
        shown = installer.get("/api/cameras/till").json()
        assert "Tk-991" not in shown["url"] and "Sub-42" not in str(shown["detect_url"])
        zones = [{"name": "counter", "points": [[0, 0], [1, 0], [1, 1]]}]
        body = {**shown["config"], "id": "till", "site": "shop-7", "url": shown["url"],
                "detect_url": shown["detect_url"], "zones": zones}  # fmt: skip
        assert installer.put("/api/cameras/till", json=body).status_code == 200
        stored = ApiCameras(index, SEALER).get("till")
        assert stored is not None and stored.zones[0].name == "counter"
        assert (stored.url, stored.detect_url) == (flv["url"], flv["detect_url"])
        moved = {**body, "url": "http://10.0.0.8/live.flv?token=New-1"}  # a new URL is taken
        assert installer.put("/api/cameras/till", json=moved).status_code == 200
        stored = ApiCameras(index, SEALER).get("till")
        assert stored is not None and stored.url == moved["url"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"rtsp://{USER}:{PASSWORD}@10.0.0.7:99999/live", "port is not a number from 1 to 65535"),
        (f"rtsp://{USER}:{PASSWORD}@10.0.0.7/live\x00.sdp", "control character U+0000"),
        (f"rtsp://{USER}:{PASSWORD}@10.0.0.7/live%g1", "'%' that is not followed by two hex"),
        (f"rtsp://{USER}:{PASSWORD}@[fe80::1/live", "host is not a valid IPv6 address"),
    ],
    ids=["port", "nul", "percent-escape", "ipv6"],
)
def test_a_malformed_camera_url_is_refused_naming_the_field_not_the_password(
    api: tuple[FastAPI, EventIndex], url: str, reason: str
) -> None:
    """The API checks a camera's URL as check-config does (one validator for both): the error
    is against the URL field, says what is wrong, and neither stores nor repeats the URL."""
    app, index = api
    with api_client(app, index, "installer", ["shop-7"]) as installer:
        answer = installer.post("/api/cameras", json={"id": "door", "site": "shop-7", "url": url})
        assert answer.status_code == 422, answer.text
        fields = answer.json()["error"]["fields"]
        assert [f["location"] for f in fields] == ["body.url"] and reason in fields[0]["message"]
        assert PASSWORD not in answer.text
        probed = installer.post("/api/cameras/probe", json={"url": url})
        assert probed.status_code == 422 and reason in probed.text
        assert PASSWORD not in probed.text
    assert ApiCameras(index, SEALER).list() == []
