"""Abandoned and removed objects on vtest.avi with a bag pasted into the view."""

from __future__ import annotations

from pathlib import Path

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
    owner = Track(1, "person", Box(0.15, 0.6, 0.22, 0.85), 0.9, START, START, 10, ())
    rule = AbandonedObjectRule("lawn", LAWN, config("abandoned_object"))
    assert findings(rule, clip, [owner]) == []


def test_the_plain_footage_raises_nothing(vtest: Clip) -> None:
    for rule in (
        AbandonedObjectRule("lawn", LAWN, config("abandoned_object")),
        RemovedObjectRule("lawn", LAWN, config("removed_object")),
    ):
        assert findings(rule, vtest) == []
