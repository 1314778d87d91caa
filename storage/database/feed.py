"""Reading the event feed in order, without missing an entry that committed late."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from storage.database.index import EventFeedRow, EventIndex, EventRow

# Entry ids are handed out at insert and become visible at commit: on PostgreSQL a
# transaction may commit after one that took a higher id. A reader remembers the ids it
# skipped over (up to this many ids back) and asks for those again, so a late entry is still
# read, once; an id whose transaction rolled back just stays a gap until it is this old.
LOOK_BACK = 1000


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One change (`kind`) and the event as it is now (None if it is gone already)."""

    id: int
    kind: str
    site: str
    event_id: str
    at: datetime
    event: EventRow | None


class FeedReader:
    """Reads new feed entries, oldest first, each once.

    Example:
        >>> reader = FeedReader(index)  # from the end of the feed  # doctest: +SKIP
        >>> for entry in reader.read(): print(entry.kind, entry.event_id)  # doctest: +SKIP
        started 4f1c...
    """

    def __init__(self, index: EventIndex, after: int | None = None, batch: int = 500) -> None:
        """From entry `after` on (None: from the current end of the feed)."""
        self.index = index
        self.batch = batch
        with index.sessions() as session:
            last = int(session.scalar(select(func.max(EventFeedRow.id))) or 0)
            self.cursor = last if after is None else after
            window = (EventFeedRow.id > self.cursor - LOOK_BACK, EventFeedRow.id <= self.cursor)
            present = set(session.scalars(select(EventFeedRow.id).where(*window)))
        # Ids below the cursor with no entry (yet): a late commit may still fill one.
        self._gaps = set(range(max(1, self.cursor - LOOK_BACK + 1), self.cursor + 1)) - present

    def read(self) -> list[FeedEntry]:
        """The entries not read yet (at most `batch`), with their events: those after the
        cursor, and those that filled a gap below it."""
        after = EventFeedRow.id > self.cursor
        unread = or_(after, EventFeedRow.id.in_(sorted(self._gaps))) if self._gaps else after
        with self.index.sessions() as session:
            rows: Sequence[EventFeedRow] = session.scalars(
                select(EventFeedRow).where(unread).order_by(EventFeedRow.id).limit(self.batch)
            ).all()
            ids = {row.event_id for row in rows}
            events = {
                e.id: e for e in session.scalars(select(EventRow).where(EventRow.id.in_(ids)))
            }
        read = {row.id for row in rows}
        newest = max(read, default=self.cursor)
        if newest > self.cursor:
            self._gaps |= set(range(self.cursor + 1, newest)) - read
            self.cursor = newest
        floor = self.cursor - LOOK_BACK
        self._gaps = {i for i in self._gaps - read if i > floor}
        return [
            FeedEntry(row.id, row.kind, row.site, row.event_id, row.at, events.get(row.event_id))
            for row in rows
        ]
