"""The spool's troubles as events: a quarantined spool file or a full spool becomes an event
of the camera it concerns, so operators see it where they see everything else."""

from __future__ import annotations

import time

from common.types import Event
from storage.database.engine import to_datetime
from storage.database.index import EventIndex
from storage.media.spool import SpoolReport

FULL_REPORT_EVERY_S = 60.0  # one storage_full event per camera and minute, not one per clip


class SpoolEvents:
    """The spool's `on_report` callback: indexes each report worth an operator's attention
    as an ended, high-severity event (`spool_quarantine` or `storage_full`).

    An evicted recording segment is not one (recordings make room by design), nor is a
    report that names no camera.
    """

    def __init__(self, index: EventIndex, full_every_s: float = FULL_REPORT_EVERY_S) -> None:
        self.index = index
        self.full_every_s = full_every_s
        self._last_full: dict[str, float] = {}  # camera -> when its last storage_full was

    def __call__(self, report: SpoolReport) -> None:
        camera_id, site = report.metadata.get("camera"), report.metadata.get("site")
        if report.what == "evicted" or camera_id is None or site is None:
            return
        now = time.time()
        kind = "spool_quarantine" if report.what == "quarantined" else "storage_full"
        if kind == "storage_full":
            if now - self._last_full.get(camera_id, 0.0) < self.full_every_s:
                return
            self._last_full[camera_id] = now
        event = Event(
            camera_id=camera_id,
            site=site,
            type=kind,
            label="",
            zone="",
            severity="high",
            started_at=now,
            last_seen_at=now,
            ended_at=now,
            detail=f"{report.kind} {report.detail}"[:64],
        )
        self.index.end_event(event, to_datetime(now), clip_error=f"{kind}: {report.key}")
