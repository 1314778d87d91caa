"""Continuous recording: a camera's record stream cut into MP4 segments by stream copy, and
any time range exported later by stitching the segments' packets, with no re-encode."""

from __future__ import annotations

import io
import itertools
import logging
import statistics
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import av
import av.video.stream
from sqlalchemy import select

from ingest.ring import EncodedPacket, PacketRing
from storage.database.engine import to_datetime
from storage.database.index import EventIndex
from storage.database.recordings import RecordingRow
from storage.media.clips import ClipError, remux_to_mp4
from storage.media.objects import StoredObject, object_key
from storage.media.spool import Spool, SpoolEntry, SpoolFullError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Segment:
    """Whole GOPs of one connection, from `start` (wall time of the first frame) to `end`
    (where the next segment starts, or just past the last frame)."""

    camera_id: str
    packets: list[EncodedPacket]
    start: float
    end: float

    @property
    def first_pts(self) -> int:
        return self.packets[0].pts if self.packets[0].pts is not None else 0


class SegmentCutter:
    """Cuts one camera's packet ring into consecutive segments of about `segment_s`: each
    starts at a keyframe, and no packet is in two segments or left out of all of them
    (as long as `poll` runs more often than the ring forgets). A reconnection ends a
    segment: packets of two connections never share a file.

    Example:
        >>> from fractions import Fraction
        >>> from ingest.ring import StreamInfo
        >>> info = StreamInfo(codec="h264", width=2, height=2, time_base=Fraction(1, 10),
        ...                   template=None, connection=1)
        >>> ring = PacketRing(60)
        >>> cutter = SegmentCutter("gate", ring, 10.0)
        >>> for t in range(32):  # 1 frame a second, a keyframe every 5
        ...     ring.append(EncodedPacket(data=b"x", pts=10 * t, dts=10 * t, is_keyframe=t % 5 == 0,
        ...                               wall_time=float(t), stream=info))
        >>> [(s.start, s.end, len(s.packets)) for s in cutter.poll()]
        [(0.0, 10.0, 10), (10.0, 20.0, 10)]
        >>> [(s.start, s.end, len(s.packets)) for s in cutter.poll(final=True)]
        [(20.0, 30.0, 10), (30.0, 32.0, 2)]
    """

    def __init__(self, camera_id: str, ring: PacketRing, segment_s: float) -> None:
        self.camera_id = camera_id
        self.ring = ring
        self.segment_s = segment_s
        self._pending: list[list[EncodedPacket]] = []  # GOPs taken for the next segment
        self._taken = float("-inf")  # wall time of the first packet of the last GOP taken
        self._lock = threading.Lock()  # the recording thread and a stopping camera both poll

    def poll(self, final: bool = False) -> list[Segment]:
        """The segments completed since the last call; with `final` (the camera stops), the
        rest too, up to the newest packet."""
        with self._lock:
            return self._poll(final)

    def _poll(self, final: bool) -> list[Segment]:
        segments = []
        for gop in self.ring.gops_after(self._taken, include_open=final):
            first = gop[0]
            if self._pending and (
                first.stream.connection != self._pending[0][0].stream.connection
                or first.wall_time - self._pending[-1][-1].wall_time > 2 * self.segment_s
            ):
                segments.append(self._cut(end=None))  # a new connection, or GOPs were lost
            elif self._pending and first.wall_time - self._start >= self.segment_s:
                segments.append(self._cut(end=first.wall_time))
            self._pending.append(gop)
            self._taken = first.wall_time
        if final and self._pending:
            segments.append(self._cut(end=None))
        return segments

    @property
    def _start(self) -> float:
        return self._pending[0][0].wall_time

    def _cut(self, end: float | None) -> Segment:
        packets = [p for gop in self._pending for p in gop]
        self._pending = []
        if end is None:  # nothing follows: end one frame interval after the last frame
            times = [p.wall_time for p in packets]
            steps = [b - a for a, b in itertools.pairwise(times) if b > a]
            end = times[-1] + (statistics.median(steps) if steps else 0.0)
        return Segment(self.camera_id, packets, packets[0].wall_time, end)


def segment_metadata(segment: Segment, site: str) -> dict[str, str]:
    """What a stored segment carries in its object metadata: enough to index it again."""
    first = segment.packets[0]
    return {
        "site": site,
        "camera": segment.camera_id,
        "start": f"{segment.start:.6f}",
        "end": f"{segment.end:.6f}",
        "connection": str(first.stream.connection),
        "first-pts": str(segment.first_pts),
        "time-base": str(first.stream.time_base),
    }


def recording_row(metadata: Mapping[str, str], stored: StoredObject) -> RecordingRow:
    """The index row of a segment stored as `stored`, from its `segment_metadata`."""
    start, end = to_datetime(float(metadata["start"])), to_datetime(float(metadata["end"]))
    assert start is not None and end is not None
    return RecordingRow(
        site=metadata["site"],
        camera_id=metadata["camera"],
        start=start,
        end=end,
        key=stored.key,
        size=stored.size,
        sha256=stored.sha256,
        connection=int(metadata["connection"]),
        first_pts=int(metadata["first-pts"]),
        time_base=metadata["time-base"],
    )


Stamped = tuple[
    "av.Packet[av.video.stream.VideoStream]", int, int, float
]  # packet, pts, dts, wall time


def _packets(rows: Sequence[RecordingRow], read: Callable[[str], bytes]) -> Iterator[Stamped]:
    """Each segment's packets with their original stream timestamps and wall time, in order."""
    time_base = Fraction(rows[0].time_base)
    origin_wall, origin_pts = rows[0].start.timestamp(), rows[0].first_pts
    for row in rows:
        with av.open(io.BytesIO(read(row.key)), "r") as source:
            video = source.streams.video[0]
            assert video.time_base is not None
            scale = video.time_base / time_base  # the file's units in the stream's
            for packet in source.demux(video):
                if packet.pts is None or packet.dts is None or not packet.size:
                    continue
                pts = row.first_pts + round(packet.pts * scale)
                dts = row.first_pts + round(packet.dts * scale)
                yield packet, pts, dts, origin_wall + float((pts - origin_pts) * time_base)


def _trimmed(packets: Iterator[Stamped], start: float, end: float) -> Iterator[Stamped]:
    """From the last keyframe at or before `start` (the first one, if none is) to the last
    packet before `end`."""
    lead: list[Stamped] = []  # from the latest keyframe so far, until `start` is passed
    started = False
    for item in packets:
        packet, _, _, wall = item
        if wall >= end:
            break
        if started:
            yield item
            continue
        if packet.is_keyframe and (wall <= start or not lead):
            lead = [item]
        elif lead:
            lead.append(item)
        if wall > start and lead:
            started = True
            yield from lead
    if not started:
        yield from lead


def export_range(
    rows: Sequence[RecordingRow],
    read: Callable[[str], bytes],
    start: float,
    end: float,
    target: Path,
) -> tuple[float, float]:
    """Stitch the segments `rows` (see `segments_between`) into the MP4 file `target`,
    from the last keyframe at or before `start` to the last frame before `end`, by stream
    copy; `read` fetches a segment's bytes by key. Returns the wall times of the first and
    last frames written.

    Only segments of one unbroken run are stitched (the one covering most of the range): the
    codec parameters and timestamps change across a reconnection or a restart. The packets
    keep their original timestamps (less the first one's), so the joins have neither a gap
    nor a repeated frame.
    """
    if not rows:
        raise ClipError("no recording covers the requested range")
    runs: list[list[RecordingRow]] = []
    for row in rows:
        last = runs[-1][-1] if runs else None
        # One run: the same connection, on in time and in stream timestamps (a restarted
        # worker numbers its connections from 1 again and its timestamps from 0).
        if (
            last is not None
            and row.connection == last.connection
            and row.start >= last.end - timedelta(seconds=1)
            and row.first_pts > last.first_pts
        ):
            runs[-1].append(row)
        else:
            runs.append([row])
    chosen = max(
        runs,
        key=lambda run: sum(
            min(r.end.timestamp(), end) - max(r.start.timestamp(), start) for r in run
        ),
    )
    time_base = Fraction(chosen[0].time_base)
    written: list[float] = []
    head = read(chosen[0].key)  # its stream is the template; fetched once for both uses

    def fetch(key: str) -> bytes:
        return head if key == chosen[0].key else read(key)

    with (
        av.open(io.BytesIO(head), "r") as first,
        av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream_from_template(first.streams.video[0])
        origin: int | None = None
        for packet, pts, dts, wall in _trimmed(_packets(chosen, fetch), start, end):
            origin = pts if origin is None else origin
            packet.pts, packet.dts = pts - origin, dts - origin
            packet.time_base, packet.stream = time_base, stream
            out.mux(packet)
            written.append(wall)
    if not written:
        raise ClipError("the recordings hold no keyframe before the requested end")
    return written[0], written[-1]


class SegmentLoop(ABC):
    """Once every `poll_s`, cuts each added camera's ring into segments (`SegmentCutter`,
    about `segment_s` each) and hands them to `keep`; a camera removed has the rest of its
    ring handed over then. What keeping means is the subclass's."""

    def __init__(self, work_dir: Path, poll_s: float = 1.0) -> None:
        self.work_dir = work_dir
        self.poll_s = poll_s
        self._cameras: dict[str, tuple[str, SegmentCutter]] = {}
        self._lock = threading.Lock()  # cameras are added and removed from other threads
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    @abstractmethod
    def keep(self, site: str, segments: Sequence[Segment]) -> None:
        """Keep `segments` of a camera of `site` (called from the loop's thread)."""

    def add_camera(self, camera_id: str, site: str, ring: PacketRing, segment_s: float) -> None:
        with self._lock:
            self._cameras[camera_id] = (site, SegmentCutter(camera_id, ring, segment_s))

    def remove_camera(self, camera_id: str) -> None:
        """Stop cutting a camera; what its ring holds is kept now."""
        with self._lock:
            cut = self._cameras.pop(camera_id, None)
        if cut is None:
            return
        try:
            self.keep(cut[0], cut[1].poll(final=True))
        except Exception:  # a stopping worker must go on stopping
            log.exception("the last segments of camera %s were not kept", camera_id)

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for camera_id in list(self._cameras):
            self.remove_camera(camera_id)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            with self._lock:
                cameras = list(self._cameras.values())
            for site, cutter in cameras:
                try:
                    self.keep(site, cutter.poll())
                except Exception:
                    log.exception("segments of camera %s were not kept", cutter.camera_id)


class SegmentRecorder(SegmentLoop):
    """Records cameras continuously: their segments are remuxed to MP4 and handed to the
    spool; a segment is indexed when its upload is verified (`uploaded`, the uploader's
    callback for recordings), from the object's metadata alone, so a segment spooled before a
    crash is indexed after the restart.

    Example:
        >>> recorder = SegmentRecorder(spool, index, work_dir)  # doctest: +SKIP
        >>> recorder.add_camera("gate", "hq", ring, segment_s=60)  # doctest: +SKIP
        >>> Uploader(spool, store, {"recording": recorder.uploaded})  # doctest: +SKIP
    """

    def __init__(
        self, spool: Spool, index: EventIndex, work_dir: Path, poll_s: float = 1.0
    ) -> None:
        super().__init__(work_dir, poll_s)
        self.spool = spool
        self.index = index

    def keep(self, site: str, segments: Sequence[Segment]) -> None:
        for segment in segments:
            name = f"{segment.camera_id}-{segment.start:.3f}.mp4"
            path = self.work_dir / name
            remux_to_mp4(segment.packets, path)
            key = object_key(site, segment.camera_id, segment.start, f"recordings/{name}")
            try:
                self.spool.add(path, key, "video/mp4", segment_metadata(segment, site), "recording")
            except SpoolFullError:
                path.unlink(missing_ok=True)
                log.warning("spool full: recording segment %s dropped", key)

    def uploaded(self, entry: SpoolEntry, stored: StoredObject) -> None:
        """Index a segment whose upload was verified (once, even if called again)."""
        with self.index.sessions.begin() as session:
            known = select(RecordingRow.id).where(RecordingRow.key == stored.key)
            if session.scalars(known).first() is None:
                session.add(recording_row(entry.metadata, stored))
