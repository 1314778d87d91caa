"""`xueliang demo` starts every part as its own child and leaves none behind when stopped."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from storage.database.index import EventIndex
from tests.servers import Demo

pytestmark = pytest.mark.integration


def test_demo_runs_the_pipeline_and_ctrl_c_stops_it_without_loss(
    tmp_path: Path, vtest_avi: Path
) -> None:
    demo = Demo(tmp_path)
    api = demo.api
    demo.start()
    assert demo.process is not None
    try:
        demo.wait_for("/api/cameras", lambda c: c and c[0]["state"] == "online", 120)
        assert f"{api}/api/events" in demo.log()
        key_file = tmp_path / "demo" / "admin.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{api}/api/events", timeout=5).status_code == 401  # no key, no data
        children = psutil.Process(demo.process.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for part in ("weed", "rtsp_server.py", "xueliang api", "xueliang worker"):
            assert part in names, f"{part} is not running under the demo"
        active = demo.wait_for(
            "/api/events",
            lambda body: next((e for e in body["items"] if e["state"] == "active"), None),
            90,
        )
    finally:
        demo.stop()  # Ctrl-C's SIGINT to the demo's process group, as a terminal sends it
    code = demo.process.returncode
    output = demo.log()
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
