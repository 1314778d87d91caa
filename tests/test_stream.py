"""The stream worker on real sources: a looping file and the GStreamer RTSP camera."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from common.types import Frame
from ingest.config import CameraConfig, DetectConfig, IngestConfig
from ingest.ring import PacketRing
from ingest.camera import Camera
from tests.servers import RtspCamera

pytestmark = pytest.mark.integration


class Frames:
    def __init__(self) -> None:
        self.items: list[Frame] = []
        self.lock = threading.Lock()

    def __call__(self, frame: Frame) -> None:
        with self.lock:
            self.items.append(frame)


def run_for(stream: Camera, seconds: float) -> None:
    stream.start()
    time.sleep(seconds)
    stream.stop()
    stream.join()


def test_file_source_is_paced_like_a_camera_and_sampled(vtest_h264: Path) -> None:
    ring = PacketRing(max_seconds=30)
    frames = Frames()
    camera = CameraConfig(
        id="file", site="lab", url=f"file://{vtest_h264}", loop=True,
        detect=DetectConfig(fps=2, width=None),
    )  # fmt: skip
    stream = Camera(camera, IngestConfig(), ring, frames)
    run_for(stream, 4.0)
    held = ring.window(0, time.time())
    assert held[0].is_keyframe
    # 10 fps footage released in real time: about 40 packets in 4 s, not the whole file
    assert 25 <= len(held) <= 50
    assert 5 <= len(frames.items) <= 10  # sampled at 2 fps
    assert frames.items[0].image.shape == (576, 768, 3)


def test_rtsp_stream_fills_the_ring_from_a_keyframe(vtest_h264: Path) -> None:
    server = RtspCamera({"cam": vtest_h264})
    server.start()
    try:
        ring = PacketRing(max_seconds=3)
        frames = Frames()
        camera = CameraConfig(id="cam", site="lab", url=server.url("cam"))
        stream = Camera(camera, IngestConfig(), ring, frames)
        stream.start()
        time.sleep(8)
        status = stream.check()
        stream.stop()
        stream.join()
    finally:
        server.stop()
    assert status.state == "online" and status.input_fps > 8
    assert frames.items[0].image.shape == (480, 640, 3)  # scaled to the default detect width
    held = ring.window(0, time.time())
    assert held[0].is_keyframe
    assert 3.0 <= held[-1].wall_time - held[0].wall_time <= 3.0 + 2.0 + 0.5  # ring + one GOP
    assert len({f.wall_time for f in frames.items}) == len(frames.items)


def test_stalled_camera_is_detected_by_the_watchdog(vtest_h264: Path) -> None:
    server = RtspCamera({"cam": vtest_h264})
    server.start()
    assert server.process is not None
    camera = CameraConfig(id="cam", site="lab", url=server.url("cam"))
    settings = IngestConfig(watchdog_s=2, reconnect_min_s=0.5, reconnect_max_s=1)
    stream = Camera(camera, settings, PacketRing(10), Frames())
    stream.start()
    try:
        deadline = time.monotonic() + 20
        while stream.check().state != "online" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stream.check().state == "online"
        server.process.send_signal(signal.SIGSTOP)  # socket stays open, no data flows
        stalled = time.monotonic()
        while stream.check().state == "online" and time.monotonic() - stalled < 15:
            time.sleep(0.2)
        assert stream.check().state == "offline"
        assert time.monotonic() - stalled <= settings.watchdog_s + 2.0
        server.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while stream.check().state != "online" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stream.check().state == "online"
        assert stream.check().reconnects >= 1
    finally:
        server.process.send_signal(signal.SIGCONT)
        stream.stop()
        stream.join()
        server.stop()


def test_broken_source_reports_why_and_leaves_other_cameras_alone(
    vtest_h264: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 1000)
    settings = IngestConfig(reconnect_min_s=0.2, reconnect_max_s=0.5)
    good = Camera(
        CameraConfig(id="good", site="lab", url=f"file://{vtest_h264}", loop=True),
        settings, PacketRing(10), Frames(),
    )  # fmt: skip
    bad = Camera(
        CameraConfig(id="bad", site="lab", url=f"file://{garbage}"),
        settings, PacketRing(10), Frames(),
    )  # fmt: skip
    for stream in (good, bad):
        stream.start()
    time.sleep(3)
    bad_status, good_status = bad.check(), good.check()
    for stream in (good, bad):
        stream.stop()
        stream.join()
    assert bad_status.state == "offline" and bad_status.reconnects >= 2
    assert bad_status.error is not None and "InvalidDataError" in bad_status.error
    assert good_status.state == "online" and good_status.input_fps >= 9
