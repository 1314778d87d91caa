"""A per-camera ring of encoded packets, kept in whole GOPs, so clips need no re-encode."""

from __future__ import annotations

import io
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import av.stream


class CodecTemplate:
    """A stream's codec parameters, kept usable after the input it came from is closed.

    Remuxing needs the input stream as a template (`add_stream_from_template`), but a
    camera's input container closes on every reconnect. The parameters are copied into a
    stream of an output container that is never written, which lives as long as this object.
    """

    def __init__(self, source: av.stream.Stream) -> None:
        self._holder = av.open(io.BytesIO(), "w", format="matroska")
        self.stream = self._holder.add_stream_from_template(source)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    """What a muxer needs to write a stream's packets; new for every connection."""

    codec: str
    width: int
    height: int
    time_base: Fraction
    template: CodecTemplate | None
    connection: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedPacket:
    """One compressed video packet with the wall-clock time it arrived."""

    data: bytes
    pts: int | None
    dts: int | None
    is_keyframe: bool
    wall_time: float
    stream: StreamInfo


class PacketRing:
    """Keeps the last `max_seconds` (and at most `max_bytes`) of a camera's packets.

    Packets are grouped into GOPs that start at a keyframe; whole GOPs are dropped from the
    old end, so whatever the ring returns can be decoded from its first packet. Packets that
    arrive before the first keyframe of a connection are discarded.

    Example:
        >>> from fractions import Fraction
        >>> info = StreamInfo(codec="h264", width=2, height=2, time_base=Fraction(1, 90000),
        ...                   template=None, connection=1)
        >>> ring = PacketRing(max_seconds=10)
        >>> for t in range(30):
        ...     ring.append(EncodedPacket(data=b"x", pts=t, dts=t, is_keyframe=t % 5 == 0,
        ...                               wall_time=float(t), stream=info))
        >>> [p.wall_time for p in ring.window(21.5, 23.0)]
        [20.0, 21.0, 22.0, 23.0]
    """

    def __init__(self, max_seconds: float, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self._gops: deque[list[EncodedPacket]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def append(self, packet: EncodedPacket) -> None:
        with self._lock:
            if packet.is_keyframe:
                self._gops.append([packet])
            elif self._gops and self._gops[-1][-1].stream is packet.stream:
                self._gops[-1].append(packet)
            else:
                return  # no keyframe yet on this connection: undecodable
            self._bytes += len(packet.data)
            horizon = packet.wall_time - self.max_seconds
            while len(self._gops) > 1 and (
                self._gops[1][0].wall_time <= horizon or self._bytes > self.max_bytes
            ):
                self._bytes -= sum(len(p.data) for p in self._gops.popleft())
            only = self._gops[0]
            if self._bytes > self.max_bytes or only[0].wall_time < horizon - self.max_seconds:
                # One GOP beyond every bound (a camera that hardly sends keyframes): memory
                # stays bounded; the ring refills from the next keyframe.
                self._gops.clear()
                self._bytes = 0

    def window(self, start: float, end: float, anchor: float | None = None) -> list[EncodedPacket]:
        """Packets from the last keyframe at or before `start` up to `end`, of one connection.

        Frames from before a reconnection are never glued to frames after it: their
        timestamps and even codec parameters may differ. When the window spans one, the
        connection holding `anchor` (an event's start) is taken, else the one that covers
        most of the window.
        """
        with self._lock:
            gops = list(self._gops)
        runs: dict[int, list[list[EncodedPacket]]] = {}
        for gop in gops:
            if gop[0].wall_time > end:
                break
            runs.setdefault(gop[0].stream.connection, []).append(gop)

        def from_start(run: list[list[EncodedPacket]]) -> list[EncodedPacket]:
            first = max((i for i, gop in enumerate(run) if gop[0].wall_time <= start), default=0)
            return [p for gop in run[first:] for p in gop if p.wall_time <= end]

        def score(packets: list[EncodedPacket]) -> tuple[bool, int]:
            holds_anchor = (
                anchor is not None
                and bool(packets)
                and packets[0].wall_time <= anchor <= packets[-1].wall_time
            )
            return holds_anchor, sum(1 for p in packets if p.wall_time >= start)

        best = max((from_start(run) for run in runs.values()), key=score, default=[])
        return best if score(best)[1] else []

    def gops_after(self, after: float, include_open: bool = False) -> list[list[EncodedPacket]]:
        """The GOPs whose first packet arrived after wall time `after`, oldest first; the
        newest, still growing, only with `include_open`.

        Example:
            >>> from fractions import Fraction
            >>> info = StreamInfo(codec="h264", width=2, height=2,
            ...                   time_base=Fraction(1, 90000), template=None, connection=1)
            >>> ring = PacketRing(max_seconds=10)
            >>> for t in range(12):
            ...     ring.append(EncodedPacket(data=b"x", pts=t, dts=t, is_keyframe=t % 5 == 0,
            ...                               wall_time=float(t), stream=info))
            >>> [[p.wall_time for p in gop] for gop in ring.gops_after(-1.0)]
            [[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]]
        """
        with self._lock:
            newest = self._gops[-1] if self._gops else None
            return [
                list(gop)
                for gop in self._gops
                if gop[0].wall_time > after and (include_open or gop is not newest)
            ]

    @property
    def seconds(self) -> float:
        """How much time the ring holds now."""
        with self._lock:
            if not self._gops:
                return 0.0
            return self._gops[-1][-1].wall_time - self._gops[0][0].wall_time

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes
