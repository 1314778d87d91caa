"""Wall-clock times for packets, from their stream timestamps (PTS) and arrival times."""

from __future__ import annotations


class PtsClock:
    """Maps a stream's PTS (in seconds) to wall-clock time, one instance per connection.

    The camera's own clock is never trusted; the mapping is `pts + offset`, where the offset
    is the smallest `arrival - pts` seen: the least-delayed packet. So packets that arrive in
    a burst after a network hiccup keep their real spacing instead of all getting the same
    arrival time. A timestamp jump (PTS wrap, a camera resetting its clock, a long
    stall) shows as an offset change of more than `jump_s`: the clock re-anchors on the
    packet's arrival and counts the jump (not during the first `warmup_s`, while FFmpeg's
    probe buffer drains in a burst). Slow drift between the camera's clock and ours is
    followed by pulling the offset a little towards each arrival. Times never go backwards.

    Example:
        >>> clock = PtsClock(jump_s=2.0)
        >>> [clock.map(pts, arrival) for pts, arrival in [(0.0, 100.5), (0.1, 100.5), (0.2, 100.6)]]
        [100.5, 100.5, 100.6]
        >>> round(clock.map(50.0, 110.7), 3), clock.jumps  # the camera's clock leapt ahead
        (110.7, 1)
    """

    DRIFT_GAIN = 0.002

    def __init__(self, jump_s: float = 2.0, warmup_s: float = 5.0) -> None:
        self.jump_s = jump_s
        self.warmup_s = warmup_s
        self.jumps = 0
        self._offset: float | None = None
        self._first_arrival: float | None = None
        self._last = float("-inf")

    def map(self, pts_s: float | None, arrival: float) -> float:
        if pts_s is None:
            wall = arrival
        else:
            offset = arrival - pts_s
            if self._offset is None or self._first_arrival is None:
                self._offset = offset
                self._first_arrival = arrival
            elif abs(offset - self._offset) > self.jump_s:
                self._offset = offset
                if arrival - self._first_arrival > self.warmup_s:
                    self.jumps += 1
            elif offset < self._offset:
                self._offset = offset
            else:
                self._offset += (offset - self._offset) * self.DRIFT_GAIN
            wall = pts_s + self._offset
        wall = max(wall, self._last)
        self._last = wall
        return wall
