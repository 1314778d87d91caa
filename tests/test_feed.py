"""The event feed read in order, each entry once, a late commit included, on both backends."""

from __future__ import annotations

import pytest

from storage.database.feed import FeedReader
from storage.database.index import EventFeedRow, EventIndex
from tests.events import person_event

pytestmark = pytest.mark.integration


def entry(index: EventIndex, entry_id: int, event_id: str) -> None:
    """A feed entry with a chosen id: as if its transaction took that id and committed now."""
    with index.sessions.begin() as session:
        session.add(EventFeedRow(id=entry_id, event_id=event_id, site="hq", kind="started"))


def test_each_entry_is_read_once_and_a_late_one_is_not_missed(index: EventIndex) -> None:
    event = person_event()
    index.add_event(event)  # entry 1: before the reader starts, not read
    reader = FeedReader(index)
    assert reader.read() == []
    entry(index, 3, event.id)  # 2 is still open in another transaction
    assert [e.id for e in reader.read()] == [3]
    assert reader.read() == []
    entry(index, 2, event.id)  # ... and commits late
    entry(index, 4, event.id)
    read = reader.read()
    assert [e.id for e in read] == [2, 4] and read[0].event is not None
    assert read[0].event.id == event.id
    assert reader.read() == []
    assert [e.id for e in FeedReader(index, after=2).read()] == [3, 4]  # from a stored cursor
