"""The data that crosses stage boundaries: frames, detections and events.

Everything here is plain data with no behaviour tied to a stage, so `ingest`, `analytics`,
`storage` and `api` can all import it without importing each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

BGRImage = npt.NDArray[np.uint8]
# A copy of a picture with something hidden (faces): what snapshots and camera pictures get.
Mask = Callable[[BGRImage], BGRImage]
# The same for a clip: its pictures in order, masked (in place or not), as many and in the
# same order; it may look at several before it yields the first (faces are found every
# few frames and the frames between are masked with the boxes on both sides).
ClipMask = Callable[[Iterator[BGRImage]], Iterator[BGRImage]]


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded picture of one camera, stamped with the wall-clock time it was received.

    Example:
        >>> import numpy as np
        >>> Frame("gate", np.zeros((2, 2, 3), np.uint8), wall_time=1.0).shape
        (2, 2)
    """

    camera_id: str
    image: BGRImage
    wall_time: float

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the picture."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in normalized coordinates (0..1 of width and height)."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    @property
    def bottom_centre(self) -> tuple[float, float]:
        """Where an object stands on the ground: the middle of the box's bottom edge."""
        return (self.x1 + self.x2) / 2.0, self.y2

    def to_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    def intersection(self, other: Box) -> float:
        """The area `other` shares with this box.

        Example:
            >>> Box(0.0, 0.0, 0.5, 1.0).intersection(Box(0.25, 0.5, 0.75, 1.0))
            0.125
        """
        width = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        height = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        return width * height

    def iou(self, other: Box) -> float:
        """Intersection over union with `other`.

        Example:
            >>> Box(0.0, 0.0, 0.5, 1.0).iou(Box(0.25, 0.0, 0.75, 1.0))
            0.3333333333333333
        """
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def union(self, other: Box) -> Box:
        """The smallest box holding both."""
        return Box(
            min(self.x1, other.x1),
            min(self.y1, other.y1),
            max(self.x2, other.x2),
            max(self.y2, other.y2),
        )


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found by a detector.

    Example:
        >>> Detection(Box(0.1, 0.2, 0.3, 0.9), score=0.8, label="person").box.bottom_centre
        (0.2, 0.9)
    """

    box: Box
    score: float
    label: str


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """An anomaly with a lifecycle: it starts, is updated with better evidence, and ends.

    `snapshot` holds the JPEG of the best frame seen so far (highest score x box area).
    Immutable, so that what analytics hands to storage (on another thread) stays as it was
    handed: an update is a new `Event` with the same `id` (`dataclasses.replace`).
    """

    camera_id: str
    site: str
    type: str
    label: str
    zone: str
    severity: str
    started_at: float
    last_seen_at: float
    best_score: float = 0.0
    best_box: Box | None = None
    snapshot: bytes | None = None
    snapshot_at: float | None = None
    ended_at: float | None = None
    detail: str = ""
    alarm: tuple[int, int] | None = None  # GB/T 28181 (AlarmMethod, AlarmType)
    # Seconds of video before the start and after the end that its clip holds, when not the
    # deployment's pre- and post-roll (an alarm panel's pre-alarm window).
    clip_around: tuple[float, float] | None = None
    id: str = field(default_factory=new_event_id)


class EventSink(Protocol):
    """Where the analytics stage hands its events (the storage stage implements it)."""

    def event_started(self, event: Event) -> None: ...

    def event_ended(self, event: Event) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Track:
    """One object followed across a camera's frames: its smoothed box now and where it was.

    `id` is stable for as long as the camera's tracker follows the object; `box` is smoothed
    by the tracker and `score` is the latest detection's. `history` holds the (time, box) of
    the latest sightings, oldest first, as many as the tracker keeps.

    Example:
        >>> before, now = Box(0.0, 0.25, 0.25, 0.75), Box(0.25, 0.25, 0.5, 0.75)
        >>> track = Track(id=7, label="person", box=now, score=0.9, first_seen=3.0,
        ...               last_seen=3.5, hits=2, history=((3.0, before), (3.5, now)))
        >>> track.age, track.path
        (0.5, ((3.0, (0.125, 0.75)), (3.5, (0.375, 0.75))))
    """

    id: int
    label: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int
    history: tuple[tuple[float, Box], ...]

    @property
    def age(self) -> float:
        """Seconds from the first sighting to the latest."""
        return self.last_seen - self.first_seen

    @property
    def path(self) -> tuple[tuple[float, tuple[float, float]], ...]:
        """Where the object stood over time: (time, bottom-centre) of each `history` entry."""
        return tuple((t, box.bottom_centre) for t, box in self.history)
