"""A worker process: the cameras it holds leases for, one analytics loop, the recorder."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

from analytics.detectors import create_detector
from analytics.pipeline import AnalyticsLoop
from ingest.camera import Camera, CameraHealth, StateChange
from ingest.ring import PacketRing
from storage.index import CameraStatusRow, EventIndex, to_datetime, utcnow
from storage.leases import CameraLeases
from storage.objects import ObjectStore
from storage.recorder import EventRecorder
from xueliang.config import CameraConfig, Config

log = logging.getLogger(__name__)
S3_WAIT_S = 60.0


def _wait_for_bucket(store: ObjectStore, stop: threading.Event) -> None:
    deadline = time.monotonic() + S3_WAIT_S
    while True:
        try:
            store.ensure_bucket()
            return
        except Exception as exc:
            if time.monotonic() > deadline or stop.is_set():
                raise
            log.warning("object storage not reachable yet (%s); retrying", type(exc).__name__)
            stop.wait(1.0)


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
    """Runs the cameras this worker holds leases for; takes and gives cameras as leases move."""

    def __init__(self, config: Config, worker_id: str) -> None:
        self.config = config
        self.worker_id = worker_id
        self.cameras_by_id: dict[str, CameraConfig] = {c.id: c for c in config.cameras if c.enabled}
        self.index = EventIndex.connect(config.index.url)
        self.store = ObjectStore.from_config(config.storage)
        self.leases = CameraLeases(self.index, worker_id, config.ingest.lease_s)
        self.rings: dict[str, PacketRing] = {}
        self.running: dict[str, Camera] = {}
        self.recorder = EventRecorder(
            self.index,
            self.store,
            self.rings,
            config.clips,
            config.data_dir / "work",
            {camera_id: camera.privacy for camera_id, camera in self.cameras_by_id.items()},
        )
        self.analytics = AnalyticsLoop(
            create_detector(config.detector),
            config.analytics.tracker,
            config.analytics.events,
            self.recorder,
        )

    def _on_change(self, change: StateChange) -> None:
        site = self.cameras_by_id[change.camera_id].site
        self.analytics.conditions.video_changed(change, site)

    def start_camera(self, camera_id: str) -> None:
        config = self.cameras_by_id[camera_id]
        ring = PacketRing(self.config.ingest.ring_s, self.config.ingest.ring_max_bytes)
        self.rings[camera_id] = ring
        rules = config.rules()
        self.analytics.add_camera(rules)
        on_frame = self.analytics.submit if rules.needs_frames else None
        camera = Camera(config, self.config.ingest, ring, on_frame, self._on_change)
        camera.start()
        self.running[camera_id] = camera
        log.info("worker %s took camera %s", self.worker_id, camera_id)

    def stop_cameras(self, camera_ids: list[str]) -> None:
        cameras = [self.running.pop(camera_id) for camera_id in camera_ids]
        for camera in cameras:
            camera.stop()
        for camera in cameras:
            camera.join()
            self.analytics.remove_camera(camera.config.id)
            log.info("worker %s gave up camera %s", self.worker_id, camera.config.id)

    def rebalance(self) -> None:
        try:
            held = self.leases.balance(self.cameras_by_id)
        except Exception:
            log.exception("lease renewal failed; keeping the cameras running")
            return
        self.stop_cameras([c for c in self.running if c not in held])
        for camera_id in sorted(held - set(self.running)):
            self.start_camera(camera_id)

    def heartbeat(self) -> None:
        for camera in list(self.running.values()):
            try:
                health = camera.check()
                row = _status_row(camera.config.site, self.worker_id, health)
                self.index.put_camera_status(row)
            except Exception:
                log.exception("heartbeat of camera %s not written", camera.config.id)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set, then shut down without losing events or holding leases."""
        _wait_for_bucket(self.store, stop)
        self.recorder.start()
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
        self.recorder.stop()
        self.leases.leave()


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(2)}"
