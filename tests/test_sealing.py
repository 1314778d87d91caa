"""Camera credentials are sealed in the index under keys kept in a file apart from it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from storage.database.cameras import ApiCameras, CameraRow, NetworkCameraConfig
from storage.database.index import EventIndex
from storage.database.sealing import CredentialSealer, SealError

PASSWORD = "Pa55-w0rd-XL"


def door(camera_id: str = "door") -> NetworkCameraConfig:
    return NetworkCameraConfig(
        id=camera_id, site="shop-7", url=f"rtsp://admin:{PASSWORD}@10.0.0.9/{camera_id}"
    )


def stored(index: EventIndex, camera_id: str) -> tuple[str | None, str | None]:
    with index.sessions() as session:
        row = session.get(CameraRow, camera_id)
        assert row is not None
        return row.username, row.password


def test_the_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "index.key"
    made: list[CredentialSealer] = []
    racers = [
        threading.Thread(target=lambda: made.append(CredentialSealer.from_file(path)))
        for _ in range(8)
    ]  # processes starting at once must all end up with the one key
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_bytes().splitlines()) == 1
    sealed = made[0].seal(PASSWORD)
    assert all(sealer.open(sealed) == PASSWORD for sealer in made)
    assert list(path.parent.iterdir()) == [path]  # no drafts left behind
    assert CredentialSealer.from_file(path).open(sealed) == PASSWORD  # a later start


def test_a_key_file_without_a_key_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "index.key"
    path.write_text("\n")
    with pytest.raises(ValueError, match=r"index\.key holds no valid key"):
        CredentialSealer.from_file(path)


def test_stored_credentials_are_sealed_and_open_for_the_workers(index: EventIndex) -> None:
    cameras = ApiCameras(index, CredentialSealer([Fernet.generate_key()]))
    cameras.put(door())
    username, password = stored(index, "door")
    assert username is not None and password is not None
    assert username.startswith("sealed:") and password.startswith("sealed:")
    assert PASSWORD not in password and "admin" not in username
    camera = cameras.get("door")
    assert camera is not None and camera.password is not None
    assert (camera.username, camera.password.get_secret_value()) == ("admin", PASSWORD)


def test_reseal_seals_old_plain_values_and_rotates_keys_once(index: EventIndex) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    ApiCameras(index, CredentialSealer([old])).put(door("rotated"))
    cameras = ApiCameras(index, CredentialSealer([new, old]))  # a new key, the old one kept
    cameras.put(door("current"))
    cameras.put(door("plain"))
    with index.sessions.begin() as session:  # as stored before sealing existed
        session.execute(
            update(CameraRow)
            .where(CameraRow.id == "plain")
            .values(username="admin", password=PASSWORD)
        )
    current = stored(index, "current")

    assert cameras.reseal() == 2  # the plain one and the old key's; the current one as it is
    assert stored(index, "current") == current
    only_new = ApiCameras(index, CredentialSealer([new]))
    for camera_id in ("rotated", "current", "plain"):
        camera = only_new.get(camera_id)
        assert camera is not None and camera.password is not None
        assert camera.password.get_secret_value() == PASSWORD
        assert PASSWORD not in str(stored(index, camera_id))
    assert cameras.reseal() == 0


def test_a_node_with_another_key_leaves_those_cameras_out_and_says_why(
    index: EventIndex, caplog: pytest.LogCaptureFixture
) -> None:
    ApiCameras(index, CredentialSealer([Fernet.generate_key()])).put(door("sealed-elsewhere"))
    here = ApiCameras(index, CredentialSealer([Fernet.generate_key()]))
    here.put(door("sealed-here"))
    with caplog.at_level(logging.ERROR):
        listed = [camera.id for camera in here.list()]
    assert listed == ["sealed-here"]
    assert "sealed-elsewhere" in caplog.text and "same key file" in caplog.text
    with pytest.raises(SealError):
        here.get("sealed-elsewhere")
