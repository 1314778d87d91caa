"""The evidence tables: the chain-of-custody log, integrity checks and legal holds.

What they record is done by storage/media/evidence.py, which reads and re-hashes the objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.custody_chain import GENESIS, chain_problems, entry_sha256
from storage.database.engine import Base, Database, UTCDateTime, utcnow


class CustodyRow(Base):
    """One entry of the chain-of-custody log: `actor` did `action` on an event's object.

    `id` is the entry's place in the whole log (1, 2, 3, ... with no gap); `sha256` is its hash
    over its fields and its links to the entry before it in the log (`previous_sha256`) and
    in its event's log (`event_previous_sha256`): storage/database/custody_chain.py."""

    __tablename__ = "custody_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(32))
    object_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    action: Mapped[str] = mapped_column(String(32))  # fetch, verify, hold, release, export
    actor: Mapped[str] = mapped_column(String(128))
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(String(256), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    previous_sha256: Mapped[str] = mapped_column(String(64))
    event_previous_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_custody_event_at", "event_id", "at"),)

    def entry(self) -> dict[str, Any]:
        """The entry as the chain hashes it (and as an evidence bundle's manifest holds it)."""
        return {
            "seq": self.id,
            "event_id": self.event_id,
            "object_key": self.object_key,
            "action": self.action,
            "actor": self.actor,
            "client": self.client,
            "detail": self.detail,
            "at": self.at.isoformat(timespec="microseconds"),
            "previous_sha256": self.previous_sha256,
            "event_previous_sha256": self.event_previous_sha256,
            "sha256": self.sha256,
        }


class CustodyHeadRow(Base):
    """The custody log's last entry: its place and hash (one row). Every append moves it by a
    conditional update, so entries from any number of processes form one line."""

    __tablename__ = "custody_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # 1
    seq: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))


class HeadMovedError(Exception):
    """Another process appended between our read of the head and our move of it."""


class CustodyLog:
    """Appends to the chained custody log and checks it.

    Example:
        >>> log = CustodyLog(Database.connect("sqlite://"))
        >>> first = log.append("e1", "hold", "desk 3", detail="case 88")
        >>> second = log.append("e1", "fetch", "desk 3", "site/cam/e1.mp4")
        >>> second.event_previous_sha256 == first.sha256, log.problems()
        (True, [])
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def append(
        self,
        event_id: str,
        action: str,
        actor: str,
        object_key: str | None = None,
        client: str | None = None,
        detail: str = "",
    ) -> CustodyRow:
        """Add an entry after the head of the log (again if another process moved it first)."""
        while True:
            try:
                return self._append_once(event_id, action, actor, object_key, client, detail)
            except (HeadMovedError, IntegrityError):
                continue

    def _append_once(
        self,
        event_id: str,
        action: str,
        actor: str,
        object_key: str | None,
        client: str | None,
        detail: str,
    ) -> CustodyRow:
        with self.database.sessions.begin() as session:
            head = session.get(CustodyHeadRow, 1)
            seq, previous = (head.seq, head.sha256) if head is not None else (0, GENESIS)
            last_of_event = session.scalars(
                select(CustodyRow.sha256)
                .where(CustodyRow.event_id == event_id)
                .order_by(CustodyRow.id.desc())
                .limit(1)
            ).first()
            row = CustodyRow(
                id=seq + 1,
                event_id=event_id,
                object_key=object_key,
                action=action,
                actor=actor,
                client=client,
                detail=detail[:256],
                at=utcnow(),
                previous_sha256=previous,
                event_previous_sha256=last_of_event or GENESIS,
                sha256="",
            )
            row.sha256 = entry_sha256(row.entry())
            if head is None:  # the first entry: a second process making it too fails here
                session.add(CustodyHeadRow(id=1, seq=1, sha256=row.sha256))
            else:
                moved = session.execute(
                    update(CustodyHeadRow)
                    .where(CustodyHeadRow.id == 1, CustodyHeadRow.seq == seq)
                    .values(seq=seq + 1, sha256=row.sha256)
                    .execution_options(synchronize_session=False)
                )
                if moved.rowcount != 1:  # type: ignore[attr-defined]
                    raise HeadMovedError
            session.add(row)
        return row

    def of_event(self, event_id: str) -> list[CustodyRow]:
        """An event's entries, oldest first."""
        with self.database.sessions() as session:
            statement = select(CustodyRow).where(CustodyRow.event_id == event_id)
            return list(session.scalars(statement.order_by(CustodyRow.id)))

    def event_problems(self, event_id: str) -> list[str]:
        """What is wrong with an event's entries: each against its hash, the event's chain,
        each one's place in the whole log (the entries on either side must name it), and the
        log's end (an entry cut off the end shows only there)."""
        rows = self.of_event(event_id)
        head_seq, head_sha256 = head = self.head()
        problems = self._end_problems(head)
        problems += chain_problems([row.entry() for row in rows], whole_log=False)
        wanted = {row.id + step for row in rows for step in (-1, 1)}
        with self.database.sessions() as session:
            near = {
                row.id: row
                for row in session.scalars(select(CustodyRow).where(CustodyRow.id.in_(wanted)))
            }
        for row in rows:
            before = near.get(row.id - 1)
            expected = GENESIS if row.id == 1 else (before.sha256 if before else None)
            if row.previous_sha256 != expected:
                problems.append(f"entry {row.id}: the entry before it is missing or changed")
            after = near.get(row.id + 1)
            if row.id == head_seq:
                named = head_sha256 == row.sha256
            else:
                named = after is not None and after.previous_sha256 == row.sha256
            if not named:
                problems.append(f"entry {row.id}: the entry after it is missing or changed")
        return problems

    def _end_problems(self, head: tuple[int, str]) -> list[str]:
        """The head must be the last entry."""
        with self.database.sessions() as session:
            last = session.scalars(
                select(CustodyRow).order_by(CustodyRow.id.desc()).limit(1)
            ).first()
        ends = (last.id, last.sha256) if last is not None else (0, GENESIS)
        return [] if ends == head else [f"the log ends at entry {ends[0]}, its head says {head[0]}"]

    def head(self) -> tuple[int, str]:
        """(seq, sha256) of the last entry; (0, GENESIS) for an empty log."""
        with self.database.sessions() as session:
            head = session.get(CustodyHeadRow, 1)
        return (head.seq, head.sha256) if head is not None else (0, GENESIS)

    def entries(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """The whole log, oldest first, read in batches."""
        after = 0
        while True:
            with self.database.sessions() as session:
                rows = list(
                    session.scalars(
                        select(CustodyRow)
                        .where(CustodyRow.id > after)
                        .order_by(CustodyRow.id)
                        .limit(batch)
                    )
                )
            yield from (row.entry() for row in rows)
            if len(rows) < batch:
                return
            after = rows[-1].id

    def problems(self, anchors: dict[int, str] | None = None) -> list[str]:
        """Everything wrong with the whole log: entries edited, missing or out of order, a
        head that is not its last entry, and `anchors` (seq -> sha256 written elsewhere at
        that time) that the log no longer holds. The log is read once, in batches."""
        anchors = anchors or {}
        at_anchors: dict[int, str] = {}  # what the log holds where it was anchored

        def watched(entries: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for entry in entries:
                if entry["seq"] in anchors:
                    at_anchors[entry["seq"]] = entry["sha256"]
                yield entry

        problems = chain_problems(watched(self.entries()), whole_log=True)
        problems += self._end_problems(self.head())
        problems += [
            f"entry {seq} is not the one anchored in storage"
            for seq, anchored in sorted(anchors.items())
            if at_anchors.get(seq) != anchored
        ]
        return problems


class IntegrityCheckRow(Base):
    """The result of re-reading and re-hashing one stored object."""

    __tablename__ = "integrity_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    object_key: Mapped[str] = mapped_column(String(256))
    ok: Mapped[bool] = mapped_column(Boolean)
    expected_sha256: Mapped[str] = mapped_column(String(64))
    actual_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    problem: Mapped[str] = mapped_column(String(256), default="")
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_integrity_event_checked", "event_id", "checked_at"),)


class LegalHoldRow(Base):
    """A legal hold on an event: its media are not deleted while it is in place."""

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(256))
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_legal_holds_event", "event_id"),)
