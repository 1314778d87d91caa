"""GB/T 28181 live video: a worker's reader asks for a channel through the index, the signalling
service INVITEs the simulated device, whose PS (muxed by GStreamer's `mpegpsmux`) comes as RTP
over UDP, TCP passive or TCP active into the same packet ring as an RTSP camera's; BYE on
release, a device's BYE re-INVITEd, stray packets dropped and counted."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.config import CameraConfig, IngestConfig
from ingest.ring import PacketRing
from ingest.stream import StreamReader
from storage.database.devices import channel_url
from storage.database.media_sessions import GbMediaRow, GbMediaSessions, IndexMediaBroker
from tests.gb_device import Channel, GbDevice, mux_ps
from tests.test_gb28181_sip import DEFAULT_PASSWORD, Running, running, wait_until

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
NVR, CHANNEL = "34020000001180000001", "34020000001320000001"
SETTINGS = IngestConfig(watchdog_s=2, reconnect_min_s=0.3, reconnect_max_s=1, open_timeout_s=5)
__all__ = ["running"]  # the signalling service fixture, shared with the SIP tests


@pytest.fixture(scope="module")
def vtest_ps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mux_ps(SAMPLES / "vtest.mp4", tmp_path_factory.mktemp("ps") / "vtest.ps")


@pytest.fixture
def nvr(running: Running, vtest_ps: Path) -> Iterator[GbDevice]:
    device = GbDevice(NVR, DEFAULT_PASSWORD, ("127.0.0.1", running.config.port),
                      [Channel(CHANNEL, "大门", NVR)], video=vtest_ps)  # fmt: skip
    try:
        assert device.register() == 200
        device.keep_alive_every(0.3)
        running.devices.approve(NVR, "garden", "NVR")
        yield device
    finally:
        device.close()


def reader_of(running: Running, transport: str) -> tuple[StreamReader, PacketRing]:
    camera = CameraConfig(id="gate", site="garden", url=channel_url(NVR, CHANNEL),
                          transport=transport)  # fmt: skip
    sessions = GbMediaSessions(running.devices.database)
    ring = PacketRing(30)
    return StreamReader(
        camera, camera.url, SETTINGS, ring, media=IndexMediaBroker(sessions, "w1")
    ), ring


def session_row(running: Running) -> GbMediaRow | None:
    with running.devices.database.sessions() as session:
        return session.get(GbMediaRow, "gate")


def requests(device: GbDevice, method: str) -> list[str]:
    return [text for text in device.received if text.startswith(f"{method} ")]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tcp-active"])
def test_a_channel_streams_into_the_ring_and_is_released_with_a_bye(
    running: Running, nvr: GbDevice, transport: str
) -> None:
    reader, ring = reader_of(running, transport)
    reader.start()
    try:
        wait_until(lambda: ring.seconds >= 2.0, "two seconds of video in the ring", 20)
        stats = reader.stats()
        assert stats.state == "streaming" and stats.error is None
        gops = ring.gops_after(0.0)
        first = gops[0][0]
        assert first.is_keyframe and first.stream.codec == "h264"
        assert (first.stream.width, first.stream.height) == (768, 576)
        assert stats.media_lost == 0 and stats.media_dropped == 0
        invite = requests(nvr, "INVITE")[0]
        assert invite.startswith(f"INVITE sip:{CHANNEL}@127.0.0.1:{nvr.port} SIP/2.0")
        assert "s=Play" in invite and "a=rtpmap:96 PS/90000" in invite
        ssrc = invite.split("y=")[1].split()[0]
        assert len(ssrc) == 10 and ssrc.startswith("0" + running.config.domain[3:8])
        assert f"Subject: {CHANNEL}:{ssrc},{running.config.id}:0" in invite
        media_line = {"udp": "RTP/AVP 96", "tcp": "TCP/RTP/AVP 96", "tcp-active": "TCP/RTP/AVP 96"}
        assert media_line[transport] in invite
        setup = {"udp": None, "tcp": "a=setup:passive", "tcp-active": "a=setup:active"}[transport]
        assert (setup in invite) if setup else ("a=setup" not in invite)
        assert len(requests(nvr, "ACK")) == 1
    finally:
        reader.stop()
        reader.join()
    wait_until(lambda: requests(nvr, "BYE"), "a BYE once the reader stops")
    wait_until(lambda: session_row(running) is None, "the session forgotten")
    assert not nvr.streams


def test_a_device_that_hangs_up_is_invited_again(running: Running, nvr: GbDevice) -> None:
    reader, ring = reader_of(running, "udp")
    reader.start()
    try:
        wait_until(lambda: ring.seconds >= 1.0, "video in the ring", 20)
        nvr.hang_up()  # its BYE: the session ends, the stream stalls, the reader asks again
        wait_until(lambda: len(requests(nvr, "INVITE")) >= 2, "a second INVITE", 20)
        before = ring.nbytes
        wait_until(lambda: ring.nbytes > before and reader.stats().state == "streaming",
                   "streaming again", 20)  # fmt: skip
        assert reader.stats().reconnects >= 1
    finally:
        reader.stop()
        reader.join()


def test_packets_from_another_source_or_ssrc_are_dropped_and_counted(
    running: Running, nvr: GbDevice
) -> None:
    reader, ring = reader_of(running, "udp")
    reader.start()
    try:
        wait_until(lambda: ring.seconds >= 1.0, "video in the ring", 20)
        row = session_row(running)
        assert row is not None and row.state == "playing"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray:
            for sequence in range(20):  # nobody asked for these: another SSRC
                header = struct.pack("!BBHII", 0x80, 96, sequence, 0, 12345)
                stray.sendto(
                    header + b"\x00\x00\x01\xba" + bytes(100), ("127.0.0.1", row.offer_port)
                )
            stray.sendto(b"junk", ("127.0.0.1", row.offer_port))
        wait_until(lambda: reader.stats().media_dropped >= 21, "the stray packets counted")
        time.sleep(1.0)
        stats = reader.stats()
        assert stats.state == "streaming" and stats.decode_errors == 0
    finally:
        reader.stop()
        reader.join()


def test_a_channel_of_an_offline_device_says_so(running: Running, nvr: GbDevice) -> None:
    nvr.close()  # silent: its keepalives stop
    wait_until(lambda: not getattr(running.devices.get(NVR), "online", True), "offline", 15)
    reader, _ = reader_of(running, "udp")
    reader.start()
    try:
        wait_until(lambda: reader.stats().state == "offline", "the reader offline")
        assert "the device is offline (keepalives missed)" in (reader.stats().error or "")
    finally:
        reader.stop()
        reader.join()
