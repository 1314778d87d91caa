"""schemathesis against the served OpenAPI schema: every operation, fed generated requests
(valid and not) with an admin key, answers no 5xx and only what its schema documents."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from api.config import ApiConfig
from storage.database.accounts import SiteRow
from storage.database.cameras import ApiCameras, NetworkCameraConfig
from storage.database.engine import to_datetime
from storage.database.index import EventIndex
from storage.media.objects import ObjectStore, object_key
from tests.apiclient import SEALER, Served, make_key
from tests.events import person_event

pytestmark = pytest.mark.integration
AUTH: dict[str, str] = {}  # the admin key's header, set by the fixture
# No 5xx, and every answer as documented: status, content type, headers, body. (Whether a
# request the schema allows is also accepted is not checked: a range over 31 days, an id of
# another site's camera are valid JSON and rightly refused.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
# An endless stream, and a probe that would dial whatever hosts are generated: tested apart.
EXCLUDED = ["/api/live/events", "/api/cameras/probe"]


def seed(index: EventIndex, store: ObjectStore) -> None:
    """A site, a camera and an event with stored media, so generated ids sometimes hit."""
    with index.sessions.begin() as session:
        session.add(SiteRow(id="shop-7", name="Shop 7"))
    ApiCameras(index, SEALER).put(
        NetworkCameraConfig(id="door", site="shop-7", url="rtsp://127.0.0.1/x")
    )
    now = time.time()
    event = person_event(camera_id="door", site="shop-7", zone="till", started_at=now)
    index.add_event(event)
    key = object_key("shop-7", "door", now, f"{event.id}.jpg")
    stored = store.put(key, secrets.token_bytes(256), "image/jpeg", {"event-id": event.id})
    index.store_snapshot(event, to_datetime(now), key, stored.sha256, stored.size)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, object_store: ObjectStore) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("schema")
    index = EventIndex.connect(f"sqlite:///{folder / 'index.db'}")
    seed(index, object_store)
    limits = ApiConfig(rate_per_s=1e6, burst=10**6)
    with Served(index, limits, heartbeat_stale_s=30, store=object_store) as running:
        AUTH["Authorization"] = f"Bearer {make_key(index, 'admin')}"
        yield running


def test_every_operation_answers_within_its_schema(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{served.port}/openapi.json")
    failures: dict[str, str] = {}
    tried = 0
    for result in schema.exclude(path=EXCLUDED).get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here: a bad schema
        tried += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def exercise(case: Any) -> None:
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as exc:  # all operations tried, all reported
            failures[operation.label] = str(exc)[:2000]
    assert tried >= 30  # the whole schema, not an empty loop
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
