"""Footage for the demo camera and the tests: vtest.avi re-encoded as a camera would send it."""

from __future__ import annotations

from pathlib import Path

import av
import av.video.stream

DEMO_GOP = 20  # frames: a keyframe every 2 s at vtest's 10 fps, like a typical camera


def encode(
    source: Path,
    target: Path,
    codec: str = "libx264",
    size: tuple[int, int] | None = None,
    frames: int | None = None,
    gop: int = DEMO_GOP,
) -> Path:
    """Encode `source` (no B-frames, fixed GOP, optionally scaled or cut) unless `target`
    exists. `codec` is an FFmpeg encoder: libx264 or libx265."""
    if target.exists():
        return target
    partial = target.with_suffix(".partial" + target.suffix)
    with av.open(str(source)) as src, av.open(str(partial), "w") as dst:
        video_in = src.streams.video[0]
        width, height = size or (video_in.codec_context.width, video_in.codec_context.height)
        options = {"preset": "veryfast", "bf": "0", "crf": "23", "g": str(gop)}
        if codec == "libx265":
            options = {
                "preset": "ultrafast",
                "x265-params": f"bframes=0:keyint={gop}:log-level=error",
            }
        video_out = dst.add_stream(codec, rate=video_in.average_rate or 10, options=options)
        assert isinstance(video_out, av.video.stream.VideoStream)
        video_out.width, video_out.height = width, height
        video_out.pix_fmt = "yuv420p"
        video_out.codec_context.gop_size = gop
        for index, frame in enumerate(src.decode(video_in)):
            if frames is not None and index >= frames:
                break
            frame.pts = None
            picture = frame.reformat(width=width, height=height, format="yuv420p")
            for packet in video_out.encode(picture):
                dst.mux(packet)
        for packet in video_out.encode(None):
            dst.mux(packet)
    partial.rename(target)
    return target


def encode_h264(source: Path, target: Path, gop: int = DEMO_GOP) -> Path:
    """`source` as an H.264 MP4 such as a camera's main stream would carry."""
    return encode(source, target, gop=gop)
