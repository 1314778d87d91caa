"""The supervisor: starts the embedded S3 server, the API and the worker, and stops them."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from common.process import spawn_owned
from storage.config import EmbeddedS3Config
from storage.database.index import EventIndex
from storage.media.embedded_s3 import EmbeddedS3Server
from xueliang.config import Config

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 20.0
RESTART_DELAY_S = 2.0
RESTART_MAX_DELAY_S = 60.0
STABLE_S = 60.0  # a child that ran this long before dying starts the delay over


@dataclass
class Child:
    """A child process the supervisor keeps running until it stops."""

    name: str
    command: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = field(default=0.0)
    failures: int = 0  # quick deaths in a row: the restart delay doubles with each

    def start(self) -> None:
        self.process = spawn_owned(self.command)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def restart_due(self, now: float) -> bool:
        """Dead and waited long enough: RESTART_DELAY_S, doubling per quick death, capped."""
        if self.process is None or self.process.poll() is None:
            return False
        delay = min(RESTART_MAX_DELAY_S, RESTART_DELAY_S * 2 ** min(self.failures, 10))
        return bool(now - self.started_at > delay)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()


def child_command(role: str, config_path: Path) -> list[str]:
    return [sys.executable, "-m", "xueliang", role, str(config_path)]


class Supervisor:
    """Runs the pipeline's processes; restarts a child that dies; stops all on SIGTERM/SIGINT.

    Example:
        >>> Supervisor(config, Path("configs/demo.yaml")).run()  # doctest: +SKIP
    """

    def __init__(self, config: Config, config_path: Path, extra: Sequence[Child] = ()) -> None:
        self.config = config
        self.children = [
            *extra,
            Child("api", child_command("api", config_path)),
            *([Child("sip", child_command("sip", config_path))] if config.gb28181.enabled else []),
            *(
                Child(f"worker-{n}", child_command("worker", config_path))
                for n in range(1, config.workers + 1)
            ),
        ]
        self.s3: EmbeddedS3Server | None = None
        if isinstance(config.storage, EmbeddedS3Config):
            self.s3 = EmbeddedS3Server(config.storage)
        self._stop = threading.Event()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self._stop.set()

    def run(self, on_ready: Sequence[str] = ()) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if self.s3 is not None:
                self.s3.start()
            EventIndex.connect(self.config.index.url)  # the schema, once, before any child
            self.config.sealer()  # and the key file, so that every child reads the same one
            for child in self.children:
                child.start()
            for line in on_ready:
                print(line, flush=True)
            while not self._stop.wait(0.5):
                self._restart_dead()
        finally:
            self.shutdown()
        return 0

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.restart_due(now):
                assert child.process is not None
                ran = now - child.started_at
                child.failures = 0 if ran > STABLE_S else child.failures + 1
                log.error(
                    "%s exited with code %s after %.0fs; restarting it",
                    child.name,
                    child.process.returncode,
                    ran,
                )
                child.start()
        if self.s3 is not None and not self.s3.running:
            log.error("the embedded S3 server exited; restarting it")
            try:
                self.s3.start()
            except (RuntimeError, TimeoutError) as exc:
                log.error("embedded S3 server did not restart: %s", exc)

    def shutdown(self) -> None:
        for child in reversed(self.children):
            child.terminate()
        for child in reversed(self.children):
            child.wait(STOP_TIMEOUT_S)
        if self.s3 is not None:
            self.s3.stop()
        log.info("all stopped")
