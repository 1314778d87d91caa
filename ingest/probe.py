"""Probe a camera before it is saved: can we connect, what does it send, what does it see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import av
import httpx

from common.egress import Destination
from ingest.config import CameraConfig
from ingest.picture import frame_jpeg
from ingest.reach import open_checked

MAX_SNAPSHOT_WIDTH = 1280  # enough to draw zones on; a 4K JPEG would only be slower


class ProbeError(Exception):
    """The camera could not be read. The message is one of a few categories that say what an
    installer can act on and nothing of what else may be listening at the address (refused,
    silent, or something that is not a stream all read alike, after the same wait)."""


NO_STREAM = "no camera stream answered at this address"
BAD_CREDENTIALS = "the camera refused the user name or password"
NO_VIDEO = "the stream has no video"
BROKE_OFF = "the stream broke off"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    codec: str
    width: int
    height: int
    fps: float | None
    snapshot_jpeg: bytes  # the first picture, at most MAX_SNAPSHOT_WIDTH wide


def probe(camera: CameraConfig, timeout_s: float, destination: Destination) -> ProbeResult:
    """Connect to the camera's main stream and decode its first picture within `timeout_s`,
    connecting only where `destination` allows (EgressRefusedError if it does not).

    Example:
        >>> camera = CameraConfig(id="door", site="shop-7", url="rtsp://10.0.0.9/live")
        >>> probe(camera, timeout_s=5, destination=policy.destination([], False))  # doctest: +SKIP
        ProbeResult(codec='h264', ...)
    """
    deadline = time.monotonic() + timeout_s
    try:
        with open_checked(camera, camera.url, destination, timeout_s, min(1.0, timeout_s / 2)) as c:
            return _first_picture(c, deadline, timeout_s)
    except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError):
        raise ProbeError(BAD_CREDENTIALS) from None
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in (401, 403):
            raise ProbeError(BAD_CREDENTIALS) from None
        _wait_until(deadline)
        raise ProbeError(NO_STREAM) from None
    except (av.error.FFmpegError, httpx.HTTPError, OSError):
        _wait_until(deadline)  # a refusal is quick, a silent port slow: both answer alike
        raise ProbeError(NO_STREAM) from None


def _first_picture(
    container: av.container.InputContainer, deadline: float, timeout_s: float
) -> ProbeResult:
    if not container.streams.video:
        raise ProbeError(NO_VIDEO)
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
    except av.error.FFmpegError:
        raise ProbeError(BROKE_OFF) from None
    raise ProbeError(f"no picture within {timeout_s:g} s")


def _wait_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))
