"""Abandoned and removed objects: a part of the scene that changed, then stayed changed.

No detector class is needed: a background learned only where the scene looks as usual is
compared with each frame; a region that differs from it and has stopped changing is a
static change. More edges than the background had there: something was left; fewer: something
was taken away. A person standing by a left object is its owner, so it is not abandoned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import Field

from analytics.rules import Finding, Label, Polygon, ZoneRule, ZoneRuleConfig
from common.types import BGRImage, Box, Track

Grey = npt.NDArray[np.float32]
ANALYSIS_WIDTH = 160


class StaticObjectConfig(ZoneRuleConfig):
    """An object left (`abandoned_object`) or taken away (`removed_object`) in the zone,
    reported during the `active` periods (the scene is learned at all times)."""

    type: Literal["abandoned_object", "removed_object"]
    min_static_s: float = Field(30.0, gt=0, description="unchanged this long: it is a finding")
    min_area: float = Field(0.001, gt=0, lt=1, description="smallest object, share of the image")
    threshold: int = Field(30, ge=1, le=255, description="luma difference from the background")
    owners: list[Label] = Field(
        default_factory=lambda: ["person"], description="tracks near a left object: its owner"
    )
    absorb_after_s: float = Field(
        900.0, gt=0, description="a change this old becomes part of the background"
    )
    severity: Literal["low", "medium", "high"] = "medium"


class AbandonedObjectConfig(StaticObjectConfig):
    """An object left in the zone, with no owner near it."""

    type: Literal["abandoned_object"] = "abandoned_object"


class RemovedObjectConfig(StaticObjectConfig):
    """An object taken away from the zone."""

    type: Literal["removed_object"] = "removed_object"


class StaticChange:
    """Where a camera's scene differs from its background and has been still for a while.

    Example:
        >>> import numpy as np
        >>> change = StaticChange(threshold=30)
        >>> empty = np.full((240, 320, 3), 90, np.uint8)
        >>> left = empty.copy(); left[150:200, 100:140] = 20
        >>> change.update(empty, 0.0); [change.update(left, t) for t in (1.0, 2.0)][-1]
        >>> [(round(b.x1, 2), round(b.y1, 2), round(age, 1)) for b, age in change.regions()]
        [(0.31, 0.62, 1.0)]
    """

    LEARNING_RATE = 0.02

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.background: Grey | None = None
        # The latest frame, shrunk once: its regions are judged on it, the next frame is
        # compared with it.
        self._latest: Grey | None = None
        self._age: Grey | None = None
        self._last_t = 0.0

    def grey(self, image: BGRImage) -> Grey:
        height, width = image.shape[:2]
        small = cv2.resize(
            image,
            (ANALYSIS_WIDTH, max(8, round(height * ANALYSIS_WIDTH / width))),
            interpolation=cv2.INTER_AREA,
        )
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)

    def update(self, image: BGRImage, t: float) -> None:
        grey = self.grey(image)
        if self.background is None or self.background.shape != grey.shape:
            self.background, self._latest = grey.copy(), grey
            self._age = np.zeros_like(grey)
            self._last_t = t
            return
        assert self._latest is not None and self._age is not None
        dt = max(0.0, t - self._last_t)
        self._last_t = t
        differs = np.abs(grey - self.background) > self.threshold
        still = np.abs(grey - self._latest) <= self.threshold / 2
        self._age = np.where(differs & still, self._age + dt, 0.0).astype(np.float32)
        usual = ~differs  # learn only where the scene looks as it did
        self.background[usual] += self.LEARNING_RATE * (grey[usual] - self.background[usual])
        self._latest = grey

    def regions(self, min_age: float = 0.0, min_area: float = 0.0) -> list[tuple[Box, float]]:
        """Boxes (normalized) of static changes at least `min_age` old, with their age."""
        if self._age is None:
            return []
        mask = (self._age >= max(min_age, 1e-6)).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        height, width = mask.shape
        found = []
        for index in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[index])
            if area < min_area * width * height:
                continue
            age = float(self._age[labels == index].min())
            found.append((Box(x / width, y / height, (x + w) / width, (y + h) / height), age))
        return found

    def edges_now_and_before(self, box: Box) -> tuple[float, float]:
        """Mean edge strength inside `box` in the latest frame and in the background."""
        assert self.background is not None and self._latest is not None
        grey = self._latest
        height, width = grey.shape
        x1, y1 = int(box.x1 * width), int(box.y1 * height)
        x2, y2 = max(x1 + 1, int(box.x2 * width)), max(y1 + 1, int(box.y2 * height))

        def edges(picture: Grey) -> float:
            gx = cv2.Sobel(picture, cv2.CV_32F, 1, 0)
            gy = cv2.Sobel(picture, cv2.CV_32F, 0, 1)
            return float(np.hypot(gx, gy)[y1:y2, x1:x2].mean())

        return edges(grey), edges(self.background)

    def absorb(self, box: Box) -> None:
        """Take the latest frame's content inside `box` into the background: the new normal."""
        assert self.background is not None and self._latest is not None and self._age is not None
        grey = self._latest
        height, width = grey.shape
        x1, y1, x2, y2 = (
            int(box.x1 * width),
            int(box.y1 * height),
            int(box.x2 * width) + 1,
            int(box.y2 * height) + 1,
        )
        self.background[y1:y2, x1:x2] = grey[y1:y2, x1:x2]
        self._age[y1:y2, x1:x2] = 0.0


class StaticObjectRule(ZoneRule, ABC):
    """Objects left or taken away in a zone, from the camera's static changes."""

    def __init__(self, place: str, polygon: Polygon, config: StaticObjectConfig) -> None:
        super().__init__(place, polygon, config)
        self.config = config
        self.change = StaticChange(config.threshold)

    def see(self, image: BGRImage, t: float) -> None:
        self.change.update(image, t)

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        config = self.config
        # Off the schedule the background is still learned and old changes still absorbed:
        # the scene model does not depend on the schedule, only what is reported does.
        watching = self.schedule.watching(t)
        found = []
        for box, age in self.change.regions(config.min_static_s, config.min_area):
            centre = ((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2)
            if not self.polygon.contains(centre):
                continue
            if age >= config.absorb_after_s:
                self.change.absorb(box)
                continue
            if not watching:
                continue
            now, before = self.change.edges_now_and_before(box)
            if self.matches(now, before, box, tracks):
                # The same object keeps its key while its box wobbles: a coarse grid cell.
                key = f"static:{int(box.x1 * 20)}:{int(box.y1 * 20)}"
                found.append(
                    Finding(key=key, label="object", score=1.0, boxes=(box,), detail=f"{age:.0f}s")
                )
        return found

    @abstractmethod
    def matches(
        self, edges_now: float, edges_before: float, box: Box, tracks: Sequence[Track]
    ) -> bool:
        """Whether a static change with these edge strengths is this rule's kind of object."""


class AbandonedObjectRule(StaticObjectRule):
    """Something new that stays, with no owner (a person) near it."""

    config_model = AbandonedObjectConfig
    event_type = "abandoned_object"
    gbt_alarm = (5, 3)

    def matches(
        self, edges_now: float, edges_before: float, box: Box, tracks: Sequence[Track]
    ) -> bool:
        return edges_now > 1.2 * edges_before and not _owner_near(box, tracks, self.config)


class RemovedObjectRule(StaticObjectRule):
    """Something that was part of the scene and is gone."""

    config_model = RemovedObjectConfig
    event_type = "removed_object"
    gbt_alarm = (5, 4)

    def matches(
        self, edges_now: float, edges_before: float, box: Box, tracks: Sequence[Track]
    ) -> bool:
        return edges_now < 0.8 * edges_before


def _owner_near(box: Box, tracks: Sequence[Track], config: StaticObjectConfig) -> bool:
    width, height = box.x2 - box.x1, box.y2 - box.y1
    x1, y1 = box.x1 - 2 * width, box.y1 - 2 * height
    x2, y2 = box.x2 + 2 * width, box.y2 + 2 * height
    return any(
        t.label in config.owners
        and t.box.x1 < x2
        and x1 < t.box.x2
        and t.box.y1 < y2
        and y1 < t.box.y2
        for t in tracks
    )
