"""Wall-clock times from PTS: bursts keep their spacing, jumps re-anchor, drift is followed."""

from __future__ import annotations

import pytest

from ingest.clock import PtsClock


def test_a_late_burst_keeps_the_frames_spacing() -> None:
    clock = PtsClock(jump_s=2.0)
    for n in range(20):
        clock.map(n * 0.1, 100.0 + n * 0.1)
    # a network hiccup: the next second of frames arrives at once, at 103.0
    burst = [clock.map(2.0 + n * 0.1, 103.0) for n in range(10)]
    assert burst == pytest.approx([102.0 + n * 0.1 for n in range(10)], abs=0.05)
    assert clock.jumps == 0


def test_the_probe_burst_is_not_a_jump() -> None:
    clock = PtsClock(jump_s=2.0, warmup_s=5.0)
    # FFmpeg's probe held 3 s of frames and hands them out at once, then real time follows
    for n in range(30):
        clock.map(n * 0.1, 103.0)
    after = [clock.map(3.0 + n * 0.1, 103.0 + n * 0.1) for n in range(1, 20)]
    assert after == pytest.approx([103.0 + n * 0.1 for n in range(1, 20)])
    assert clock.jumps == 0


def test_pts_wrap_and_camera_clock_reset_re_anchor_and_count() -> None:
    clock = PtsClock(jump_s=2.0, warmup_s=0.0)
    for n in range(100):
        clock.map(95_000.0 + n * 0.1, 1000.0 + n * 0.1)
    wrapped = clock.map(0.0, 1010.0)  # a 32-bit 90 kHz RTP clock wrapped (~13.25 h)
    assert wrapped == pytest.approx(1010.0)
    assert clock.map(0.1, 1010.1) == pytest.approx(1010.1)
    assert clock.jumps == 1


def test_times_never_go_backwards() -> None:
    clock = PtsClock()
    first = clock.map(10.0, 500.0)
    assert clock.map(9.0, 500.5) >= first  # a camera sending an older timestamp


def test_slow_drift_is_followed() -> None:
    clock = PtsClock(jump_s=2.0)
    # the camera's clock runs 0.5 % slow: its 1 s is our 1.005 s
    last = 0.0
    for n in range(6000):  # ten minutes at 10 fps
        last = clock.map(n * 0.1, 2000.0 + n * 0.1005)
    assert last == pytest.approx(2000.0 + 5999 * 0.1005, abs=0.5)
    assert clock.jumps == 0


def test_missing_pts_uses_arrival() -> None:
    assert PtsClock().map(None, 42.0) == 42.0
