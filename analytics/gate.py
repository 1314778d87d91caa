"""The detection gate: run the detector only when and where it can learn something new."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from analytics.detectors.base import Detector
from analytics.motion import MotionConfig, MotionDetector
from common.types import BGRImage, Box, Detection, Track

FULL_FRAME = Box(0.0, 0.0, 1.0, 1.0)
TRACK_MARGIN = 0.25  # a predicted box is grown by this share of its size: it may be off


class GateConfig(MotionConfig):
    """Motion settings plus how the gate uses them."""

    crop_px: int = Field(
        224,
        ge=32,
        description="size of the crops handed to the detector: the bundled 300 px SSDLite "
        "finds people from about 100 px tall, so 224 px crops bring the 60-80 px people of a "
        "640 px wide frame up to that; the frame's width looks at whole frames in one call, "
        "cheaper but blind to small objects",
    )
    tracked_every: int = Field(
        3,
        ge=1,
        description="motion on known tracks is detected every n-th frame; the tracker "
        "predicts in between (new motion is detected at once)",
    )
    recheck_s: float = Field(
        2.0, ge=0, description="motion where the detector just found nothing is not new"
    )
    whole_every: int = Field(
        25,
        ge=1,
        description="look at the whole frame every n-th frame (e.g. 5 s), moving or not: finds "
        "what arrived unseen or stood still after its track was lost",
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


def _grown(box: Box, margin: float) -> Box:
    dx, dy = (box.x2 - box.x1) * margin, (box.y2 - box.y1) * margin
    return Box(
        max(0.0, box.x1 - dx), max(0.0, box.y1 - dy), min(1.0, box.x2 + dx), min(1.0, box.y2 + dy)
    )


def _inside(box: Box, outer: Box) -> bool:
    return outer.x1 <= box.x1 and outer.y1 <= box.y1 and box.x2 <= outer.x2 and box.y2 <= outer.y2


def _covered(region: Box, boxes: Sequence[Box]) -> bool:
    """Most of `region` lies within one of `boxes` (known tracks' boxes, grown)."""
    return any(region.area and region.intersection(box) >= 0.6 * region.area for box in boxes)


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


def cover(boxes: Sequence[Box], width: float, height: float) -> list[Box]:
    """Windows of `width` x `height` (normalized) that together hold every box whole, few of
    them: taken left to right, each new window starts a little left of the first box it must
    hold (a quarter of the room to spare) and is centred on it vertically. A box bigger than
    a window gets a crop of its own (the detector scales it down).

    Example:
        >>> [[round(v, 2) for v in w.to_list()] for w in cover(
        ...     [Box(0.1, 0.4, 0.15, 0.5), Box(0.3, 0.45, 0.35, 0.55), Box(0.8, 0.1, 0.9, 0.2)],
        ...     0.4, 0.4)]
        [[0.01, 0.25, 0.41, 0.65], [0.6, 0.0, 1.0, 0.4]]
    """

    def span(low: float, high: float, size: float, lead: float) -> tuple[float, float]:
        if high - low >= size:
            return low, high
        start = min(max(0.0, low - lead), 1.0 - size)
        return max(0.0, start), min(1.0, start + size)

    windows: list[Box] = []
    for box in sorted(boxes, key=lambda b: (b.x1, b.y1)):
        if any(_inside(box, w) for w in windows):
            continue
        x1, x2 = span(box.x1, box.x2, width, (width - (box.x2 - box.x1)) / 4)
        y1, y2 = span(box.y1, box.y2, height, (height - (box.y2 - box.y1)) / 2)
        windows.append(Box(x1, y1, x2, y2))
    return windows


class DetectionGate:
    """Decides per frame whether, and on which crops, a camera's detector runs.

    Crops are windows of about the detector's input size (`crop_px`) around what moves and
    around the tracks, so small objects are seen at their own scale and the cost follows
    activity; when more windows than the tiles of the whole frame would be needed, the
    whole frame is tiled instead. New motion (not on a known track, nor where the detector
    found nothing in the last `recheck_s`) is looked at at once, in windows around it alone;
    everything that moves and every track is looked at every `tracked_every` frames (the
    tracker predicts in between), and an object seen once is looked at again in the next
    frame to confirm it; the whole frame is looked at every `whole_every` frames, so a thing
    that arrived unseen, or stood still after its track was lost, is still found.

    Example:
        >>> import numpy as np
        >>> gate = DetectionGate(GateConfig())
        >>> decision = gate.decide(np.zeros((360, 640, 3), np.uint8), [], t=0.0)
        >>> decision.reason, len(decision.regions)  # the whole frame, in 224 px tiles
        ('first frame', 8)
    """

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.motion = MotionDetector(config)
        self.stats = GateStats()
        self.last = GateDecision((), "no frame yet")  # the latest frame's decision
        self._since_refresh = 0
        self._since_whole = 0
        self._whole: dict[tuple[float, float], list[Box]] = {}  # whole-frame tiles, per size
        self._examined: list[tuple[float, Box]] = []  # crops the detector looked at, and when

    def decide(
        self, image: BGRImage, tracks: Sequence[Track], t: float, tentative: Sequence[Box] = ()
    ) -> GateDecision:
        """Where to detect in the frame at time `t`, given the tracks expected there and the
        boxes of objects seen once (looked at again at once, to confirm them)."""
        self.stats.frames += 1
        height, width = image.shape[:2]
        window = (min(1.0, self.config.crop_px / width), min(1.0, self.config.crop_px / height))
        whole = self._whole.get(window)
        if whole is None:
            whole = self._whole.setdefault(window, split(FULL_FRAME, *window, overlap=0.25))
        if not self.config.enabled:
            return self._detect(whole, "gate off", t, refresh=True)
        moving = self.motion.regions(image)
        if self.stats.frames == 1:
            return self._detect(whole, "first frame", t, refresh=True)
        self._since_refresh += 1
        self._since_whole += 1
        if self._since_whole >= self.config.whole_every:
            self._since_whole = 0
            return self._detect(whole, "whole look", t, refresh=True)
        self._examined = [(at, b) for at, b in self._examined if t - at <= self.config.recheck_s]
        if (moving or tracks) and self._since_refresh >= self.config.tracked_every:
            targets = [*moving, *(_grown(track.box, TRACK_MARGIN) for track in tracks)]
            reason, refresh = "tracked motion", True
        elif new := self._new_motion(moving, tracks):
            targets = [*new, *(_grown(box, TRACK_MARGIN) for box in tentative)]
            reason, refresh = "new motion", False
        elif tentative:
            targets = [_grown(box, TRACK_MARGIN) for box in tentative]
            reason, refresh = "new object", False
        else:
            self.last = GateDecision((), "skipped")
            return self.last
        crops = cover(targets, *window)
        return self._detect(crops if len(crops) <= len(whole) else whole, reason, t, refresh)

    def _new_motion(self, moving: Sequence[Box], tracks: Sequence[Track]) -> list[Box]:
        """The moving regions on no known track and not where the detector just looked."""
        known = [_grown(track.box, 0.5) for track in tracks]
        looked = [b for _, b in self._examined]
        return [
            r for r in moving if not _covered(r, known) and not any(_inside(r, b) for b in looked)
        ]

    def _detect(self, regions: Sequence[Box], reason: str, t: float, refresh: bool) -> GateDecision:
        if refresh:
            self._since_refresh = 0
        self._examined += [(t, region) for region in regions]
        self.stats.detected += 1
        self.stats.pixels += sum(r.area for r in regions)
        self.last = GateDecision(tuple(regions), reason)
        return self.last


def detect_regions(detector: Detector, image: BGRImage, regions: Sequence[Box]) -> list[Detection]:
    """Detections in each crop of `image`, boxes mapped back to the whole image.

    Where crops overlap, an object seen in two of them is kept once: the same box twice
    (IoU >= 0.5) keeps the higher score, and a box cut by a crop's inner edge gives way to
    the whole view of the object from the neighbouring crop (or is joined with the other
    cut half)."""
    height, width = image.shape[:2]
    found: list[tuple[Detection, bool]] = []
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
            found.append((Detection(box, d.score, d.label), _cut(d.box, region)))
    if len(regions) < 2:
        return [d for d, _ in found]
    return _dedupe(found)


def _cut(box: Box, region: Box, edge: float = 0.01) -> bool:
    """`box` (in the crop's coordinates) touches an edge of the crop inside the picture."""
    return (
        (box.x1 <= edge and region.x1 > 0)
        or (box.y1 <= edge and region.y1 > 0)
        or (box.x2 >= 1 - edge and region.x2 < 1)
        or (box.y2 >= 1 - edge and region.y2 < 1)
    )


def _dedupe(
    found: list[tuple[Detection, bool]], iou: float = 0.5, within: float = 0.6
) -> list[Detection]:
    kept: list[tuple[Detection, bool]] = []
    for d, cut in sorted(found, key=lambda item: item[0].score, reverse=True):
        for index, (k, k_cut) in enumerate(kept):
            if k.label != d.label:
                continue
            shared = k.box.intersection(d.box)
            smaller = min(k.box.area, d.box.area)
            if k.box.iou(d.box) < iou and not (
                (cut or k_cut) and smaller and shared >= within * smaller
            ):
                continue
            if k_cut and not cut:
                kept[index] = (Detection(d.box, k.score, k.label), False)
            elif k_cut and cut:
                kept[index] = (Detection(k.box.union(d.box), k.score, k.label), True)
            break
        else:
            kept.append((d, cut))
    return [d for d, _ in kept]
