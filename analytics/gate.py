"""The detection gate: run the detector only when and where it can learn something new."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from analytics.detectors.base import Detector
from analytics.motion import MotionConfig, MotionDetector, merge_regions
from common.types import BGRImage, Box, Detection, Track

FULL_FRAME = Box(0.0, 0.0, 1.0, 1.0)


class GateConfig(MotionConfig):
    """Motion settings plus how the gate uses them."""

    crop_px: int = Field(
        300, ge=32, description="smallest crop handed to the detector (about its input size)"
    )
    full_frame_share: float = Field(
        0.5, gt=0, le=1, description="crops covering more of the image than this: whole frame"
    )
    tile_px: int | None = Field(
        None,
        ge=32,
        description="split crops (and the whole frame) into tiles at most this big: small "
        "objects reach the detector at their own scale, at the cost of more detector calls",
    )
    tracked_every: int = Field(
        1, ge=1, description="when all motion is on known tracks, detect every n-th frame"
    )
    recheck_s: float = Field(
        2.0, ge=0, description="motion where the detector just found nothing is not new"
    )
    idle_every: int = Field(
        25, ge=1, description="with no motion at all, still look every n-th frame (e.g. 5 s)"
    )


@dataclass(slots=True)
class GateStats:
    """Frames seen, frames the detector ran on, and the area it looked at (in whole frames)."""

    frames: int = 0
    detected: int = 0
    pixels: float = 0.0


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Where to look in this frame: no regions means the detector is skipped."""

    regions: tuple[Box, ...]
    reason: str


def _covered(region: Box, tracks: Sequence[Track], margin: float = 0.5) -> bool:
    """Most of `region` lies within a known track's box, grown by `margin` of its size."""
    for track in tracks:
        box = track.box
        dx, dy = (box.x2 - box.x1) * margin, (box.y2 - box.y1) * margin
        x1, y1, x2, y2 = box.x1 - dx, box.y1 - dy, box.x2 + dx, box.y2 + dy
        width = max(0.0, min(region.x2, x2) - max(region.x1, x1))
        height = max(0.0, min(region.y2, y2) - max(region.y1, y1))
        if region.area and width * height >= 0.6 * region.area:
            return True
    return False


def split(region: Box, max_width: float, max_height: float, overlap: float = 0.15) -> list[Box]:
    """`region` cut into a grid of equal tiles no bigger than the given size, each overlapping
    its neighbours by `overlap` of a tile, so an object on a seam is whole in one of them.

    Example:
        >>> [[round(v, 2) for v in b.to_list()] for b in split(Box(0.0, 0.0, 1.0, 0.5), 0.6, 0.6)]
        [[0.0, 0.0, 0.54, 0.5], [0.46, 0.0, 1.0, 0.5]]
    """

    def cuts(low: float, high: float, most: float) -> list[tuple[float, float]]:
        span = high - low
        count = max(1, math.ceil((span - most * overlap) / (most * (1 - overlap))))
        if count == 1:
            return [(low, high)]
        size = span / (count - (count - 1) * overlap)
        step = size * (1 - overlap)
        return [(low + k * step, low + k * step + size) for k in range(count)]

    return [
        Box(x1, y1, x2, y2)
        for y1, y2 in cuts(region.y1, region.y2, max_height)
        for x1, x2 in cuts(region.x1, region.x2, max_width)
    ]


def _inside_any(region: Box, boxes: Sequence[Box]) -> bool:
    return any(
        b.x1 <= region.x1 and b.y1 <= region.y1 and region.x2 <= b.x2 and region.y2 <= b.y2
        for b in boxes
    )


class DetectionGate:
    """Decides per frame whether, and on which crops, a camera's detector runs.

    New motion (not on a known track, nor where the detector found nothing in the last
    `recheck_s`) is detected at once, on crops around it and around the live tracks; motion
    that is known is detected every `tracked_every` frames (the tracker predicts in between);
    a still scene is looked at every `idle_every` frames, so a thing that arrived without
    being seen moving is still found.

    Example:
        >>> import numpy as np
        >>> gate = DetectionGate(GateConfig())
        >>> gate.decide(np.zeros((360, 640, 3), np.uint8), [], t=0.0).reason
        'first frame'
    """

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.motion = MotionDetector(config)
        self.stats = GateStats()
        self._since_detect = 0
        self._examined: list[tuple[float, Box]] = []  # crops the detector looked at, and when

    def decide(self, image: BGRImage, tracks: Sequence[Track], t: float) -> GateDecision:
        """Where to detect in the frame at time `t`, given the tracks expected there."""
        self.stats.frames += 1
        if not self.config.enabled:
            return self._detect((FULL_FRAME,), "gate off", t)
        moving = self.motion.regions(image)
        if self.stats.frames == 1:
            return self._detect((FULL_FRAME,), "first frame", t)
        self._since_detect += 1
        self._examined = [(at, b) for at, b in self._examined if t - at <= self.config.recheck_s]
        looked = [b for _, b in self._examined]
        new = [r for r in moving if not _covered(r, tracks) and not _inside_any(r, looked)]
        if new:
            reason = "new motion"
        elif (moving or tracks) and self._since_detect >= self.config.tracked_every:
            reason = "tracked motion"
        elif self._since_detect >= self.config.idle_every:
            return self._detect((FULL_FRAME,), "idle look", t)
        else:
            return GateDecision((), "skipped")
        height, width = image.shape[:2]
        crops = merge_regions(
            [*moving, *(t.box for t in tracks)],
            min(1.0, self.config.crop_px / width),
            min(1.0, self.config.crop_px / height),
        )
        if sum(c.area for c in crops) > self.config.full_frame_share:
            crops = [FULL_FRAME]
        if self.config.tile_px is not None:
            size = (self.config.tile_px / width, self.config.tile_px / height)
            crops = [tile for crop in crops for tile in split(crop, *size)]
        return self._detect(tuple(crops), reason, t)

    def _detect(self, regions: tuple[Box, ...], reason: str, t: float) -> GateDecision:
        self._since_detect = 0
        self._examined += [(t, region) for region in regions]
        self.stats.detected += 1
        self.stats.pixels += sum(r.area for r in regions)
        return GateDecision(regions, reason)


def detect_regions(detector: Detector, image: BGRImage, regions: Sequence[Box]) -> list[Detection]:
    """Detections in each crop of `image`, boxes mapped back to the whole image; where crops
    overlap, the same object found twice is kept once (the higher score)."""
    height, width = image.shape[:2]
    found: list[Detection] = []
    for region in regions:
        x1, y1 = round(region.x1 * width), round(region.y1 * height)
        x2, y2 = round(region.x2 * width), round(region.y2 * height)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        crop = np.ascontiguousarray(image[y1:y2, x1:x2])
        sx, sy = (x2 - x1) / width, (y2 - y1) / height
        ox, oy = x1 / width, y1 / height
        for d in detector.detect(crop):
            box = Box(
                ox + d.box.x1 * sx, oy + d.box.y1 * sy, ox + d.box.x2 * sx, oy + d.box.y2 * sy
            )
            found.append(Detection(box, d.score, d.label))
    if len(regions) < 2:
        return found
    return _dedupe(found)


def _dedupe(detections: list[Detection], iou: float = 0.5) -> list[Detection]:
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(k.label != d.label or k.box.iou(d.box) < iou for k in kept):
            kept.append(d)
    return kept
