"""Retry delays: exponential, capped, with jitter so that many retriers do not act in step."""

from __future__ import annotations

import random


class Backoff:
    """Exponential delays with jitter and a cap: attempt n waits between half and all of
    min(maximum, minimum * 2**n). `next_delay` counts attempts itself (a stream reconnecting);
    `delay` takes the count (an uploader keeping one per spool entry).

    Example:
        >>> b = Backoff(1.0, 8.0, rng=random.Random(0))
        >>> [round(b.next_delay(), 2) for _ in range(5)]
        [0.92, 1.76, 2.84, 5.04, 6.05]
    """

    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._attempt = 0
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.minimum * 2 ** min(attempt, 32))
        return float(ceiling * self._rng.uniform(0.5, 1.0))

    def next_delay(self) -> float:
        self._attempt += 1
        return self.delay(self._attempt - 1)

    def reset(self) -> None:
        self._attempt = 0
