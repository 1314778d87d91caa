"""Fixtures: sample footage and the real servers the integration tests talk to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.config import EmbeddedS3Config
from storage.media.embedded_s3 import EmbeddedS3Server
from storage.media.objects import ObjectStore
from tests.media import corrupt_copy

# Session PostgreSQL, and `index`: each test that takes it runs on SQLite and on PostgreSQL.
from tests.postgres import index, index_url, postgres  # noqa: F401
from tests.servers import CHECKOUT, RtspCamera, free_port
from xueliang.samples import encode, encode_h264

SAMPLES = CHECKOUT / "data" / "samples"


def sample(name: str) -> Path:
    """A sample file that scripts/setup fetched; a clear failure when it is missing."""
    path = SAMPLES / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup")
    return path


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    return sample("vtest.avi")


@pytest.fixture(scope="session")
def carphone_mp4() -> Path:
    """A man talking in a car, his face filling the picture (176x144, 4 s)."""
    return sample("carphone_pristine.mp4")


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A real S3 server for the session: SeaweedFS, started as the embedded default is."""
    config = EmbeddedS3Config(data_dir=tmp_path_factory.mktemp("s3"), port=free_port())
    server = EmbeddedS3Server(config)
    server.start()
    try:
        store = ObjectStore.from_config(config)
        store.ensure_bucket()
        yield store
    finally:
        server.stop()


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


@pytest.fixture(scope="session")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("more-footage")


@pytest.fixture(scope="session")
def vtest_small_h264(vtest_avi: Path, footage: Path) -> Path:
    """The same scene at 384x288: a camera's sub-stream."""
    return encode(vtest_avi, footage / "vtest-384.mp4", size=(384, 288))


@pytest.fixture(scope="session")
def vtest_h265(vtest_avi: Path, footage: Path) -> Path:
    """The first 30 s of vtest.avi in H.265."""
    return encode(vtest_avi, footage / "vtest-h265.mp4", codec="libx265", frames=300)


@pytest.fixture(scope="session")
def vtest_corrupt(vtest_h264: Path, footage: Path) -> Path:
    """vtest with random bytes spliced into every fifth packet."""
    return corrupt_copy(vtest_h264, footage / "vtest-corrupt.mp4")
