"""Zone intrusion: an object of a watched class standing inside a polygon."""

from __future__ import annotations

import cv2
import numpy as np

from analytics.config import ZoneConfig
from common.types import Detection


class ZoneIntrusionRule:
    """Picks the detections whose bottom-centre (where they stand) lies inside the zone.

    Example:
        >>> from common.types import Box
        >>> zone = ZoneConfig(name="door", points=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)])
        >>> rule = ZoneIntrusionRule(zone)
        >>> inside = Detection(Box(0.1, 0.2, 0.2, 0.8), 0.9, "person")
        >>> outside = Detection(Box(0.1, 0.0, 0.2, 0.4), 0.9, "person")
        >>> rule.matches([inside, outside]) == [inside]
        True
    """

    def __init__(self, zone: ZoneConfig) -> None:
        self.zone = zone
        self._polygon = np.array(zone.points, dtype=np.float32).reshape(-1, 1, 2)
        self._labels = frozenset(zone.labels)

    def matches(self, detections: list[Detection]) -> list[Detection]:
        return [
            d
            for d in detections
            if d.label in self._labels
            and cv2.pointPolygonTest(self._polygon, d.box.bottom_centre, False) >= 0
        ]
