"""The detection gate on vtest.avi at 5 fps: how much it sends to the detector, at what cost
in people found. One JSON line.

For each setting, the camera's analytics (gate, detector, tracker) run over the footage;
`frames` and `pixels` are the shares of frames, and of frame area, handed to the detector
(tiles count their own area, so pixels may exceed frames), `calls` the detector calls per
analysed frame, `track_recall` the share of the hand-labelled people (tests/data, difficult
ones left out) that a track covers (IoU >= 0.3) at their frame, and `crossings` the
tripwire's counts against the hand count (12 a_to_b, 15 b_to_a). The comparisons are the
detector on every frame, tiled or whole, in the same run.

Usage: .venv/bin/python bench/gate.py [--frames N] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from cameras import WHOLE_VIEW, Discard
from smoke import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import EventTimingConfig, SsdOnnxDetectorConfig, ZoneConfig
from analytics.detectors import create_detector
from analytics.gate import GateConfig
from analytics.health import ConditionEvents
from analytics.pipeline import CameraAnalytics, CameraRules
from analytics.quality import QualityConfig
from analytics.rules import LineConfig, LineCrossingRule
from analytics.tracker import TrackerConfig
from common.types import BGRImage, Frame
from tests.labels import vtest_crossings, vtest_people

CHECKOUT = Path(__file__).resolve().parent.parent
SETTINGS: dict[str, dict[str, Any]] = {
    "gate (default)": {},
    "gate off, 224 px tiles": {"enabled": False},
    "gate off, whole frames": {"enabled": False, "crop_px": 640},
    "gate, whole frames": {"crop_px": 640},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, help="analyse only the first so many (at 5 fps)")
    args = parse_arguments(parser, frames=10)
    people = {n: [box for box, _ in found] for n, found in vtest_people(difficult=False).items()}
    pictures: list[tuple[int, BGRImage]] = []
    with av.open(str(CHECKOUT / "data" / "samples" / "vtest.avi")) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number % 2 == 0:  # 10 fps footage analysed at 5 fps
                image = frame.to_ndarray(format="bgr24", width=640, height=480)
                pictures.append((number, image.astype(np.uint8, copy=False)))
    pictures = pictures[: args.frames]
    line = LineConfig(name="walkway", points=vtest_crossings().line, direction="both")
    detector = create_detector(SsdOnnxDetectorConfig())
    calls = [0]
    detect = detector.detect

    def counted(image: BGRImage) -> list[Any]:
        calls[0] += 1
        return detect(image)

    detector.detect = counted  # type: ignore[method-assign]
    results = {}
    for name, gate in SETTINGS.items():
        setup = CameraRules(
            "vtest", "bench", [ZoneConfig(name="view", points=WHOLE_VIEW)], [line],
            GateConfig(**gate), QualityConfig(),
        )  # fmt: skip
        camera = CameraAnalytics(
            setup, TrackerConfig(), EventTimingConfig(), Discard(), ConditionEvents(Discard())
        )
        calls[0], covered, labelled = 0, 0, 0
        started = time.process_time()
        for number, image in pictures:
            camera.analyse(Frame("vtest", image, number / 10), detector)
            for person in people.get(number, []):
                labelled += 1
                covered += any(person.iou(t.box) >= 0.3 for t in camera.tracks)
        stats = camera.gate.stats
        (tripwire,) = [r for r, _ in camera.watches if isinstance(r, LineCrossingRule)]
        results[name] = {
            "frames": round(stats.detected / stats.frames, 3),
            "pixels": round(stats.pixels / stats.frames, 3),
            "calls": round(calls[0] / stats.frames, 2),
            "track_recall": round(covered / labelled, 3) if labelled else None,
            "crossings": tripwire.counts,
            "cpu_ms_per_frame": round((time.process_time() - started) * 1000 / len(pictures), 1),
        }
    print(json.dumps({"bench": "gate", "footage": "vtest.avi at 5 fps, 640x480", **results}))


if __name__ == "__main__":
    main()
