"""`xueliang demo` starts every part as its own child and leaves none behind when stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.servers import CHECKOUT, free_port

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_pipeline_and_stops_cleanly(tmp_path: Path, vtest_avi: Path) -> None:
    api_port = free_port()
    command = [
        sys.executable, "-m", "xueliang", "demo", "--data-dir", str(tmp_path),
        "--api-port", str(api_port), "--rtsp-port", str(free_port()),
        "--s3-port", str(free_port()),
    ]  # fmt: skip
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=CHECKOUT)
    try:
        deadline = time.monotonic() + 120
        cameras: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            assert demo.poll() is None, log_path.read_text()
            try:
                cameras = httpx.get(f"http://127.0.0.1:{api_port}/api/cameras", timeout=2).json()
            except httpx.HTTPError:
                cameras = []
            if cameras and cameras[0]["state"] == "online":
                break
            time.sleep(0.5)
        assert cameras and cameras[0]["state"] == "online", log_path.read_text()
        output = log_path.read_text()
        assert f"http://127.0.0.1:{api_port}/api/events" in output
        children = psutil.Process(demo.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for part in ("weed", "rtsp_server.py", "xueliang api", "xueliang worker"):
            assert part in names, f"{part} is not running under the demo"
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(60)
    assert code == 0, log_path.read_text()
    leftovers = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == [], [c.cmdline() for c in leftovers]
