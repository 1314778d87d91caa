"""`xueliang demo` starts every part as its own child and leaves none behind when stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from storage.index import EventIndex
from tests.servers import CHECKOUT, free_port

pytestmark = pytest.mark.integration


def poll(url: str, predicate: Any, timeout: float, demo: subprocess.Popen[bytes], log: Path) -> Any:
    """GET `url` with the demo's admin key (once the demo has made it) until `predicate`."""
    key_file = log.parent / "demo" / "admin.key"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert demo.poll() is None, log.read_text()
        try:
            key = key_file.read_text().strip() if key_file.exists() else ""
            answer = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=2)
            found = predicate(answer.json()) if answer.status_code == 200 else None
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{url} never satisfied the test:\n{log.read_text()}")


def test_demo_runs_the_pipeline_and_ctrl_c_stops_it_without_loss(
    tmp_path: Path, vtest_avi: Path
) -> None:
    api = f"http://127.0.0.1:{free_port()}"
    command = [
        sys.executable, "-m", "xueliang", "demo", "--data-dir", str(tmp_path),
        "--api-port", api.rsplit(":", 1)[1], "--rtsp-port", str(free_port()),
        "--s3-port", str(free_port()),
    ]  # fmt: skip
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=CHECKOUT, start_new_session=True
        )
    try:
        poll(f"{api}/api/cameras", lambda c: c and c[0]["state"] == "online", 120, demo, log_path)
        assert f"{api}/api/events" in log_path.read_text()
        key_file = tmp_path / "demo" / "admin.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{api}/api/events", timeout=5).status_code == 401  # no key, no data
        children = psutil.Process(demo.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for part in ("weed", "rtsp_server.py", "xueliang api", "xueliang worker"):
            assert part in names, f"{part} is not running under the demo"
        active = poll(
            f"{api}/api/events",
            lambda body: next((e for e in body["items"] if e["state"] == "active"), None),
            90,
            demo,
            log_path,
        )
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = demo.wait(60)
    output = log_path.read_text()
    assert code == 0, output
    leftovers = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == [], [c.cmdline() for c in leftovers]
    # The event that was open at Ctrl-C was ended and stored before S3 stopped.
    index = EventIndex.connect(f"sqlite:///{tmp_path / 'demo' / 'xueliang.db'}")
    stored = index.get_event(active["id"])
    assert stored is not None and stored.state == "ended"
    assert stored.snapshot_key and stored.clip_key, output
    assert "Traceback" not in output
    assert key_file.read_text().strip() not in output  # the key is in its file only
