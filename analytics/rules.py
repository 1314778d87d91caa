"""Anomaly rules over a camera's tracks: each a small class with one `update(tracks, t)`.

A rule reports what it sees now as findings; the event lifecycle turns a finding that
appears into an event start, keeps its best evidence while it lasts, and ends the event when
the finding has been gone for a while. Geometry is in normalized image coordinates, and an
object is where it stands: its box's bottom-centre.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cv2
import numpy as np
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from common.config import StrictModel
from common.schedule import Period
from common.types import BGRImage, Box, Track

Point = tuple[float, float]
Label = Annotated[str, Field(min_length=1, max_length=32)]
VEHICLES = ["car", "truck", "bus", "motorcycle"]
FORGET_S = 10.0  # a track unseen this long is forgotten by rules that remember tracks
# A condition that lapses for no longer than this (one jumpy box, a missed detection or two
# while the gate skips frames) has not ended: dwell and standing clocks keep running.
GRACE_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """An ongoing condition a rule sees: `key` names it (the same key, the same event)."""

    key: str
    label: str
    score: float
    boxes: tuple[Box, ...]
    detail: str = ""


# ---- config: one model per rule type, chosen by `type` ----


class ScheduleConfig(StrictModel):
    """When a rule watches: during its `active` periods in the site's `timezone`, or always."""

    active: list[Period] = Field(
        default_factory=list,
        description="when the rule watches: days and a daily time range each, in `timezone` "
        "(end before start: through midnight; equal: all day); empty: always. Outside them "
        "it reports nothing",
    )
    timezone: str = Field(
        "Asia/Shanghai",
        description="the site's time zone (an IANA name) that the rule's periods are in",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {name!r}: expected an IANA name such as 'Asia/Shanghai'"
            ) from None
        return name


class ZoneRuleConfig(ScheduleConfig):
    """What the config of every zone rule has: the `type` that chooses its rule (each rule's
    config narrows it to its one name, that name its default) and its events' severity."""

    type: str
    severity: Literal["low", "medium", "high"]


class TrackRuleConfig(ZoneRuleConfig):
    """What the config of every rule about the tracks in a zone has: the labels it watches."""

    labels: list[Label] = Field(default_factory=lambda: ["person"], min_length=1)
    severity: Literal["low", "medium", "high"] = "high"


class IntrusionConfig(TrackRuleConfig):
    """An object of `labels` inside the zone for at least `min_dwell_s`."""

    type: Literal["intrusion"] = "intrusion"
    min_dwell_s: float = Field(0.0, ge=0)


class LoiteringConfig(TrackRuleConfig):
    """An object staying in the zone longer than `dwell_s`."""

    type: Literal["loitering"] = "loitering"
    dwell_s: float = Field(60.0, gt=0)
    severity: Literal["low", "medium", "high"] = "medium"


class CrowdConfig(TrackRuleConfig):
    """At least `min_count` objects in the zone for at least `duration_s`."""

    type: Literal["crowd"] = "crowd"
    min_count: int = Field(5, ge=2)
    duration_s: float = Field(10.0, ge=0)
    severity: Literal["low", "medium", "high"] = "medium"


class WrongWayConfig(TrackRuleConfig):
    """An object in the zone moving against `direction` (a vector in image coordinates)."""

    type: Literal["wrong_way"] = "wrong_way"
    direction: tuple[float, float]
    min_distance: float = Field(0.05, gt=0, description="travel (normalized) before judging")
    window_s: float = Field(2.0, gt=0)

    @field_validator("direction")
    @classmethod
    def _not_zero(cls, direction: tuple[float, float]) -> tuple[float, float]:
        if math.hypot(*direction) == 0:
            raise ValueError("direction must not be the zero vector")
        return direction


class IllegalParkingConfig(TrackRuleConfig):
    """A vehicle standing still in the zone for at least `stationary_s`."""

    type: Literal["illegal_parking"] = "illegal_parking"
    labels: list[Label] = Field(default_factory=lambda: list(VEHICLES), min_length=1)
    stationary_s: float = Field(60.0, gt=0)
    max_movement: float = Field(0.02, gt=0, description="normalized drift still 'standing'")
    severity: Literal["low", "medium", "high"] = "low"


class AfterHoursConfig(TrackRuleConfig):
    """Presence in the zone outside the `open` periods, in the site's `timezone`."""

    type: Literal["after_hours"] = "after_hours"
    open: list[Period] = Field(
        min_length=1, description="when the site is open, in `timezone`: presence then is normal"
    )


class LineConfig(ScheduleConfig):
    """A tripwire from point A to point B; crossings are counted per direction.

    Walking from A to B, side "left" is to the left. `direction` a_to_b means crossing from
    the left side to the right side. Outside the `active` periods crossings are not counted.
    """

    name: str = Field(min_length=1, max_length=64)
    points: tuple[Point, Point]
    direction: Literal["a_to_b", "b_to_a", "both"] = "both"
    labels: list[Label] = Field(default_factory=lambda: ["person"], min_length=1)
    severity: Literal["low", "medium", "high"] = "medium"
    margin: float = Field(
        0.01, ge=0, lt=0.5, description="distance from the line that counts as a side"
    )

    @field_validator("points")
    @classmethod
    def _normalized(cls, points: tuple[Point, Point]) -> tuple[Point, Point]:
        if any(not (0 <= x <= 1 and 0 <= y <= 1) for x, y in points):
            raise ValueError("line points must be within 0..1")
        if points[0] == points[1]:
            raise ValueError("a line needs two different points")
        return points


# ---- geometry ----


class Polygon:
    """A zone's polygon, testing where objects stand.

    Example:
        >>> Polygon([(0, 0.5), (1, 0.5), (1, 1), (0, 1)]).contains((0.5, 0.9))
        True
    """

    def __init__(self, points: Sequence[Point]) -> None:
        self._contour = np.array(points, dtype=np.float32).reshape(-1, 1, 2)

    def contains(self, point: Point) -> bool:
        return bool(cv2.pointPolygonTest(self._contour, point, False) >= 0)

    def holds(self, track: Track) -> bool:
        return self.contains(track.box.bottom_centre)


class Since:
    """Since when each of a set of keys has held, forgiving lapses of up to `grace_s`.

    Example:
        >>> clock = Since(grace_s=2.0)
        >>> clock.hold([7], t=0.0), clock.hold([], t=1.0), clock.hold([7], t=1.5)
        ({7: 0.0}, {}, {7: 0.0})
        >>> clock.hold([7], t=6.0)  # away from 1.5 to 6.0: longer than the grace
        {7: 6.0}
    """

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self._held: dict[Hashable, tuple[float, float]] = {}  # key -> (since, last held)

    def hold(self, keys: Iterable[Hashable], t: float) -> dict[Hashable, float]:
        """`keys` hold at `t`: since when each has held."""
        result = {}
        for key in keys:
            since, last = self._held.get(key, (t, t))
            if t - last > self.grace_s:
                since = t
            self._held[key] = (since, t)
            result[key] = since
        self._held = {k: v for k, v in self._held.items() if t - v[1] <= self.grace_s}
        return result


class Schedule:
    """When a rule watches: a `ScheduleConfig`'s periods, with its time zone at hand.

    Example:
        >>> night = Schedule(ScheduleConfig(active=[{"start": "22:00", "end": "06:00"}]))
        >>> shanghai = ZoneInfo("Asia/Shanghai")
        >>> [night.watching(datetime(2026, 11, 24, h, tzinfo=shanghai).timestamp())
        ...  for h in (21, 23, 5, 6)]
        [False, True, True, False]
        >>> Schedule(ScheduleConfig()).always
        True
    """

    def __init__(self, config: ScheduleConfig) -> None:
        self.periods = tuple(config.active)
        self.zone = ZoneInfo(config.timezone)
        self.always = not self.periods

    def local(self, t: float) -> datetime:
        """The wall-clock time `t` (epoch seconds) at the site."""
        return datetime.fromtimestamp(t, self.zone)

    def watching(self, t: float | datetime) -> bool:
        """Whether `t` (epoch seconds, or already the site's local time) is in a period."""
        if self.always:  # most rules: no time conversion at all
            return True
        moment = t if isinstance(t, datetime) else self.local(t)
        return any(period.contains(moment) for period in self.periods)


# ---- rules ----


class Rule(ABC):
    """One anomaly rule of one zone or line. `event_type` names its events; `gbt_alarm` is
    its GB/T 28181 alarm (AlarmMethod, AlarmType) where one fits."""

    event_type: ClassVar[str]
    gbt_alarm: ClassVar[tuple[int, int] | None] = None

    def __init__(self, place: str, severity: str) -> None:
        self.place = place
        self.severity = severity

    def see(self, image: BGRImage, t: float) -> None:  # noqa: B027  (optional hook)
        """Every analysed frame, whether or not the detector ran on it: for rules that look
        at the picture itself (most look only at tracks)."""

    @abstractmethod
    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        """What the rule sees at time `t` among the camera's current tracks."""


def _track_finding(track: Track, detail: str = "") -> Finding:
    return Finding(
        key=f"track:{track.id}",
        label=track.label,
        score=track.score,
        boxes=(track.box,),
        detail=detail,
    )


def _when(sighting: tuple[float, Box]) -> float:
    """The time of a `Track.history` entry: the history is oldest first, so rules find the
    entries they want by bisection instead of walking all of it every frame."""
    return sighting[0]


class ZoneRule(Rule, ABC):
    """A rule of one zone (a polygon), watching during its schedule. Each concrete subclass
    names its `config_model` and registers under that model's `type`: subclassing alone adds
    a rule, which `zone_rule` then builds and zone configs accept (`AnyZoneRuleConfig`).
    Abstract ones (shared code of a family of rules) do not register."""

    config_model: ClassVar[type[ZoneRuleConfig]]
    registry: ClassVar[dict[str, type[ZoneRule]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isabstract(cls):
            return
        name = cls.config_model.model_fields["type"].default
        if not isinstance(name, str):  # else the rule could never be chosen
            raise TypeError(f"{cls.config_model.__name__}.type needs its name as its default")
        ZoneRule.registry[name] = cls

    def __init__(self, place: str, polygon: Polygon, config: ZoneRuleConfig) -> None:
        super().__init__(place, config.severity)
        self.polygon = polygon
        self.schedule = Schedule(config)


class ZoneTrackRule(ZoneRule, ABC):
    """A rule about each object of `labels` standing in a polygon, during its schedule."""

    def __init__(self, place: str, polygon: Polygon, config: TrackRuleConfig) -> None:
        super().__init__(place, polygon, config)
        self.labels = frozenset(config.labels)

    def inside(self, tracks: Sequence[Track], t: float | datetime) -> list[Track]:
        """The tracks of `labels` in the zone at `t` (epoch seconds or the site's local time):
        none outside the active periods, so a rule's clocks start again with each period."""
        if not self.schedule.watching(t):
            return []
        return [tr for tr in tracks if tr.label in self.labels and self.polygon.holds(tr)]


class IntrusionRule(ZoneTrackRule):
    """Example:
    >>> rule = IntrusionRule("door", Polygon([(0, .5), (1, .5), (1, 1), (0, 1)]), IntrusionConfig())
    >>> box = Box(0.4, 0.4, 0.5, 0.8)
    >>> track = Track(id=3, label="person", box=box, score=0.9, first_seen=0, last_seen=1,
    ...               hits=5, history=((1, box),))
    >>> [f.key for f in rule.update([track], 1)]
    ['track:3']
    """

    config_model = IntrusionConfig
    event_type = "zone_intrusion"
    gbt_alarm = (5, 6)

    def __init__(self, place: str, polygon: Polygon, config: IntrusionConfig) -> None:
        super().__init__(place, polygon, config)
        self.min_dwell_s = config.min_dwell_s
        self._entered = Since()

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        inside = self.inside(tracks, t)
        entered = self._entered.hold((tr.id for tr in inside), t)
        return [_track_finding(tr) for tr in inside if t - entered[tr.id] >= self.min_dwell_s]


class LoiteringRule(ZoneTrackRule):
    config_model = LoiteringConfig
    event_type = "loitering"
    gbt_alarm = (5, 8)

    def __init__(self, place: str, polygon: Polygon, config: LoiteringConfig) -> None:
        super().__init__(place, polygon, config)
        self.dwell_s = config.dwell_s
        self._entered = Since()

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        inside = self.inside(tracks, t)
        entered = self._entered.hold((tr.id for tr in inside), t)
        return [
            _track_finding(tr, f"{t - entered[tr.id]:.0f}s")
            for tr in inside
            if t - entered[tr.id] > self.dwell_s
        ]


class CrowdRule(ZoneTrackRule):
    config_model = CrowdConfig
    event_type = "crowd"
    gbt_alarm = (5, 10)

    def __init__(self, place: str, polygon: Polygon, config: CrowdConfig) -> None:
        super().__init__(place, polygon, config)
        self.min_count = config.min_count
        self.duration_s = config.duration_s
        self._crowded = Since()

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        inside = self.inside(tracks, t)
        if len(inside) < self.min_count:
            self._crowded.hold((), t)
            return []
        if t - self._crowded.hold(["crowd"], t)["crowd"] < self.duration_s:
            return []
        boxes = tuple(tr.box for tr in inside)
        score = sum(tr.score for tr in inside) / len(inside)
        return [
            Finding(
                key="crowd",
                label=inside[0].label,
                score=score,
                boxes=boxes,
                detail=f"{len(inside)} objects",
            )
        ]


class WrongWayRule(ZoneTrackRule):
    config_model = WrongWayConfig
    event_type = "wrong_way"
    gbt_alarm = (5, 7)

    def __init__(self, place: str, polygon: Polygon, config: WrongWayConfig) -> None:
        super().__init__(place, polygon, config)
        length = math.hypot(*config.direction)
        self.direction = (config.direction[0] / length, config.direction[1] / length)
        self.min_distance = config.min_distance
        self.window_s = config.window_s

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        found = []
        for track in self.inside(tracks, t):
            first = bisect_left(track.history, t - self.window_s, key=_when)
            if len(track.history) - first < 2:
                continue
            x0, y0 = track.history[first][1].bottom_centre
            x1, y1 = track.history[-1][1].bottom_centre
            dx, dy = x1 - x0, y1 - y0
            travel = math.hypot(dx, dy)
            along = (dx * self.direction[0] + dy * self.direction[1]) / travel if travel else 0
            if travel >= self.min_distance and along < -0.5:  # more than 120 degrees off
                found.append(_track_finding(track))
        return found


class IllegalParkingRule(ZoneTrackRule):
    config_model = IllegalParkingConfig
    event_type = "illegal_parking"

    def __init__(self, place: str, polygon: Polygon, config: IllegalParkingConfig) -> None:
        super().__init__(place, polygon, config)
        self.stationary_s = config.stationary_s
        self.max_movement = config.max_movement
        self._anchor: dict[int, Point] = {}  # where each track stands
        self._standing = Since()  # since when it has stood there
        self._away = Since()  # since when it has been away from there

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        inside = self.inside(tracks, t)
        for track in inside:
            self._anchor.setdefault(track.id, track.box.bottom_centre)
        moved = [
            tr.id
            for tr in inside
            if math.dist(tr.box.bottom_centre, self._anchor[tr.id]) > self.max_movement
        ]
        away = self._away.hold(moved, t)
        for track in inside:  # away for longer than a jumpy box: it moved, standing restarts
            if track.id in away and t - away[track.id] > GRACE_S:
                self._anchor[track.id] = track.box.bottom_centre
        standing = self._standing.hold((tr.id for tr in inside if tr.id not in away), t)
        self._anchor = {i: p for i, p in self._anchor.items() if i in standing or i in away}
        return [
            _track_finding(tr, f"{t - standing[tr.id]:.0f}s")
            for tr in inside
            if tr.id in standing and t - standing[tr.id] >= self.stationary_s
        ]


class AfterHoursRule(ZoneTrackRule):
    config_model = AfterHoursConfig
    event_type = "after_hours"
    gbt_alarm = (5, 6)

    def __init__(self, place: str, polygon: Polygon, config: AfterHoursConfig) -> None:
        super().__init__(place, polygon, config)
        self.open = config.open

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        local = self.schedule.local(t)  # once, for both `open` and `active`
        if any(period.contains(local) for period in self.open):
            return []
        return [_track_finding(tr) for tr in self.inside(tracks, local)]


class LineCrossingRule(Rule):
    """Counts crossings of a tripwire per direction; each crossing is a finding once.

    An object has crossed when where it stands goes from at least `margin` on one side of the
    line to at least `margin` on the other, beside the segment: a box jittering on the line
    is not counted again and again.

    Example:
        >>> line = LineCrossingRule(LineConfig(name="gate", points=((0.5, 0), (0.5, 1))))
        >>> a, b = Box(0.3, 0.2, 0.4, 0.6), Box(0.6, 0.2, 0.7, 0.6)
        >>> walker = Track(id=1, label="person", box=b, score=0.9, first_seen=0.0, last_seen=1.0,
        ...                hits=3, history=((0.0, a), (1.0, b)))
        >>> [f.detail for f in line.update([walker], 1.0)], line.counts
        (['b_to_a'], {'a_to_b': 0, 'b_to_a': 1})
    """

    event_type = "line_crossing"
    gbt_alarm = (5, 5)

    def __init__(self, config: LineConfig) -> None:
        super().__init__(config.name, config.severity)
        self.a, self.b = config.points
        self.direction = config.direction
        self.labels = frozenset(config.labels)
        self.margin = config.margin
        self.schedule = Schedule(config)
        self.counts = {"a_to_b": 0, "b_to_a": 0}
        self._length = math.dist(self.a, self.b)
        self._side: dict[int, tuple[int, float]] = {}  # id -> (side, time of the last point)

    def _place(self, point: Point) -> tuple[float, float]:
        """Signed distance from the line (positive: the right side of A->B, image y down)
        and position along it (0 at A, 1 at B)."""
        (ax, ay), (bx, by) = self.a, self.b
        dx, dy = bx - ax, by - ay
        across = (dx * (point[1] - ay) - dy * (point[0] - ax)) / self._length
        along = (dx * (point[0] - ax) + dy * (point[1] - ay)) / self._length**2
        return across, along

    def update(self, tracks: Sequence[Track], t: float) -> list[Finding]:
        # Sides are followed off the schedule too: a crossing just before a period starts is
        # judged then, not counted when the period starts.
        watching = self.schedule.watching(t)
        found = []
        for track in tracks:
            if track.label not in self.labels:
                continue
            side, seen = self._side.get(track.id, (0, float("-inf")))
            for when, box in track.history[bisect_right(track.history, seen, key=_when) :]:
                if when <= seen:  # a repeated time: that moment is judged already
                    continue
                seen = when
                across, along = self._place(box.bottom_centre)
                if abs(across) < self.margin or not -0.05 <= along <= 1.05:
                    continue
                now = 1 if across > 0 else -1
                if side and now != side and watching:
                    way = "a_to_b" if now > 0 else "b_to_a"
                    self.counts[way] += 1
                    if self.direction in (way, "both"):
                        key = f"track:{track.id}:{way}:{self.counts[way]}"
                        found.append(
                            Finding(
                                key=key,
                                label=track.label,
                                score=track.score,
                                boxes=(track.box,),
                                detail=way,
                            )
                        )
                side = now
            self._side[track.id] = (side, seen)
        self._side = {i: s for i, s in self._side.items() if t - s[1] <= FORGET_S}
        return found


def zone_rule(place: str, points: Sequence[Point], config: ZoneRuleConfig) -> ZoneRule:
    """The registered rule `config.type` names, for the zone `place` with polygon `points`.

    Example:
        >>> type(zone_rule("door", [(0, 0), (1, 0), (1, 1)], IntrusionConfig())).__name__
        'IntrusionRule'
    """
    return ZoneRule.registry[config.type](place, Polygon(points), config)


def _registered_configs() -> TypeAdapter[ZoneRuleConfig]:
    """The config models of the zone rules registered now, as one union chosen by `type`."""
    return _union_by_type(tuple(rule.config_model for rule in ZoneRule.registry.values()))


@functools.cache  # a union is built once for each set of rules
def _union_by_type(models: tuple[type[ZoneRuleConfig], ...]) -> TypeAdapter[ZoneRuleConfig]:
    # Any: a union made at run time is no type that a type checker can follow.
    union: Any = Annotated[functools.reduce(operator.or_, models), Field(discriminator="type")]
    return TypeAdapter(union)


class _RegisteredConfigUnion:
    """Pydantic metadata: a field validated, and described in JSON schemas, by the union of
    the zone rules registered when it is used rather than when its model was defined, so a
    rule defined after the config models is accepted too."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            lambda config: _registered_configs().validate_python(config)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(_registered_configs().core_schema)


if TYPE_CHECKING:
    AnyZoneRuleConfig = ZoneRuleConfig
else:
    # Over `object`, not the base model: FastAPI would list that model in the OpenAPI schema,
    # where nothing refers to it.
    AnyZoneRuleConfig = Annotated[object, _RegisteredConfigUnion()]
"""A zone rule's config: that of the registered rule its `type` names."""
