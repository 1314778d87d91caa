"""The stream worker on real sources: a looping file and the GStreamer RTSP camera."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import av
import pytest

from common.types import Frame
from ingest.camera import Camera, CameraHealth, StateChange
from ingest.config import CameraConfig, DetectConfig, IngestConfig
from ingest.ring import PacketRing
from storage.media.clips import remux_to_mp4
from tests.servers import RtspCamera

pytestmark = pytest.mark.integration


class Frames:
    def __init__(self) -> None:
        self.items: list[Frame] = []
        self.lock = threading.Lock()

    def __call__(self, frame: Frame) -> None:
        with self.lock:
            self.items.append(frame)


def test_file_source_is_paced_like_a_camera_and_sampled(vtest_h264: Path) -> None:
    camera = CameraConfig(
        id="file", site="lab", url=f"file://{vtest_h264}", loop=True,
        detect=DetectConfig(fps=2, width=None),
    )  # fmt: skip
    _, frames, ring = watch(camera, 4.0)
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
    changes: list[StateChange] = []
    bad = Camera(
        CameraConfig(id="bad", site="lab", url=f"file://{garbage}"),
        settings, PacketRing(10), Frames(), changes.append,
    )  # fmt: skip
    started = time.time()
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
    # Never online is a video loss too, from its first failed connection.
    (lost,) = changes
    assert (lost.camera_id, lost.old, lost.new) == ("bad", "connecting", "offline")
    assert started <= lost.at <= started + 1.0


Watched = tuple[CameraHealth, Frames, PacketRing]


def watch_all(cameras: list[CameraConfig], seconds: float) -> list[Watched]:
    """Run `cameras` together for `seconds`: each one's health at the end, frames, ring."""
    runs = [(config, Frames(), PacketRing(30)) for config in cameras]
    runners = [Camera(config, IngestConfig(), ring, frames) for config, frames, ring in runs]
    for runner in runners:
        runner.start()
    try:
        time.sleep(seconds)
        healths = [runner.check() for runner in runners]
    finally:
        for runner in runners:
            runner.stop()
        for runner in runners:
            runner.join()
    return [(health, frames, ring) for health, (_, frames, ring) in zip(healths, runs, strict=True)]


def watch(camera: CameraConfig, seconds: float) -> Watched:
    return watch_all([camera], seconds)[0]


def test_rtsp_over_udp(rtsp_camera: RtspCamera) -> None:
    camera = CameraConfig(id="udp", site="lab", url=rtsp_camera.url("walkway"), transport="udp")
    health, frames, ring = watch(camera, 6)
    assert health.state == "online" and health.input_fps >= 9
    assert len(frames.items) >= 15
    assert ring.window(0, time.time())[0].is_keyframe


def test_h265_over_rtsp_and_its_clip(vtest_h265: Path, tmp_path: Path) -> None:
    server = RtspCamera({"hevc": vtest_h265})
    server.start()
    try:
        camera = CameraConfig(id="hevc", site="lab", url=server.url("hevc"))
        health, frames, ring = watch(camera, 7)
    finally:
        server.stop()
    assert health.state == "online" and health.decode_errors == 0
    assert frames.items and frames.items[-1].image.shape == (480, 640, 3)
    packets = ring.window(0, time.time())
    assert packets[0].stream.codec == "hevc" and packets[0].is_keyframe
    remux_to_mp4(packets, tmp_path / "clip.mp4")
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        assert clip.streams.video[0].codec_context.name == "hevc"
        assert sum(1 for _ in clip.decode(video=0)) == len(packets)


def test_dual_stream_decodes_only_the_detect_stream(
    vtest_h264: Path, vtest_small_h264: Path
) -> None:
    server = RtspCamera({"main": vtest_h264, "sub": vtest_small_h264})
    server.start()
    try:
        camera = CameraConfig(
            id="dual", site="lab", url=server.url("main"), detect_url=server.url("sub")
        )
        health, frames, ring = watch(camera, 7)
    finally:
        server.stop()
    assert health.state == "online"
    main_decoded, sub_decoded = health.decoded_frames
    assert main_decoded == 0 and sub_decoded >= 40  # main: demuxed only; sub: every frame
    assert frames.items[0].image.shape == (288, 384, 3)  # the sub-stream, not scaled up
    packets = ring.window(0, time.time())
    assert (packets[0].stream.width, packets[0].stream.height) == (768, 576)  # clips: main


def test_keyframe_mode_decodes_only_keyframes(vtest_h264: Path) -> None:
    camera = CameraConfig(
        id="kf", site="lab", url=f"file://{vtest_h264}", loop=True,
        detect=DetectConfig(decode="keyframes", fps=5),
    )  # fmt: skip
    health, frames, _ = watch(camera, 6.5)
    assert health.input_fps >= 9
    (decoded,) = health.decoded_frames
    assert 2 <= decoded <= 5  # a keyframe every 2 s, not 10 frames a second
    assert len(frames.items) == decoded


def test_corrupt_stream_counts_errors_and_stays_up(vtest_corrupt: Path, vtest_h264: Path) -> None:
    server = RtspCamera({"bad": vtest_corrupt, "good": vtest_h264})
    server.start()
    try:
        (bad, _, _), (good, _, _) = watch_all(
            [
                CameraConfig(id="bad", site="lab", url=server.url("bad")),
                CameraConfig(id="good", site="lab", url=server.url("good")),
            ],
            8,
        )
    finally:
        server.stop()
    assert bad.decode_errors > 0
    assert bad.state == "degraded" and bad.reconnects == 0
    assert good.state == "online" and good.decode_errors == 0
    assert good.input_fps >= 9 and good.decode_fps >= 9


def test_digest_auth(vtest_h264: Path) -> None:
    server = RtspCamera({"cam": vtest_h264}, user="viewer", password="s/ecr@t", auth="digest")
    server.start()
    try:
        right = CameraConfig(
            id="right", site="lab", url=server.url("cam"), username="viewer", password="s/ecr@t"
        )
        wrong = CameraConfig(
            id="wrong", site="lab", url=server.url("cam"), username="viewer", password="guess"
        )
        (good, _, _), (bad, _, _) = watch_all([right, wrong], 5)
    finally:
        server.stop()
    assert good.state == "online" and good.input_fps >= 9
    assert bad.state == "offline" and bad.error is not None
    assert "401" in bad.error or "Unauthorized" in bad.error or "authoriz" in bad.error.lower()
    assert "guess" not in bad.error


def test_file_read_as_fast_as_it_decodes_is_sampled_by_media_time(vtest_h264: Path) -> None:
    frames = Frames()
    camera = CameraConfig(
        id="import", site="lab", url=f"file://{vtest_h264}", realtime=False,
        detect=DetectConfig(fps=2),
    )  # fmt: skip
    runner = Camera(camera, IngestConfig(), PacketRing(120), frames)
    started = time.monotonic()
    runner.start()
    for reader in runner.readers:
        reader.join(timeout=60)
    took = time.monotonic() - started
    assert all(reader.finished for reader in runner.readers)
    assert took < 79.5 / 2  # far faster than the footage's own 79.5 s
    assert 155 <= len(frames.items) <= 161  # 2 a second of the footage's time
    times = [f.wall_time for f in frames.items]
    assert times[-1] - times[0] == pytest.approx(79.0, abs=0.6)
    assert runner.check().error == "end of file"
