"""A worker process: the cameras it holds leases for, one analytics loop, the recorder, the
spool and its uploader."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TypeVar

from analytics.detectors import create_detector
from analytics.pipeline import AnalyticsLoop
from analytics.privacy import FaceMasks
from common.backoff import Backoff
from common.types import ClipMask, Mask
from ingest.camera import Camera, StateChange
from ingest.ring import PacketRing
from storage.database.alarms import AlarmPanels, ArmedSink, Arming
from storage.database.camera_health import CameraStatusRow, Heartbeats
from storage.database.cameras import ApiCameras, CameraConfig
from storage.database.engine import utcnow
from storage.database.index import EventIndex, event_of_row
from storage.database.leases import CameraLeases, WorkerStats
from storage.database.media_sessions import GbMediaSessions, IndexMediaBroker
from storage.media.clips import ClipError
from storage.media.continuous import SegmentRecorder
from storage.media.event_clips import EventRecorder
from storage.media.journal import GOP_S, PacketJournal
from storage.media.pictures import CameraPictures
from storage.media.spool import Spool
from storage.media.spool_events import SpoolEvents
from storage.media.uploader import Uploader
from xueliang.config import Config

log = logging.getLogger(__name__)
M = TypeVar("M")


class Worker:
    """Runs the cameras this worker holds leases for; takes and gives cameras as leases move.

    The cameras are those of the config file and those added over the API (read again at
    every lease round, so a camera added, changed or removed there is started, restarted or
    stopped without a restart of the worker). The worker wires the stages together; what
    each does is theirs."""

    def __init__(self, config: Config, worker_id: str) -> None:
        self.config = config
        self.worker_id = worker_id
        self.cameras_by_id: dict[str, CameraConfig] = {}
        self.rings: dict[str, PacketRing] = {}
        self.running: dict[str, Camera] = {}
        # The face masks of the cameras with privacy on, made as they start, each set used
        # by one thread: the recorder's clips, the heartbeat's pictures.
        self.clip_masks: dict[str, ClipMask] = {}
        self.picture_masks: dict[str, Mask] = {}
        self._clip_faces, self._picture_faces = FaceMasks(), FaceMasks()
        self.index = EventIndex.connect(config.index.url)
        self.api_cameras = ApiCameras(self.index, config.sealer())
        self.heartbeats = Heartbeats(self.index)
        self.worker_stats = WorkerStats(self.index)
        self.leases = CameraLeases(self.index, worker_id, config.ingest.lease_s)
        self.alarms = AlarmPanels(self.index)
        self.media = IndexMediaBroker(GbMediaSessions(self.index), worker_id)
        self.arming: dict[str, Arming] = {}  # by site, read again at every lease round
        # Each worker has a slot of the data dir's spool and its share of the size limit.
        spool = config.spool
        share = spool.model_copy(update={"max_bytes": max(1, spool.max_bytes // config.workers)})
        self.spool = Spool(config.data_dir / "spool", share, SpoolEvents(self.index))
        work = config.data_dir / "work"
        self.recorder = EventRecorder(
            self.index, self.spool, self.rings, config.clips, work, clip_masks=self.clip_masks
        )
        self.recording = SegmentRecorder(self.spool, self.index, work)
        ingest = config.ingest
        self.journal = (
            PacketJournal(config.data_dir / "journal", ingest.ring_s, ingest.ring_max_bytes)
            if config.clips.journal
            else None
        )
        self.pictures = CameraPictures(self.heartbeats, self.rings, self.picture_masks)
        self.analytics = AnalyticsLoop(
            create_detector(config.detector),
            config.analytics.tracker,
            config.analytics.events,
            ArmedSink(self.recorder, lambda: self.arming),
        )
        self.uploader = Uploader(
            self.spool,
            config.object_store(),
            {
                "clip": self.recorder.uploaded,
                "snapshot": self.recorder.uploaded,
                "recording": self.recording.uploaded,
            },
            Backoff(spool.retry_min_s, spool.retry_max_s),
        )

    def start_camera(self, camera_id: str) -> None:
        config = self.cameras_by_id[camera_id]
        self._end_orphans(camera_id)
        ring = PacketRing(self.config.ingest.ring_s, self.config.ingest.ring_max_bytes)
        self.rings[camera_id] = ring
        _put(self.clip_masks, camera_id, self._clip_faces.clip(config.privacy))
        _put(self.picture_masks, camera_id, self._picture_faces.picture(config.privacy))
        rules = config.rules()
        self.analytics.add_camera(rules)
        on_frame = self.analytics.submit if rules.needs_frames else None
        on_change = functools.partial(self._on_change, site=config.site)
        camera = Camera(config, self.config.ingest, ring, on_frame, on_change, self.media)
        camera.start()
        if config.recording.enabled:
            self.recording.add_camera(camera_id, config.site, ring, config.recording.segment_s)
        if self.journal is not None:
            self.journal.add_camera(camera_id, config.site, ring, GOP_S)
        self.running[camera_id] = camera
        log.info("worker %s took camera %s", self.worker_id, camera_id)

    def stop_cameras(self, camera_ids: list[str]) -> None:
        cameras = [self.running.pop(camera_id) for camera_id in camera_ids]
        for camera in cameras:
            camera.stop()
        for camera in cameras:
            camera.join()
            self.recording.remove_camera(camera.config.id)  # the rest of its recording
            if self.journal is not None:
                self.journal.remove_camera(camera.config.id)
            self.analytics.remove_camera(camera.config.id)
            log.info("worker %s gave up camera %s", self.worker_id, camera.config.id)

    def _end_orphans(self, camera_id: str) -> None:
        """End the camera's events a stopped worker left active; where that worker's journal
        is on this node, their clips are cut from it (EventRow.clip_origin "journal")."""
        now = utcnow()
        orphans = self.index.active_events(camera_id, now)
        self.index.end_orphans(camera_id, now)
        recovered = 0
        if self.journal is not None:
            journal = self.journal.rows(camera_id)
            if journal:
                recovered = sum(
                    self.recorder.recover(event_of_row(row), journal) for row in orphans
                )
            self.journal.forget(camera_id)  # used, or of no use: the new ring starts afresh
        if orphans:
            log.warning(
                "camera %s: %d event(s) left active by a stopped worker ended, %d clip(s) "
                "recovered from its journal",
                camera_id,
                len(orphans),
                recovered,
            )

    def _on_change(self, change: StateChange, site: str) -> None:
        self.analytics.conditions.video_changed(change, site)

    def refresh_cameras(self) -> None:
        """The configured cameras and the enabled ones added over the API (the config file's
        wins an id both have); a running camera whose configuration changed is stopped, to be
        started again with the new one."""
        try:
            cameras = self.api_cameras.beside(self.config.cameras)
        except Exception:
            log.exception("cameras added over the API not read; keeping the current set")
            return
        wanted = {camera.id: camera for camera in cameras if camera.enabled}
        changed = [i for i in self.running if i in wanted and wanted[i] != self.cameras_by_id[i]]
        self.cameras_by_id = wanted
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

    def heartbeat(self) -> None:
        try:
            self.worker_stats.put(self.worker_id, self.stats())
            self.recorder.cut_alarm_clips(self.alarms, self.running, self.worker_id)
        except Exception:
            log.exception("worker figures or alarm clips not handled")
        for camera in list(self.running.values()):
            site = camera.config.site
            try:
                self.heartbeats.put_status(CameraStatusRow.of(camera.check(), site, self.worker_id))
            except Exception:
                log.exception("heartbeat of camera %s not written", camera.config.id)
            try:
                self.pictures.take(camera.config.id, site)
            except ClipError as exc:
                log.debug("camera %s: no picture (%s)", camera.config.id, exc)
            except Exception:
                log.exception("picture of camera %s not taken", camera.config.id)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set, then shut down without losing events or holding leases."""
        self.spool.open()  # what a previous run left is uploaded first (oldest first)
        self.uploader.start()
        self.recorder.start()
        self.recording.start()
        if self.journal is not None:
            self.journal.start()
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
        if self.journal is not None:
            self.journal.stop()
        self.recorder.stop()
        self.uploader.stop(self.config.spool.drain_s)
        self.spool.close()
        self.leases.leave()


def _put(masks: dict[str, M], camera_id: str, mask: M | None) -> None:
    """Set or clear a camera's mask. A camera that stops keeps its mask: clips of its last
    events may still be cut after it."""
    if mask is None:
        masks.pop(camera_id, None)
    else:
        masks[camera_id] = mask
