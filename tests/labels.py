"""The hand labels of tests/data: people in 20 frames of vtest.avi."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.types import Box

DATA = Path(__file__).parent / "data"


def vtest_people(difficult: bool = True) -> dict[int, list[tuple[Box, bool]]]:
    """Frame number -> (box, difficult) of each person labelled in it; `difficult=False`
    leaves out the ones too small or hidden to count as a miss."""
    data = json.loads((DATA / "vtest_people.json").read_text())
    width, height = data["size"]
    return {
        int(number): [
            (Box(p["box"][0] / width, p["box"][1] / height, p["box"][2] / width,
                 p["box"][3] / height), bool(p["difficult"]))
            for p in people if difficult or not p["difficult"]
        ]
        for number, people in data["frames"].items()
    }  # fmt: skip


@dataclass(frozen=True)
class HandCount:
    """People crossing one line in the whole of vtest.avi, counted by hand per direction."""

    line: tuple[tuple[float, float], tuple[float, float]]
    a_to_b: int
    b_to_a: int


def vtest_crossings() -> HandCount:
    data = json.loads((DATA / "vtest_line_crossings.json").read_text())
    (ax, ay), (bx, by) = data["line"]
    return HandCount(((ax, ay), (bx, by)), data["a_to_b"], data["b_to_a"])
