"""The event lifecycle: a finding that appears starts an event, which keeps its best snapshot
and ends once the finding has been gone for a while."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2

from analytics.config import EventTimingConfig
from analytics.rules import Finding
from common.types import Box, Event, EventSink, Frame, Mask

BOX_COLOUR = (0, 0, 255)
BOX_MARGIN_PX = 3  # outline just outside the object, so the evidence itself stays unpainted
JPEG_QUALITY = 85


def render_snapshot(
    frame: Frame, boxes: Sequence[Box], caption: str, mask: Mask | None = None
) -> bytes:
    """The frame as JPEG with the evidence outlined and captioned, `mask` applied first."""
    image = mask(frame.image) if mask is not None else frame.image.copy()
    height, width = frame.shape
    for box in boxes:
        top_left = (int(box.x1 * width) - BOX_MARGIN_PX, int(box.y1 * height) - BOX_MARGIN_PX)
        bottom_right = (
            int(box.x2 * width) + BOX_MARGIN_PX,
            int(box.y2 * height) + BOX_MARGIN_PX,
        )
        cv2.rectangle(image, top_left, bottom_right, BOX_COLOUR, 2)
        label = caption
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


@dataclass(frozen=True, slots=True)
class EventKind:
    """What a rule's events are: type, place (zone, line or check), severity, GB/T alarm."""

    type: str
    place: str
    severity: str
    alarm: tuple[int, int] | None = None


class EventLifecycle:
    """One camera's events of one rule: one open event per finding key.

    `observe` is called with each analysed frame and the rule's findings; a new key starts an
    event (unless the same key ended less than `cooldown_s` ago: de-duplication), a known key
    updates it and keeps the best snapshot (score x box area), and `tick` ends events whose
    key has been absent for `end_after_s`. An event that reaches `max_duration_s` ends and,
    if its finding goes on, a new one continues it.

    Example:
        >>> import numpy as np
        >>> class Printer:
        ...     def event_started(self, e): print("start", e.type, e.started_at)
        ...     def event_ended(self, e): print("end", e.ended_at)
        >>> life = EventLifecycle("gate", "hq", EventKind("zone_intrusion", "door", "high"),
        ...                       EventTimingConfig(end_after_s=2), Printer())
        >>> frame = Frame("gate", np.zeros((4, 4, 3), np.uint8), wall_time=10.0)
        >>> seen = Finding(key="track:1", label="person", score=0.9, boxes=(Box(0, 0, 1, 1),))
        >>> life.observe(frame, [seen])
        start zone_intrusion 10.0
        >>> life.tick(now=11.0); life.tick(now=12.5)
        end 10.0
    """

    def __init__(
        self,
        camera_id: str,
        site: str,
        kind: EventKind,
        timing: EventTimingConfig,
        sink: EventSink,
        mask: Mask | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.site = site
        self.kind = kind
        self.timing = timing
        self.sink = sink
        self.mask = mask
        self.open: dict[str, Event] = {}
        self._ended: dict[str, float] = {}  # key -> when its last event ended

    def observe(self, frame: Frame, findings: Sequence[Finding]) -> None:
        t = frame.wall_time
        for finding in findings:
            event = self.open.get(finding.key)
            if event is not None and t - event.started_at >= self.timing.max_duration_s:
                self._end(finding.key)
                self._ended.pop(finding.key, None)  # a continuation is no duplicate
                event = None
            started = event is None
            if event is None:
                if t - self._ended.get(finding.key, float("-inf")) < self.timing.cooldown_s:
                    continue
                event = self._new_event(finding, t)
            event = self._keep_best(replace(event, last_seen_at=t), frame, finding, self.mask)
            self.open[finding.key] = event
            if started:  # handed over with its first evidence
                self.sink.event_started(event)

    def _new_event(self, finding: Finding, t: float) -> Event:
        return Event(
            camera_id=self.camera_id,
            site=self.site,
            type=self.kind.type,
            label=finding.label,
            zone=self.kind.place,
            severity=self.kind.severity,
            started_at=t,
            last_seen_at=t,
            detail=finding.detail,
            alarm=self.kind.alarm,
        )

    def tick(self, now: float) -> None:
        for key, event in list(self.open.items()):
            if now - event.last_seen_at >= self.timing.end_after_s:
                self._end(key)
        horizon = now - self.timing.cooldown_s
        self._ended = {k: t for k, t in self._ended.items() if t >= horizon}

    def close(self) -> None:
        """End every open event (shutdown, or the camera moved to another worker)."""
        for key in list(self.open):
            self._end(key)

    def _end(self, key: str) -> None:
        event = self.open.pop(key)
        self._ended[key] = event.last_seen_at
        self.sink.event_ended(replace(event, ended_at=event.last_seen_at))

    @staticmethod
    def _keep_best(event: Event, frame: Frame, finding: Finding, mask: Mask | None) -> Event:
        """The event with `finding` on `frame` as its best evidence, if it is better."""
        box = finding.boxes[0] if finding.boxes else None
        value = finding.score * (box.area if box else 1.0)
        best = event.best_score * (event.best_box.area if event.best_box else 1.0)
        if event.snapshot is not None and value <= best:
            return event
        caption = f"{finding.label} {finding.score:.2f} {finding.detail}".strip()
        return replace(
            event,
            best_score=finding.score,
            best_box=box,
            label=finding.label,
            snapshot=render_snapshot(frame, finding.boxes, caption, mask),
            snapshot_at=frame.wall_time,
        )
