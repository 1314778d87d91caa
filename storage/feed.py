"""Reading the event feed in order, without missing an entry that committed late."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from storage.index import EventFeedRow, EventIndex, EventRow

# Entry ids are handed out at insert and become visible at commit: on PostgreSQL a
# transaction may commit after one that took a higher id. Each read looks this many ids back
# and skips those it has seen, so a late entry is still read once.
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
        >>> reader = FeedReader(index, start_at_end=True)  # doctest: +SKIP
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
            # What is already there below the start counts as read.
            window = (EventFeedRow.id > self.cursor - LOOK_BACK, EventFeedRow.id <= self.cursor)
            self._seen: set[int] = set(session.scalars(select(EventFeedRow.id).where(*window)))

    def read(self) -> list[FeedEntry]:
        """The entries not read yet (at most `batch`), with their events."""
        low = max(0, self.cursor - LOOK_BACK)
        with self.index.sessions() as session:
            rows: Sequence[EventFeedRow] = session.scalars(
                select(EventFeedRow)
                .where(EventFeedRow.id > low)
                .order_by(EventFeedRow.id)
                .limit(self.batch + len(self._seen))
            ).all()
            fresh = [row for row in rows if row.id not in self._seen][: self.batch]
            ids = {row.event_id for row in fresh}
            events = {
                e.id: e for e in session.scalars(select(EventRow).where(EventRow.id.in_(ids)))
            }
        for row in fresh:
            self._seen.add(row.id)
            self.cursor = max(self.cursor, row.id)
        floor = self.cursor - LOOK_BACK
        self._seen = {i for i in self._seen if i > floor}
        return [
            FeedEntry(row.id, row.kind, row.site, row.event_id, row.at, events.get(row.event_id))
            for row in fresh
        ]
