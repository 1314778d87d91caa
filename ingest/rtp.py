"""RTP as GB/T 28181 devices send a camera's video: an MPEG program stream (PS) cut into RTP
packets (payload type 96, PS/90000), over UDP or over TCP framed as RFC 4571 says (each packet
after its length in two bytes).

Packets are put back in sequence order (a few may arrive out of it over UDP), gaps are counted
as lost, and packets from a source or SSRC the session did not agree on are dropped and
counted; what remains is the PS byte stream, which FFmpeg's MPEG-PS demuxer reads through
`RtpPsInput.read` like a file, so a GB/T 28181 channel's packets go to the same ring, decoder
and health counters as an RTSP camera's."""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

SEQUENCES = 1 << 16
RESYNC_GAP = 3000  # a jump this far ahead is a sender that started over, not a loss


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet's header fields and payload (RFC 3550)."""

    sequence: int
    timestamp: int
    ssrc: int
    payload_type: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    """The packet in `data`; ValueError naming what is wrong with it.

    Example:
        >>> packet = parse_rtp(bytes([0x80, 0xE0, 0, 7, 0, 0, 0x23, 0x28, 0, 0, 0, 42]) + b"PS")
        >>> packet.sequence, packet.timestamp, packet.ssrc, packet.marker, packet.payload
        (7, 9000, 42, True, b'PS')
        >>> parse_rtp(b"\\x40" + bytes(11))
        Traceback (most recent call last):
        ValueError: not RTP version 2
    """
    if len(data) < 12:
        raise ValueError("shorter than an RTP header")
    first, second = data[0], data[1]
    if first >> 6 != 2:
        raise ValueError("not RTP version 2")
    start = 12 + 4 * (first & 0x0F)  # after the contributing sources
    if first & 0x10:  # a header extension: its length in 32-bit words after 4 bytes
        if len(data) < start + 4:
            raise ValueError("the header extension runs past the packet")
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    end = len(data) - (data[-1] if first & 0x20 else 0)  # padding: its count in the last byte
    if start > end:
        raise ValueError("the header runs past the packet")
    sequence, timestamp, ssrc = struct.unpack_from("!HII", data, 2)
    return RtpPacket(sequence, timestamp, ssrc, second & 0x7F, bool(second & 0x80),
                     data[start:end])  # fmt: skip


class Reorder:
    """Gives payloads back in sequence order. A packet that arrives ahead of a missing one is
    held until the missing one comes or `depth` packets are held, then the gap is given up
    and counted as lost; a packet that comes after its place was passed is late (dropped).

    Invariants: every payload is given back at most once and in sequence order (modulo
    2**16); lost + given back + late + held == pushed (a duplicate counts as late).

    Example:
        >>> reorder = Reorder(depth=2)
        >>> [reorder.push(s, bytes([s])) for s in (1, 3, 2, 4)]
        [[b'\\x01'], [], [b'\\x02', b'\\x03'], [b'\\x04']]
        >>> reorder.push(6, b"6"), reorder.push(7, b"7"), reorder.push(8, b"8"), reorder.lost
        ([], [], [b'6', b'7', b'8'], 1)
    """

    def __init__(self, depth: int = 32) -> None:
        self.depth = depth
        self.expected: int | None = None
        self.held: dict[int, bytes] = {}
        self.lost = self.reordered = self.late = self.resyncs = 0

    def push(self, sequence: int, payload: bytes) -> list[bytes]:
        if self.expected is None:
            self.expected = sequence
        ahead = (sequence - self.expected) % SEQUENCES
        if ahead >= SEQUENCES // 2 or sequence in self.held:
            self.late += 1  # its place was passed, or it came twice
            return []
        if ahead > RESYNC_GAP:
            self.resyncs += 1
            given = [self.held.pop(s) for s in sorted(self.held, key=self._ahead)]
            self.expected = (sequence + 1) % SEQUENCES
            return [*given, payload]
        if ahead > 0:
            self.held[sequence] = payload
            if len(self.held) <= self.depth:
                return []
            first = min(self.held, key=self._ahead)
            self.lost += self._ahead(first)  # given up: the gap before the oldest held
            self.expected = first
        elif self.held:
            self.reordered += 1  # came after packets that followed it
            self.held[sequence] = payload
        else:
            self.expected = (sequence + 1) % SEQUENCES
            return [payload]
        return self._drain()

    def _ahead(self, sequence: int) -> int:
        assert self.expected is not None
        return (sequence - self.expected) % SEQUENCES

    def _drain(self) -> list[bytes]:
        assert self.expected is not None
        given = []
        while self.expected in self.held:
            given.append(self.held.pop(self.expected))
            self.expected = (self.expected + 1) % SEQUENCES
        return given


class PacketSource(Protocol):
    """Where RTP packets come from: a UDP socket, or a TCP connection in RFC 4571 frames."""

    def receive(self, timeout_s: float) -> tuple[bytes, str] | None:
        """One packet and the host it came from; None after `timeout_s` without one, or
        when the connection has ended."""
        ...

    def close(self) -> None: ...


class UdpPackets:
    """RTP packets arriving on a bound UDP socket (from anyone: the filter decides)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def receive(self, timeout_s: float) -> tuple[bytes, str] | None:
        self.sock.settimeout(timeout_s)
        try:
            data, source = self.sock.recvfrom(65536)
        except TimeoutError:
            return None
        return data, str(source[0])

    def close(self) -> None:
        self.sock.close()


class TcpPackets:
    """RTP packets on a TCP connection, each after its length in two bytes (RFC 4571)."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        peer = connection.getpeername()
        self.host = str(peer[0])
        self._buffer = bytearray()

    def _fill(self, size: int, timeout_s: float) -> bool:
        self.connection.settimeout(timeout_s)
        while len(self._buffer) < size:
            try:
                chunk = self.connection.recv(max(65536, size - len(self._buffer)))
            except TimeoutError:
                return False
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def receive(self, timeout_s: float) -> tuple[bytes, str] | None:
        if not self._fill(2, timeout_s):
            return None
        size = int.from_bytes(self._buffer[:2], "big")
        if not self._fill(2 + size, timeout_s):
            return None
        frame = bytes(self._buffer[2 : 2 + size])
        del self._buffer[: 2 + size]
        return frame, self.host

    def close(self) -> None:
        self.connection.close()


def accept_from(listener: socket.socket, hosts: Collection[str], timeout_s: float,
                counts: Counter[str]) -> socket.socket | None:  # fmt: skip
    """The first connection to `listener` from one of `hosts` within `timeout_s`; others are
    closed at once and counted as from the wrong source."""
    listener.settimeout(timeout_s)
    while True:
        try:
            connection, peer = listener.accept()
        except TimeoutError:
            return None
        if str(peer[0]) in hosts:
            return connection
        counts["wrong source"] += 1
        connection.close()


class RtpPsInput:
    """The PS byte stream of one RTP session, read like a file by FFmpeg's demuxer.

    Only packets from `hosts` with `ssrc` (None: the first packet's) and a payload type of
    `payload_types` are taken; the others are dropped and counted in `counts` ("wrong
    source", "wrong SSRC", "wrong payload type", "malformed"). `read` answers b"" (the end of
    the stream) after `timeout_s` without a packet, so a stalled device ends the stream.

    Example:
        >>> class Two:
        ...     packets = [bytes([0x80, 96, 0, s, 0, 0, 0, 0, 0, 0, 0, 9]) + b"ab" for s in (2, 1)]
        ...     def receive(self, timeout_s):
        ...         return (self.packets.pop(), "10.0.0.9") if self.packets else None
        ...     def close(self): pass
        >>> stream = RtpPsInput(Two(), {"10.0.0.9"}, ssrc=9, timeout_s=0.1)
        >>> stream.read(3), stream.read(3), stream.read(3)
        (b'ab', b'ab', b'')
    """

    def __init__(
        self,
        source: PacketSource,
        hosts: Collection[str],
        ssrc: int | None,
        timeout_s: float,
        payload_types: Collection[int] = (96,),
        reorder_depth: int = 32,
    ) -> None:
        self.source = source
        self.hosts = set(hosts)
        self.ssrc = ssrc
        self.timeout_s = timeout_s
        self.payload_types = set(payload_types)
        self.reorder = Reorder(reorder_depth)
        self.counts: Counter[str] = Counter()
        self.received = 0
        self._pending = bytearray()

    def read(self, size: int) -> bytes:
        while not self._pending:
            got = self.source.receive(self.timeout_s)
            if got is None:
                return b""
            self._take(*got)
        chunk = bytes(self._pending[:size])
        del self._pending[:size]
        return chunk

    def _take(self, data: bytes, host: str) -> None:
        if host not in self.hosts:
            self.counts["wrong source"] += 1
            return
        try:
            packet = parse_rtp(data)
        except ValueError:
            self.counts["malformed"] += 1
            return
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        if packet.ssrc != self.ssrc:
            self.counts["wrong SSRC"] += 1
        elif packet.payload_type not in self.payload_types:
            self.counts["wrong payload type"] += 1
        else:
            self.received += 1
            for payload in self.reorder.push(packet.sequence, packet.payload):
                self._pending += payload

    def close(self) -> None:
        self.source.close()
