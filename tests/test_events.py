"""The event lifecycle: start, best snapshot, end after the object is gone, continuation."""

from __future__ import annotations

import numpy as np

from analytics.config import EventTimingConfig
from analytics.events import EventKind, EventLifecycle
from analytics.rules import Finding, Polygon
from common.types import Box, Frame
from tests.media import decode_jpeg
from tests.sinks import Collected


def frame(t: float) -> Frame:
    return Frame("gate", np.zeros((120, 160, 3), np.uint8), t)


def person(score: float, size: float = 0.2, key: str = "track:1") -> Finding:
    return Finding(
        key=key, label="person", score=score, boxes=(Box(0.4, 0.4, 0.4 + size, 0.4 + size),)
    )


def lifecycle(sink: Collected, **timing: float) -> EventLifecycle:
    kind = EventKind("zone_intrusion", "door", "high", (5, 6))
    return EventLifecycle("gate", "hq", kind, EventTimingConfig(**timing), sink)


def test_event_ends_once_the_object_is_gone_for_end_after() -> None:
    sink = Collected()
    life = lifecycle(sink, end_after_s=2.0)
    life.observe(frame(10.0), [person(0.6)])
    life.observe(frame(11.0), [person(0.7)])
    life.observe(frame(11.5), [])
    life.tick(12.9)
    assert len(sink.started) == 1 and not sink.ended
    life.tick(13.0)
    assert len(sink.ended) == 1
    event = sink.ended[0]
    assert (event.started_at, event.ended_at) == (10.0, 11.0)
    assert event.id == sink.started[0].id


def test_snapshot_is_the_best_by_score_and_size() -> None:
    sink = Collected()
    life = lifecycle(sink)
    life.observe(frame(1.0), [person(0.9, size=0.1)])
    life.observe(frame(2.0), [person(0.6, size=0.4)])  # 0.6 * 0.16 beats 0.9 * 0.01
    life.observe(frame(3.0), [person(0.95, size=0.05)])
    life.close()
    event = sink.ended[0]
    assert event.snapshot_at == 2.0 and event.best_score == 0.6
    assert event.snapshot is not None
    picture = decode_jpeg(event.snapshot)
    assert picture.shape == (120, 160, 3)
    assert picture[:, :, 2].max() > 200  # the box is drawn in red


def test_long_event_is_continued_by_a_new_one_at_max_duration() -> None:
    sink = Collected()
    life = lifecycle(sink, max_duration_s=5.0)
    for t in range(12):
        life.observe(frame(float(t)), [person(0.8)])
    assert [e.started_at for e in sink.started] == [0.0, 5.0, 10.0]
    assert [(e.started_at, e.ended_at) for e in sink.ended] == [(0.0, 4.0), (5.0, 9.0)]


def test_each_finding_key_is_its_own_event_and_cooldown_dedupes() -> None:
    sink = Collected()
    life = lifecycle(sink, end_after_s=1.0, cooldown_s=5.0)
    life.observe(frame(0.0), [person(0.8, key="track:1"), person(0.7, key="track:2")])
    assert len(sink.started) == 2 and sink.started[0].alarm == (5, 6)
    life.tick(1.5)
    assert len(sink.ended) == 2
    life.observe(frame(3.0), [person(0.8, key="track:1")])  # within the cooldown: no event
    assert len(sink.started) == 2
    life.observe(frame(7.0), [person(0.8, key="track:1")])  # after it: a new event
    assert len(sink.started) == 3


def test_zone_uses_where_the_object_stands() -> None:
    lawn = Polygon([(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
    assert lawn.contains(Box(0.2, 0.1, 0.3, 0.6).bottom_centre)  # mostly above, feet inside
    assert not lawn.contains(Box(0.2, 0.1, 0.3, 0.45).bottom_centre)
