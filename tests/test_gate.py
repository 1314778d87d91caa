"""The detection gate: when and where the detector looks, and what that costs in people found.

The unit tests drive the gate and the crop joining with drawn frames and a scripted detector;
the footage tests run one camera's analytics (default gate, bundled detector, tracker, a
tripwire) over vtest.avi at 5 fps and compare with the hand labels in tests/data.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from analytics.config import EventTimingConfig, SsdOnnxDetectorConfig, ZoneConfig
from analytics.detectors import create_detector
from analytics.gate import FULL_FRAME, DetectionGate, GateConfig, cover, detect_regions, split
from analytics.health import ConditionEvents
from analytics.pipeline import CameraAnalytics, CameraRules
from analytics.quality import QualityConfig
from analytics.rules import LineConfig, LineCrossingRule
from analytics.tracker import Tracker, TrackerConfig
from common.types import BGRImage, Box, Detection, Frame, Track
from tests.labels import vtest_crossings, vtest_people
from tests.sinks import Collected

WIDTH, HEIGHT = 640, 480


def scene(x: int) -> BGRImage:
    """A grey textured street with a dark 30x70 'person' at column `x` (none when negative)."""
    rng = np.random.default_rng(0)
    image = np.clip(120 + rng.normal(0, 6, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    if x >= 0:
        image[200:270, x : x + 30] = 30
    return image


def track(box: Box, ident: int = 1) -> Track:
    return Track(
        id=ident,
        label="person",
        box=box,
        score=0.9,
        first_seen=0.0,
        last_seen=0.0,
        hits=3,
        history=((0.0, box),),
    )


def test_windows_hold_every_box_whole_and_big_boxes_get_their_own() -> None:
    small = [Box(0.10, 0.40, 0.14, 0.55), Box(0.20, 0.42, 0.24, 0.57), Box(0.70, 0.10, 0.74, 0.25)]
    big = Box(0.30, 0.05, 0.65, 0.95)
    windows = cover([*small, big], 0.35, 0.47)
    for box in [*small, big]:
        assert any(
            w.x1 <= box.x1 and w.y1 <= box.y1 and box.x2 <= w.x2 and box.y2 <= w.y2 for w in windows
        ), box
    assert len(windows) == 3  # the two neighbours share a window
    assert big in windows  # bigger than a window: cropped as it is
    assert all(0.0 <= v <= 1.0 for w in windows for v in w.to_list())


@dataclass
class ScriptedDetector:
    """Answers each crop with the boxes (in the crop's coordinates) listed for its left edge."""

    answers: dict[int, list[Detection]]
    input_size: tuple[int, int] = (300, 300)

    def detect(self, image: BGRImage) -> list[Detection]:
        return self.answers.pop(min(self.answers), [])


def test_an_object_cut_by_a_crop_edge_is_kept_whole_once() -> None:
    left, right = Box(0.0, 0.0, 0.6, 1.0), Box(0.4, 0.0, 1.0, 1.0)
    # A person at x 0.55..0.62 of the frame: the left crop cuts him at its edge (0.6), the
    # right one holds him whole; a second person only in the left crop stays.
    answers = {
        0: [
            Detection(Box(0.55 / 0.6, 0.3, 1.0, 0.7), 0.9, "person"),
            Detection(Box(0.1, 0.3, 0.2, 0.7), 0.8, "person"),
        ],
        1: [Detection(Box(0.15 / 0.6, 0.3, 0.22 / 0.6, 0.7), 0.6, "person")],
    }
    found = detect_regions(ScriptedDetector(answers), scene(-1), [left, right])  # type: ignore[arg-type]
    assert len(found) == 2
    whole = next(d for d in found if d.box.x1 > 0.5)
    assert whole.box.x2 == pytest.approx(0.62) and whole.score == 0.9


def test_the_gate_looks_at_new_motion_at_once_and_at_tracks_every_third_frame() -> None:
    gate = DetectionGate(GateConfig())
    first = gate.decide(scene(100), [], t=0.0)
    assert first.reason == "first frame" and len(first.regions) == len(
        split(FULL_FRAME, 224 / WIDTH, 224 / HEIGHT, overlap=0.25)
    )
    assert gate.decide(scene(100), [], t=0.2).reason == "skipped"  # nothing moved
    moved = gate.decide(scene(140), [], t=2.4)  # where the first look found nothing 2 s ago
    assert moved.reason == "new motion" and len(moved.regions) == 1
    (window,) = moved.regions
    assert window.x1 <= 100 / WIDTH and window.x2 >= 170 / WIDTH  # the old and new place
    assert window.x2 - window.x1 == pytest.approx(224 / WIDTH)  # at the crop size

    reasons = []
    for k in range(1, 7):  # the tracker follows the mover; new motion did not refresh the tracks
        x = 140 + 20 * k
        walker = track(Box(x / WIDTH, 200 / HEIGHT, (x + 30) / WIDTH, 270 / HEIGHT))
        reasons.append(gate.decide(scene(x), [walker], t=2.4 + 0.2 * k).reason)
    assert reasons == ["tracked motion", "skipped", "skipped"] * 2


def test_a_still_scene_is_looked_at_whole_every_few_seconds() -> None:
    gate = DetectionGate(GateConfig(whole_every=5))
    reasons = [gate.decide(scene(100), [], t=0.2 * k).reason for k in range(11)]
    assert reasons == ["first frame"] + (["skipped"] * 4 + ["whole look"]) * 2
    assert gate.stats.detected == 3 and gate.stats.frames == 11


def test_a_track_the_detector_did_not_look_at_is_not_missed() -> None:
    tracker = Tracker(TrackerConfig(max_lost_s=1.0))
    here, there = Box(0.1, 0.4, 0.15, 0.6), Box(0.8, 0.4, 0.85, 0.6)
    for k in range(2):
        tracker.update([Detection(here, 0.9, "person"), Detection(there, 0.9, "person")], 0.2 * k)
    left_half = [Box(0.0, 0.0, 0.5, 1.0)]
    for k in range(2, 5):  # only the left half is looked at: the right one is not missed
        tracks = tracker.update([Detection(here, 0.9, "person")], 0.2 * k, left_half)
        assert sorted(t.id for t in tracks) == [1, 2]
    right_half = [Box(0.5, 0.0, 1.0, 1.0)]
    assert [t.id for t in tracker.update([], 1.0, right_half)] == [1]  # looked at and gone


# ---- one camera on vtest.avi at 5 fps ----


@dataclass
class FootageRun:
    """What the default gate did on vtest.avi, and what came out of it."""

    frames: int
    detected: int
    pixels: float
    labelled: int
    tracked: int  # labelled people a track covers at their frame
    unexamined: list[tuple[int, Box]]  # labelled people neither tracked nor recently looked at
    crossings: dict[str, int]


@pytest.fixture(scope="module")
def footage_run(vtest_avi: Path) -> FootageRun:
    people = {n: [box for box, _ in found] for n, found in vtest_people(difficult=False).items()}
    line = LineConfig(name="walkway", points=vtest_crossings().line, direction="both")
    whole_view = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    setup = CameraRules(
        "vtest", "test", [ZoneConfig(name="view", points=whole_view)], [line], GateConfig(),
        QualityConfig(),
    )  # fmt: skip
    camera = CameraAnalytics(
        setup, TrackerConfig(), EventTimingConfig(), Collected(), ConditionEvents(Collected())
    )
    detector = create_detector(SsdOnnxDetectorConfig())
    recent: deque[tuple[Box, ...]] = deque(maxlen=GateConfig().tracked_every)
    labelled = tracked = 0
    unexamined: list[tuple[int, Box]] = []
    with av.open(str(vtest_avi)) as container:
        for number, picture in enumerate(container.decode(video=0)):
            if number % 2:  # 10 fps footage analysed at 5 fps
                continue
            image = picture.to_ndarray(format="bgr24", width=WIDTH, height=HEIGHT)
            image = image.astype(np.uint8, copy=False)
            camera.analyse(Frame("vtest", image, number / 10), detector)
            recent.append(camera.gate.last.regions)
            for person in people.get(number, []):
                labelled += 1
                if any(person.iou(t.box) >= 0.3 for t in camera.tracks):
                    tracked += 1
                elif not any(
                    person.intersection(r) >= 0.5 * person.area for rs in recent for r in rs
                ):
                    unexamined.append((number, person))
    (rule,) = [r for r, _ in camera.watches if isinstance(r, LineCrossingRule)]
    stats = camera.gate.stats
    return FootageRun(
        stats.frames, stats.detected, stats.pixels, labelled, tracked, unexamined, rule.counts
    )


def test_the_gate_sends_under_half_the_frames_and_hides_no_labelled_person(
    footage_run: FootageRun,
) -> None:
    """Each labelled person is either tracked at their frame or was inside a crop the detector
    looked at in the last `tracked_every` frames: the gate never keeps anyone from it."""
    run = footage_run
    assert run.detected < 0.5 * run.frames, (run.detected, run.frames)
    assert run.unexamined == []
    # The crops cover far less than tiling every frame whole would.
    tiles = split(FULL_FRAME, 224 / WIDTH, 224 / HEIGHT, overlap=0.25)
    assert run.pixels < 0.35 * run.frames * sum(t.area for t in tiles)


def test_tracks_cover_the_labelled_people(footage_run: FootageRun) -> None:
    """With frames skipped, the tracker's predictions still cover the people (the detector
    alone, on every frame in tiles, finds about 0.9 of them: tests/test_accuracy.py)."""
    assert footage_run.tracked >= 0.8 * footage_run.labelled, footage_run


def test_line_crossings_match_the_hand_count(footage_run: FootageRun) -> None:
    """tests/data/vtest_line_crossings.json: 12 crossings left to right, 15 right to left."""
    hand, counts = vtest_crossings(), footage_run.crossings
    assert abs(counts["a_to_b"] - hand.a_to_b) <= 1, counts
    assert abs(counts["b_to_a"] - hand.b_to_a) <= 1, counts
