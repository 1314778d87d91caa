"""The demo camera's footage: vtest.avi re-encoded once to an H.264 MP4 a camera would send."""

from __future__ import annotations

from pathlib import Path

import av

DEMO_GOP = 20  # frames: a keyframe every 2 s at vtest's 10 fps, like a typical camera


def encode_h264(source: Path, target: Path, gop: int = DEMO_GOP) -> Path:
    """Encode `source` to H.264 in MP4 (no B-frames, fixed GOP) unless `target` exists."""
    if target.exists():
        return target
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(source)) as src, av.open(str(partial), "w") as dst:
        video_in = src.streams.video[0]
        rate = video_in.average_rate or 10
        video_out = dst.add_stream(
            "libx264",
            rate=rate,
            options={"preset": "veryfast", "tune": "zerolatency", "bf": "0", "crf": "23"},
        )
        video_out.width = video_in.codec_context.width
        video_out.height = video_in.codec_context.height
        video_out.pix_fmt = "yuv420p"
        video_out.codec_context.gop_size = gop
        for frame in src.decode(video_in):
            frame.pts = None
            for packet in video_out.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in video_out.encode(None):
            dst.mux(packet)
    partial.rename(target)
    return target
