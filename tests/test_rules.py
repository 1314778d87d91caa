"""Each rule fires on tracks that show its condition and stays silent on tracks that do not."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from analytics.rules import (
    AfterHoursConfig,
    AfterHoursRule,
    CrowdConfig,
    CrowdRule,
    IllegalParkingConfig,
    IllegalParkingRule,
    IntrusionConfig,
    IntrusionRule,
    LineConfig,
    LineCrossingRule,
    LoiteringConfig,
    LoiteringRule,
    Polygon,
    WrongWayConfig,
    WrongWayRule,
)
from common.types import Box, Track

RIGHT_HALF = Polygon([(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)])


def walker(
    track_id: int, xs: list[float], t0: float = 0.0, step: float = 1.0, label: str = "person"
) -> list[Track]:
    """The track as seen at each step, its feet at x (y = 0.8), one step per `step` s."""
    boxes = [Box(x - 0.02, 0.6, x + 0.02, 0.8) for x in xs]
    seen = []
    for n, box in enumerate(boxes):
        history = tuple((t0 + k * step, b) for k, b in enumerate(boxes[: n + 1]))
        seen.append(Track(track_id, label, box, 0.9, t0, t0 + n * step, n + 1, history))
    return seen


def run(rule: object, frames: list[list[Track]], t0: float = 0.0, step: float = 1.0) -> list[int]:
    """How many findings the rule reports at each step."""
    update = rule.update  # type: ignore[attr-defined]
    return [len(update(tracks, t0 + n * step)) for n, tracks in enumerate(frames)]


def test_intrusion_waits_for_the_dwell_and_ignores_other_labels() -> None:
    rule = IntrusionRule("door", RIGHT_HALF, IntrusionConfig(min_dwell_s=2))
    steps = walker(1, [0.3, 0.45, 0.6, 0.7, 0.8, 0.9])
    assert run(rule, [[s] for s in steps]) == [0, 0, 0, 0, 1, 1]  # inside from t=2, fires t=4
    dog = walker(2, [0.6, 0.7, 0.8, 0.9], label="dog")
    assert run(IntrusionRule("door", RIGHT_HALF, IntrusionConfig()), [[s] for s in dog]) == [0] * 4


def test_loitering_only_after_the_dwell() -> None:
    rule = LoiteringRule("bench", RIGHT_HALF, LoiteringConfig(dwell_s=5))
    stays = walker(1, [0.7] * 8)
    assert run(rule, [[s] for s in stays]) == [0, 0, 0, 0, 0, 0, 1, 1]
    passes = walker(2, [0.6, 0.7, 0.8, 0.9, 1.0, 0.3, 0.2, 0.1])
    assert (
        sum(run(LoiteringRule("b", RIGHT_HALF, LoiteringConfig(dwell_s=5)), [[s] for s in passes]))
        == 0
    )


def test_crowd_needs_the_count_for_the_duration() -> None:
    rule = CrowdRule("square", RIGHT_HALF, CrowdConfig(min_count=3, duration_s=2))
    three = [walker(i, [0.6 + 0.1 * i] * 5) for i in range(3)]
    frames = [[w[n] for w in three] for n in range(5)]
    assert run(rule, frames) == [0, 0, 1, 1, 1]
    two = [[w[n] for w in three[:2]] for n in range(5)]
    assert run(CrowdRule("s", RIGHT_HALF, CrowdConfig(min_count=3, duration_s=2)), two) == [0] * 5


def test_wrong_way_against_the_allowed_direction_only() -> None:
    config = WrongWayConfig(direction=(1.0, 0.0), window_s=3)
    against = walker(1, [0.95, 0.9, 0.85, 0.8, 0.75])
    assert run(WrongWayRule("lane", RIGHT_HALF, config), [[s] for s in against])[-1] == 1
    along = walker(2, [0.55, 0.6, 0.65, 0.7, 0.75])
    assert sum(run(WrongWayRule("lane", RIGHT_HALF, config), [[s] for s in along])) == 0


def test_illegal_parking_needs_a_still_vehicle() -> None:
    config = IllegalParkingConfig(stationary_s=3)
    parked = walker(1, [0.7] * 6, label="car")
    assert run(IllegalParkingRule("kerb", RIGHT_HALF, config), [[s] for s in parked]) == [
        0, 0, 0, 1, 1, 1
    ]  # fmt: skip
    rolling = walker(2, [0.55, 0.6, 0.65, 0.7, 0.75, 0.8], label="car")
    assert sum(run(IllegalParkingRule("kerb", RIGHT_HALF, config), [[s] for s in rolling])) == 0
    person = walker(3, [0.7] * 6)
    assert sum(run(IllegalParkingRule("kerb", RIGHT_HALF, config), [[s] for s in person])) == 0


def test_after_hours_follows_the_sites_clock() -> None:
    config = AfterHoursConfig(
        open=[{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "20:00"}],
        timezone="Asia/Shanghai",
    )
    rule = AfterHoursRule("shop", RIGHT_HALF, config)
    shanghai = ZoneInfo("Asia/Shanghai")
    tuesday_noon = datetime(2026, 11, 24, 12, 0, tzinfo=shanghai).timestamp()
    tuesday_night = datetime(2026, 11, 24, 23, 0, tzinfo=shanghai).timestamp()
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=shanghai).timestamp()
    inside = walker(1, [0.7])[0]
    assert rule.update([inside], tuesday_noon) == []
    assert len(rule.update([inside], tuesday_night)) == 1
    assert len(rule.update([inside], saturday_noon)) == 1


def test_line_crossing_counts_each_direction_once_despite_jitter() -> None:
    line = LineCrossingRule(LineConfig(name="gate", points=((0.5, 0.0), (0.5, 1.0))))
    # left to right across x=0.5, with the box jittering on the line on the way
    steps = walker(1, [0.3, 0.4, 0.49, 0.51, 0.495, 0.505, 0.6, 0.7])
    found = [f for s in steps for f in line.update([s], s.last_seen)]
    back = walker(2, [0.8, 0.6, 0.4, 0.2], t0=10.0)
    found += [f for s in back for f in line.update([s], s.last_seen)]
    assert line.counts == {"a_to_b": 1, "b_to_a": 1}
    # Seen from A (top) looking at B (bottom), the image's right is on one's left: so walking
    # to the right in the image is crossing from the right side to the left one, b_to_a.
    assert [f.detail for f in found] == ["b_to_a", "a_to_b"]


def test_line_crossing_ignores_passing_beside_the_segment() -> None:
    line = LineCrossingRule(LineConfig(name="gate", points=((0.5, 0.0), (0.5, 0.5))))
    steps = walker(1, [0.3, 0.4, 0.6, 0.7])  # feet at y = 0.8: below the segment's end
    for s in steps:
        line.update([s], s.last_seen)
    assert line.counts == {"a_to_b": 0, "b_to_a": 0}


# ---- clocks: dwell and standing time count from the zone, and survive a brief lapse ----


def test_loitering_counts_from_entering_the_zone_not_from_first_sight() -> None:
    rule = LoiteringRule("bench", RIGHT_HALF, LoiteringConfig(dwell_s=5))
    comes = walker(1, [0.1, 0.2, 0.3, 0.4, 0.5] + [0.7] * 7)  # 4 s on the way, inside from t=4
    assert run(rule, [[s] for s in comes]) == [0] * 10 + [1, 1]  # 6 s inside at t=10


def test_intrusion_dwell_outlasts_the_track_history() -> None:
    """The tracker keeps 50 points of history; a dwell of 80 steps is still counted."""
    rule = IntrusionRule("door", RIGHT_HALF, IntrusionConfig(min_dwell_s=80))
    stays = [replace(s, history=s.history[-50:]) for s in walker(1, [0.7] * 90)]
    assert run(rule, [[s] for s in stays]) == [0] * 80 + [1] * 10


def test_one_missed_update_does_not_restart_the_clocks() -> None:
    """Each rule sees its condition at every step but one (a missed detection, a jumpy box)."""
    three = [walker(i, [0.6 + 0.1 * i] * 8) for i in range(3)]
    crowd = [[w[n] for w in three] if n != 2 else [w[n] for w in three[:2]] for n in range(8)]
    rule = CrowdRule("square", RIGHT_HALF, CrowdConfig(min_count=3, duration_s=4))
    assert run(rule, crowd) == [0, 0, 0, 0, 1, 1, 1, 1]

    stays = walker(1, [0.7] * 8)
    loiter = LoiteringRule("bench", RIGHT_HALF, LoiteringConfig(dwell_s=5))
    assert run(loiter, [[s] if n != 3 else [] for n, s in enumerate(stays)])[-2:] == [1, 1]

    jumpy = walker(5, [0.7, 0.7, 0.7, 0.76, 0.7, 0.7, 0.7, 0.7], label="car")
    parking = IllegalParkingRule("kerb", RIGHT_HALF, IllegalParkingConfig(stationary_s=6))
    assert run(parking, [[s] for s in jumpy]) == [0] * 6 + [1, 1]
    moves = walker(6, [0.6, 0.6, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8], label="car")
    parking = IllegalParkingRule("kerb", RIGHT_HALF, IllegalParkingConfig(stationary_s=6))
    assert sum(run(parking, [[s] for s in moves])) == 0  # it drove on: standing restarted
