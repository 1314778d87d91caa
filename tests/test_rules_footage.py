"""The track rules on real footage: stretches of vtest.avi, some edited, through the whole
analytics stage (default motion gate, the bundled SSDLite person detector, default tracker,
rules, event lifecycle), each fires where the footage shows its condition and stays silent
where it does not.

What the footage shows (times are seconds of vtest.avi, analysed at 5 fps and 640x480):
- 0-14 s: a group stands and meets at the lamp post: at least three people in the square
  around it from about 2.4 s to 10 s, four or five from 4.8 s to 9 s, never six.
- 32-42 s: everyone on the walkway east of its junction with the road (x > 0.66) walks
  east (to the right, downhill): a couple, then two men who cross x = 0.7 at about 35.5 s
  and 37.6 s (the first came down the road, heading south-south-west, and turned east at
  the junction). Played backwards, they all walk west.
- 48-66 s: a couple comes into view on the lawn at the right edge at 50.4 s and walks up
  it; the woman stays on the lawn to the end. A man walks down the walkway, stops at the
  kerb by the lawn at 54 s, waits there and walks off at about 62 s (out of the kerb zone
  by 63 s).
- Edits: the lawn emptied (its lower part replaced by the same part of the picture at 47 s,
  when nobody is on it), and the waiting man pasted at the kerb (from 57 s) into 0-20 s.

The bundled model knows only "person", so illegal parking (vehicles by default) is shown
on the pasted man with `labels: [person]`; its default vehicle labels stay silent there.

bikes.mp4 is not used: it is a montage of hand-held shots cut every second or two (its one
still subject, a cyclist waiting at the lights, is on screen for 1.2 s), no fixed camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from analytics.config import EventTimingConfig, SsdOnnxDetectorConfig, ZoneConfig
from analytics.detectors import Detector, create_detector
from analytics.health import ConditionEvents
from analytics.pipeline import CameraAnalytics, CameraRules
from analytics.rules import (
    VEHICLES,
    AfterHoursConfig,
    CrowdConfig,
    IllegalParkingConfig,
    IntrusionConfig,
    LineConfig,
    LoiteringConfig,
    Point,
    TrackRuleConfig,
    WrongWayConfig,
)
from analytics.tracker import TrackerConfig
from common.types import BGRImage, Frame
from tests.clips import FPS, START, Clip, pasted, read_footage
from tests.sinks import Collected

# Zones and lines, in normalized coordinates of the picture.
LAWN = [(0.0, 0.5), (1.0, 0.9), (1.0, 1.0), (0.0, 1.0)]  # below the walkway, with a margin
KERB = [(0.8, 0.68), (0.9, 0.68), (0.9, 0.78), (0.8, 0.78)]  # where the man waits
SQUARE = [(0.4, 0.38), (0.72, 0.38), (0.72, 0.56), (0.4, 0.56)]  # around the lamp post
WALKWAY_EAST = [(0.66, 0.45), (1.0, 0.5), (1.0, 0.85), (0.66, 0.7)]  # east of the junction
GATE: tuple[Point, Point] = ((0.7, 0.42), (0.7, 0.8))  # A at the top: walking east is b_to_a

# Edits: (left, top, right, bottom) of the picture.
LAWN_PARTS = [(0.0, 0.55, 0.62, 1.0), (0.62, 0.78, 1.0, 1.0)]  # the lawn's people, whole
EMPTY_LAWN_S = 47.0
WAITING_MAN = (0.79, 0.46, 0.91, 0.76)
WAITING_MAN_S = 57.0

SHANGHAI = ZoneInfo("Asia/Shanghai")
PARKED_S = 8.0
OPENING_HOURS = AfterHoursConfig.model_validate(
    {
        "open": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "20:00"}],
        "timezone": "Asia/Shanghai",
    }
)


@dataclass(frozen=True)
class Stretch:
    """Seconds `start` to `end` of the footage, played forwards or backwards."""

    start: float
    end: float
    backwards: bool = False

    def clip(self, footage: Sequence[BGRImage]) -> Clip:
        pictures = footage[round(self.start * FPS) : round(self.end * FPS)]
        return Clip.of(pictures[::-1] if self.backwards else pictures)

    def footage_time(self, clip_s: float) -> float:
        """The second of the footage shown `clip_s` seconds into the clip."""
        return self.end - 1 / FPS - clip_s if self.backwards else self.start + clip_s


GROUP = Stretch(0.0, 14.0)
EASTWARD = Stretch(32.0, 42.0)
WESTWARD = Stretch(32.0, 42.0, backwards=True)
AFTERNOON = Stretch(48.0, 66.0)
ON_THE_LAWN = Stretch(50.0, 58.0)
MORNING = Stretch(0.0, 20.0)


@dataclass(frozen=True)
class Reported:
    """An event as the tests look at it: what, where, and when it started (footage time)."""

    type: str
    place: str
    at: float


@pytest.fixture(scope="module")
def footage(vtest_avi: Path) -> list[BGRImage]:
    return read_footage(vtest_avi)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return create_detector(SsdOnnxDetectorConfig())


def zone(name: str, points: list[Point], *rules: TrackRuleConfig) -> ZoneConfig:
    return ZoneConfig(name=name, points=points, rules=list(rules))


def standing(labels: Sequence[str] = tuple(VEHICLES)) -> IllegalParkingConfig:
    """Illegal parking after `PARKED_S` with the default `max_movement` (0.02): the detected
    feet of a man standing still jump by 0.021 once, which must not restart the clock."""
    return IllegalParkingConfig(labels=list(labels), stationary_s=PARKED_S)


def analyse(
    detector: Detector,
    clip: Clip,
    stretch: Stretch,
    zones: Sequence[ZoneConfig] = (),
    lines: Sequence[LineConfig] = (),
    clock: float = START,
) -> list[Reported]:
    """The events the rules of a camera watching `clip` raise (not the picture checks'), its
    first frame taken at wall time `clock`."""
    sink = Collected()
    setup = CameraRules("cam", "site", zones, lines)
    camera = CameraAnalytics(
        setup, TrackerConfig(), EventTimingConfig(), sink, ConditionEvents(sink)
    )
    for frame in clip.frames():
        now = clock + frame.wall_time - START
        camera.analyse(Frame(frame.camera_id, frame.image, now), detector)
        camera.tick(now)
    camera.close()
    places = {z.name for z in zones} | {line.name for line in lines}
    return [
        Reported(e.type, e.zone, stretch.footage_time(e.started_at - clock))
        for e in sink.started
        if e.zone in places
    ]


def first_starts(events: Sequence[Reported], kind: str) -> dict[str, float]:
    """Where events of type `kind` were raised, and when the first one there started."""
    starts: dict[str, float] = {}
    for event in sorted(events, key=lambda e: e.at):
        if event.type == kind:
            starts.setdefault(event.place, event.at)
    return starts


# ---- the afternoon: the couple on the lawn, the man waiting at the kerb ----


@pytest.fixture(scope="module")
def afternoon(footage: list[BGRImage], detector: Detector) -> list[Reported]:
    zones = [
        zone(
            "lawn",
            LAWN,
            IntrusionConfig(min_dwell_s=2),
            LoiteringConfig(dwell_s=5),
            standing(labels=["person"]),
        ),
        zone("lawn, vehicles", LAWN, IntrusionConfig(labels=VEHICLES)),
        zone("kerb", KERB, IntrusionConfig(min_dwell_s=4), LoiteringConfig(dwell_s=4)),
        zone("kerb, 12 s", KERB, IntrusionConfig(min_dwell_s=12), LoiteringConfig(dwell_s=12)),
    ]
    return analyse(detector, AFTERNOON.clip(footage), AFTERNOON, zones)


def test_people_on_the_lawn_and_at_the_kerb_are_intrusions_after_the_dwell(
    afternoon: list[Reported],
) -> None:
    starts = first_starts(afternoon, "zone_intrusion")
    assert starts.keys() == {"lawn", "kerb"}, afternoon  # not vehicles, nobody for 12 s
    assert 50.4 + 2 <= starts["lawn"] <= 58.0
    assert 54.0 + 4 <= starts["kerb"] <= 63.0


def test_the_woman_staying_on_the_lawn_is_loitering(afternoon: list[Reported]) -> None:
    starts = first_starts(afternoon, "loitering")
    assert 50.4 + 5 <= starts.get("lawn", -1.0) <= 66.0, afternoon


def test_the_woman_walking_about_the_lawn_is_not_parked(afternoon: list[Reported]) -> None:
    """She is on the lawn for 15 s, but never still for 8 s."""
    assert first_starts(afternoon, "illegal_parking") == {}, afternoon


def test_loitering_counts_from_arriving_in_the_zone(afternoon: list[Reported]) -> None:
    starts = first_starts(afternoon, "loitering")
    assert "kerb, 12 s" not in starts, afternoon  # he waits there 9 s
    assert 54.0 + 4 <= starts.get("kerb", -1.0) <= 63.0, afternoon


def test_the_emptied_lawn_raises_nothing(footage: list[BGRImage], detector: Detector) -> None:
    """Not even after hours: the clips start at 06:13 on a Wednesday in Shanghai."""
    empty = footage[round(EMPTY_LAWN_S * FPS)]
    clip = AFTERNOON.clip(footage)
    for part in LAWN_PARTS:
        clip = clip.edited(pasted(empty, part))
    rules = (IntrusionConfig(), LoiteringConfig(dwell_s=5), OPENING_HOURS)
    assert analyse(detector, clip, AFTERNOON, [zone("lawn", LAWN, *rules)]) == []


# ---- after hours: the same people on the lawn at two times of day ----


@pytest.mark.parametrize(
    ("hour", "raised"),
    [(10, False), (22, True)],
    ids=["open (10:00 Shanghai, 02:00 UTC)", "closed (22:00 Shanghai, 14:00 UTC)"],
)
def test_presence_on_the_lawn_after_hours_follows_the_sites_clock(
    footage: list[BGRImage], detector: Detector, hour: int, raised: bool
) -> None:
    """Opening hours 08:00-20:00 on weekdays in Shanghai, a Tuesday: the hours in UTC would
    give the opposite answers."""
    clock = datetime(2026, 11, 24, hour, 0, tzinfo=SHANGHAI).timestamp()
    zones = [zone("lawn", LAWN, OPENING_HOURS)]
    events = analyse(detector, ON_THE_LAWN.clip(footage), ON_THE_LAWN, zones, clock=clock)
    starts = first_starts(events, "after_hours")
    assert starts.keys() == ({"lawn"} if raised else set()), events
    if raised:
        assert 50.4 <= starts["lawn"] <= 56.0


# ---- the group at the lamp post ----


@pytest.fixture(scope="module")
def group(footage: list[BGRImage], detector: Detector) -> list[Reported]:
    zones = [
        zone("square", SQUARE, CrowdConfig(min_count=3, duration_s=3)),
        zone("square, 6 people", SQUARE, CrowdConfig(min_count=6, duration_s=1)),
    ]
    return analyse(detector, GROUP.clip(footage), GROUP, zones)


def test_the_group_at_the_lamp_post_is_a_crowd(group: list[Reported]) -> None:
    """Three people and more for 3 s; never six at once."""
    starts = first_starts(group, "crowd")
    assert starts.keys() == {"square"}, group
    assert 2.4 + 3 <= starts["square"] <= 10.0


# ---- walking east on the right half of the walkway, and the same played backwards ----


@pytest.fixture(scope="module")
def walking(footage: list[BGRImage], detector: Detector) -> dict[str, list[Reported]]:
    """The events of the eastward stretch and of the same played backwards (westward)."""
    zones = [
        zone("westbound", WALKWAY_EAST, WrongWayConfig(direction=(-1.0, 0.0))),
        zone("eastbound", WALKWAY_EAST, WrongWayConfig(direction=(1.0, 0.0))),
    ]
    lines = [
        LineConfig(name="gate, east", points=GATE, direction="b_to_a"),
        LineConfig(name="gate, west", points=GATE, direction="a_to_b"),
    ]
    return {
        way: analyse(detector, stretch.clip(footage), stretch, zones, lines)
        for way, stretch in (("east", EASTWARD), ("west", WESTWARD))
    }


@pytest.mark.parametrize("way", ["east", "west"])
def test_walking_against_a_one_way_walkway_is_wrong_way(
    walking: dict[str, list[Reported]], way: str
) -> None:
    events = walking[way]
    against = "westbound" if way == "east" else "eastbound"
    starts = first_starts(events, "wrong_way")
    assert starts.keys() == {against}, events
    assert 32.0 <= starts[against] <= 42.0


@pytest.mark.parametrize("way", ["east", "west"])
def test_a_line_reports_only_its_direction(walking: dict[str, list[Reported]], way: str) -> None:
    events = walking[way]
    starts = first_starts(events, "line_crossing")
    assert starts.keys() == {f"gate, {way}"}, events
    assert 34.5 <= starts[f"gate, {way}"] <= 39.0


# ---- the man pasted at the kerb: standing still ----


@pytest.mark.parametrize("pasted_at", [5.0, None], ids=["man pasted from 5 s", "as filmed"])
def test_a_person_standing_still_at_the_kerb_is_illegally_parked(
    footage: list[BGRImage], detector: Detector, pasted_at: float | None
) -> None:
    """`labels: [person]`: the bundled model knows no vehicles. The man stands from 5 s to
    the end (20 s); as filmed, people only walk past the kerb."""
    clip = MORNING.clip(footage)
    if pasted_at is not None:
        man = pasted(footage[round(WAITING_MAN_S * FPS)], WAITING_MAN)
        clip = clip.edited(man, start_s=pasted_at)
    zones = [
        zone("kerb", KERB, standing(labels=["person"])),
        zone("kerb, vehicles", KERB, standing()),
    ]
    events = analyse(detector, clip, MORNING, zones)
    starts = first_starts(events, "illegal_parking")
    assert starts.keys() == ({"kerb"} if pasted_at is not None else set()), events
    if pasted_at is not None:
        assert pasted_at + PARKED_S <= starts["kerb"] <= 20.0
