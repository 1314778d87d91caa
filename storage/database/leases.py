"""Leases in the index, so processes may span machines: camera -> worker assignment, and
turns at the chores one API process of the deployment does at a time."""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.engine import Base, Database, UTCDateTime, utcnow


def holder_id() -> str:
    """A name for this process in leases, unique across machines and restarts."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(2)}"


class CameraLeaseRow(Base):
    """Which worker runs a camera, until when. A lease not renewed in time is free to take."""

    __tablename__ = "camera_leases"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_camera_leases_worker", "worker_id"),)  # renewals, releases


class WorkerRow(Base):
    """A live worker process (any machine), seen at its last lease renewal."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Its latest figures (detector latency, spool, uploads): what the API's /metrics shows.
    stats: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)


class ChoreRow(Base):
    """A deployment-wide chore (retention sweep, evidence audit): when it is next due, and
    the process that took its last turn; for a standing chore (publishing to MQTT), when
    its holder's lease lapses and how far it got."""

    __tablename__ = "chores"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class CameraLeases:
    """Claims, renews and releases camera leases for one worker.

    Each worker takes at most its fair share (cameras / live workers, rounded up), so a new
    worker gets cameras as others release their surplus; a worker that dies stops renewing
    and its cameras are free once their leases expire. Claims are conditional updates, so two
    workers never hold the same camera.

    Example:
        >>> database = Database.connect("sqlite://")
        >>> leases = CameraLeases(database, "w1", lease_s=10)
        >>> sorted(leases.balance(["a", "b"]))
        ['a', 'b']
    """

    def __init__(self, database: Database, worker_id: str, lease_s: float) -> None:
        self.database = database
        self.worker_id = worker_id
        self.lease_s = lease_s

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    def balance(self, camera_ids: Iterable[str]) -> set[str]:
        """Renew this worker's leases, take free ones up to a fair share; return those held."""
        wanted = sorted(set(camera_ids))
        now = utcnow()
        self._ensure_rows(wanted, now)
        with self.database.sessions.begin() as session:
            session.merge(WorkerRow(worker_id=self.worker_id, seen_at=now))
            session.execute(
                delete(WorkerRow).where(WorkerRow.seen_at < now - timedelta(seconds=self.lease_s))
            )
        with self.database.sessions.begin() as session:
            live = len(session.scalars(select(WorkerRow.worker_id)).all())
            session.execute(
                update(CameraLeaseRow)
                .where(CameraLeaseRow.worker_id == self.worker_id)
                .values(expires_at=self._expiry(now))
            )
            held = set(
                session.scalars(
                    select(CameraLeaseRow.camera_id).where(
                        CameraLeaseRow.worker_id == self.worker_id
                    )
                ).all()
            )
        share = math.ceil(len(wanted) / max(1, live))
        surplus = sorted(held - set(wanted)) + sorted(held & set(wanted))[share:]
        if surplus:
            self.release(surplus)
            held -= set(surplus)
        for camera_id in wanted:
            if len(held) >= share:
                break
            if camera_id not in held and self._claim(camera_id, now):
                held.add(camera_id)
        return held

    def _ensure_rows(self, camera_ids: list[str], now: datetime) -> None:
        with self.database.sessions() as session:
            known = set(session.scalars(select(CameraLeaseRow.camera_id)).all())
        for camera_id in camera_ids:
            if camera_id in known:
                continue
            try:
                with self.database.sessions.begin() as session:
                    session.add(CameraLeaseRow(camera_id=camera_id, worker_id=None, expires_at=now))
            except IntegrityError:
                pass  # another worker added it first

    def _claim(self, camera_id: str, now: datetime) -> bool:
        with self.database.sessions.begin() as session:
            result = session.execute(
                update(CameraLeaseRow)
                .where(
                    CameraLeaseRow.camera_id == camera_id,
                    or_(CameraLeaseRow.worker_id.is_(None), CameraLeaseRow.expires_at < now),
                )
                .values(worker_id=self.worker_id, expires_at=self._expiry(now))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, camera_ids: Iterable[str] | None = None) -> None:
        """Give leases up now (all of this worker's by default), so others need not wait."""
        statement = (
            update(CameraLeaseRow)
            .where(CameraLeaseRow.worker_id == self.worker_id)
            .values(worker_id=None, expires_at=utcnow())
        )
        if camera_ids is not None:
            statement = statement.where(CameraLeaseRow.camera_id.in_(list(camera_ids)))
        with self.database.sessions.begin() as session:
            session.execute(statement)

    def leave(self) -> None:
        """Release every lease and leave the live-worker list (clean shutdown)."""
        self.release()
        with self.database.sessions.begin() as session:
            session.execute(delete(WorkerRow).where(WorkerRow.worker_id == self.worker_id))


class ChoreTurns:
    """Makes a chore that every API process schedules run once per interval in the whole
    deployment: a process takes the turn by moving the chore's due time on by `every_s`
    with a conditional update, which only one process can win. If the one that won dies,
    the next process to try after the due time takes the next turn.

    Example:
        >>> database = Database.connect("sqlite://")
        >>> first, second = ChoreTurns(database, "api-1"), ChoreTurns(database, "api-2")
        >>> first.run("sweep", 3600, lambda: None), second.run("sweep", 3600, lambda: None)
        (True, False)
    """

    def __init__(self, database: Database, holder: str) -> None:
        self.database = database
        self.holder = holder

    def take(self, name: str, every_s: float, now: datetime | None = None) -> bool:
        """Take the chore's turn if it is due (True), moving its next one `every_s` on."""
        now = now or utcnow()
        return self._claim(name, now, every_s, ChoreRow.due_at <= now)

    def hold(self, name: str, lease_s: float, now: datetime | None = None) -> bool:
        """Hold a standing chore, one process at a time (publishing to MQTT): renew it for
        `lease_s` if this process holds it, or take it if its holder let it lapse (True).

        Example:
            >>> database = Database.connect("sqlite://")
            >>> first, second = ChoreTurns(database, "api-1"), ChoreTurns(database, "api-2")
            >>> first.hold("mqtt", 10), second.hold("mqtt", 10), first.hold("mqtt", 10)
            (True, False, True)
            >>> second.hold("mqtt", 10, utcnow() + timedelta(seconds=11))  # first went quiet
            True
        """
        now = now or utcnow()
        mine_or_lapsed = or_(ChoreRow.holder == self.holder, ChoreRow.due_at <= now)
        return self._claim(name, now, lease_s, mine_or_lapsed)

    def position(self, name: str) -> int | None:
        """How far the chore's holders got (what `record` stored last)."""
        with self.database.sessions() as session:
            return session.scalar(select(ChoreRow.position).where(ChoreRow.name == name))

    def record(self, name: str, position: int) -> bool:
        """Store how far this process got, if it still holds the chore."""
        with self.database.sessions.begin() as session:
            result = session.execute(
                update(ChoreRow)
                .where(ChoreRow.name == name, ChoreRow.holder == self.holder)
                .values(position=position)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, name: str) -> None:
        """Let a standing chore this process holds go at once (a clean stop)."""
        with self.database.sessions.begin() as session:
            session.execute(
                update(ChoreRow)
                .where(ChoreRow.name == name, ChoreRow.holder == self.holder)
                .values(due_at=utcnow())
            )

    def _claim(self, name: str, now: datetime, for_s: float, condition: Any) -> bool:
        with self.database.sessions() as session:
            known = session.get(ChoreRow, name) is not None
        if not known:
            try:
                with self.database.sessions.begin() as session:
                    session.add(ChoreRow(name=name, holder=None, due_at=now))
            except IntegrityError:
                pass  # another process added it first
        with self.database.sessions.begin() as session:
            result = session.execute(
                update(ChoreRow)
                .where(ChoreRow.name == name, condition)
                .values(holder=self.holder, due_at=now + timedelta(seconds=for_s))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def run(self, name: str, every_s: float, work: Callable[[], object]) -> bool:
        """Do `work` if this process takes the turn; whether it did."""
        if not self.take(name, every_s):
            return False
        work()
        return True


class WorkerStats:
    """Each live worker's latest figures (detector latency, spool, uploads), kept on its
    `workers` row for the API's /metrics."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def put(self, worker_id: str, stats: dict[str, float]) -> None:
        with self.database.sessions.begin() as session:
            session.execute(
                update(WorkerRow).where(WorkerRow.worker_id == worker_id).values(stats=stats)
            )

    def all(self) -> dict[str, dict[str, float]]:
        with self.database.sessions() as session:
            rows = session.execute(select(WorkerRow.worker_id, WorkerRow.stats)).all()
        return {worker_id: stats for worker_id, stats in rows if stats}
