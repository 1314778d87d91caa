"""Abandoned and removed objects on vtest.avi with a bag pasted into the view."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics.objects import AbandonedObjectRule, RemovedObjectRule, StaticObjectConfig
from analytics.rules import Polygon
from common.types import BGRImage, Box, Track
from tests.clips import START, Clip, read_footage

# The lawn at the lower left: nobody walks or stands there in vtest.avi.
LAWN = Polygon([(0.0, 0.6), (0.45, 0.6), (0.45, 1.0), (0.0, 1.0)])
BAG = (slice(370, 410), slice(110, 150))  # rows, columns of a 640x480 picture: on the lawn


def bag(picture: BGRImage) -> BGRImage:
    """A dark bag with a light strap: texture that the lawn does not have there."""
    edited = picture.copy()
    edited[BAG] = 35
    edited[BAG[0], 125:130] = 200
    edited[380:384, BAG[1]] = 200
    return edited


@pytest.fixture(scope="module")
def vtest(vtest_avi: Path) -> Clip:
    return Clip.of(read_footage(vtest_avi))


def findings(
    rule: AbandonedObjectRule | RemovedObjectRule, clip: Clip, tracks: list[Track] | None = None
) -> list[float]:
    """The times (from the clip's start) at which the rule reports something."""
    times = []
    for frame in clip.frames():
        rule.see(frame.image, frame.wall_time)
        if rule.update(tracks or [], frame.wall_time):
            times.append(frame.wall_time - START)
    return times


def config(kind: str) -> StaticObjectConfig:
    return StaticObjectConfig.model_validate({"type": kind, "min_static_s": 10})


def test_a_bag_left_on_the_lawn_is_abandoned(vtest: Clip) -> None:
    clip = vtest.edited(bag, start_s=20.0).cut(60.0)
    times = findings(AbandonedObjectRule("lawn", LAWN, config("abandoned_object")), clip)
    assert times and 30.0 <= times[0] <= 33.0  # 10 s after it was left (plus settling)
    assert times[-1] >= 59.0  # and it stays found
    assert not findings(RemovedObjectRule("lawn", LAWN, config("removed_object")), clip)


def test_a_bag_taken_away_is_removed(vtest: Clip) -> None:
    clip = vtest.edited(bag, end_s=20.0).cut(60.0)
    times = findings(RemovedObjectRule("lawn", LAWN, config("removed_object")), clip)
    assert times and 30.0 <= times[0] <= 33.0
    assert not findings(AbandonedObjectRule("lawn", LAWN, config("abandoned_object")), clip)


def test_a_bag_with_its_owner_beside_it_is_not_abandoned(vtest: Clip) -> None:
    clip = vtest.edited(bag, start_s=20.0).cut(45.0)
    owner = Track(
        id=1,
        label="person",
        box=Box(0.15, 0.6, 0.22, 0.85),
        score=0.9,
        first_seen=START,
        last_seen=START,
        hits=10,
        history=(),
    )
    rule = AbandonedObjectRule("lawn", LAWN, config("abandoned_object"))
    assert findings(rule, clip, [owner]) == []


def test_the_plain_footage_raises_nothing(vtest: Clip) -> None:
    for rule in (
        AbandonedObjectRule("lawn", LAWN, config("abandoned_object")),
        RemovedObjectRule("lawn", LAWN, config("removed_object")),
    ):
        assert findings(rule, vtest) == []


def test_a_scheduled_rule_reports_only_in_its_period_but_learns_the_scene_always() -> None:
    """A bag left at 21:59:52 is still there at 22:00: reported then, with its whole age."""
    empty = np.full((120, 160, 3), 90, np.uint8)
    left = empty.copy()
    left[70:100, 40:70] = 30
    left[70:100, 52:58] = 200
    night = StaticObjectConfig.model_validate(
        {
            "type": "abandoned_object",
            "min_static_s": 3,
            "active": [{"start": "22:00", "end": "06:00"}],
            "timezone": "Europe/Berlin",
        }
    )
    rule = AbandonedObjectRule("lawn", Polygon([(0, 0), (1, 0), (1, 1), (0, 1)]), night)
    ten = datetime(2026, 11, 24, 22, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    reported = []
    for second in range(-10, 3):
        rule.see(empty if second < -8 else left, ten + second)
        if rule.update([], ten + second):
            reported.append(second)
    assert reported == [0, 1, 2]
