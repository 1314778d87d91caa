"""A camera: its stream reader(s) and its health state machine."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from common.types import Frame
from ingest.config import CameraConfig, IngestConfig
from ingest.gb28181 import MediaBroker
from ingest.ring import PacketRing
from ingest.stream import Sampling, StreamReader, StreamStats

log = logging.getLogger(__name__)

CameraState = Literal["connecting", "online", "degraded", "offline"]
WARMUP_S = 5.0  # rates need a few seconds of a connection before they mean anything


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraHealth:
    """One camera's health: its state, why, and the figures it was judged on."""

    camera_id: str
    state: CameraState
    reasons: tuple[str, ...]
    input_fps: float
    decode_fps: float
    expected_fps: float | None
    bitrate_kbps: float
    decoded_frames: tuple[int, ...]  # per reader: main (or record), then detect
    corrupt_packets: int
    decode_errors: int
    timestamp_jumps: int
    media_lost: int
    media_dropped: int
    reconnects: int
    last_frame_at: float | None
    offline_since: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class StateChange:
    """A camera went offline (`at` = its last packet) or came back (`at` = its first)."""

    camera_id: str
    old: CameraState
    new: CameraState
    at: float


class CameraHealthJudge:
    """Turns stream stats into a camera state, remembering counters to spot new errors.

    online: streaming at the expected rate without errors; degraded: streaming, but slower
    than `degraded_fps_ratio` of the expected fps, or with new decode errors, corrupt packets
    or timestamp jumps in the last heartbeat; offline: not streaming.
    """

    def __init__(self, settings: IngestConfig) -> None:
        self.settings = settings
        self._last_counts: tuple[int, int, int, int] = (0, 0, 0, 0)

    def judge(self, streams: list[StreamStats], now: float) -> tuple[CameraState, list[str]]:
        if any(s.state == "offline" for s in streams):
            return "offline", [s.error or "offline" for s in streams if s.state == "offline"]
        if any(s.state == "connecting" for s in streams):
            return "connecting", []
        reasons: list[str] = []
        for s in streams:
            warm = s.online_since is not None and now - s.online_since >= WARMUP_S
            wanted = s.expected_fps
            if warm and wanted and s.input_fps < self.settings.degraded_fps_ratio * wanted:
                reasons.append(f"input {s.input_fps:g} fps, expected {wanted:g}")
        counts = (
            sum(s.decode_errors for s in streams),
            sum(s.corrupt_packets for s in streams),
            sum(s.timestamp_jumps for s in streams),
            sum(s.media_lost for s in streams),
        )
        for name, before, after in zip(
            ("decode errors", "corrupt packets", "timestamp jumps", "RTP packets lost"),
            self._last_counts,
            counts,
            strict=True,
        ):
            if after > before:
                reasons.append(f"{after - before} new {name}")
        self._last_counts = counts
        return ("degraded" if reasons else "online"), reasons


class Camera:
    """Runs a camera's readers: one stream (recorded and decoded) or two (dual stream).

    With `detect_url` the main stream only fills the packet ring (never decoded) and the
    sub-stream is decoded for analytics. `check()` judges the camera's health and reports
    going offline and coming back through `on_change`.

    Example:
        >>> config = CameraConfig(id="gate", site="hq", url="rtsp://127.0.0.1/main",
        ...                       detect_url="rtsp://127.0.0.1/sub")
        >>> camera = Camera(config, IngestConfig(), PacketRing(30), on_frame=print)
        >>> [r.url for r in camera.readers]
        ['rtsp://127.0.0.1/main', 'rtsp://127.0.0.1/sub']
    """

    def __init__(
        self,
        config: CameraConfig,
        settings: IngestConfig,
        ring: PacketRing,
        on_frame: Callable[[Frame], None] | None,
        on_change: Callable[[StateChange], None] | None = None,
        media: MediaBroker | None = None,
    ) -> None:
        self.config = config
        self.ring = ring
        sampling = Sampling(config.detect, on_frame)
        if config.detect_url is None:
            self.readers = [StreamReader(config, config.url, settings, ring, sampling, media)]
        else:
            self.readers = [
                StreamReader(config, config.url, settings, ring=ring),
                StreamReader(config, config.detect_url, settings, sampling=sampling),
            ]
        self.on_change = on_change
        self._judge = CameraHealthJudge(settings)
        self._state: CameraState = "connecting"
        self._lock = threading.Lock()

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()

    def join(self) -> None:
        for reader in self.readers:
            reader.join()

    def check(self) -> CameraHealth:
        """Judge the camera now; report a change of offline-ness through `on_change`."""
        now = time.time()
        stats = [r.stats() for r in self.readers]
        with self._lock:
            state, reasons = self._judge.judge(stats, now)
            old, self._state = self._state, state
            change: StateChange | None = None
            # A camera that never came online is lost too: from its first failed connection.
            if state == "offline" and old != "offline":
                lost = [s.offline_since for s in stats if s.offline_since is not None]
                change = StateChange(self.config.id, old, state, min(lost) if lost else now)
            elif state in ("online", "degraded") and old == "offline":
                back = [s.online_since for s in stats if s.online_since is not None]
                change = StateChange(self.config.id, old, state, max(back) if back else now)
        if change is not None and self.on_change is not None:
            self.on_change(change)
        if state != old:
            log.info("camera %s: %s -> %s %s", self.config.id, old, state, "; ".join(reasons))
        record, detect = stats[0], stats[-1]
        return CameraHealth(
            camera_id=self.config.id,
            state=state,
            reasons=tuple(reasons),
            input_fps=record.input_fps,
            decode_fps=detect.decode_fps,
            expected_fps=record.expected_fps,
            bitrate_kbps=round(sum(s.bitrate_kbps for s in stats), 1),
            decoded_frames=tuple(s.decoded_frames for s in stats),
            corrupt_packets=sum(s.corrupt_packets for s in stats),
            decode_errors=sum(s.decode_errors for s in stats),
            timestamp_jumps=sum(s.timestamp_jumps for s in stats),
            media_lost=sum(s.media_lost for s in stats),
            media_dropped=sum(s.media_dropped for s in stats),
            reconnects=sum(s.reconnects for s in stats),
            last_frame_at=max((s.last_packet_at or 0.0 for s in stats), default=0.0) or None,
            offline_since=min((s.offline_since for s in stats if s.offline_since), default=None),
            error="; ".join(s.error for s in stats if s.error) or None,
        )
