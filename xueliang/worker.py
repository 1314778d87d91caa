"""A worker process: the cameras it holds leases for, one analytics loop, the recorder, the
spool and its uploader."""

from __future__ import annotations

import functools
import logging
import threading
import time

from analytics.detectors import create_detector
from analytics.pipeline import AnalyticsLoop
from analytics.privacy import FaceMasker, PrivacyConfig
from common.backoff import Backoff
from common.types import Event
from ingest.camera import Camera, CameraHealth, StateChange
from ingest.ring import PacketRing
from storage.database.alarms import AlarmPanels, ArmedSink, Arming
from storage.database.camera_health import CameraPictureRow, CameraStatusRow, Heartbeats
from storage.database.cameras import ApiCameras, CameraConfig
from storage.database.engine import to_datetime, utcnow
from storage.database.index import EventIndex, event_of_row
from storage.database.leases import CameraLeases, WorkerStats
from storage.media.clips import ClipError, picture_jpeg
from storage.media.continuous import SegmentRecorder
from storage.media.event_clips import EventRecorder
from storage.media.spool import Spool, SpoolReport
from storage.media.uploader import Uploader
from xueliang.config import Config

log = logging.getLogger(__name__)
PICTURE_EVERY_S, PICTURE_WIDTH = 10.0, 480
FULL_REPORT_EVERY_S = 60.0  # one storage_full event per camera and minute, not one per clip


def _status_row(site: str, worker_id: str, health: CameraHealth) -> CameraStatusRow:
    return CameraStatusRow(
        camera_id=health.camera_id,
        site=site,
        state=health.state,
        reasons="; ".join(health.reasons)[:256] or None,
        input_fps=health.input_fps,
        decode_fps=health.decode_fps,
        expected_fps=health.expected_fps,
        bitrate_kbps=health.bitrate_kbps,
        decoded_frames=list(health.decoded_frames),
        corrupt_packets=health.corrupt_packets,
        decode_errors=health.decode_errors,
        timestamp_jumps=health.timestamp_jumps,
        reconnects=health.reconnects,
        last_frame_at=to_datetime(health.last_frame_at),
        offline_since=to_datetime(health.offline_since),
        error=health.error[:256] if health.error else None,
        worker_id=worker_id,
        updated_at=utcnow(),
    )


class Worker:
    """Runs the cameras this worker holds leases for; takes and gives cameras as leases move.

    The cameras are those of the config file and those added over the API (read again at
    every lease round, so a camera added, changed or removed there is started, restarted or
    stopped without a restart of the worker)."""

    def __init__(self, config: Config, worker_id: str) -> None:
        self.config = config
        self.worker_id = worker_id
        self.configured: dict[str, CameraConfig] = {c.id: c for c in config.cameras}
        self.cameras_by_id: dict[str, CameraConfig] = {}
        self.privacy: dict[str, PrivacyConfig] = {}  # the recorder reads it as cameras change
        self.index = EventIndex.connect(config.index.url)
        self.api_cameras = ApiCameras(self.index, config.sealer())
        self.heartbeats = Heartbeats(self.index)
        self.worker_stats = WorkerStats(self.index)
        self.store = config.object_store()
        self.leases = CameraLeases(self.index, worker_id, config.ingest.lease_s)
        self.rings: dict[str, PacketRing] = {}
        self.running: dict[str, Camera] = {}
        # Each worker has a slot of the data dir's spool and its share of the size limit.
        spool = config.spool
        share = spool.model_copy(update={"max_bytes": max(1, spool.max_bytes // config.workers)})
        self.spool = Spool(config.data_dir / "spool", share, self._on_spool_report)
        self._last_full: dict[str, float] = {}
        self.recorder = EventRecorder(
            self.index,
            self.spool,
            self.rings,
            config.clips,
            config.data_dir / "work",
            self.privacy,
        )
        self._pictured: dict[str, float] = {}  # camera -> when its picture was last taken
        # By privacy settings, like the recorder's, but this thread's own: the recorder masks
        # clips on its thread at the same time.
        self._maskers: dict[str, FaceMasker] = {}
        self.alarms = AlarmPanels(self.index)
        self.arming: dict[str, Arming] = {}  # by site, read again at every lease round
        self.analytics = AnalyticsLoop(
            create_detector(config.detector),
            config.analytics.tracker,
            config.analytics.events,
            ArmedSink(self.recorder, lambda: self.arming),
        )
        self.recording = SegmentRecorder(self.spool, self.index, config.data_dir / "work")
        self.uploader = Uploader(
            self.spool,
            self.store,
            {
                "clip": self.recorder.uploaded,
                "snapshot": self.recorder.uploaded,
                "recording": self.recording.uploaded,
            },
            Backoff(spool.retry_min_s, spool.retry_max_s),
        )

    def _on_spool_report(self, report: SpoolReport) -> None:
        """A quarantined spool file or a full spool becomes an event of the camera it
        concerns, so operators see it where they see everything else."""
        camera_id, site = report.metadata.get("camera"), report.metadata.get("site")
        if report.what == "evicted" or camera_id is None or site is None:
            return
        now = time.time()
        kind = "spool_quarantine" if report.what == "quarantined" else "storage_full"
        if kind == "storage_full":
            if now - self._last_full.get(camera_id, 0.0) < FULL_REPORT_EVERY_S:
                return
            self._last_full[camera_id] = now
        event = Event(
            camera_id, site, kind, "", "", "high", now, now, ended_at=now,
            detail=f"{report.kind} {report.detail}"[:64],
        )  # fmt: skip
        self.index.end_event(event, to_datetime(now), clip_error=f"{kind}: {report.key}")

    def start_camera(self, camera_id: str) -> None:
        config = self.cameras_by_id[camera_id]
        orphans = self.index.end_orphans(
            camera_id, utcnow(), "interrupted: the worker recording it stopped"
        )
        if orphans:
            log.warning(
                "camera %s: %d event(s) left active by a stopped worker ended", camera_id, orphans
            )
        ring = PacketRing(self.config.ingest.ring_s, self.config.ingest.ring_max_bytes)
        self.rings[camera_id] = ring
        rules = config.rules()
        self.analytics.add_camera(rules)
        on_frame = self.analytics.submit if rules.needs_frames else None
        on_change = functools.partial(self._on_change, site=config.site)
        camera = Camera(config, self.config.ingest, ring, on_frame, on_change)
        camera.start()
        if config.recording.enabled:
            self.recording.add_camera(camera_id, config.site, ring, config.recording.segment_s)
        self.running[camera_id] = camera
        log.info("worker %s took camera %s", self.worker_id, camera_id)

    def stop_cameras(self, camera_ids: list[str]) -> None:
        cameras = [self.running.pop(camera_id) for camera_id in camera_ids]
        for camera in cameras:
            camera.stop()
        for camera in cameras:
            camera.join()
            self.recording.remove_camera(camera.config.id)  # the rest of its recording
            self.analytics.remove_camera(camera.config.id)
            log.info("worker %s gave up camera %s", self.worker_id, camera.config.id)

    def _on_change(self, change: StateChange, site: str) -> None:
        self.analytics.conditions.video_changed(change, site)

    def refresh_cameras(self) -> None:
        """The configured cameras and the enabled ones added over the API (the config file's
        wins an id both have); a running camera whose configuration changed is stopped, to be
        started again with the new one."""
        try:
            stored = self.api_cameras.list()
        except Exception:
            log.exception("cameras added over the API not read; keeping the current set")
            return
        cameras: dict[str, CameraConfig] = {c.id: c for c in stored}
        cameras.update(self.configured)
        wanted = {camera_id: c for camera_id, c in cameras.items() if c.enabled}
        changed = [i for i in self.running if i in wanted and wanted[i] != self.cameras_by_id[i]]
        self.cameras_by_id = wanted
        self.privacy.clear()
        self.privacy.update({camera_id: c.privacy for camera_id, c in wanted.items()})
        if changed:
            log.info("camera(s) %s changed; restarting them", ", ".join(changed))
            self.stop_cameras(changed)

    def rebalance(self) -> None:
        self.refresh_cameras()
        try:
            self.arming = self.alarms.arming(utcnow())
        except Exception:
            log.exception("alarm panels not read; keeping their last arming")
        try:
            held = self.leases.balance(self.cameras_by_id)
        except Exception:
            log.exception("lease renewal failed; keeping the cameras running")
            return
        self.stop_cameras([c for c in self.running if c not in held])
        for camera_id in sorted(held - set(self.running)):
            self.start_camera(camera_id)

    def stats(self) -> dict[str, float]:
        """This worker's figures for the API's /metrics."""
        quantiles = self.analytics.detector_times.quantiles((0.5, 0.99))
        spool, uploads = self.spool.stats, self.uploader.stats
        figures = {
            "cameras": float(len(self.running)),
            "detector_calls": float(self.analytics.detector_times.calls),
            "spool_entries": float(spool.entries),
            "spool_bytes": float(spool.bytes),
            "spool_quarantined": float(spool.quarantined),
            "uploads": float(uploads.uploaded),
            "upload_failures": float(uploads.failures),
        }
        if quantiles:
            figures["detector_p50_s"], figures["detector_p99_s"] = quantiles
        return figures

    def cut_alarm_clips(self) -> None:
        """Alarm clips asked of this worker's cameras: cut from their packet rings as the
        recorder cuts any event's, `pre_s` before the alarm to `post_s` after it."""
        for request in self.alarms.take_clips(self.running, self.worker_id):
            row = self.index.get_event(request.event_id)
            if row is None:
                continue
            at = request.alarm_at.timestamp()
            around = (request.pre_s, request.post_s)
            event = event_of_row(row, started_at=at, ended_at=at, clip_around=around)
            log.info("camera %s: alarm clip of event %s", row.camera_id, row.id)
            self.recorder.event_ended(event)

    def heartbeat(self) -> None:
        try:
            self.worker_stats.put(self.worker_id, self.stats())
            self.cut_alarm_clips()
        except Exception:
            log.exception("worker figures or alarm clips not handled")
        for camera in list(self.running.values()):
            try:
                health = camera.check()
                row = _status_row(camera.config.site, self.worker_id, health)
                self.heartbeats.put_status(row)
            except Exception:
                log.exception("heartbeat of camera %s not written", camera.config.id)
            try:
                config = self.cameras_by_id.get(camera.config.id)
                if config is not None:
                    self.take_picture(config)
            except ClipError as exc:
                log.debug("camera %s: no picture (%s)", camera.config.id, exc)
            except Exception:
                log.exception("picture of camera %s not taken", camera.config.id)

    def take_picture(self, config: CameraConfig) -> None:
        """Every PICTURE_EVERY_S, the camera's newest keyframe as a small JPEG (faces blurred
        where it has privacy on) for the console's camera grid."""
        now = time.time()
        if now - self._pictured.get(config.id, 0.0) < PICTURE_EVERY_S:
            return
        gops = self.rings[config.id].gops_after(now - PICTURE_EVERY_S * 3, include_open=True)
        if not gops:
            return
        self._pictured[config.id] = now
        mask = None
        if config.privacy.enabled:
            key = config.privacy.model_dump_json()
            if key not in self._maskers:  # a face model session: made once, not per picture
                self._maskers[key] = FaceMasker(config.privacy)
            mask = self._maskers[key]
        jpeg = picture_jpeg(gops[-1], PICTURE_WIDTH, mask)
        taken = to_datetime(gops[-1][0].wall_time) or utcnow()
        self.heartbeats.put_picture(
            CameraPictureRow(camera_id=config.id, site=config.site, jpeg=jpeg, taken_at=taken)
        )

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set, then shut down without losing events or holding leases."""
        self.spool.open()  # what a previous run left is uploaded first (oldest first)
        self.uploader.start()
        self.recorder.start()
        self.recording.start()
        self.analytics.start()
        settings = self.config.ingest
        next_lease = 0.0
        log.info("worker %s running", self.worker_id)
        while not stop.is_set():
            if time.monotonic() >= next_lease:
                self.rebalance()
                next_lease = time.monotonic() + settings.lease_s / 3
            self.heartbeat()
            stop.wait(settings.heartbeat_s)
        log.info("worker %s stopping", self.worker_id)
        self.stop_cameras(list(self.running))
        self.analytics.stop()
        self.recording.stop()
        self.recorder.stop()
        self.uploader.stop(self.config.spool.drain_s)
        self.spool.close()
        self.leases.leave()
