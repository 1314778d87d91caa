"""`xueliang demo`: the whole pipeline on the embedded default, fed by a simulated camera."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from storage.database.accounts import ApiKeys
from storage.database.index import EventIndex
from xueliang.config import load_config
from xueliang.samples import encode_h264
from xueliang.supervisor import Child, Supervisor

log = logging.getLogger(__name__)
CHECKOUT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"  # GStreamer's Python bindings come from Debian, not the venv


def run_demo(args: argparse.Namespace) -> int:
    data_dir: Path = (args.data_dir or CHECKOUT / "data").resolve()
    source = CHECKOUT / "data" / "samples" / "vtest.avi"
    if not source.exists():
        log.error("%s is missing: run scripts/setup first", source)
        return 1
    footage = encode_h264(source, CHECKOUT / "data" / "samples" / "vtest.mp4")

    raw = yaml.safe_load((CHECKOUT / "configs" / "demo.yaml").read_text())
    demo_dir = data_dir / "demo"
    raw["data_dir"] = str(demo_dir)
    raw["cameras"][0]["url"] = f"rtsp://127.0.0.1:{args.rtsp_port}/demo"
    raw["storage"]["port"] = args.s3_port
    raw["api"]["port"] = args.api_port
    demo_dir.mkdir(parents=True, exist_ok=True)
    config_path = demo_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(config_path)
    key_file = demo_admin_key(EventIndex.connect(config.index.url), demo_dir)

    camera = Child(
        "demo-camera",
        [
            SYSTEM_PYTHON,
            str(CHECKOUT / "scripts" / "rtsp_server.py"),
            "--port",
            str(args.rtsp_port),
            "--mount",
            f"/demo={footage}",
        ],
    )
    api = f"http://127.0.0.1:{args.api_port}"
    return Supervisor(config, config_path, extra=[camera]).run(
        on_ready=[
            f"demo camera: rtsp://127.0.0.1:{args.rtsp_port}/demo",
            f"admin key:   {key_file}",
            f'events:      curl -H "Authorization: Bearer $(cat {key_file})" {api}/api/events',
            f"cameras:     {api}/api/cameras",
            f"API docs:    {api}/docs",
            "Ctrl-C stops everything.",
        ]
    )


def demo_admin_key(index: EventIndex, demo_dir: Path) -> Path:
    """The demo's admin key, in a file only its owner can read: made on the first run (and
    again if it was revoked), never printed or logged."""
    key_file = demo_dir / "admin.key"
    keys = ApiKeys(index)
    if key_file.exists() and keys.authenticate(key_file.read_text().strip()) is not None:
        return key_file
    _, key = keys.create("demo admin", "admin", [], all_sites=True, by="demo")
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)
    key_file.write_text(key + "\n")
    return key_file
