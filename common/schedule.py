"""The weekly schedule: days of the week with a daily time range, in a site's local time.

Used wherever something holds at certain hours: when a rule watches, when an alarm panel is
armed, when a shop is open.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from pydantic import Field, field_validator

from common.config import StrictModel

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Period(StrictModel):
    """Days of the week and a daily time range (end before start: through midnight; end
    equal to start: the whole day).

    Example:
        >>> weekdays = Period(days=["mon", "tue", "wed", "thu", "fri"], start="00:00", end="00:00")
        >>> friday_night, saturday = datetime(2026, 11, 27, 23, 30), datetime(2026, 11, 28, 9)
        >>> weekdays.contains(friday_night), weekdays.contains(saturday)
        (True, False)
    """

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time_of_day(cls, value: object) -> object:
        # YAML reads an unquoted 22:00 as the number 1320, which pydantic would take as
        # seconds: 00:22 UTC.
        if isinstance(value, int | float):
            raise ValueError('expected a time of day as text, e.g. "22:00" (quoted in YAML)')
        return value

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:  # not comparable with the local times it is checked against
            raise ValueError("expected a local time of day, without a UTC offset")
        return value

    def contains(self, moment: datetime) -> bool:
        now, day = moment.time(), WEEKDAYS[moment.weekday()]
        if self.start == self.end:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        yesterday = WEEKDAYS[(moment.weekday() - 1) % 7]
        return (day in self.days and now >= self.start) or (
            yesterday in self.days and now < self.end
        )
