"""Video-loss events: a camera going offline starts one, coming back ends it."""

from __future__ import annotations

import threading

from common.types import Event, EventSink
from ingest.camera import StateChange

VIDEO_LOSS = "video_loss"


class VideoLossEvents:
    """Turns a camera's offline / back-online changes into `video_loss` events.

    The event starts at the camera's last packet and ends at its first packet after the gap.

    Example:
        >>> class Printer:
        ...     def event_started(self, e): print("start", e.type, e.started_at)
        ...     def event_ended(self, e): print("end", e.ended_at)
        >>> losses = VideoLossEvents(Printer())
        >>> losses.changed(StateChange("gate", "online", "offline", 10.0), site="hq")
        start video_loss 10.0
        >>> losses.changed(StateChange("gate", "offline", "online", 25.0), site="hq")
        end 25.0
    """

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._open: dict[str, Event] = {}
        self._lock = threading.Lock()

    def changed(self, change: StateChange, site: str) -> None:
        with self._lock:
            if change.new == "offline":
                if change.camera_id in self._open:
                    return
                event = Event(
                    camera_id=change.camera_id,
                    site=site,
                    type=VIDEO_LOSS,
                    label="signal",
                    zone="",
                    severity="high",
                    started_at=change.at,
                    last_seen_at=change.at,
                )
                self._open[change.camera_id] = event
                self.sink.event_started(event)
            elif change.old == "offline":
                ended = self._open.pop(change.camera_id, None)
                if ended is None:
                    return
                ended.ended_at = ended.last_seen_at = change.at
                self.sink.event_ended(ended)
