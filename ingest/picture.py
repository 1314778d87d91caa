"""One decoded frame as a JPEG: what a probe answers and what the camera grid shows."""

from __future__ import annotations

from collections.abc import Callable

import av
import cv2
import numpy as np

from common.types import BGRImage

JPEG_QUALITY = 85


def frame_jpeg(
    frame: av.VideoFrame, max_width: int, mask: Callable[[BGRImage], BGRImage] | None = None
) -> bytes:
    """`frame` scaled down (in swscale) to at most `max_width` pixels wide, keeping its aspect
    and an even height, `mask`ed where given (faces blurred), as a JPEG.

    Example:
        >>> frame = av.VideoFrame.from_ndarray(np.zeros((576, 768, 3), np.uint8), "bgr24")
        >>> jpeg = frame_jpeg(frame, 480)
        >>> cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape
        (360, 480, 3)
    """
    width = min(max_width, frame.width)
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    image = frame.to_ndarray(width=width, height=height, format="bgr24", threads=1).astype(
        np.uint8, copy=False
    )
    if mask is not None:
        image = mask(image)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the picture does not encode as a JPEG")
    return bytes(jpeg.tobytes())
