"""Every benchmark in bench/ runs in its smoke mode (`--smoke`: a tiny input, the same code and
native comparison) and prints its one JSON line with its figures: a benchmark that no longer
runs fails here, not on the day someone wants its numbers. The values are not checked: a
smoke run's timings mean nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import CHECKOUT

pytestmark = pytest.mark.integration

BENCHES = sorted(p for p in (CHECKOUT / "bench").glob("*.py") if p.name != "smoke.py")

# Where each bench's main figures are in its JSON line: a dotted path per figure.
FIGURES = {
    "api": ["sqlite.queries.newest.ratio_p50", "sqlite.live.delivered"],
    "api_load": ["sqlite.queries.newest.ratio_p50", "sqlite.live.delivered"],
    "cameras": ["cameras_per_core", "native_cameras_per_core", "ratio"],
    "decode": ["1080p25.ratio_sampled", "360p25.ratio_sampled"],
    "detect": ["ours_calls_per_s", "bare_calls_per_s", "ratio"],
    "flapping": ["reconnects", "after.fds"],
    "gate": ["gate (default).calls", "gate off, whole frames.calls"],
    "index": ["sqlite.bulk_rows_per_s", "postgresql.bulk_rows_per_s"],
    "pipeline_latency": ["worker_cpu", "ffmpeg_decode_cpu"],
    "upload": ["ratio", "ratio_drain"],
}


def figure(result: dict[str, object], path: str) -> object:
    value: object = result
    for name in path.split("."):
        assert isinstance(value, dict) and name in value, f"no {path!r} in {result}"
        value = value[name]
    return value


@pytest.mark.parametrize("bench", BENCHES, ids=lambda path: path.stem)
def test_the_bench_runs_in_its_smoke_mode_and_prints_its_figures(bench: Path) -> None:
    assert bench.stem in FIGURES, f"{bench.name}: name its figures in FIGURES"
    run = subprocess.run(
        [sys.executable, str(bench), "--smoke"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for path in FIGURES[bench.stem]:
        assert isinstance(figure(result, path), int | float), (path, result)
