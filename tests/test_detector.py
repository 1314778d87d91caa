"""The bundled SSDLite person model through the project's own detector class."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from analytics.config import DEFAULT_MODEL, SsdOnnxDetectorConfig
from analytics.detectors import SsdOnnxDetector, create_detector
from tests.media import frame_at


def test_model_matches_its_published_checksum() -> None:
    recorded = (DEFAULT_MODEL.parent / f"{DEFAULT_MODEL.name}.sha256").read_text().split()[0]
    assert hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest() == recorded


def test_finds_the_three_people_in_vtest_frame_400(vtest_avi: Path) -> None:
    detector = create_detector(SsdOnnxDetectorConfig(min_score=0.5))
    assert isinstance(detector, SsdOnnxDetector)
    people = detector.detect(frame_at(vtest_avi, 400))
    assert len(people) == 3
    assert all(p.label == "person" and p.score >= 0.5 for p in people)
    # The three walkers of that frame: left on the path, upper right by the road, lower right.
    centres = sorted((round((p.box.x1 + p.box.x2) / 2, 1), p.box.y2 > 0.6) for p in people)
    assert centres == [(0.4, False), (0.8, False), (0.9, True)]


def test_empty_picture_has_no_people() -> None:
    detector = create_detector(SsdOnnxDetectorConfig())
    assert detector.detect(np.full((576, 768, 3), 128, np.uint8)) == []
