"""Cameras' health over time: heartbeats folded into one row per camera and minute, on SQLite
and PostgreSQL, and answered per minute by `GET /api/cameras/{id}/health` within the key's
sites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio
from sqlalchemy.orm import Session

from api.app import create_app
from api.config import ApiConfig
from storage.database.accounts import SiteRow
from storage.database.camera_health import CameraHealthRow, CameraStatusRow, Heartbeats
from storage.database.cameras import CameraConfig
from storage.database.engine import utcnow
from storage.database.index import EventIndex
from storage.media.objects import ObjectStore
from tests.apiclient import SEALER, api_client
from tests.servers import free_port

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def beat(
    at: datetime,
    state: str,
    fps: float,
    reconnects: int = 0,
    camera_id: str = "gate",
    worker_id: str = "w1",
) -> CameraStatusRow:
    """A heartbeat as the worker writes it: input and decode at `fps`, 100 kbit/s per fps."""
    return CameraStatusRow(
        camera_id=camera_id, site="hq", state=state, input_fps=fps, decode_fps=fps,
        bitrate_kbps=100.0 * fps, reconnects=reconnects, worker_id=worker_id, updated_at=at,
    )  # fmt: skip


def test_heartbeats_are_folded_into_minutes(index: EventIndex) -> None:
    for row in [
        beat(T0 + timedelta(seconds=5), "online", 10.0),
        beat(T0 + timedelta(seconds=20), "degraded", 4.0),
        beat(T0 + timedelta(seconds=40), "online", 10.0, reconnects=1),
        beat(T0 + timedelta(seconds=50), "online", 10.0, camera_id="yard"),  # not gate's
        beat(T0 + timedelta(seconds=65), "offline", 0.0, reconnects=1),
        beat(T0 + timedelta(seconds=80), "connecting", 8.0, reconnects=3),
    ]:
        Heartbeats(index).put_status(row)
    first, second = Heartbeats(index).history("gate", T0)
    assert first.minute == T0 and second.minute == T0 + timedelta(minutes=1)
    assert (first.state, first.heartbeats, first.reconnects) == ("degraded", 3, 1)
    assert (first.input_fps_min, first.decode_fps_min) == (4.0, 4.0)
    assert first.input_fps_avg == pytest.approx(8.0) and first.decode_fps_avg == pytest.approx(8.0)
    assert first.bitrate_kbps_avg == pytest.approx(800.0)
    assert (second.state, second.heartbeats, second.reconnects) == ("offline", 2, 2)
    assert second.decode_fps_min == 0.0 and second.decode_fps_avg == pytest.approx(4.0)
    assert [p.minute for p in Heartbeats(index).history("gate", T0 + timedelta(seconds=1))] == [
        T0 + timedelta(minutes=1)
    ]  # from `since` on
    assert [p.heartbeats for p in Heartbeats(index).history("yard", T0)] == [1]
    latest = Heartbeats(index).statuses()["gate"]  # the status is still the latest heartbeat
    assert (latest.state, latest.reconnects) == ("connecting", 3)

    # Another worker takes the camera over: its counter starts again, all of it is new.
    Heartbeats(index).put_status(
        beat(T0 + timedelta(seconds=90), "online", 10.0, 2, worker_id="w2")
    )
    assert Heartbeats(index).history("gate", T0)[1].reconnects == 4


@pytest.fixture
def heartbeats(index: EventIndex) -> EventIndex:
    """Sites hq and bank, a camera in each, and gate's heartbeats: 30 hours ago, then in two
    minutes of the last hour."""
    with index.sessions.begin() as session:
        session.add_all([SiteRow(id="hq", name="HQ"), SiteRow(id="bank", name="Bank")])
    recent = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=10)
    for row in [
        beat(recent - timedelta(hours=30), "online", 10.0),
        beat(recent + timedelta(seconds=5), "online", 10.0),
        beat(recent + timedelta(seconds=30), "degraded", 5.0),
        beat(recent + timedelta(seconds=70), "online", 10.0),
    ]:
        Heartbeats(index).put_status(row)
    return index


def test_the_api_answers_a_cameras_minutes_within_the_keys_sites(heartbeats: EventIndex) -> None:
    index = heartbeats
    store = ObjectStore(Minio(f"127.0.0.1:{free_port()}", "k", "s", secure=False), "unused")
    cameras = [
        CameraConfig(id="gate", site="hq", url="rtsp://127.0.0.1:1/gate"),
        CameraConfig(id="vault", site="bank", url="rtsp://127.0.0.1:1/vault"),
    ]
    app = create_app(index, store, cameras, ApiConfig(), heartbeat_stale_s=5, sealer=SEALER)
    with api_client(app, index, "installer", ["hq"]) as installer:
        answer = installer.get("/api/cameras/gate/health")
        assert answer.status_code == 200, answer.text
        points = answer.json()
        assert [p["state"] for p in points] == ["degraded", "online"]  # oldest first
        first = points[0]
        assert set(first) == {
            "minute", "state", "heartbeats", "input_fps_min", "input_fps_avg", "decode_fps_min",
            "decode_fps_avg", "bitrate_kbps_avg", "reconnects",
        }  # fmt: skip
        minute = datetime.fromisoformat(first["minute"])
        assert minute.utcoffset() == timedelta(0) and minute.second == 0
        assert (first["heartbeats"], first["input_fps_min"], first["input_fps_avg"]) == (2, 5, 7.5)
        assert len(installer.get("/api/cameras/gate/health?hours=48").json()) == 3
        for hours in (0, 169):
            assert installer.get(f"/api/cameras/gate/health?hours={hours}").status_code == 422

        # Another site's camera answers exactly as one that does not exist.
        elsewhere = installer.get("/api/cameras/vault/health")
        missing = installer.get("/api/cameras/nope/health")
        assert elsewhere.status_code == missing.status_code == 404
        assert elsewhere.text == missing.text.replace("nope", "vault")
    with api_client(app, index, "operator") as desk:
        assert desk.get("/api/cameras/vault/health").json() == []
        assert len(desk.get("/api/cameras/gate/health").json()) == 2
    with api_client(app, index, "shop", ["hq"]) as shop:
        assert shop.get("/api/cameras/gate/health").status_code == 403


def test_a_heartbeat_that_loses_the_race_for_its_minute_is_folded_in_on_its_second_try(
    index: EventIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a lease moves, another worker's first heartbeat of the minute commits between
    this one's look for the minute and its insert (not on SQLite: one writer at a time)."""
    if index.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one transaction write at a time: no such race")
    fold = Heartbeats._fold_heartbeat
    tries: list[int] = []

    def racing(session: Session, row: CameraStatusRow, minute: datetime) -> None:
        fold(session, row, minute)
        tries.append(1)
        if len(tries) == 1:  # the other worker's row for the minute commits meanwhile
            other = CameraHealthRow.first(beat(T0, "offline", 0.0, worker_id="w2"), T0, 0)
            with index.sessions.begin() as elsewhere:
                elsewhere.add(other)

    monkeypatch.setattr(Heartbeats, "_fold_heartbeat", staticmethod(racing))
    Heartbeats(index).put_status(beat(T0 + timedelta(seconds=20), "online", 10.0))
    assert len(tries) == 2
    (point,) = Heartbeats(index).history("gate", T0)
    assert (point.heartbeats, point.state, point.decode_fps_min) == (2, "offline", 0.0)
