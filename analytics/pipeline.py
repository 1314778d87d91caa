"""One analytics loop per worker: for each camera the gate, detector, tracker, rules, picture
checks and event lifecycles."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from analytics.config import EventTimingConfig, ZoneConfig
from analytics.detectors.base import Detector
from analytics.events import EventKind, EventLifecycle
from analytics.gate import DetectionGate, GateConfig, detect_regions
from analytics.health import ConditionEvents
from analytics.privacy import FaceMasker, PrivacyConfig
from analytics.quality import CheckConfig, QualityConfig, VideoQualityMonitor
from analytics.rules import LineConfig, LineCrossingRule, Rule, zone_rule
from analytics.tracker import Tracker, TrackerConfig
from common.types import EventSink, Frame, Track

log = logging.getLogger(__name__)
IDLE_TICK_S = 0.25


@dataclass(frozen=True)
class CameraRules:
    """What the analytics loop watches for on one camera."""

    camera_id: str
    site: str
    zones: Sequence[ZoneConfig] = ()
    lines: Sequence[LineConfig] = ()
    gate: GateConfig = field(default_factory=GateConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    @property
    def needs_frames(self) -> bool:
        checks = (value for _, value in self.quality)
        return bool(self.zones or self.lines) or any(
            isinstance(check, CheckConfig) and check.enabled for check in checks
        )


class DetectorTimes:
    """The last `size` detector calls' durations (a frame's crops together), for metrics.

    Example:
        >>> times = DetectorTimes()
        >>> for ms in (10, 20, 30, 40): times.add(ms / 1000)
        >>> times.quantiles((0.5, 0.99)), times.calls
        ([0.02, 0.04], 4)
    """

    def __init__(self, size: int = 1000) -> None:
        self._recent: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.calls = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._recent.append(seconds)
            self.calls += 1

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Nearest-rank quantiles of the recent calls (empty before the first)."""
        with self._lock:
            ordered = sorted(self._recent)
        if not ordered:
            return []
        return [ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] for q in qs]


class CameraAnalytics:
    """Everything analytics keeps for one camera, and one frame's worth of work on it."""

    def __init__(
        self,
        setup: CameraRules,
        tracker: TrackerConfig,
        timing: EventTimingConfig,
        sink: EventSink,
        conditions: ConditionEvents,
        detector_times: DetectorTimes | None = None,
    ) -> None:
        self.setup = setup
        self.detector_times = detector_times or DetectorTimes()  # the loop's, shared
        self.gate = DetectionGate(setup.gate)
        self.tracker = Tracker(tracker)
        self.tracks: list[Track] = []
        self.quality = VideoQualityMonitor(setup.quality)
        self.conditions = conditions
        self.mask = FaceMasker(setup.privacy) if setup.privacy.enabled else None
        rules: list[Rule] = [
            zone_rule(zone.name, zone.points, config)
            for zone in setup.zones
            for config in zone.rules
        ]
        rules += [LineCrossingRule(line) for line in setup.lines]
        self.watches = [
            (
                rule,
                EventLifecycle(
                    setup.camera_id,
                    setup.site,
                    EventKind(rule.event_type, rule.place, rule.severity, rule.gbt_alarm),
                    timing,
                    sink,
                    self.mask,
                ),
            )
            for rule in rules
        ]

    def analyse(self, frame: Frame, detector: Detector) -> None:
        for change in self.quality.update(frame):
            self.conditions.changed(
                self.setup.camera_id,
                self.setup.site,
                change.condition,
                change.started,
                change.at,
                frame,
                self.mask,
            )
        if not self.watches:
            return
        for rule, _ in self.watches:
            rule.see(frame.image, frame.wall_time)
        expected = self.tracker.predict(frame.wall_time)
        decision = self.gate.decide(
            frame.image, expected, frame.wall_time, self.tracker.tentative()
        )
        if not decision.regions:
            self.tracks = expected
            return
        started = time.perf_counter()
        detections = detect_regions(detector, frame.image, decision.regions)
        self.detector_times.add(time.perf_counter() - started)
        self.tracks = self.tracker.update(detections, frame.wall_time, decision.regions)
        for rule, lifecycle in self.watches:
            lifecycle.observe(frame, rule.update(self.tracks, frame.wall_time))

    def tick(self, now: float) -> None:
        for _, lifecycle in self.watches:
            lifecycle.tick(now)

    def close(self) -> None:
        for _, lifecycle in self.watches:
            lifecycle.close()
        self.conditions.close(self.setup.camera_id)


class AnalyticsLoop:
    """Analyses the newest frame of each camera; older unanalysed frames are dropped.

    Detection is the expensive step, so when the loop falls behind it skips frames rather
    than queueing them: events stay near real time and memory stays flat. A failure on one
    camera's frame is logged and does not stop the loop.
    """

    def __init__(
        self,
        detector: Detector,
        tracker: TrackerConfig,
        timing: EventTimingConfig,
        sink: EventSink,
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.timing = timing
        self.sink = sink
        self.conditions = ConditionEvents(sink)
        self.detector_times = DetectorTimes()
        self._cameras: dict[str, CameraAnalytics] = {}
        self._pending: dict[str, Frame] = {}
        self._wake = threading.Condition()
        self._busy = threading.Lock()  # held while a camera's analytics state is touched
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="analytics", daemon=True)

    def add_camera(self, setup: CameraRules) -> None:
        camera = CameraAnalytics(
            setup, self.tracker, self.timing, self.sink, self.conditions, self.detector_times
        )
        with self._wake:
            self._cameras[setup.camera_id] = camera

    def remove_camera(self, camera_id: str) -> None:
        """Stop analysing a camera; its open events end now."""
        with self._busy:
            with self._wake:
                camera = self._cameras.pop(camera_id, None)
                self._pending.pop(camera_id, None)
            if camera is not None:
                camera.close()

    def submit(self, frame: Frame) -> None:
        """Called from ingest threads with each sampled frame."""
        with self._wake:
            if frame.camera_id not in self._cameras:
                return
            self._pending[frame.camera_id] = frame
            self._wake.notify()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join()
        for camera_id in list(self._cameras):
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
                    camera = self._cameras.get(frame.camera_id)
                    if camera is None:
                        continue
                    try:
                        camera.analyse(frame, self.detector)
                    except Exception:
                        log.exception("analytics failed on a frame of camera %s", frame.camera_id)
                now = time.time()
                for camera in list(self._cameras.values()):
                    camera.tick(now)
