"""`xueliang check-config`: every kind of bad config exits non-zero naming the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from xueliang.config import load_config

PASSWORD = "s3cr3t-Pa55"


def good_config() -> dict[str, Any]:
    return {
        "cameras": [
            {
                "id": "gate",
                "site": "hq",
                "url": f"rtsp://admin:{PASSWORD}@127.0.0.1:8554/gate",
                "zones": [{"name": "door", "points": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}],
            }
        ]
    }


def check(tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "xueliang", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_valid_config_passes_and_keeps_credentials_out_of_the_url(tmp_path: Path) -> None:
    result = check(tmp_path, good_config())
    assert result.returncode == 0, result.stderr
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(good_config()))
    camera = load_config(tmp_path / "c.yaml").cameras[0]
    assert camera.url == "rtsp://127.0.0.1:8554/gate"
    assert camera.username == "admin"
    assert camera.password is not None and camera.password.get_secret_value() == PASSWORD


def broken(path: list[str | int], value: Any) -> dict[str, Any]:
    config = good_config()
    node: Any = config
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return config


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (broken(["cameras", 0, "colour"], "red"), "cameras.0.colour: unknown key"),
        (
            broken(["cameras", 0, "url"], f"ftp://admin:{PASSWORD}@10.0.0.1/x"),
            "cameras.0.url: unsupported URL scheme 'ftp'",
        ),
        (
            broken(["cameras", 0, "zones", 0, "points", 2], [0.5, 1.5]),
            "cameras.0.zones.0.points: point 2 (0.5, 1.5) is outside 0..1",
        ),
        (
            {**good_config(), "detector": {"type": "ssd_onnx", "model": "no/such/model.onnx"}},
            "detector.model: model file not found",
        ),
        ({**good_config(), "storage": {"type": "ftp"}}, "storage: Input tag 'ftp'"),
        ({"cameras": {"gate": "rtsp://10.0.0.1/x"}}, "cameras: Input should be a valid list"),
        (
            broken(["cameras", 0, "url"], f"rtsp://admin:{PASSWORD}/x@10.0.0.1/live"),
            "cameras.0.url: URL has '@' after its host",
        ),
        (
            broken(
                ["cameras", 0, "zones", 0, "rules"],
                [{"type": "intrusion", "timezone": "Mars/Olympus"}],
            ),
            "cameras.0.zones.0.rules.0.intrusion.timezone: unknown timezone 'Mars/Olympus'",
        ),
        ({**good_config(), "data_dir": 5}, "data_dir: expected a path"),
        (
            {
                **good_config(),
                "clips": {"pre_roll_s": 5, "post_roll_s": 5},
                "analytics": {"events": {"max_duration_s": 60, "end_after_s": 30}},
                "ingest": {"ring_s": 80},
            },
            "must cover the longest clip",
        ),
        (
            broken(["cameras", 0, "zones", 0, "name"], "door\r\nX-Injected: 1"),
            "cameras.0.zones.0.name: holds the control character U+000D",
        ),
        (
            broken(["cameras", 0, "url"], f"rtsp://admin:{PASSWORD}@10.0.0.1/live\x00"),
            "cameras.0.url: holds the control character U+0000",
        ),
        ({**good_config(), "logs": {"format": "xml"}}, "logs.format: Input should be 'text'"),
        (
            broken(["cameras", 0, "url"], f"rtsp://admin:{PASSWORD}@10.0.0.1:99999/live"),
            "cameras.0.url: the URL's port is not a number from 1 to 65535",
        ),
        (
            broken(["cameras", 0, "url"], f"rtsp://admin:{PASSWORD}@10.0.0.1/live%zz"),
            "cameras.0.url: the URL has a '%' that is not followed by two hex digits",
        ),
        (
            broken(["cameras", 0, "url"], f"rtsp://admin:{PASSWORD}@[fe80::1/live"),
            "cameras.0.url: the URL's host is not a valid IPv6 address",
        ),
    ],
    ids=[
        "unknown-key",
        "bad-scheme",
        "zone-point",
        "model-file",
        "storage-type",
        "cameras-not-a-list",
        "unencoded-password",
        "rule-timezone",
        "data-dir-type",
        "ring-too-short",
        "line-break-in-a-name",
        "nul-in-a-url",
        "log-format",
        "port-out-of-range",
        "bad-percent-escape",
        "broken-ipv6-host",
    ],
)
def test_bad_config_names_the_key_path(
    tmp_path: Path, config: dict[str, Any], expected: str
) -> None:
    result = check(tmp_path, config)
    assert result.returncode != 0
    assert expected in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    config = broken(["cameras", 0, "colour"], "red")
    config["cameras"][0]["zones"][0]["points"][0] = [-0.1, 0.0]
    result = check(tmp_path, config)
    assert result.returncode != 0
    assert "cameras.0.colour: unknown key" in result.stderr
    assert "cameras.0.zones.0.points: point 0 (-0.1, 0.0) is outside 0..1" in result.stderr


def test_unreadable_yaml_is_a_clear_error_without_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"cameras:\n  - url: rtsp://admin:{PASSWORD}: x@10.0.0.1/\n")
    result = subprocess.run(
        [sys.executable, "-m", "xueliang", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "not valid YAML at line 2" in result.stderr
    assert PASSWORD not in result.stderr


def test_a_model_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    result = check(tmp_path, {**good_config(), "detector": {"model": "broken.onnx"}})
    assert result.returncode != 0
    assert "detector.model: cannot be loaded" in result.stderr
