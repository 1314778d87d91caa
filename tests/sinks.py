"""An event sink for tests: keeps what it is given."""

from __future__ import annotations

from common.types import Event


class Collected:
    """Keeps the events started and ended, in order."""

    def __init__(self) -> None:
        self.started: list[Event] = []
        self.ended: list[Event] = []

    def event_started(self, event: Event) -> None:
        self.started.append(event)

    def event_ended(self, event: Event) -> None:
        self.ended.append(event)
