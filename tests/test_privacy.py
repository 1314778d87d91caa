"""Face masking on real footage: the face in carphone_pristine.mp4 (a man talking in a car,
176x144) is found in every sampled frame and loses its detail when masked, nothing else in
the picture changes, and vtest.avi's empty walkway has no face."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from analytics.privacy import FACE_MODEL, FaceBlurrer, FaceDetector, Method, PrivacyConfig
from common.types import BGRImage, Box, Detection
from tests.clips import read_footage

CARPHONE_SIZE = (176, 144)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(PrivacyConfig(enabled=True))


@pytest.fixture(scope="module")
def sensitive() -> FaceDetector:
    """Reports boxes of any score over 0.05, to see how close to a face a picture comes."""
    return FaceDetector(PrivacyConfig(enabled=True, min_score=0.05))


@pytest.fixture(scope="module")
def carphone(carphone_mp4: Path) -> list[BGRImage]:
    """carphone_pristine.mp4 (4 s) at 3 frames a second: 12 pictures of the same face."""
    return read_footage(carphone_mp4, size=CARPHONE_SIZE, fps=3)


@pytest.fixture(scope="module")
def faces(detector: FaceDetector, carphone: list[BGRImage]) -> list[list[Detection]]:
    return [detector.detect(picture) for picture in carphone]


def pixels(box: Box, picture: BGRImage) -> tuple[int, int, int, int]:
    """`box` in pixels of `picture`: x1, y1, x2, y2."""
    height, width = picture.shape[:2]
    x1, y1, x2, y2 = (np.array(box.to_list()) * [width, height, width, height]).round()
    return int(x1), int(y1), int(x2), int(y2)


def skin(picture: BGRImage) -> npt.NDArray[np.bool_]:
    """Where `picture` is skin-coloured (the classic YCrCb range)."""
    ycrcb = cv2.cvtColor(picture, cv2.COLOR_BGR2YCrCb)
    return np.asarray(cv2.inRange(ycrcb, (0, 133, 77), (255, 173, 127)) > 0)


def detail(picture: BGRImage) -> float:
    """Variance of the Laplacian: high for sharp features, near 0 for a smooth patch."""
    grey = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_the_model_matches_its_checksum() -> None:
    line = FACE_MODEL.with_name(FACE_MODEL.name + ".sha256").read_text(encoding="utf-8")
    digest = hashlib.sha256(FACE_MODEL.read_bytes()).hexdigest()
    assert line == f"{digest}  {FACE_MODEL.name}\n"


def test_the_model_takes_any_size_and_only_the_picture(detector: FaceDetector) -> None:
    (model_input,) = detector.session.get_inputs()  # no weights among the inputs
    assert model_input.shape == ["B", 3, "H", "W"]


def test_the_face_is_found_in_every_frame_where_the_skin_is(
    faces: list[list[Detection]], carphone: list[BGRImage]
) -> None:
    for found, picture in zip(faces, carphone, strict=True):
        assert len(found) == 1
        (face,) = found
        assert face.label == "face"
        assert face.score >= 0.8
        x1, y1, x2, y2 = pixels(face.box, picture)
        quarter_x, quarter_y = (x2 - x1) // 4, (y2 - y1) // 4
        skin_pixels = skin(picture)
        centre = skin_pixels[y1 + quarter_y : y2 - quarter_y, x1 + quarter_x : x2 - quarter_x]
        assert centre.mean() > 0.85  # the middle of the box is the face ...
        skin_pixels[y1:y2, x1:x2] = False
        assert skin_pixels.mean() < 0.15  # ... and little of the rest is skin-coloured
        assert 40 <= x2 - x1 <= 60 and 50 <= y2 - y1 <= 70  # a face's size, not a head's


def test_the_face_box_follows_the_face_steadily(faces: list[list[Detection]]) -> None:
    boxes = [found[0].box for found in faces]
    assert all(a.iou(b) > 0.5 for a, b in itertools.pairwise(boxes))  # 1/3 s apart


def test_a_reduced_detect_width_finds_the_same_face(
    detector: FaceDetector, faces: list[list[Detection]], carphone: list[BGRImage]
) -> None:
    """The picture 8x larger (1408x1152), detected at the default 640 wide."""
    large = np.asarray(cv2.resize(carphone[0], None, fx=8, fy=8), np.uint8)
    assert detector.input_size(large.shape[1], large.shape[0]) == (640, 544)
    (face,) = detector.detect(large)
    assert face.box.iou(faces[0][0].box) > 0.8


def test_the_empty_walkway_has_no_face(
    detector: FaceDetector, sensitive: FaceDetector, vtest_avi: Path
) -> None:
    """vtest.avi's camera with its pedestrians taken away: the median of its frames."""
    frames = np.stack(read_footage(vtest_avi, size=(768, 576), fps=1))
    background = np.median(frames, axis=0).astype(np.uint8)
    assert detector.detect(background) == []
    assert all(face.score < 0.1 for face in sensitive.detect(background))


def test_a_flat_picture_has_no_face(sensitive: FaceDetector) -> None:
    assert sensitive.detect(np.full((480, 640, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_masking_hides_the_face_and_changes_nothing_else(
    method: Method, faces: list[list[Detection]], carphone: list[BGRImage]
) -> None:
    blurrer = FaceBlurrer(method)
    for found, picture in zip(faces, carphone, strict=True):
        box = found[0].box
        masked = blurrer.apply(picture, [box], copy=True)
        x1, y1, x2, y2 = pixels(box, picture)
        face, hidden = picture[y1:y2, x1:x2], masked[y1:y2, x1:x2]
        if method == "blur":
            assert detail(hidden) < detail(face) / 100
        else:  # at most 8 x 8 blocks of one colour each
            colours = len(np.unique(face.reshape(-1, 3), axis=0))
            assert len(np.unique(hidden.reshape(-1, 3), axis=0)) <= 64 < colours / 20
        rows, cols = np.nonzero((masked != picture).any(axis=2))
        margin_x, margin_y = (x2 - x1) * 0.15 + 1, (y2 - y1) * 0.15 + 1
        assert x1 - margin_x <= cols.min() <= x1 and x2 <= cols.max() + 1 <= x2 + margin_x
        assert y1 - margin_y <= rows.min() <= y1 and y2 <= rows.max() + 1 <= y2 + margin_y


def test_masking_in_place_or_on_a_copy(
    faces: list[list[Detection]], carphone: list[BGRImage]
) -> None:
    picture, box = carphone[0].copy(), faces[0][0].box
    original = picture.copy()
    copy = FaceBlurrer().apply(picture, [box], copy=True)
    assert (picture == original).all() and not (copy == original).all()
    assert FaceBlurrer().apply(picture, [box]) is picture
    assert (picture == copy).all()


def test_a_box_at_the_edge_is_clipped_and_an_empty_one_ignored() -> None:
    picture = np.random.default_rng(1).integers(0, 256, (100, 200, 3), np.uint8)
    boxes = [Box(0.9, 0.8, 1.0, 1.0), Box(0.5, 0.5, 0.5, 0.5)]
    masked = FaceBlurrer("pixelate").apply(picture, boxes, copy=True)
    rows, cols = np.nonzero((masked != picture).any(axis=2))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (77, 99, 177, 199)


def test_the_config_is_off_by_default_and_strict() -> None:
    assert PrivacyConfig().enabled is False
    with pytest.raises(ValidationError, match="method"):
        PrivacyConfig.model_validate({"method": "smudge"})
    with pytest.raises(ValidationError, match="blur_faces"):
        PrivacyConfig.model_validate({"blur_faces": True})


def test_event_snapshots_of_a_private_camera_hide_the_face(
    carphone: list[BGRImage], faces: list[list[Detection]]
) -> None:
    from analytics.config import EventTimingConfig
    from analytics.events import EventKind, EventLifecycle
    from analytics.privacy import FaceMasker
    from analytics.rules import Finding
    from common.types import Frame
    from tests.media import decode_jpeg
    from tests.sinks import Collected

    picture, (face, *_) = carphone[0], faces[0]
    finding = Finding(key="track:1", label="person", score=0.9, boxes=(Box(0.0, 0.0, 1.0, 1.0),))
    shown = {}
    for private in (False, True):
        sink = Collected()
        mask = FaceMasker(PrivacyConfig(enabled=True)) if private else None
        kind = EventKind("zone_intrusion", "door", "high")
        life = EventLifecycle("cam", "lab", kind, EventTimingConfig(), sink, mask)
        life.observe(Frame("cam", picture, 1.0), [finding])
        snapshot = sink.started[0].snapshot
        assert snapshot is not None
        x1, y1, x2, y2 = pixels(face.box, picture)
        shown[private] = detail(decode_jpeg(snapshot)[y1:y2, x1:x2])
    assert shown[True] < shown[False] / 20
