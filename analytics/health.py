"""Condition events: a camera condition (video loss, a bad picture) starting and ending."""

from __future__ import annotations

import threading
from dataclasses import replace

from analytics.events import render_snapshot
from common.types import Event, EventSink, Frame, Mask
from ingest.camera import StateChange

VIDEO_LOSS = "video_loss"
# GB/T 28181 (AlarmMethod, AlarmType): device alarm / video loss; video alarm / video anomaly
VIDEO_LOSS_ALARM = (2, 1)
PICTURE_ALARM = (5, 11)


class ConditionEvents:
    """Turns a camera's conditions starting and ending into events, one open per condition.

    Example:
        >>> class Printer:
        ...     def event_started(self, e): print("start", e.type, e.started_at)
        ...     def event_ended(self, e): print("end", e.type, e.ended_at)
        >>> conditions = ConditionEvents(Printer())
        >>> conditions.changed("gate", "hq", "frozen_frame", True, 10.0)
        start frozen_frame 10.0
        >>> conditions.changed("gate", "hq", "frozen_frame", False, 25.0)
        end frozen_frame 25.0
    """

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._open: dict[tuple[str, str], Event] = {}
        self._lock = threading.Lock()

    def changed(
        self,
        camera_id: str,
        site: str,
        condition: str,
        started: bool,
        at: float,
        frame: Frame | None = None,
        mask: Mask | None = None,
        alarm: tuple[int, int] = PICTURE_ALARM,
    ) -> None:
        key = (camera_id, condition)
        with self._lock:
            if started:
                if key in self._open:
                    return
                snapshot = None
                if frame is not None:
                    caption = condition.replace("_", " ")
                    snapshot = render_snapshot(frame, (), caption, mask)
                event = Event(
                    camera_id=camera_id,
                    site=site,
                    type=condition,
                    label="camera",
                    zone="",
                    severity="high",
                    started_at=at,
                    last_seen_at=at,
                    alarm=alarm,
                    snapshot=snapshot,
                    snapshot_at=frame.wall_time if frame is not None else None,
                )
                self._open[key] = event
                self.sink.event_started(event)
            else:
                ended = self._open.pop(key, None)
                if ended is None:
                    return
                self.sink.event_ended(replace(ended, ended_at=at, last_seen_at=at))

    def video_changed(self, change: StateChange, site: str) -> None:
        """A camera went offline (video loss starts) or came back (it ends)."""
        if change.new == "offline":
            self.changed(
                change.camera_id, site, VIDEO_LOSS, True, change.at, alarm=VIDEO_LOSS_ALARM
            )
        elif change.old == "offline":
            self.changed(change.camera_id, site, VIDEO_LOSS, False, change.at)

    def close(self, camera_id: str) -> None:
        """End a camera's open conditions now (it moved to another worker, or shutdown)."""
        with self._lock:
            keys = [k for k in self._open if k[0] == camera_id]
            events = [self._open.pop(k) for k in keys]
        for event in events:
            self.sink.event_ended(replace(event, ended_at=event.last_seen_at))
