"""Reading pictures back in tests."""

from __future__ import annotations

import random
from pathlib import Path

import av
import cv2
import numpy as np

from common.types import BGRImage
from ingest.ring import CodecTemplate, EncodedPacket, StreamInfo
from tests.clips import START


def decode_jpeg(data: bytes) -> BGRImage:
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None, "not a decodable JPEG"
    return picture.astype(np.uint8, copy=False)


def frame_at(path: Path, number: int) -> BGRImage:
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == number:
                return frame.to_ndarray(format="bgr24").astype(np.uint8, copy=False)
    raise AssertionError(f"{path} has fewer than {number + 1} frames")


def corrupt_copy(source: Path, target: Path, every: int = 5, seed: int = 1) -> Path:
    """`source` remuxed with random bytes spliced into every `every`-th video packet (not
    keyframes, so the stream stays joinable): damage a decoder must survive."""
    rng = random.Random(seed)
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        video_in = src.streams.video[0]
        video_out = dst.add_stream_from_template(video_in)
        for index, packet in enumerate(src.demux(video_in)):
            if packet.size == 0:
                continue
            if index % every == every - 1 and not packet.is_keyframe:
                data = bytearray(bytes(packet))
                cut = rng.randrange(4, len(data))
                data[cut:cut] = rng.randbytes(rng.randrange(16, 256))
                damaged = av.Packet(bytes(data))
                damaged.pts, damaged.dts = packet.pts, packet.dts
                damaged.time_base = packet.time_base
                damaged.stream = video_out
                dst.mux(damaged)
            else:
                packet.stream = video_out
                dst.mux(packet)
    return target


def camera_packets(path: Path, start: float = START) -> list[EncodedPacket]:
    """The packets of `path` as a camera's stream worker puts them in its ring, the first
    arriving at wall time `start`."""
    packets = []
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.time_base is not None
        context = video.codec_context
        info = StreamInfo(
            codec=context.name,
            width=context.width,
            height=context.height,
            time_base=video.time_base,
            template=CodecTemplate(video),
            connection=1,
        )
        for packet in container.demux(video):
            if packet.size and packet.pts is not None:
                wall = start + float(packet.pts * video.time_base)
                packets.append(
                    EncodedPacket(
                        data=bytes(packet),
                        pts=packet.pts,
                        dts=packet.dts,
                        is_keyframe=packet.is_keyframe,
                        wall_time=wall,
                        stream=info,
                    )
                )
    return packets
