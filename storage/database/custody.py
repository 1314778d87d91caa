"""The evidence tables: the chain-of-custody log, integrity checks and legal holds.

What they record is done by storage/media/evidence.py, which reads and re-hashes the objects.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.engine import Base, UTCDateTime, utcnow


class CustodyRow(Base):
    """One entry of the chain-of-custody log: `actor` did `action` on an event's object."""

    __tablename__ = "custody_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    object_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    action: Mapped[str] = mapped_column(String(32))  # fetch, verify, hold, release
    actor: Mapped[str] = mapped_column(String(128))
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(String(256), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_custody_event_at", "event_id", "at"),)


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
