"""A worker process: its cameras' stream threads, one analytics loop, the event recorder."""

from __future__ import annotations

import logging
import threading
import time

from analytics.detectors import create_detector
from analytics.pipeline import AnalyticsLoop, CameraRules
from ingest.ring import PacketRing
from ingest.stream import CameraStatus, CameraStream
from storage.index import CameraStatusRow, EventIndex, to_datetime, utcnow
from storage.objects import ObjectStore
from storage.recorder import EventRecorder
from xueliang.config import Config

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


def _status_row(site: str, status: CameraStatus) -> CameraStatusRow:
    return CameraStatusRow(
        camera_id=status.camera_id,
        site=site,
        state=status.state,
        fps=status.fps,
        last_frame_at=to_datetime(status.last_frame_at),
        reconnects=status.reconnects,
        decode_errors=status.decode_errors,
        error=status.error[:256] if status.error else None,
        updated_at=utcnow(),
    )


def run_worker(config: Config, stop: threading.Event) -> None:
    """Run every enabled camera until `stop` is set, then shut down without losing events."""
    cameras = [c for c in config.cameras if c.enabled]
    index = EventIndex.connect(config.index.url)
    store = ObjectStore.from_config(config.storage)
    _wait_for_bucket(store, stop)
    detector = create_detector(config.detector)
    rings = {c.id: PacketRing(config.ingest.ring_s, config.ingest.ring_max_bytes) for c in cameras}
    recorder = EventRecorder(index, store, rings, config.clips, config.data_dir / "work")
    analytics = AnalyticsLoop(
        detector,
        [CameraRules(c.id, c.site, c.zones) for c in cameras],
        config.analytics.events,
        recorder,
    )
    streams = [
        CameraStream(c, config.ingest, rings[c.id], analytics.submit, config.analytics.detect_fps)
        for c in cameras
    ]
    recorder.start()
    analytics.start()
    for stream in streams:
        stream.start()
    log.info("worker running %d camera(s)", len(streams))
    sites = {c.id: c.site for c in cameras}
    while not stop.wait(config.ingest.heartbeat_s):
        for stream in streams:
            try:
                index.put_camera_status(_status_row(sites[stream.camera.id], stream.status()))
            except Exception:
                log.exception("heartbeat of camera %s not written", stream.camera.id)
    log.info("worker stopping")
    for stream in streams:
        stream.stop()
    for stream in streams:
        stream.join()
    analytics.stop()
    recorder.stop()
    for stream in streams:
        index.put_camera_status(_status_row(sites[stream.camera.id], stream.status()))
