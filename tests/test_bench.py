"""Every benchmark in bench/ runs in its smoke mode (`--smoke`: a tiny input, the same code and
native comparison) and prints its one JSON line with its figures: a benchmark that no longer
runs fails here, not on the day someone wants its numbers. The values are not checked: a
smoke run's timings mean nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.servers import CHECKOUT

pytestmark = pytest.mark.integration

# Each bench, and where its main figures are in its JSON line: a dotted path per figure.
FIGURES = {
    "bench/api.py": ["sqlite.queries.newest.ratio_p50", "sqlite.live.delivered"],
    "bench/api_load.py": ["sqlite.queries.newest.ratio_p50", "sqlite.live.delivered"],
    "bench/cameras.py": ["cameras_per_core", "native_cameras_per_core", "ratio"],
    "bench/decode.py": ["1080p25.ratio_sampled", "360p25.ratio_sampled"],
    "bench/detect.py": ["ours_calls_per_s", "bare_calls_per_s", "ratio"],
    "bench/flapping.py": ["reconnects", "after.fds"],
    "bench/gate.py": ["gate (default).calls", "gate off, whole frames.calls"],
    "bench/index.py": ["sqlite.bulk_rows_per_s", "postgresql.bulk_rows_per_s"],
    "bench/journal.py": ["ours_cpu_per_stream_s", "native_cpu_per_stream_s", "ratio"],
    "bench/pipeline_latency.py": ["worker_cpu", "ffmpeg_decode_cpu"],
    "bench/sip.py": ["registrations_per_cpu_s", "keepalives_per_cpu_s", "ratio"],
    "bench/upload.py": ["ratio", "ratio_drain"],
}


def test_every_bench_is_run_here() -> None:
    benches = {f"bench/{p.name}" for p in (CHECKOUT / "bench").glob("*.py") if p.name != "smoke.py"}
    assert benches == set(FIGURES), "name each bench and its figures in FIGURES"


def figure(result: dict[str, object], path: str) -> object:
    value: object = result
    for name in path.split("."):
        assert isinstance(value, dict) and name in value, f"no {path!r} in {result}"
        value = value[name]
    return value


@pytest.mark.parametrize("bench", FIGURES)
def test_the_bench_runs_in_its_smoke_mode_and_prints_its_figures(bench: str) -> None:
    run = subprocess.run(
        [sys.executable, bench, "--smoke"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for path in FIGURES[bench]:
        assert isinstance(figure(result, path), int | float), (path, result)
