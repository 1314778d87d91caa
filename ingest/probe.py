"""Probe a camera before it is saved: can we connect, what does it send, what does it see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import av

from ingest.config import CameraConfig
from ingest.picture import frame_jpeg

MAX_SNAPSHOT_WIDTH = 1280  # enough to draw zones on; a 4K JPEG would only be slower


class ProbeError(Exception):
    """The camera could not be reached or sent no picture in time (the message says which,
    never with the URL's credentials)."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    codec: str
    width: int
    height: int
    fps: float | None
    snapshot_jpeg: bytes  # the first picture, at most MAX_SNAPSHOT_WIDTH wide


def probe(camera: CameraConfig, timeout_s: float) -> ProbeResult:
    """Connect to the camera's main stream and decode its first picture within `timeout_s`.

    Example:
        >>> camera = CameraConfig(id="door", site="shop-7", url="rtsp://10.0.0.9/live")
        >>> probe(camera, timeout_s=5).codec  # doctest: +SKIP
        'h264'
    """
    deadline = time.monotonic() + timeout_s
    try:
        container = av.open(
            camera.open_url(camera.url),
            options=camera.demux_options(camera.url, probe_s=min(1.0, timeout_s / 2)),
            timeout=(timeout_s, timeout_s),
        )
    except av.error.FFmpegError as exc:
        raise ProbeError(f"cannot connect: {exc.strerror or type(exc).__name__}") from None
    with container:
        if not container.streams.video:
            raise ProbeError("the stream has no video")
        video = container.streams.video[0]
        video.codec_context.thread_count = 1
        rate: Fraction | None = video.average_rate or video.guessed_rate
        try:
            for packet in container.demux(video):
                if time.monotonic() > deadline:
                    break
                for frame in packet.decode():
                    return ProbeResult(
                        codec=video.codec_context.name,
                        width=frame.width,
                        height=frame.height,
                        fps=float(rate) if rate else None,
                        snapshot_jpeg=frame_jpeg(frame, MAX_SNAPSHOT_WIDTH),
                    )
        except av.error.FFmpegError as exc:
            raise ProbeError(
                f"the stream broke off: {exc.strerror or type(exc).__name__}"
            ) from None
    raise ProbeError(f"no picture within {timeout_s:g} s")
