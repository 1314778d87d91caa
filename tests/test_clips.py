"""Clips are remuxed from ring packets without re-encoding."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from ingest.ring import CodecTemplate, EncodedPacket, PacketRing, StreamInfo
from storage.clips import ClipError, remux_to_mp4


def ring_of(path: Path) -> PacketRing:
    ring = PacketRing(max_seconds=1000)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.time_base is not None
        stream = StreamInfo("h264", 768, 576, video.time_base, CodecTemplate(video), 1)
        for packet in container.demux(video):
            if packet.size and packet.pts is not None:
                wall = float(packet.pts * video.time_base) + 1000.0
                ring.append(
                    EncodedPacket(
                        bytes(packet), packet.pts, packet.dts, packet.is_keyframe, wall, stream
                    )
                )
    return ring


def test_remuxed_clip_is_the_same_h264_packets(vtest_h264: Path, tmp_path: Path) -> None:
    ring = ring_of(vtest_h264)
    window = ring.window(1010.5, 1020.0)
    assert window[0].is_keyframe
    target = tmp_path / "clip.mp4"
    remux_to_mp4(window, target)
    with av.open(str(target)) as clip:
        video = clip.streams.video[0]
        assert video.codec_context.name == "h264"
        copied = [bytes(p) for p in clip.demux(video) if p.size]
        duration = float(clip.duration or 0) / av.time_base
    assert copied == [p.data for p in window]  # byte for byte: no re-encode
    assert duration == pytest.approx(window[-1].wall_time - window[0].wall_time + 0.1, abs=0.05)
    with av.open(str(target)) as clip:
        assert sum(1 for _ in clip.decode(video=0)) == len(window)


def test_clip_must_start_at_a_keyframe(vtest_h264: Path, tmp_path: Path) -> None:
    ring = ring_of(vtest_h264)
    window = ring.window(1010.0, 1012.0)
    with pytest.raises(ClipError):
        remux_to_mp4(window[1:], tmp_path / "clip.mp4")
    with pytest.raises(ClipError):
        remux_to_mp4([], tmp_path / "clip.mp4")
