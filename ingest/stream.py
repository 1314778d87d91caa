"""One thread per stream URL: demux with PyAV, keep packets, decode and sample frames."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal
from urllib.parse import urlsplit

import av
import av.container
import av.video
import numpy as np

from common.backoff import Backoff
from common.redact import redact_text
from common.types import Frame
from ingest.clock import PtsClock
from ingest.config import CameraConfig, DetectConfig, IngestConfig
from ingest.ffmpeg_log import count_errors_of_this_thread, stop_counting_this_thread
from ingest.gb28181 import MediaBroker, MediaRefusedError, receive_channel
from ingest.ring import CodecTemplate, EncodedPacket, PacketRing, StreamInfo
from ingest.rtp import RtpPsInput

log = logging.getLogger(__name__)

ConnectionState = Literal["connecting", "streaming", "offline"]
RATE_WINDOW_S = 5.0


class RateWindow:
    """Events per second (and their summed sizes) over the last few seconds.

    Example:
        >>> window = RateWindow(seconds=5.0)
        >>> for t in range(10):
        ...     window.add(100.0 + t * 0.5, size=1000)
        >>> window.rate(105.0), window.size_rate(105.0)
        (2.0, 2000.0)
    """

    def __init__(self, seconds: float = RATE_WINDOW_S) -> None:
        self.seconds = seconds
        self._items: deque[tuple[float, int]] = deque()

    def add(self, at: float, size: int = 0) -> None:
        self._items.append((at, size))

    def _trim(self, now: float) -> float:
        while self._items and self._items[0][0] < now - self.seconds:
            self._items.popleft()
        return max(1.0, min(self.seconds, now - self._items[0][0])) if self._items else 1.0

    def rate(self, now: float) -> float:
        span = self._trim(now)
        return len(self._items) / span

    def size_rate(self, now: float) -> float:
        span = self._trim(now)
        return sum(size for _, size in self._items) / span


@dataclass(frozen=True, slots=True)
class StreamStats:
    """A point-in-time view of one stream connection's health and counters."""

    state: ConnectionState
    input_fps: float
    decode_fps: float
    bitrate_kbps: float
    expected_fps: float | None
    packets: int
    decoded_frames: int
    corrupt_packets: int
    decode_errors: int
    timestamp_jumps: int
    media_lost: int  # RTP packets never received (GB/T 28181)
    media_dropped: int  # RTP packets dropped: another source or SSRC, malformed, late
    reconnects: int
    last_packet_at: float | None
    offline_since: float | None
    online_since: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Sampling:
    """Decode this stream and hand frames at `detect.fps`, scaled to the detect size, to
    `on_frame`; without `on_frame` frames are decoded (for health) but never converted."""

    detect: DetectConfig
    on_frame: Callable[[Frame], None] | None


class StreamReader:
    """Reads one URL of a camera until stopped, reconnecting with backoff when it fails.

    With a `ring`, every video packet is kept there (for clips); with `sampling`, packets are
    decoded and frames handed on at the detect rate, scaled in swscale. A reader with only a
    ring never decodes. Exceptions never leave the thread: a broken stream only ever affects
    itself.

    Example:
        >>> cam = CameraConfig(id="gate", site="hq", url="rtsp://127.0.0.1:8554/gate")
        >>> reader = StreamReader(cam, cam.url, IngestConfig(), ring=PacketRing(30))
        >>> reader.stats().state
        'connecting'
    """

    def __init__(
        self,
        camera: CameraConfig,
        url: str,
        settings: IngestConfig,
        ring: PacketRing | None = None,
        sampling: Sampling | None = None,
        media: MediaBroker | None = None,
    ) -> None:
        self.camera = camera
        self.url = url
        self.settings = settings
        self.ring = ring
        self.sampling = sampling
        self.is_file = urlsplit(url).scheme.lower() == "file"
        self.is_channel = urlsplit(url).scheme.lower() == "gb28181"
        self.media = media
        self._rtp: RtpPsInput | None = None  # a GB/T 28181 channel's current RTP session
        self._rtp_before: Counter[str] = Counter()  # what earlier sessions dropped or lost
        self.watchdog_s = camera.watchdog_s or settings.watchdog_s
        self._stop = threading.Event()
        role = "detect" if ring is None else "record" if sampling is None else "main"
        self._thread = threading.Thread(
            target=self._run, name=f"ingest-{camera.id}-{role}", daemon=True
        )
        self._lock = threading.Lock()
        self._state: ConnectionState = "connecting"
        self._error: str | None = None
        self._packets = RateWindow()
        self._decoded = RateWindow()
        self._counts = {"packets": 0, "decoded": 0, "corrupt": 0, "errors": 0}
        self._jumps_before = 0  # timestamp jumps of earlier connections
        self._clock = PtsClock(settings.timestamp_jump_s)
        self._expected_fps: float | None = None
        self._reconnects = 0
        self._connections = 0
        self._last_packet_at: float | None = None
        self._offline_since: float | None = None
        self._online_since: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish; `join` waits for it (a blocked read ends by the watchdog)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread: by default up to the watchdog time (a blocked read ends)."""
        self._thread.join(self.watchdog_s + 2.0 if timeout is None else timeout)

    @property
    def finished(self) -> bool:
        """The thread has ended (stopped, or a file without loop was read to its end)."""
        return not self._thread.is_alive()

    def _media_counts(self) -> Counter[str]:
        """What this channel's RTP sessions lost and dropped, by reason."""
        counts = Counter(self._rtp_before)
        if (rtp := self._rtp) is not None:
            counts.update(rtp.counts)
            counts.update(lost=rtp.reorder.lost, late=rtp.reorder.late)
        return +counts

    def stats(self) -> StreamStats:
        now = time.time()
        media = self._media_counts()
        with self._lock:
            state, error = self._state, self._error
            offline_since = self._offline_since
            silent = now - self._last_packet_at if self._last_packet_at is not None else 0.0
            if state == "streaming" and silent > self.watchdog_s:
                # The blocked read ends by FFmpeg's timeout later; report the stall now.
                state, error = "offline", f"stalled: no packet for {silent:.1f}s"
                offline_since = self._last_packet_at
            return StreamStats(
                state=state,
                input_fps=round(self._packets.rate(now), 2),
                decode_fps=round(self._decoded.rate(now), 2),
                bitrate_kbps=round(self._packets.size_rate(now) * 8 / 1000, 1),
                expected_fps=self._expected_fps,
                packets=self._counts["packets"],
                decoded_frames=self._counts["decoded"],
                corrupt_packets=self._counts["corrupt"],
                decode_errors=self._counts["errors"],
                timestamp_jumps=self._jumps_before + self._clock.jumps,
                media_lost=media["lost"],
                media_dropped=media.total() - media["lost"],
                reconnects=self._reconnects,
                last_packet_at=self._last_packet_at,
                offline_since=offline_since,
                online_since=self._online_since,
                error=error,
            )

    def _run(self) -> None:
        backoff = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        count_errors_of_this_thread(self._count_decoder_error)
        try:
            while not self._stop.is_set():
                try:
                    self._connect_once(backoff)
                except Exception:  # never let the thread die: the camera would be lost for good
                    log.exception("camera %s: reader failed; retrying", self.camera.id)
                    self._stop.wait(self.settings.reconnect_max_s)
        finally:
            stop_counting_this_thread()
        with self._lock:
            if self._state != "offline":
                self._state, self._error = "offline", "stopped"

    def _count_decoder_error(self) -> None:
        with self._lock:
            self._counts["errors"] += 1

    def _connect_once(self, backoff: Backoff) -> None:
        started = time.monotonic()
        try:
            self._read_once(backoff)
            error = "end of stream"
        except Exception as exc:  # any failure of this stream stays with this stream
            error = redact_text(f"{type(exc).__name__}: {exc}")
        if self._stop.is_set():
            return
        if self.is_file and error == "end of stream":
            if not self.camera.loop:
                with self._lock:
                    self._state, self._error = "offline", "end of file"
                self._stop.set()
                return
            if time.monotonic() - started < 1.0:
                self._stop.wait(1.0)  # an empty file must not loop at full speed
            return
        self._went_offline(error)
        delay = backoff.next_delay()
        log.warning(
            "camera %s: %s offline (%s); reconnecting in %.1fs",
            self.camera.id,
            urlsplit(self.url).path or "stream",
            error,
            delay,
        )
        self._stop.wait(delay)

    def _went_offline(self, error: str) -> None:
        with self._lock:
            if self._state != "offline":
                self._offline_since = self._last_packet_at or time.time()
                self._online_since = None
            self._state, self._error = "offline", error
            self._reconnects += 1

    @contextmanager
    def _open(self) -> Iterator[av.container.InputContainer]:
        # On a read timeout FFmpeg's RTSP demuxer first hands out the frame it still held and
        # only the next read fails, so half the watchdog per read detects a stall in one.
        timeouts = (self.settings.open_timeout_s, self.watchdog_s / 2)
        if not self.is_channel:
            with av.open(
                self.camera.open_url(self.url),
                options=self.camera.demux_options(self.url, self.settings.probe_s),
                timeout=timeouts,
            ) as container:
                yield container
            return
        if self.media is None:
            raise MediaRefusedError("no GB/T 28181 signalling service to ask the device for video")
        with receive_channel(
            self.camera.id,
            self.url,
            self.camera.transport,
            self.media,
            self.settings.media(),
            timeouts,
            self._stop,
        ) as stream:
            self._rtp = stream
            probe = {"analyzeduration": str(int(self.settings.probe_s * 1_000_000))}
            try:
                with av.open(stream, "r", format="mpeg", options=probe) as container:
                    yield container
            finally:
                self._rtp_before = self._media_counts()
                self._rtp = None

    def _read_once(self, backoff: Backoff) -> None:
        with self._open() as container:
            if not container.streams.video:
                raise ValueError("the source has no video stream")
            video = container.streams.video[0]
            context = video.codec_context
            context.thread_count = 1  # one core decodes many cameras: no frame threads
            if self.sampling is not None and self.sampling.detect.decode == "keyframes":
                context.skip_frame = "NONKEY"
            rate = video.average_rate or video.guessed_rate
            self._connections += 1
            info = StreamInfo(
                codec=context.name,
                width=context.width,
                height=context.height,
                time_base=video.time_base or Fraction(1, 90000),
                template=CodecTemplate(video),
                connection=self._connections,
            )
            with self._lock:
                self._expected_fps = float(rate) if rate else None
                self._jumps_before += self._clock.jumps
            self._clock = PtsClock(self.settings.timestamp_jump_s)
            file_clock = _FileClock(self.camera.realtime) if self.is_file else None
            next_sample = 0.0
            for packet in container.demux(video):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                if file_clock is None:
                    arrival = time.time()
                else:
                    arrival = file_clock.arrival(packet, self._stop)
                pts = packet.pts if packet.pts is not None else packet.dts
                wall = self._clock.map(
                    float(pts * info.time_base) if pts is not None else None, arrival
                )
                self._count_packet(packet, arrival, backoff)
                if self.ring is not None:
                    self.ring.append(
                        EncodedPacket(
                            data=bytes(packet),
                            pts=packet.pts,
                            dts=packet.dts,
                            is_keyframe=packet.is_keyframe,
                            wall_time=wall,
                            stream=info,
                        )
                    )
                if self.sampling is not None:
                    next_sample = self._decode(packet, wall, next_sample)

    def _count_packet(
        self, packet: av.Packet[av.video.stream.VideoStream], arrival: float, backoff: Backoff
    ) -> None:
        with self._lock:
            self._last_packet_at = arrival
            self._packets.add(arrival, packet.size)
            self._counts["packets"] += 1
            if packet.is_corrupt:
                self._counts["corrupt"] += 1
            if self._state != "streaming":
                log.info("camera %s: %s streaming", self.camera.id, self.url.rsplit("/", 1)[-1])
                self._state, self._error = "streaming", None
                self._online_since = arrival
                backoff.reset()

    def _decode(
        self, packet: av.Packet[av.video.stream.VideoStream], wall: float, next_sample: float
    ) -> float:
        assert self.sampling is not None
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            with self._lock:
                self._counts["errors"] += 1
            return next_sample
        detect = self.sampling.detect
        for frame in frames:
            with self._lock:
                self._counts["decoded"] += 1
                self._decoded.add(wall)
            if wall < next_sample or self.sampling.on_frame is None:
                continue  # not needed for analytics: never converted
            width, height = detect.size_for(frame.width, frame.height)
            image = frame.to_ndarray(
                width=width,
                height=height,
                format="bgr24",
                interpolation="FAST_BILINEAR",
                threads=1,
            ).astype(np.uint8, copy=False)
            self.sampling.on_frame(Frame(self.camera.id, image, wall))
            next_sample = max(next_sample + 1.0 / detect.fps, wall)
        return next_sample


class _FileClock:
    """Times a file's packets by their media time from the moment it was opened; when
    `realtime`, also releases each only at that time, as a live camera would send it."""

    def __init__(self, realtime: bool) -> None:
        self.realtime = realtime
        self._origin: tuple[float, float] | None = None

    def arrival(
        self, packet: av.Packet[av.video.stream.VideoStream], stop: threading.Event
    ) -> float:
        if packet.pts is None or packet.time_base is None:
            return time.time()
        media_time = float(packet.pts * packet.time_base)
        if self._origin is None:
            self._origin = (time.time(), media_time)
        due = self._origin[0] + media_time - self._origin[1]
        if self.realtime:
            stop.wait(max(0.0, due - time.time()))
        return due
