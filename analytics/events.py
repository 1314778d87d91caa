"""The event lifecycle: start on the first match, keep the best snapshot, end when gone."""

from __future__ import annotations

import cv2

from analytics.config import EventTimingConfig
from common.types import Detection, Event, EventSink, Frame

BOX_COLOUR = (0, 0, 255)
BOX_MARGIN_PX = 3  # outline just outside the object, so the evidence itself stays unpainted
JPEG_QUALITY = 85


def render_snapshot(frame: Frame, detections: list[Detection]) -> bytes:
    """The frame as JPEG with the matching detections outlined."""
    image = frame.image.copy()
    height, width = frame.shape
    for d in detections:
        top_left = (int(d.box.x1 * width) - BOX_MARGIN_PX, int(d.box.y1 * height) - BOX_MARGIN_PX)
        bottom_right = (
            int(d.box.x2 * width) + BOX_MARGIN_PX,
            int(d.box.y2 * height) + BOX_MARGIN_PX,
        )
        cv2.rectangle(image, top_left, bottom_right, BOX_COLOUR, 2)
        label = f"{d.label} {d.score:.2f}"
        cv2.putText(
            image,
            label,
            (top_left[0], max(12, top_left[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            BOX_COLOUR,
            1,
            cv2.LINE_AA,
        )
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return encoded.tobytes()


class EventLifecycle:
    """One camera's events of one rule and zone: at most one open at a time.

    `observe` is called with each analysed frame and the detections that matched the rule;
    `tick` ends the open event once nothing matched for `end_after_s`. An event that reaches
    `max_duration_s` ends and, if the matches go on, a new one continues it.

    Example:
        >>> import numpy as np
        >>> from common.types import Box
        >>> class Printer:
        ...     def event_started(self, e): print("start", e.started_at)
        ...     def event_ended(self, e): print("end", e.ended_at)
        >>> life = EventLifecycle("gate", "hq", "zone_intrusion", "door", "high",
        ...                       EventTimingConfig(end_after_s=2), Printer())
        >>> frame = Frame("gate", np.zeros((4, 4, 3), np.uint8), wall_time=10.0)
        >>> life.observe(frame, [Detection(Box(0, 0, 1, 1), 0.9, "person")])
        start 10.0
        >>> life.tick(now=11.0); life.tick(now=12.5)
        end 10.0
    """

    def __init__(
        self,
        camera_id: str,
        site: str,
        event_type: str,
        zone: str,
        severity: str,
        timing: EventTimingConfig,
        sink: EventSink,
    ) -> None:
        self.camera_id = camera_id
        self.site = site
        self.event_type = event_type
        self.zone = zone
        self.severity = severity
        self.timing = timing
        self.sink = sink
        self.current: Event | None = None

    def observe(self, frame: Frame, matches: list[Detection]) -> None:
        if not matches:
            return
        event = self.current
        if event is not None and frame.wall_time - event.started_at >= self.timing.max_duration_s:
            self._end()
            event = None
        best = max(matches, key=lambda d: d.score * d.box.area)
        if event is None:
            event = Event(
                camera_id=self.camera_id,
                site=self.site,
                type=self.event_type,
                label=best.label,
                zone=self.zone,
                severity=self.severity,
                started_at=frame.wall_time,
                last_seen_at=frame.wall_time,
            )
            self._keep_best(event, frame, matches, best)
            self.current = event
            self.sink.event_started(event)
            return
        event.last_seen_at = frame.wall_time
        if best.score * best.box.area > event.best_score * (
            event.best_box.area if event.best_box else 0
        ):
            self._keep_best(event, frame, matches, best)

    def tick(self, now: float) -> None:
        if self.current is not None and now - self.current.last_seen_at >= self.timing.end_after_s:
            self._end()

    def close(self) -> None:
        """End the open event, if any (shutdown)."""
        if self.current is not None:
            self._end()

    def _end(self) -> None:
        assert self.current is not None
        self.current.ended_at = self.current.last_seen_at
        ended, self.current = self.current, None
        self.sink.event_ended(ended)

    @staticmethod
    def _keep_best(event: Event, frame: Frame, matches: list[Detection], best: Detection) -> None:
        event.best_score = best.score
        event.best_box = best.box
        event.label = best.label
        event.snapshot = render_snapshot(frame, matches)
        event.snapshot_at = frame.wall_time
