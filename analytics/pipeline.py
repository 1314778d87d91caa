"""One analytics loop per worker: detection and rules for all of the worker's cameras."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from analytics.config import EventTimingConfig, ZoneConfig
from analytics.detectors.base import Detector
from analytics.events import EventLifecycle
from analytics.zones import ZoneIntrusionRule
from common.types import EventSink, Frame

log = logging.getLogger(__name__)
IDLE_TICK_S = 0.25


@dataclass(frozen=True, slots=True)
class CameraRules:
    """What the analytics loop watches for on one camera."""

    camera_id: str
    site: str
    zones: Sequence[ZoneConfig]


class _ZoneWatch:
    def __init__(self, rule: ZoneIntrusionRule, lifecycle: EventLifecycle) -> None:
        self.rule = rule
        self.lifecycle = lifecycle


class AnalyticsLoop:
    """Analyses the newest frame of each camera; older unanalysed frames are dropped.

    Detection is the expensive step, so when the loop falls behind it skips frames rather
    than queueing them: events stay near real time and memory stays flat. A failure on one
    camera's frame is logged and does not stop the loop.
    """

    def __init__(
        self,
        detector: Detector,
        cameras: Sequence[CameraRules],
        timing: EventTimingConfig,
        sink: EventSink,
    ) -> None:
        self.detector = detector
        self._watches: dict[str, list[_ZoneWatch]] = {
            camera.camera_id: [
                _ZoneWatch(
                    ZoneIntrusionRule(zone),
                    EventLifecycle(
                        camera.camera_id,
                        camera.site,
                        "zone_intrusion",
                        zone.name,
                        zone.severity,
                        timing,
                        sink,
                    ),
                )
                for zone in camera.zones
            ]
            for camera in cameras
        }
        self._pending: dict[str, Frame] = {}
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="analytics", daemon=True)
        self.frames_analysed = 0
        self.frames_dropped = 0

    def submit(self, frame: Frame) -> None:
        """Called from ingest threads with each sampled frame."""
        if not self._watches.get(frame.camera_id):
            return
        with self._wake:
            if frame.camera_id in self._pending:
                self.frames_dropped += 1
            self._pending[frame.camera_id] = frame
            self._wake.notify()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join()
        for watches in self._watches.values():
            for watch in watches:
                watch.lifecycle.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._pending and not self._stop:
                    self._wake.wait(IDLE_TICK_S)
                if self._stop:
                    return
                frames, self._pending = list(self._pending.values()), {}
            for frame in frames:
                try:
                    self._analyse(frame)
                except Exception:
                    log.exception("analytics failed on a frame of camera %s", frame.camera_id)
            now = time.time()
            for watches in self._watches.values():
                for watch in watches:
                    watch.lifecycle.tick(now)

    def _analyse(self, frame: Frame) -> None:
        detections = self.detector.detect(frame.image)
        self.frames_analysed += 1
        for watch in self._watches[frame.camera_id]:
            watch.lifecycle.observe(frame, watch.rule.matches(detections))
