"""Cheap motion on the luma plane at low resolution: where did the picture change?"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator

from common.config import StrictModel
from common.types import BGRImage, Box

Polygon = list[tuple[float, float]]
DILATE_KERNEL = np.ones((3, 3), np.uint8)


class MotionConfig(StrictModel):
    """The motion gate: detection runs only where (and when) something moved."""

    enabled: bool = True
    width: int = Field(320, ge=64, le=1280, description="motion is computed at this width")
    threshold: int = Field(25, ge=1, le=255, description="luma change that counts as motion")
    min_area: float = Field(
        0.0005, gt=0, lt=1, description="smallest moving region, as a share of the image"
    )
    learning_rate: float = Field(
        0.05, gt=0, le=1, description="how fast the background follows a changing scene"
    )
    masks: list[Polygon] = Field(
        default_factory=list, description="polygons (0..1) where motion is ignored (trees, clocks)"
    )

    @field_validator("masks")
    @classmethod
    def _normalized(cls, masks: list[Polygon]) -> list[Polygon]:
        for index, polygon in enumerate(masks):
            if len(polygon) < 3:
                raise ValueError(f"mask {index} needs at least 3 points")
            if any(not (0 <= x <= 1 and 0 <= y <= 1) for x, y in polygon):
                raise ValueError(f"mask {index} has a point outside 0..1")
        return masks


class MotionDetector:
    """Moving regions of a camera's frames, against a running-average background.

    Works on a blurred luma image `config.width` wide (a few hundred microseconds a frame);
    regions are normalized boxes around connected areas of change, masks excluded.

    Example:
        >>> import numpy as np
        >>> motion = MotionDetector(MotionConfig())
        >>> still = np.zeros((360, 640, 3), np.uint8)
        >>> motion.regions(still)
        []
        >>> moved = still.copy(); moved[100:200, 300:360] = 255
        >>> [tuple(round(v, 2) for v in b.to_list()) for b in motion.regions(moved)]
        [(0.46, 0.26, 0.57, 0.57)]
    """

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self._background: npt.NDArray[np.float32] | None = None
        self._mask: npt.NDArray[np.uint8] | None = None

    def _luma(self, image: BGRImage) -> npt.NDArray[np.uint8]:
        height, width = image.shape[:2]
        small_height = max(16, round(height * self.config.width / width))
        grey = cv2.cvtColor(
            cv2.resize(image, (self.config.width, small_height), interpolation=cv2.INTER_AREA),
            cv2.COLOR_BGR2GRAY,
        )
        return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.uint8, copy=False)

    def _ignore(self, shape: tuple[int, int]) -> npt.NDArray[np.uint8] | None:
        if not self.config.masks:
            return None
        if self._mask is None or self._mask.shape != shape:
            height, width = shape
            mask = np.full(shape, 255, np.uint8)
            for polygon in self.config.masks:
                points = np.array([(x * width, y * height) for x, y in polygon], np.int32)
                cv2.fillPoly(mask, [points], 0)
            self._mask = mask
        return self._mask

    def regions(self, image: BGRImage) -> list[Box]:
        """Boxes (normalized) of what changed since the background; the first frame has none."""
        luma = self._luma(image)
        if self._background is None or self._background.shape != luma.shape:
            self._background = luma.astype(np.float32)
            return []
        difference = cv2.absdiff(luma, cv2.convertScaleAbs(self._background))
        cv2.accumulateWeighted(luma, self._background, self.config.learning_rate)
        _, changed = cv2.threshold(difference, self.config.threshold, 255, cv2.THRESH_BINARY)
        ignore = self._ignore(changed.shape[:2])
        if ignore is not None:
            changed = cv2.bitwise_and(changed, ignore)
        changed = cv2.dilate(changed, DILATE_KERNEL, iterations=2)
        contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        height, width = changed.shape[:2]
        min_pixels = self.config.min_area * width * height
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h >= min_pixels:
                boxes.append(Box(x / width, y / height, (x + w) / width, (y + h) / height))
        return boxes
