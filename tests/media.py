"""Reading pictures back in tests."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from common.types import BGRImage


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
