"""The event index: events and the feed of their changes, in the shared database.

`EventIndex` is the shared database (storage/database/engine.py) with the events' reads and
writes; the other tables' code lives with their owners beside this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Float,
    Index,
    Integer,
    String,
    case,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.types import Event
from storage.database.accounts import SiteRow
from storage.database.engine import Base, Database, UTCDateTime, to_datetime, utcnow


class EventRow(Base):
    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    site: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(String(64), default="")
    alarm_method: Mapped[int | None] = mapped_column(Integer, nullable=True)  # GB/T 28181
    alarm_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    box: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    snapshot_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clip_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    clip_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clip_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    snapshot_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    clip_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clip_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clip_error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Where a clip cut after its worker died came from: "journal" (the dead worker's packets
    # on its node's disk) or "recording" (the camera's 24/7 segments); None: its packet ring.
    clip_origin: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The operator's workflow (storage/database/workflow.py): new, acknowledged, resolved,
    # false_alarm.
    status: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # The list is newest first by `seq` (the cursor): an equality filter with an index ending
    # in `seq` reads one page of its newest rows and stops. A time range reads the seqs of its
    # rows from a `(column, started_at, seq)` index alone and sorts only those (list_events).
    # Migration 0002 explains; bench/index.py times them.
    __table_args__ = (
        Index("ix_events_camera_started", "camera_id", "started_at", "seq"),
        Index("ix_events_site_started", "site", "started_at", "seq"),
        Index("ix_events_type_started", "type", "started_at", "seq"),
        Index("ix_events_site_seq", "site", "seq"),
        Index("ix_events_camera_seq", "camera_id", "seq"),
        Index("ix_events_type_seq", "type", "seq"),
        Index("ix_events_state_seq", "state", "seq"),
        Index("ix_events_site_type_seq", "site", "type", "seq"),
        Index("ix_events_site_state_seq", "site", "state", "seq"),  # a site's live wall
        Index("ix_events_site_status_seq", "site", "status", "seq"),  # what is still new
        Index("ix_events_status_seq", "status", "seq"),
        Index("ix_events_started", "started_at", "seq"),
    )


FeedKind = Literal["started", "ended", "clip", "snapshot", "status"]


ORPHANED = "interrupted: the worker recording it stopped"  # the clip_error of `end_orphans`


def _active_before(camera_id: str, before: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        EventRow.camera_id == camera_id,
        EventRow.state == "active",
        EventRow.started_at < before,
    )


def event_of_row(row: EventRow, **changes: Any) -> Event:
    """The event an index row describes (as analytics would have made it), with `changes`."""
    started = row.started_at.timestamp()
    ended = row.ended_at.timestamp() if row.ended_at is not None else None
    alarm = (row.alarm_method, row.alarm_type) if row.alarm_method is not None else None
    fields: dict[str, Any] = {
        "camera_id": row.camera_id,
        "site": row.site,
        "type": row.type,
        "label": row.label,
        "zone": row.zone,
        "severity": row.severity,
        "started_at": started,
        "last_seen_at": ended or started,
        "best_score": row.score,
        "ended_at": ended,
        "detail": row.detail,
        "alarm": alarm,
        "id": row.id,
    }
    return Event(**{**fields, **changes})


class EventFeedRow(Base):
    """One change of one event, appended in the transaction that makes it: what the live
    streams, webhooks and MQTT read (a transactional outbox), by increasing `id`.

    `kind` is `started`, `ended`, `clip` and `snapshot` (its media are stored), or `status` (the
    operator's workflow)."""

    __tablename__ = "event_feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_event_feed_at", "at"),)  # for trimming old entries


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters and a page of the event list, newest first; `before_seq` is the cursor."""

    site: str | None = None
    camera_id: str | None = None
    type: str | None = None
    state: str | None = None
    status: str | None = None
    severity: str | None = None
    sites: Sequence[str] | None = None  # the caller's scope: only these sites (None: all)
    start: datetime | None = None
    end: datetime | None = None
    before_seq: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class AcknowledgementTimes:
    """The events that started in a range, and how long the acknowledged ones waited: one
    wait per acknowledged event, in seconds from its start, shortest first."""

    events: int
    waits: list[float]


@dataclass(frozen=True, slots=True)
class SiteEventCounts:
    """A site, and how many of its events started in a range, high-severity ones apart."""

    site: SiteRow
    events: int
    high: int


def _started_between(
    since: datetime, until: datetime, sites: Sequence[str] | None
) -> list[ColumnElement[bool]]:
    """The conditions of events started from `since` until before `until`, of `sites` (the
    caller's scope; None: all)."""
    conditions = [EventRow.started_at >= since, EventRow.started_at < until]
    if sites is not None:
        conditions.append(EventRow.site.in_(list(sites)))
    return conditions


class EventIndex(Database):
    """Reads and writes of the events, each in its own short transaction.

    Example:
        >>> index = EventIndex.connect("sqlite://")
        >>> index.list_events(EventQuery())
        []
    """

    @staticmethod
    def _new_row(event: Event) -> EventRow:
        return EventRow(
            id=event.id,
            site=event.site,
            camera_id=event.camera_id,
            type=event.type,
            label=event.label,
            zone=event.zone,
            severity=event.severity,
            detail=event.detail[:64],
            alarm_method=event.alarm[0] if event.alarm else None,
            alarm_type=event.alarm[1] if event.alarm else None,
            state="active",
            started_at=to_datetime(event.started_at),
            score=event.best_score,
            box=event.best_box.to_list() if event.best_box else None,
        )

    def add_event(self, event: Event) -> None:
        """Index a started event; nothing to do if its end was stored first (a short event
        whose start waited behind others)."""
        with self.sessions.begin() as session:
            found = session.scalars(select(EventRow.seq).where(EventRow.id == event.id)).first()
            if found is None:
                session.add(self._new_row(event))
                session.add(EventFeedRow(event_id=event.id, site=event.site, kind="started"))

    def end_event(
        self,
        event: Event,
        ended_at: datetime,
        *,
        best: bool = False,
        clip_error: str | None = None,
    ) -> None:
        """Mark the event ended at `ended_at`; with `best`, store the event's best score and
        box as they are now; with `clip_error`, say why its clip will not come."""
        values: dict[str, Any] = {"state": "ended", "ended_at": ended_at}
        if best:
            values["score"] = event.best_score
            values["box"] = event.best_box.to_list() if event.best_box else None
        if clip_error is not None:
            values["clip_error"] = clip_error[:256]
        self._change(event, "ended", values)

    def store_snapshot(
        self, event: Event, ended_at: datetime, key: str, sha256: str, size: int
    ) -> None:
        """The event's snapshot is stored (and verified) under `key`; the event has ended
        (it ended before its media were spooled)."""
        values = {
            "state": "ended",
            "ended_at": ended_at,
            "snapshot_key": key,
            "snapshot_sha256": sha256,
            "snapshot_size": size,
        }
        self._change(event, "snapshot", values)

    def store_clip(
        self,
        event: Event,
        ended_at: datetime,
        stored: tuple[str, str, int],
        window: tuple[datetime, datetime],
        origin: str | None = None,
    ) -> None:
        """The event's clip is stored (and verified): `stored` is its key, SHA-256 and size,
        `window` the wall times of its first and last packets, `origin` where it was cut from
        if not the camera's packet ring (EventRow.clip_origin). The event has ended, and any
        earlier `clip_error` (a worker that gave up on it) is cleared."""
        key, sha256, size = stored
        values = {
            "state": "ended",
            "ended_at": ended_at,
            "clip_origin": origin,
            "clip_error": None,
            "clip_key": key,
            "clip_sha256": sha256,
            "clip_size": size,
            "clip_start": window[0],
            "clip_end": window[1],
        }
        self._change(event, "clip", values)

    def _change(self, event: Event, kind: FeedKind, values: dict[str, Any]) -> None:
        """Set `values` on the event's row (made if its start was never indexed) and tell the
        feed, in one transaction."""
        with self.sessions.begin() as session:
            row = session.scalars(select(EventRow).where(EventRow.id == event.id)).one_or_none()
            if row is None:
                row = self._new_row(event)
                session.add(row)
            for name, value in values.items():
                setattr(row, name, value)
            session.add(EventFeedRow(event_id=event.id, site=event.site, kind=kind))

    def end_orphans(self, camera_id: str, before: datetime, note: str = ORPHANED) -> int:
        """End the camera's events still active that started before `before`: those of a
        worker that died (or handed the camera over and will end them itself, overwriting
        this). Returns how many."""
        orphaned = _active_before(camera_id, before)
        with self.sessions.begin() as session:
            ended = session.execute(select(EventRow.id, EventRow.site).where(*orphaned)).all()
            session.execute(
                update(EventRow)
                .where(*orphaned)
                .values(state="ended", ended_at=before, clip_error=note[:256])
            )
            session.add_all(EventFeedRow(event_id=i, site=s, kind="ended") for i, s in ended)
            return len(ended)

    def orphaned_without_clip(self, since: datetime, until: datetime) -> list[EventRow]:
        """Events ended by `end_orphans` between `since` and `until` that have no clip yet."""
        with self.sessions() as session:
            statement = select(EventRow).where(
                EventRow.clip_error == ORPHANED,
                EventRow.clip_key.is_(None),
                EventRow.ended_at >= since,
                EventRow.ended_at < until,
            )
            return list(session.scalars(statement.order_by(EventRow.seq)))

    def active_events(self, camera_id: str, before: datetime) -> list[EventRow]:
        """The camera's events still active that started before `before` (`end_orphans`'s)."""
        with self.sessions() as session:
            return list(session.scalars(select(EventRow).where(*_active_before(camera_id, before))))

    def get_event(self, event_id: str) -> EventRow | None:
        with self.sessions() as session:
            return session.scalars(select(EventRow).where(EventRow.id == event_id)).one_or_none()

    def list_events(self, query: EventQuery) -> Sequence[EventRow]:
        """A page of events matching `query`, newest (highest `seq`) first."""
        conditions = [
            column == value
            for column, value in (
                (EventRow.site, query.site),
                (EventRow.camera_id, query.camera_id),
                (EventRow.type, query.type),
                (EventRow.state, query.state),
                (EventRow.status, query.status),
                (EventRow.severity, query.severity),
            )
            if value is not None
        ]
        if query.sites is not None:
            conditions.append(EventRow.site.in_(list(query.sites)))
        if query.start is not None:
            conditions.append(EventRow.started_at >= query.start)
        if query.end is not None:
            conditions.append(EventRow.started_at < query.end)
        if query.before_seq is not None:
            conditions.append(EventRow.seq < query.before_seq)
        newest = EventRow.seq.desc()
        if query.start is None and query.end is None:
            statement = select(EventRow).where(*conditions).order_by(newest).limit(query.limit)
        else:
            # Pick the page's seqs from a (column, started_at, seq) index alone, then fetch those
            # rows. Asked for whole rows, PostgreSQL walks the primary key back from the newest
            # event until the range is reached (it assumes matches are spread evenly over seq,
            # but seq follows time), and SQLite sorts whole rows: 150-400 ms on 1M events
            # against about 2 ms this way (bench/index.py).
            page = select(EventRow.seq).where(*conditions).order_by(newest).limit(query.limit)
            statement = select(EventRow).where(EventRow.seq.in_(page)).order_by(newest)
        with self.sessions() as session:
            return session.scalars(statement).all()

    def acknowledgement_times(
        self,
        since: datetime,
        until: datetime,
        site: str | None = None,
        sites: Sequence[str] | None = None,
    ) -> AcknowledgementTimes:
        """How long the events that started from `since` until before `until` (of `site`, and
        of `sites`: the caller's scope) waited to be acknowledged."""
        conditions = _started_between(since, until, sites)
        if site is not None:
            conditions.append(EventRow.site == site)
        statement = select(EventRow.started_at, EventRow.acknowledged_at).where(*conditions)
        with self.sessions() as session:
            rows = session.execute(statement).all()
        waits = sorted(
            (acknowledged - started).total_seconds()
            for started, acknowledged in rows
            if acknowledged is not None
        )
        return AcknowledgementTimes(events=len(rows), waits=waits)

    def site_event_counts(
        self,
        since: datetime,
        until: datetime,
        event_type: str | None = None,
        sites: Sequence[str] | None = None,
    ) -> list[SiteEventCounts]:
        """Each site (of `sites`: the caller's scope), by id, with how many of its events (of
        `event_type`) started from `since` until before `until`; a site with none counts zero,
        events of a site with no row are left out."""
        conditions = _started_between(since, until, sites)
        if event_type is not None:
            conditions.append(EventRow.type == event_type)
        high = func.sum(case((EventRow.severity == "high", 1), else_=0))
        counts = (
            select(EventRow.site, func.count().label("events"), high.label("high"))
            .where(*conditions)
            .group_by(EventRow.site)
            .subquery()
        )
        # One query: the sites, joined to their events counted per site (none: zero).
        visible = [SiteRow.id.in_(list(sites))] if sites is not None else []
        statement = (
            select(SiteRow, func.coalesce(counts.c.events, 0), func.coalesce(counts.c.high, 0))
            .outerjoin(counts, counts.c.site == SiteRow.id)
            .where(*visible)
            .order_by(SiteRow.id)
        )
        with self.sessions() as session:
            rows = session.execute(statement).all()
        return [
            SiteEventCounts(row, int(events), int(high_ones)) for row, events, high_ones in rows
        ]
