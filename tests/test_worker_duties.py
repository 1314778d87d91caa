"""What a worker does beside analytics, each owned by the storage stage and only wired by the
worker: the spool's troubles as events, cameras' pictures for the console, alarm clips cut
from a camera's ring, and the cameras it runs (the config file's winning an id)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from common.types import BGRImage
from ingest.ring import PacketRing
from storage.config import ClipConfig, SpoolConfig
from storage.database.alarms import AlarmClipRow, AlarmPanels
from storage.database.camera_health import Heartbeats
from storage.database.cameras import ApiCameras, CameraConfig, NetworkCameraConfig
from storage.database.index import EventIndex, EventQuery
from storage.media.event_clips import EventRecorder
from storage.media.pictures import CameraPictures
from storage.media.spool import Spool, SpoolReport
from storage.media.spool_events import SpoolEvents
from tests.apiclient import SEALER
from tests.events import panel_alarm
from tests.media import camera_packets, decode_jpeg


@pytest.fixture
def index(tmp_path: Path) -> EventIndex:
    return EventIndex.connect(f"sqlite:///{tmp_path / 'index.db'}")


def report(what: str, key: str, camera: str | None = "gate") -> SpoolReport:
    metadata = {"camera": camera, "site": "hq"} if camera is not None else {}
    return SpoolReport(what, key, "clip", metadata, "detail")  # type: ignore[arg-type]


def test_spool_troubles_become_events_a_full_spool_once_a_minute(index: EventIndex) -> None:
    on_report = SpoolEvents(index)
    on_report(report("quarantined", "hq/gate/a.mp4"))
    on_report(report("storage_full", "hq/gate/b.mp4"))
    on_report(report("storage_full", "hq/gate/c.mp4"))  # within the minute: not again
    on_report(report("storage_full", "hq/yard/d.mp4", camera="yard"))  # another camera's
    on_report(report("evicted", "hq/gate/rec.mp4"))  # a recording making room: by design
    on_report(report("quarantined", "hq/x/e.mp4", camera=None))  # no camera to show it on
    rows = sorted(index.list_events(EventQuery()), key=lambda row: row.seq)
    assert [(r.camera_id, r.type, r.clip_error) for r in rows] == [
        ("gate", "spool_quarantine", "spool_quarantine: hq/gate/a.mp4"),
        ("gate", "storage_full", "storage_full: hq/gate/b.mp4"),
        ("yard", "storage_full", "storage_full: hq/yard/d.mp4"),
    ]
    assert {(r.state, r.severity, r.detail) for r in rows} == {("ended", "high", "clip detail")}


@pytest.mark.integration
def test_a_cameras_picture_is_its_newest_keyframe_masked_and_not_taken_too_often(
    index: EventIndex, vtest_h264: Path
) -> None:
    ring = PacketRing(600)
    for packet in camera_packets(vtest_h264, start=time.time() - 20):
        ring.append(packet)
    masked: list[BGRImage] = []

    def black(image: BGRImage) -> BGRImage:
        masked.append(image)
        return np.zeros_like(image)

    heartbeats = Heartbeats(index)
    pictures = CameraPictures(heartbeats, {"gate": ring, "yard": ring}, {"gate": black})
    pictures.take("gate", "hq")
    gate = heartbeats.picture("gate")
    assert gate is not None and gate.site == "hq" and len(masked) == 1
    assert decode_jpeg(gate.jpeg).shape == (360, 480, 3)  # 768x576 made 480 wide
    assert int(decode_jpeg(gate.jpeg).max()) < 16  # the mask's picture, not the camera's
    pictures.take("gate", "hq")  # not due yet
    assert len(masked) == 1 and heartbeats.picture("gate").taken_at == gate.taken_at  # type: ignore[union-attr]
    pictures.take("yard", "hq")  # no mask: privacy off
    yard = heartbeats.picture("yard")
    assert yard is not None and int(decode_jpeg(yard.jpeg).max()) > 100 and len(masked) == 1


@pytest.mark.integration
def test_an_alarm_clip_is_cut_by_the_worker_that_runs_the_camera(
    index: EventIndex, vtest_h264: Path, tmp_path: Path
) -> None:
    packets = camera_packets(vtest_h264, start=time.time() - 60)
    ring = PacketRing(600)
    for packet in packets:
        ring.append(packet)
    spool = Spool(tmp_path / "spool", SpoolConfig())
    spool.open()
    recorder = EventRecorder(index, spool, {"door": ring}, ClipConfig(), tmp_path / "work")
    alarm_at = datetime.fromtimestamp(packets[0].wall_time + 40, UTC)
    event = panel_alarm(alarm_at.timestamp())
    index.add_event(event)
    panels = AlarmPanels(index)
    panels.ask_clips(
        [AlarmClipRow(event_id=event.id, site="shop-7", camera_id="door", alarm_at=alarm_at,
                      pre_s=30.0, post_s=5.0)]
    )  # fmt: skip
    recorder.start()
    try:
        recorder.cut_alarm_clips(panels, ["yard"], "w1")  # not this worker's camera
        assert panels.take_clips(["yard"], "w1") == []
        recorder.cut_alarm_clips(panels, ["door"], "w1")
    finally:
        recorder.stop()  # cuts what is due first
    (clip,) = [entry for entry in spool.entries() if entry.kind == "clip"]
    assert clip.metadata["event-id"] == event.id
    start, end = (datetime.fromisoformat(clip.metadata[f"clip-{e}"]) for e in ("start", "end"))
    assert (alarm_at - start).total_seconds() >= 29.9  # the pre-alarm, from a keyframe on
    assert 4.0 <= (end - alarm_at).total_seconds() <= 5.1  # and the post-alarm
    row = index.get_event(event.id)
    assert row is not None and row.state == "ended" and row.clip_error is None
    assert panels.take_clips(["door"], "w2") == []  # taken once


def test_the_config_files_camera_wins_an_id_both_have(index: EventIndex) -> None:
    cameras = ApiCameras(index, SEALER)
    for camera_id in ("gate", "yard"):
        cameras.put(
            NetworkCameraConfig(id=camera_id, site="hq", url=f"rtsp://10.0.0.5/{camera_id}")
        )
    configured = [CameraConfig(id="gate", site="hq", url="rtsp://10.0.0.9/main")]
    both = cameras.beside(configured)
    assert [(c.id, c.url) for c in both] == [
        ("gate", "rtsp://10.0.0.9/main"), ("yard", "rtsp://10.0.0.5/yard")
    ]  # fmt: skip
    assert [c.id for c in cameras.beside(configured, sites=["elsewhere"])] == ["gate"]
