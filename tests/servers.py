"""Real servers for the tests, on free loopback ports: the RTSP camera and the pipeline."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from minio import Minio

CHECKOUT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RtspCamera:
    """scripts/rtsp_server.py serving MP4 files as live RTSP mounts (GStreamer)."""

    def __init__(
        self,
        mounts: dict[str, Path],
        user: str | None = None,
        password: str | None = None,
        auth: str = "basic",
    ) -> None:
        self.mounts = mounts
        self.port = free_port()
        self.user = user
        self.password = password
        self.auth = auth
        self.process: subprocess.Popen[str] | None = None

    def url(self, mount: str, with_credentials: bool = False) -> str:
        auth = f"{self.user}:{self.password}@" if with_credentials and self.user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{mount.strip('/')}"

    def start(self, timeout: float = 30.0) -> None:
        command = [
            SYSTEM_PYTHON,
            str(CHECKOUT / "scripts" / "rtsp_server.py"),
            "--port",
            str(self.port),
        ]
        for mount, path in self.mounts.items():
            command += ["--mount", f"/{mount.strip('/')}={path}"]
        if self.user:
            command += ["--user", self.user, "--password", self.password or "", "--auth", self.auth]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


class App:
    """A running Xueliang (its API on `api_port`) as a child process in its own process
    group, its output captured to `log_path`; `get` asks its API with the admin key `key`."""

    def __init__(self, workdir: Path, api_port: int, log_name: str) -> None:
        self.workdir = workdir
        self.api_port = api_port
        self.log_path = workdir / log_name
        self.process: subprocess.Popen[bytes] | None = None
        self.key = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET `path` of the API with the admin key."""
        return httpx.get(f"{self.api}{path}", headers=self.headers, **{"timeout": 30, **kwargs})

    def launch(self, command: list[str], cwd: Path, timeout: float) -> None:
        """Start `command`; return once the API answers /healthz and `key` is known."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            with contextlib.suppress(httpx.HTTPError, OSError):
                self.key = self.key or self.read_key()
                if httpx.get(f"{self.api}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"the API is not up in {timeout}s:\n{self.log()}")

    def read_key(self) -> str:
        """The admin key, where the app wrote it (OSError until it has)."""
        raise OSError("no key file")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.send_stop()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def send_stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)  # the app stops its own children

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, path: str, predicate: Any, timeout: float) -> Any:
        """Poll GET `path` until `predicate(json)` returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log()
            with contextlib.suppress(httpx.HTTPError):  # a busy moment: ask again
                body = self.get(path, timeout=5).json()
                found = predicate(body)
                if found:
                    return found
            time.sleep(0.5)
        raise TimeoutError(f"GET {path} never satisfied the test; last answer: {body}")


class Pipeline(App):
    """`xueliang run CONFIG`, with an admin key made by `xueliang create-key` before it."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        super().__init__(workdir, config["api"]["port"], "pipeline.log")
        self.config_path = workdir / "config.yaml"
        self.config = config

    def start(self, timeout: float = 90.0) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))
        if not self.key:
            made = subprocess.run(
                [sys.executable, "-m", "xueliang", "create-key", str(self.config_path),
                 "--name", "tests", "--role", "admin", "--all-sites"],
                capture_output=True, text=True, check=True, cwd=self.workdir,
            )  # fmt: skip
            self.key = made.stdout.strip()
        command = [sys.executable, "-m", "xueliang", "run", str(self.config_path)]
        self.launch(command, self.workdir, timeout)

    def s3(self) -> tuple[Minio, str]:
        storage = self.config["storage"]
        credentials = json.loads((Path(storage["data_dir"]) / "credentials.json").read_text())
        client = Minio(
            f"127.0.0.1:{storage['port']}",
            credentials["access_key"],
            credentials["secret_key"],
            secure=False,
        )
        return client, storage["bucket"]


class Demo(App):
    """`xueliang demo` (its demo camera, embedded S3, SQLite, API and workers) on free ports
    inside `workdir`, stopped as Ctrl-C stops it; `key` is the admin key the demo made."""

    def send_stop(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, free_port(), "demo.log")
        self.rtsp_port = free_port()

    @property
    def camera_url(self) -> str:
        return f"rtsp://127.0.0.1:{self.rtsp_port}/demo"

    def start(self, timeout: float = 120.0) -> None:
        command = [
            sys.executable, "-m", "xueliang", "demo", "--data-dir", str(self.workdir),
            "--api-port", str(self.api_port), "--rtsp-port", str(self.rtsp_port),
            "--s3-port", str(free_port()),
        ]  # fmt: skip
        self.launch(command, CHECKOUT, timeout)

    def read_key(self) -> str:
        return (self.workdir / "demo" / "admin.key").read_text().strip()


def pipeline_config(
    workdir: Path, cameras: list[dict[str, Any]], **sections: Any
) -> dict[str, Any]:
    """A config for a test run: embedded S3 and SQLite inside `workdir`, free ports."""
    config: dict[str, Any] = {
        "data_dir": str(workdir / "data"),
        "cameras": cameras,
        "storage": {
            "type": "embedded",
            "port": free_port(),
            "bucket": "xueliang-test",
            "data_dir": str(workdir / "data" / "s3"),
        },
        "ingest": {"watchdog_s": 3, "reconnect_min_s": 0.5, "reconnect_max_s": 2, "heartbeat_s": 1},
        # The tests' cameras and receivers are on this machine, as the demo's.
        "api": {"port": free_port(), "egress": {"allow": ["127.0.0.1/32"]}},
    }
    config.update(sections)
    return config


@contextlib.contextmanager
def running(pipeline: Pipeline) -> Iterator[Pipeline]:
    try:
        pipeline.start()
        yield pipeline
    finally:
        pipeline.stop()
