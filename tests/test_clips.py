"""Clips are remuxed from ring packets without re-encoding."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from ingest.ring import CodecTemplate, EncodedPacket, PacketRing, StreamInfo
from storage.media.clips import ClipError, picture_jpeg, remux_to_mp4
from tests.media import camera_packets


def ring_of(path: Path) -> PacketRing:
    ring = PacketRing(max_seconds=1000)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.time_base is not None
        stream = StreamInfo(
            codec="h264",
            width=768,
            height=576,
            time_base=video.time_base,
            template=CodecTemplate(video),
            connection=1,
        )
        for packet in container.demux(video):
            if packet.size and packet.pts is not None:
                wall = float(packet.pts * video.time_base) + 1000.0
                ring.append(
                    EncodedPacket(
                        data=bytes(packet),
                        pts=packet.pts,
                        dts=packet.dts,
                        is_keyframe=packet.is_keyframe,
                        wall_time=wall,
                        stream=stream,
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


def test_a_gops_keyframe_becomes_a_small_picture_with_faces_maskable(vtest_h264: Path) -> None:
    ring = PacketRing(60)
    for packet in camera_packets(vtest_h264):
        ring.append(packet)
    newest = ring.gops_after(0.0, include_open=True)[-1]
    jpeg = picture_jpeg(newest, 480, None)
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape == (360, 480, 3)  # 768x576 scaled down
    assert picture.std() > 20  # a picture, not a grey field
    masked = picture_jpeg(newest, 480, lambda image: np.zeros_like(image))
    blank = cv2.imdecode(np.frombuffer(masked, np.uint8), cv2.IMREAD_COLOR)
    assert blank is not None and blank.max() < 10  # the mask is what is stored
