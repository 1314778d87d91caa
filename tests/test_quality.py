"""Video-quality diagnosis on real footage, edited to show each fault of a camera.

vtest.avi (a fixed outdoor camera over a walkway) is sampled at the analytics rate; a fault
is edited in from 20 s, after the monitor has learned the camera's normal view. Each fault
must raise its own condition, and only that one, soon after it begins, and end it soon after
it is gone; footage without a fault must raise nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import pytest
from pydantic import ValidationError

from analytics.quality import (
    BLACK_IMAGE,
    DEFOCUS,
    FROZEN_FRAME,
    OCCLUSION,
    OVEREXPOSED_IMAGE,
    SCENE_CHANGE,
    QualityConfig,
    VideoQualityMonitor,
)
from tests.clips import (
    START,
    Clip,
    Edit,
    as_picture,
    blurred,
    covered,
    darkened,
    read_footage,
    saturated,
    shaken,
    sprayed,
    viewed,
)

FAULT_S = 20.0  # when every fault begins
FRAME_S = 0.2  # 5 frames a second
HOLD_S = QualityConfig().min_duration_s


class Seen(NamedTuple):
    """A transition as the test saw it, times in seconds from the start of the clip."""

    reported_s: float
    condition: str
    started: bool
    at_s: float


def watch(clip: Clip, monitor: VideoQualityMonitor) -> list[Seen]:
    seen = []
    for frame in clip.frames():
        for change in monitor.update(frame):
            reported = round(frame.wall_time - START, 3)
            seen.append(
                Seen(reported, change.condition, change.started, round(change.at - START, 3))
            )
    return seen


@pytest.fixture(scope="module")
def walkway(vtest_avi: Path) -> Clip:
    """vtest.avi at 5 frames a second and 640x480, a detect size (79 s)."""
    return Clip.of(read_footage(vtest_avi))


@pytest.fixture(scope="module")
def street(vtest_avi: Path) -> Clip:
    """A street from bikes.mp4, after its opening shot of a pavement (9 s)."""
    return Clip.of(read_footage(vtest_avi.with_name("bikes.mp4"))[6:])


Scenario = Callable[[Clip, Clip], Clip]  # (walkway, street) -> the clip to watch


class Fault(NamedTuple):
    condition: str
    what: str
    end_s: float
    scenario: Scenario


def edited(condition: str, what: str, edit: Edit, end_s: float = 35.0) -> Fault:
    return Fault(condition, what, end_s, lambda w, _: w.cut(50).edited(edit, FAULT_S, end_s))


def turned(what: str, x: float, y: float) -> Fault:
    """The camera pointed at the window at (`x`, `y`) of vtest's view instead of (0, 0)."""

    def scenario(walkway: Clip, _: Clip) -> Clip:
        moved = walkway.edited(viewed(x, y))
        return walkway.cut(50).edited(viewed(0.0)).spliced(moved, FAULT_S, 40.0)

    return Fault(SCENE_CHANGE, what, 40.0, scenario)


FAULTS = [
    Fault(FROZEN_FRAME, "one frame repeated", 35.0, lambda w, _: w.cut(50).frozen(FAULT_S, 35.0)),
    edited(BLACK_IMAGE, "light at 2%, noise", darkened(0.02, 2.0)),
    edited(OVEREXPOSED_IMAGE, "saturated", saturated),
    edited(OCCLUSION, "80% covered, dark", covered(0.8, 40)),
    edited(OCCLUSION, "80% covered, grey", covered(0.8, 128)),
    edited(OCCLUSION, "80% sprayed", sprayed(0.8, 12.0)),
    edited(DEFOCUS, "blur sigma 4", blurred(4.0), end_s=40.0),
    turned("turned right by 25%", 0.25, 0.0),
    turned("tilted down by 25%", 0.1, 0.25),
    Fault(SCENE_CHANGE, "another scene", 40.0, lambda w, s: w.cut(50).spliced(s, FAULT_S, 40.0)),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f"{f.condition}: {f.what}" for f in FAULTS])
def test_a_fault_raises_its_condition_and_no_other(
    walkway: Clip, street: Clip, fault: Fault
) -> None:
    monitor = VideoQualityMonitor(QualityConfig())
    seen = watch(fault.scenario(walkway, street), monitor)
    expected = [(fault.condition, True), (fault.condition, False)]
    assert [(s.condition, s.started) for s in seen] == expected
    start, end = seen
    assert FAULT_S <= start.at_s <= FAULT_S + 2 * FRAME_S
    assert start.reported_s <= start.at_s + HOLD_S + FRAME_S
    assert fault.end_s <= end.at_s <= fault.end_s + 2 * FRAME_S
    assert end.reported_s <= end.at_s + HOLD_S + FRAME_S
    assert monitor.active == frozenset()


def night_falls(walkway: Clip) -> Clip:
    """At 20 s the light drops to a quarter and nothing moves any more; the sensor's noise
    is the only change between frames."""
    return walkway.cut(60).frozen(20, 60).edited(darkened(0.25, 3.0), 20)


def resized(walkway: Clip) -> Clip:
    """At 25 s the stream changes to 16:9 (the monitor must learn the new view)."""
    return walkway.cut(50).edited(lambda p: as_picture(cv2.resize(p, (640, 360))), 25)


SILENT: dict[str, Callable[[Clip], Clip]] = {
    "79 s of normal footage": lambda walkway: walkway,
    "a still, dark, noisy night": night_falls,
    "a shaking mount (6 px)": lambda walkway: walkway.cut(50).edited(shaken(6), 20),
    "the frame size changes": resized,
}


@pytest.mark.parametrize("scenario", SILENT.values(), ids=SILENT.keys())
def test_footage_without_a_fault_raises_nothing(
    walkway: Clip, scenario: Callable[[Clip], Clip]
) -> None:
    assert watch(scenario(walkway), VideoQualityMonitor(QualityConfig())) == []


def test_a_lasting_scene_change_becomes_the_new_normal(walkway: Clip) -> None:
    """Turned at 25 s and left so: after `relearn_after_s` the change ends and the new view is
    learned; turning back to the old view at 60 s is a change again."""
    clip = walkway.edited(viewed(0.0)).spliced(walkway.edited(viewed(0.25)), 25, 60)
    monitor = VideoQualityMonitor(QualityConfig(scene_change={"relearn_after_s": 20.0}))
    seen = watch(clip, monitor)
    assert [(s.condition, s.started, s.at_s) for s in seen] == [
        (SCENE_CHANGE, True, 25.0),
        (SCENE_CHANGE, False, 45.0),
        (SCENE_CHANGE, True, 60.0),
    ]
    assert monitor.active == {SCENE_CHANGE}


def test_a_disabled_check_is_silent_and_still_explains_the_picture(walkway: Clip) -> None:
    """With black_image off, a black picture raises nothing (not occlusion, not frozen)."""
    clip = walkway.cut(50).edited(darkened(0.02, 2.0), 20)
    monitor = VideoQualityMonitor(QualityConfig(black_image={"enabled": False}))
    assert watch(clip, monitor) == []


def test_config_names_bad_keys_and_sizes() -> None:
    with pytest.raises(ValidationError, match=r"occlusion\.flat_share"):
        QualityConfig.model_validate({"occlusion": {"flat_share": 0.5}})
    with pytest.raises(ValidationError, match="narrower than 4 px"):
        QualityConfig(analysis_width=64, grid=(32, 24))
