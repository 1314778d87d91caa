"""The API's answers to bad input and to storage trouble (no 500s, nothing half-sent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from minio import Minio

from api.app import create_app
from api.config import ApiConfig
from common.types import Box, Event
from ingest.config import CameraConfig
from storage.index import EventIndex
from storage.objects import ObjectStore
from tests.servers import free_port


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
    app = create_app(index, store, cameras, ApiConfig(), heartbeat_stale_s=5)
    with TestClient(app) as test_client:
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
        assert "detail" in response.json()


def test_missing_event_and_missing_media_are_404(client: tuple[TestClient, EventIndex]) -> None:
    http, index = client
    assert http.get("/api/events/nope").status_code == 404
    index.add_event(Event("gate", "hq", "zone_intrusion", "person", "door", "high", 1.0, 1.0))
    event_id = http.get("/api/events").json()["items"][0]["id"]
    response = http.get(f"/api/events/{event_id}/clip")
    assert response.status_code == 404
    assert "no clip" in response.json()["detail"]


def test_unreachable_storage_is_503_before_any_byte(
    client: tuple[TestClient, EventIndex],
) -> None:
    http, index = client
    event = Event("gate", "hq", "zone_intrusion", "person", "door", "high", 1.0, 2.0)
    event.best_box = Box(0.1, 0.1, 0.2, 0.2)
    event.ended_at = 2.0
    index.finish_event(event, clip_key="hq/gate/1970/01/01/x.mp4", state="ended")
    response = http.get(f"/api/events/{event.id}/clip")
    assert response.status_code == 503
    assert response.json()["detail"] == "object storage is unreachable"


def test_pagination_walks_every_event_once(client: tuple[TestClient, EventIndex]) -> None:
    http, index = client
    for n in range(7):
        index.add_event(
            Event("gate", "hq", "zone_intrusion", "person", "door", "high", float(n), float(n))
        )
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
