"""The packet ring keeps whole GOPs within its time and byte bounds."""

from __future__ import annotations

from fractions import Fraction

import pytest

from ingest.ring import EncodedPacket, PacketRing, StreamInfo


def info(connection: int = 1) -> StreamInfo:
    return StreamInfo(
        codec="h264",
        width=64,
        height=64,
        time_base=Fraction(1, 90000),
        template=None,
        connection=connection,
    )


def packets(
    start: float, count: int, gop: int, stream: StreamInfo, size: int = 10
) -> list[EncodedPacket]:
    return [
        EncodedPacket(
            data=b"x" * size,
            pts=i,
            dts=i,
            is_keyframe=i % gop == 0,
            wall_time=start + i * 0.1,
            stream=stream,
        )
        for i in range(count)
    ]


def test_drops_packets_before_the_first_keyframe() -> None:
    ring = PacketRing(max_seconds=60)
    stream = info()
    for p in packets(0.0, 12, 10, stream)[3:]:
        ring.append(p)
    held = ring.window(0.0, 100.0)
    assert held[0].is_keyframe and held[0].wall_time == 1.0
    assert len(held) == 2


def test_keeps_at_least_max_seconds_from_a_keyframe() -> None:
    ring = PacketRing(max_seconds=3.0)
    for p in packets(0.0, 100, 10, info()):
        ring.append(p)
    held = ring.window(0.0, 100.0)
    assert held[0].is_keyframe
    # newest is 9.9 s; horizon 6.9 s; the GOP starting at 6.0 is needed to cover it
    assert held[0].wall_time == 6.0
    assert ring.seconds >= 3.0


def test_byte_bound_drops_whole_gops() -> None:
    ring = PacketRing(max_seconds=1000, max_bytes=250)
    for p in packets(0.0, 100, 10, info()):
        ring.append(p)
    assert ring.nbytes <= 250
    assert ring.window(0, 100)[0].is_keyframe


def test_a_gop_beyond_every_bound_is_dropped() -> None:
    ring = PacketRing(max_seconds=5, max_bytes=10_000)
    for p in packets(0.0, 200, 1000, info()):  # one keyframe, then 20 s of P-frames
        ring.append(p)
    assert ring.nbytes <= 10_000
    assert ring.seconds <= 10.0


def test_window_starts_at_the_keyframe_before_start_and_ends_at_end() -> None:
    ring = PacketRing(max_seconds=60)
    for p in packets(0.0, 100, 10, info()):
        ring.append(p)
    held = ring.window(3.55, 5.0)
    assert held[0].wall_time == 3.0 and held[0].is_keyframe
    assert abs(held[-1].wall_time - 5.0) < 1e-9


def test_window_takes_the_connection_covering_most_of_it() -> None:
    ring = PacketRing(max_seconds=60)
    for p in packets(0.0, 20, 10, info(1)) + packets(2.5, 20, 10, info(2)):
        ring.append(p)  # connection 1: 0.0-1.9 s; a gap; connection 2: 2.5-4.4 s
    early = ring.window(0.5, 3.0)
    assert {p.stream.connection for p in early} == {1}
    assert early[0].wall_time == 0.0 and early[-1].wall_time == pytest.approx(1.9)
    late = ring.window(1.5, 4.0)
    assert {p.stream.connection for p in late} == {2}
    assert late[0].wall_time == 2.5 and late[0].is_keyframe
    assert ring.window(10.0, 11.0) == []
