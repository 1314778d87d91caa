"""Each rule fires on tracks that show its condition and stays silent on tracks that do not."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import Field, ValidationError

from analytics.config import EventTimingConfig, ZoneConfig
from analytics.health import ConditionEvents
from analytics.objects import StaticObjectConfig
from analytics.pipeline import CameraAnalytics, CameraRules
from analytics.rules import (
    AfterHoursConfig,
    AfterHoursRule,
    CrowdConfig,
    CrowdRule,
    Finding,
    IllegalParkingConfig,
    IllegalParkingRule,
    IntrusionConfig,
    IntrusionRule,
    LineConfig,
    LineCrossingRule,
    LoiteringConfig,
    LoiteringRule,
    Polygon,
    Schedule,
    TrackRuleConfig,
    WrongWayConfig,
    WrongWayRule,
    ZoneRule,
    ZoneTrackRule,
)
from analytics.tracker import TrackerConfig
from common.types import Box, Track
from tests.sinks import Collected

RIGHT_HALF = Polygon([(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)])


def walker(
    track_id: int, xs: list[float], t0: float = 0.0, step: float = 1.0, label: str = "person"
) -> list[Track]:
    """The track as seen at each step, its feet at x (y = 0.8), one step per `step` s."""
    boxes = [Box(x - 0.02, 0.6, x + 0.02, 0.8) for x in xs]
    seen = []
    for n, box in enumerate(boxes):
        history = tuple((t0 + k * step, b) for k, b in enumerate(boxes[: n + 1]))
        seen.append(
            Track(
                id=track_id,
                label=label,
                box=box,
                score=0.9,
                first_seen=t0,
                last_seen=t0 + n * step,
                hits=n + 1,
                history=history,
            )
        )
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


# ---- schedules: a rule watches only during its `active` periods, in the site's time zone ----

BERLIN = ZoneInfo("Europe/Berlin")
WORKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def at(day: int, hour: int, minute: int = 0, zone: ZoneInfo = BERLIN) -> float:
    """Epoch seconds of November `day`, 2026 at hour:minute in `zone` (the 23rd: a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=zone).timestamp()


def test_a_rule_watches_only_in_its_period_through_midnight_in_its_timezone() -> None:
    config = IntrusionConfig(active=[{"start": "22:00", "end": "06:00"}], timezone="Europe/Berlin")
    rule = IntrusionRule("yard", RIGHT_HALF, config)
    inside = walker(1, [0.7])[0]
    moments = {
        "tue 12:00": at(24, 12),
        "tue 21:59": at(24, 21, 59),
        "tue 22:00": at(24, 22),
        "wed 03:00": at(25, 3),
        "wed 05:59": at(25, 5, 59),
        "wed 06:00": at(25, 6),
        "wed 23:00 in Shanghai": at(25, 23, zone=ZoneInfo("Asia/Shanghai")),  # 16:00 in Berlin
    }
    reported = {name: len(rule.update([inside], t)) for name, t in moments.items()}
    assert reported == {
        "tue 12:00": 0,
        "tue 21:59": 0,
        "tue 22:00": 1,
        "wed 03:00": 1,
        "wed 05:59": 1,
        "wed 06:00": 0,
        "wed 23:00 in Shanghai": 0,
    }


def test_a_rule_watches_only_on_its_days() -> None:
    weekdays = LoiteringConfig(
        dwell_s=5,
        active=[{"days": WORKDAYS, "start": "07:00", "end": "19:00"}],
        timezone="Europe/Berlin",
    )
    for t0, expected in [(at(24, 12), [0] * 6 + [1, 1]), (at(28, 12), [0] * 8)]:  # tue, sat
        rule = LoiteringRule("bench", RIGHT_HALF, weekdays)
        stays = walker(1, [0.7] * 8, t0=t0)
        assert run(rule, [[s] for s in stays], t0=t0) == expected
    # A period through midnight belongs to the day it starts on: friday night is saturday 03:00.
    friday_night = IntrusionConfig(
        active=[{"days": ["fri"], "start": "22:00", "end": "06:00"}], timezone="Europe/Berlin"
    )
    yard = IntrusionRule("yard", RIGHT_HALF, friday_night)
    inside = walker(1, [0.7])[0]
    assert [len(yard.update([inside], at(day, 3))) for day in (27, 28, 29)] == [0, 1, 0]


def test_the_dwell_counts_from_the_start_of_the_period() -> None:
    config = LoiteringConfig(
        dwell_s=5, active=[{"start": "22:00", "end": "06:00"}], timezone="Europe/Berlin"
    )
    t0 = at(24, 22) - 3  # there since 21:59:57
    stays = walker(1, [0.7] * 10, t0=t0)
    assert run(LoiteringRule("bench", RIGHT_HALF, config), [[s] for s in stays], t0=t0) == (
        [0] * 9 + [1]  # more than 5 s after 22:00, not after arriving
    )


def test_a_rule_without_a_schedule_always_watches_and_never_converts_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_conversion(self: Schedule, t: float) -> datetime:
        raise AssertionError("a rule without `active` converted the time")

    monkeypatch.setattr(Schedule, "local", no_conversion)
    rule = IntrusionRule("door", RIGHT_HALF, IntrusionConfig(timezone="Europe/Berlin"))
    inside = walker(1, [0.7])[0]
    assert [len(rule.update([inside], at(day, h))) for day, h in [(24, 3), (24, 12), (28, 23)]] == [
        1, 1, 1
    ]  # fmt: skip
    line = LineCrossingRule(LineConfig(name="gate", points=((0.5, 0.0), (0.5, 1.0))))
    for s in walker(2, [0.3, 0.4, 0.6, 0.7], t0=at(28, 23)):
        line.update([s], s.last_seen)
    assert line.counts == {"a_to_b": 0, "b_to_a": 1}


def test_after_hours_uses_its_timezone_for_open_and_active() -> None:
    config = AfterHoursConfig(
        open=[{"days": WORKDAYS, "start": "08:00", "end": "20:00"}], timezone="Europe/Berlin"
    )
    rule = AfterHoursRule("shop", RIGHT_HALF, config)
    inside = walker(1, [0.7])[0]
    assert rule.update([inside], at(24, 12)) == []  # open
    assert len(rule.update([inside], at(24, 23))) == 1  # closed
    assert len(rule.update([inside], at(24, 12, zone=ZoneInfo("Asia/Shanghai")))) == 1  # 05:00
    # Reported only in the daytime at weekends (a guard walks the site at night):
    weekend_days = AfterHoursConfig(
        open=config.open,
        active=[{"days": ["sat", "sun"], "start": "06:00", "end": "22:00"}],
        timezone="Europe/Berlin",
    )
    rule = AfterHoursRule("shop", RIGHT_HALF, weekend_days)
    moments = [at(24, 23), at(28, 12), at(28, 23)]  # tue night, sat noon, sat night
    assert [len(rule.update([inside], t)) for t in moments] == [0, 1, 0]


def test_a_line_counts_no_crossing_outside_its_period() -> None:
    config = LineConfig(
        name="gate",
        points=((0.5, 0.0), (0.5, 1.0)),
        active=[{"start": "22:00", "end": "06:00"}],
        timezone="Europe/Berlin",
    )
    line = LineCrossingRule(config)
    found = []
    # Across at 21:59:59, on beyond it after 22:00: judged when it happened, not at 22:00.
    for s in walker(1, [0.3, 0.6, 0.7, 0.8], t0=at(24, 22) - 2):
        found += line.update([s], s.last_seen)
    assert (found, line.counts) == ([], {"a_to_b": 0, "b_to_a": 0})
    for s in walker(2, [0.3, 0.6, 0.7, 0.8], t0=at(24, 23)):
        found += line.update([s], s.last_seen)
    assert (len(found), line.counts) == (1, {"a_to_b": 0, "b_to_a": 1})


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (IntrusionConfig, {}),
        (AfterHoursConfig, {"open": [{"start": "08:00", "end": "20:00"}]}),
        (LineConfig, {"name": "gate", "points": ((0.5, 0.0), (0.5, 1.0))}),
        (StaticObjectConfig, {"type": "abandoned_object"}),
    ],
    ids=["intrusion", "after-hours", "line", "static-object"],
)
def test_an_unknown_timezone_is_a_clear_error(model: Any, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"timezone\n.*unknown timezone 'Mars/Olympus'"):
        model.model_validate({**fields, "timezone": "Mars/Olympus"})


def test_a_period_needs_local_times_of_day_as_text() -> None:
    unquoted = yaml.safe_load("active: [{start: 22:00, end: '06:00'}]")  # 22:00 reads as 1320
    with pytest.raises(ValidationError, match=r"active\.0\.start\n.*\"22:00\" \(quoted in YAML\)"):
        IntrusionConfig.model_validate(unquoted)
    with pytest.raises(ValidationError, match="without a UTC offset"):
        IntrusionConfig.model_validate({"active": [{"start": "22:00+08:00", "end": "06:00"}]})


# ---- plugins: a rule registers under its config's `type` by subclassing alone ----

HALL = {"name": "hall", "points": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]}
BUILT_IN_TYPES = (
    "'intrusion', 'loitering', 'crowd', 'wrong_way', 'illegal_parking', 'after_hours', "
    "'abandoned_object', 'removed_object'"
)


def test_a_rule_defined_by_subclassing_is_configured_and_built_like_the_built_in_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ZoneRule, "registry", dict(ZoneRule.registry))  # registered here only

    class RunningConfig(TrackRuleConfig):
        """An object in the zone moving faster than `min_speed`."""

        type: Literal["running"] = "running"
        min_speed: float = Field(0.2, gt=0, description="normalized distance a second")

    class RunningRule(ZoneTrackRule):
        config_model = RunningConfig
        event_type = "running"

        def __init__(self, place: str, polygon: Polygon, config: RunningConfig) -> None:
            super().__init__(place, polygon, config)
            self.min_speed = config.min_speed

        def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
            found = []
            for track in self.inside(tracks, t):
                if len(track.history) < 2:
                    continue
                (t0, before), (t1, now) = track.history[-2:]
                if math.dist(before.bottom_centre, now.bottom_centre) >= self.min_speed * (t1 - t0):
                    found.append(
                        Finding(
                            key=f"track:{track.id}",
                            label=track.label,
                            score=track.score,
                            boxes=(now,),
                        )
                    )
            return found

    zone = ZoneConfig.model_validate(
        {**HALL, "rules": [{"type": "running", "min_speed": 0.05, "severity": "low"}]}
    )
    (config,) = zone.model_dump()["rules"]  # all of it, as the API answers a camera's config
    assert config == RunningConfig(min_speed=0.05, severity="low").model_dump()
    camera = CameraAnalytics(
        CameraRules("lobby", "hq", [zone]), TrackerConfig(), EventTimingConfig(), Collected(),
        ConditionEvents(Collected()),
    )  # fmt: skip
    ((rule, _),) = camera.watches
    assert isinstance(rule, RunningRule)
    assert (rule.place, rule.severity, rule.min_speed) == ("hall", "low", 0.05)
    assert run(rule, [[s] for s in walker(1, [0.6, 0.7, 0.72, 0.72])]) == [0, 1, 0, 0]

    with pytest.raises(ValidationError, match=r"rules\.0\.running\.min_speed\n.*greater than 0"):
        ZoneConfig.model_validate({**HALL, "rules": [{"type": "running", "min_speed": 0}]})
    with pytest.raises(ValidationError, match=f"expected tags: {BUILT_IN_TYPES}, 'running' \\["):
        ZoneConfig.model_validate({**HALL, "rules": [{"type": "sprinting"}]})


def test_an_unknown_rule_type_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(
        ValidationError,
        match=rf"rules\.0\n  Input tag 'sprinting' found using 'type' does not match any of the "
        rf"expected tags: {BUILT_IN_TYPES} \[",
    ):
        ZoneConfig.model_validate({**HALL, "rules": [{"type": "sprinting"}]})


def test_a_rule_config_without_its_type_as_default_cannot_register(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ZoneRule, "registry", dict(ZoneRule.registry))  # should it register

    class NamelessConfig(TrackRuleConfig):
        type: Literal["nameless"]

    with pytest.raises(TypeError, match=r"NamelessConfig\.type needs its name as its default"):

        class NamelessRule(ZoneTrackRule):
            config_model = NamelessConfig
            event_type = "nameless"

            def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
                return []
