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

    def __init__(self, detector: Detector, timing: EventTimingConfig, sink: EventSink) -> None:
        self.detector = detector
        self.timing = timing
        self.sink = sink
        self._watches: dict[str, list[_ZoneWatch]] = {}
        self._pending: dict[str, Frame] = {}
        self._wake = threading.Condition()
        self._busy = threading.Lock()  # held while lifecycles are touched
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="analytics", daemon=True)
        self.frames_analysed = 0
        self.frames_dropped = 0

    def add_camera(self, camera: CameraRules) -> None:
        watches = [
            _ZoneWatch(
                ZoneIntrusionRule(zone),
                EventLifecycle(
                    camera.camera_id, camera.site, "zone_intrusion", zone.name,
                    zone.severity, self.timing, self.sink,
                ),
            )
            for zone in camera.zones
        ]  # fmt: skip
        with self._wake:
            self._watches[camera.camera_id] = watches

    def remove_camera(self, camera_id: str) -> None:
        """Stop analysing a camera; its open events end now."""
        with self._busy:
            with self._wake:
                watches = self._watches.pop(camera_id, [])
                self._pending.pop(camera_id, None)
            for watch in watches:
                watch.lifecycle.close()

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
        for camera_id in list(self._watches):
            self.remove_camera(camera_id)

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._pending and not self._stop:
                    self._wake.wait(IDLE_TICK_S)
                if self._stop:
                    return
                frames, self._pending = list(self._pending.values()), {}
            with self._busy:
                for frame in frames:
                    try:
                        self._analyse(frame)
                    except Exception:
                        log.exception("analytics failed on a frame of camera %s", frame.camera_id)
                now = time.time()
                with self._wake:
                    every = [w for watches in self._watches.values() for w in watches]
                for watch in every:
                    watch.lifecycle.tick(now)

    def _analyse(self, frame: Frame) -> None:
        with self._wake:
            watches = self._watches.get(frame.camera_id, [])
        if not watches:
            return
        detections = self.detector.detect(frame.image)
        self.frames_analysed += 1
        for watch in watches:
            watch.lifecycle.observe(frame, watch.rule.matches(detections))
