"""Fixtures: sample footage and the real servers the integration tests talk to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import CHECKOUT, RtspCamera
from xueliang.samples import encode_h264

SAMPLES = CHECKOUT / "data" / "samples"


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    path = SAMPLES / "vtest.avi"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup")
    return path


@pytest.fixture(scope="session")
def vtest_h264(vtest_avi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vtest.avi encoded once per session to H.264 (GOP 2 s, no B-frames)."""
    return encode_h264(vtest_avi, tmp_path_factory.mktemp("footage") / "vtest.mp4")


@pytest.fixture
def rtsp_camera(vtest_h264: Path) -> Iterator[RtspCamera]:
    camera = RtspCamera({"walkway": vtest_h264})
    camera.start()
    yield camera
    camera.stop()
