"""A task run every so often on a thread of its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs `work` every `every_s` seconds (first after one interval) until `stop`; a round
    that fails is logged and the next one runs anyway.

    Example:
        >>> rounds = []
        >>> task = Periodic("count", 0.01, lambda: rounds.append(1))
        >>> task.start(); import time; time.sleep(0.1); task.stop()
        >>> len(rounds) >= 2
        True
    """

    def __init__(self, name: str, every_s: float, work: Callable[[], object]) -> None:
        self.name = name
        self.every_s = every_s
        self.work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.work()
            except Exception:
                log.exception("%s failed", self.name)
