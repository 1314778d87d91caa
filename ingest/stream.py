"""One thread per camera: demux with PyAV, keep packets in the ring, sample decoded frames."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import av.container
import av.video
import numpy as np

from common.types import Frame
from ingest.config import CameraConfig, IngestConfig
from ingest.redact import redact_text
from ingest.ring import CodecTemplate, EncodedPacket, PacketRing, StreamInfo

log = logging.getLogger(__name__)

CameraState = Literal["connecting", "online", "offline"]
FPS_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A point-in-time view of one camera's stream health."""

    camera_id: str
    state: CameraState
    fps: float
    last_frame_at: float | None
    reconnects: int
    decode_errors: int
    error: str | None


class Backoff:
    """Exponential reconnect delays with jitter and a cap.

    Example:
        >>> b = Backoff(1.0, 8.0, rng=random.Random(0))
        >>> [round(b.next_delay(), 2) for _ in range(5)]
        [0.92, 1.76, 2.84, 5.04, 6.05]
    """

    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.minimum * 2**self._attempt)
        self._attempt += 1
        return float(ceiling * self._rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        self._attempt = 0


class CameraStream:
    """Reads one camera until stopped, reconnecting with backoff when the stream fails.

    Every video packet goes into `ring`; decoded frames are handed to `on_frame` at most
    `sample_fps` times a second, as BGR arrays. Exceptions never leave the thread: a broken
    camera only ever affects itself.

    Example:
        >>> ring = PacketRing(max_seconds=30)
        >>> cam = CameraConfig(id="gate", site="hq", url="rtsp://127.0.0.1:8554/gate")
        >>> stream = CameraStream(cam, IngestConfig(), ring, on_frame=print, sample_fps=5)
        >>> stream.status().state
        'connecting'
    """

    def __init__(
        self,
        camera: CameraConfig,
        settings: IngestConfig,
        ring: PacketRing,
        on_frame: Callable[[Frame], None],
        sample_fps: float,
    ) -> None:
        self.camera = camera
        self.settings = settings
        self.ring = ring
        self.on_frame = on_frame
        self.sample_interval = 1.0 / sample_fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ingest-{camera.id}", daemon=True)
        self._lock = threading.Lock()
        self._state: CameraState = "connecting"
        self._frame_times: deque[float] = deque()
        self._last_frame_at: float | None = None
        self._last_packet_at = 0.0
        self._reconnects = 0
        self._decode_errors = 0
        self._error: str | None = None
        self._connections = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish; `join` waits for it (a blocked read ends by the watchdog)."""
        self._stop.set()

    def join(self) -> None:
        self._thread.join(self.settings.watchdog_s + 2.0)

    def status(self) -> CameraStatus:
        now = time.time()
        with self._lock:
            while self._frame_times and self._frame_times[0] < now - FPS_WINDOW_S:
                self._frame_times.popleft()
            span = now - self._frame_times[0] if self._frame_times else FPS_WINDOW_S
            fps = len(self._frame_times) / max(span, 1.0)
            state, error = self._state, self._error
            silent = now - self._last_packet_at
            if state == "online" and silent > self.settings.watchdog_s:
                # The blocked read ends by FFmpeg's timeout later; report the stall now.
                state, error = "offline", f"stalled: no packet for {silent:.1f}s"
            return CameraStatus(
                self.camera.id,
                state,
                round(fps, 2),
                self._last_frame_at,
                self._reconnects,
                self._decode_errors,
                error,
            )

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        with self._lock:
            if state != self._state:
                log.info("camera %s: %s -> %s", self.camera.id, self._state, state)
            self._state = state
            self._error = error

    def _run(self) -> None:
        backoff = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        while not self._stop.is_set():
            try:
                self._read_once(backoff)
                error = "end of stream"
            except Exception as exc:  # any failure of this camera stays with this camera
                error = redact_text(f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                break
            if self.camera.is_file and self.camera.loop and error == "end of stream":
                continue
            self._set_state("offline", error)
            delay = backoff.next_delay()
            log.warning(
                "camera %s offline (%s); reconnecting in %.1fs", self.camera.id, error, delay
            )
            with self._lock:
                self._reconnects += 1
            self._stop.wait(delay)
        self._set_state("offline", "stopped")

    def _open(self) -> av.container.InputContainer:
        options: dict[str, str] = {}
        if not self.camera.is_file and self.camera.url.lower().startswith("rtsp"):
            options["rtsp_transport"] = self.camera.transport
        # On a read timeout FFmpeg's RTSP demuxer first hands out the frame it still held and
        # only the next read fails, so half the watchdog per read detects a stall in one.
        return av.open(
            self.camera.open_url(),
            options=options,
            timeout=(self.settings.open_timeout_s, self.settings.watchdog_s / 2),
        )

    def _read_once(self, backoff: Backoff) -> None:
        with self._open() as container:
            if not container.streams.video:
                raise ValueError("the source has no video stream")
            video = container.streams.video[0]
            video.codec_context.thread_count = 1  # one core decodes many cameras: no frame threads
            self._connections += 1
            info = StreamInfo(
                codec=video.codec_context.name,
                width=video.codec_context.width,
                height=video.codec_context.height,
                time_base=video.time_base or Fraction(1, 90000),
                template=CodecTemplate(video),
                connection=self._connections,
            )
            pacer = _FilePacer() if self.camera.is_file else None
            last_sample = 0.0
            for packet in container.demux(video):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                now = time.time()
                if pacer is not None:
                    now = pacer.wait(packet, self._stop)
                self._last_packet_at = now
                self.ring.append(
                    EncodedPacket(
                        bytes(packet), packet.pts, packet.dts, packet.is_keyframe, now, info
                    )
                )
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    with self._lock:
                        self._decode_errors += 1
                    continue
                for frame in frames:
                    last_sample = self._take_frame(frame, now, last_sample, backoff)

    def _take_frame(
        self, frame: av.video.frame.VideoFrame, now: float, last_sample: float, backoff: Backoff
    ) -> float:
        with self._lock:
            self._frame_times.append(now)
            self._last_frame_at = now
            first = self._state != "online"
        if first:
            self._set_state("online")
            backoff.reset()
        if now - last_sample < self.sample_interval:
            return last_sample
        image = frame.to_ndarray(format="bgr24", threads=1)
        self.on_frame(Frame(self.camera.id, image.astype(np.uint8, copy=False), now))
        return now


class _FilePacer:
    """Releases a file's packets at their own pace, as a live camera would send them."""

    def __init__(self) -> None:
        self._origin: tuple[float, float] | None = None

    def wait(self, packet: av.Packet[av.video.stream.VideoStream], stop: threading.Event) -> float:
        if packet.pts is None or packet.time_base is None:
            return time.time()
        media_time = float(packet.pts * packet.time_base)
        if self._origin is None:
            self._origin = (time.time(), media_time)
        due = self._origin[0] + media_time - self._origin[1]
        stop.wait(max(0.0, due - time.time()))
        return due
