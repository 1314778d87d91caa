"""The stream worker on RTMP and HLS from a real nginx with the rtmp module, fed by ffmpeg."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.types import Frame
from ingest.camera import Camera
from ingest.config import CameraConfig, DetectConfig, IngestConfig
from ingest.ring import EncodedPacket, PacketRing
from tests.nginx_rtmp import NginxRtmp
from tests.test_egress import LOCAL_PEERS_ONLY, Listener, probed

pytestmark = pytest.mark.integration

WATCH_S = 8.0
FOOTAGE_FPS = 10.0  # vtest.avi
FOOTAGE_GOP = 20  # frames between keyframes in the vtest_h264 fixture
WIDTH, HEIGHT = 768, 576


@pytest.fixture(scope="module")
def nginx(vtest_h264: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxRtmp]:
    server = NginxRtmp(tmp_path_factory.mktemp("nginx"))
    try:
        server.start()
        server.publish("cam", vtest_h264)
        server.wait_hls("cam", timeout=30)
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Watched:
    """What the ingest worker made of a stream: how soon it came up, then `seconds` of it."""

    state: str
    online_after_s: float  # from start() until the worker reported the camera up
    input_fps: float  # as the worker reports it: packets over its last few seconds
    decoded_frames: int  # decoded during the `seconds` after it came up
    reconnects: int
    error: str | None
    packets: list[EncodedPacket]  # everything the packet ring holds
    frames: list[Frame]  # handed on for analytics


def watch_camera(url: str, seconds: float = WATCH_S, connect_timeout: float = 30.0) -> Watched:
    """Run the project's ingest worker on `url` until it is up, then for `seconds` more.

    The only user of the ingest API in this file: when that API changes, only this changes.
    """
    config = CameraConfig(
        id="cam", site="lab", url=url, detect=DetectConfig(width=None, height=None, fps=5)
    )
    ring = PacketRing(max_seconds=600)
    frames: list[Frame] = []
    lock = threading.Lock()

    def on_frame(frame: Frame) -> None:
        with lock:
            frames.append(frame)

    camera = Camera(config, IngestConfig(), ring, on_frame)
    started = time.monotonic()
    camera.start()
    try:
        health = camera.check()
        while health.state not in ("online", "degraded"):
            if time.monotonic() - started > connect_timeout:
                break
            time.sleep(0.1)
            health = camera.check()
        online_after = time.monotonic() - started
        decoded_before = health.decoded_frames[-1]
        if health.state in ("online", "degraded"):
            time.sleep(seconds)
            health = camera.check()
    finally:
        camera.stop()
        camera.join()
    with lock:
        handed = list(frames)
    return Watched(
        state=health.state,
        online_after_s=round(online_after, 2),
        input_fps=health.input_fps,
        decoded_frames=health.decoded_frames[-1] - decoded_before,
        reconnects=health.reconnects,
        error=health.error,
        packets=ring.window(0.0, float("inf")),
        frames=handed,
    )


def assert_whole_gops_of_the_footage(packets: list[EncodedPacket]) -> None:
    assert packets, "the packet ring is empty"
    assert packets[0].is_keyframe
    info = packets[0].stream
    assert (info.codec, info.width, info.height) == ("h264", WIDTH, HEIGHT)
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
    # copied through nginx untouched (-c copy): the footage's own GOP, a keyframe every 20
    assert all(b - a <= FOOTAGE_GOP for a, b in itertools.pairwise(keyframes))


def test_rtmp_stream_is_read_live_at_the_camera_rate(nginx: NginxRtmp) -> None:
    seen = watch_camera(nginx.rtmp_url("cam"))
    # FFmpeg's RTMP client announces audio+video in the FLV header it makes up, so the probe
    # waits its full analyzeduration (5 s) for an audio stream that never comes.
    assert seen.state == "online", seen
    assert seen.input_fps >= 8, seen
    assert seen.decoded_frames >= 0.8 * FOOTAGE_FPS * WATCH_S, seen
    assert seen.reconnects == 0, seen
    assert_whole_gops_of_the_footage(seen.packets)
    assert seen.frames and seen.frames[0].image.shape == (HEIGHT, WIDTH, 3)


def test_hls_stream_is_read_in_segment_bursts(nginx: NginxRtmp) -> None:
    seen = watch_camera(nginx.hls_url("cam"))
    assert seen.state in ("online", "degraded"), seen  # segments come in 2 s bursts
    # Each segment (one 2 s GOP) arrives whole: count frames over the run, not a rate.
    assert seen.decoded_frames >= 0.5 * FOOTAGE_FPS * WATCH_S, seen
    assert seen.reconnects == 0, seen
    assert_whole_gops_of_the_footage(seen.packets)
    assert seen.frames and seen.frames[0].image.shape == (HEIGHT, WIDTH, 3)


def test_http_flv_is_read(nginx: NginxRtmp, vtest_h264: Path) -> None:
    flv = nginx.files_dir / "cam.flv"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(vtest_h264), "-c", "copy", str(flv)],
        check=True,
    )
    seen = watch_camera(nginx.file_url("cam.flv"), seconds=6.0)  # a loaded machine reads slower
    # a finished file served over HTTP: read at network speed, then reopened
    assert_whole_gops_of_the_footage(seen.packets)
    assert len(seen.packets) >= 795
    assert seen.frames and seen.frames[0].image.shape == (HEIGHT, WIDTH, 3)


def test_rtmp_hls_and_http_flv_are_probed_through_the_egress_policy(
    nginx: NginxRtmp, vtest_h264: Path
) -> None:
    """The probe for a key: RTMP by the relay, HLS and HTTP-FLV fetched by httpx for FFmpeg,
    and a playlist's segment elsewhere never fetched."""
    flv = nginx.files_dir / "probe.flv"
    command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(vtest_h264), "-t", "4"]
    subprocess.run([*command, "-c", "copy", str(flv)], check=True)
    assert probed(nginx.rtmp_url("cam"), LOCAL_PEERS_ONLY, 10) == "h264"
    assert probed(nginx.hls_url("cam"), LOCAL_PEERS_ONLY, 10) == "h264"
    assert probed(nginx.file_url("probe.flv"), LOCAL_PEERS_ONLY, 10) == "h264"
    inside = Listener("127.0.0.2")
    try:
        playlist = nginx.files_dir / "elsewhere.m3u8"
        segment = f"http://127.0.0.2:{inside.port}/segment.ts"
        playlist.write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n"
        )
        assert probed(nginx.file_url("elsewhere.m3u8"), LOCAL_PEERS_ONLY) == "a loopback address"
        assert inside.connections == 0
    finally:
        inside.close()
