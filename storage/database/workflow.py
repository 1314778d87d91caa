"""The operator's workflow of an event: new -> acknowledged -> resolved or false alarm, with
who, when and a note for every step kept in an audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import Index, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.engine import Base, Database, UTCDateTime, utcnow
from storage.database.index import EventFeedRow, EventRow

Status = Literal["new", "acknowledged", "resolved", "false_alarm"]
STATUSES: tuple[Status, ...] = get_args(Status)
Action = Literal["acknowledge", "resolve", "false_alarm", "reopen", "note"]
ACTIONS: tuple[Action, ...] = get_args(Action)

# What each action leads to, from which statuses; "note" changes nothing.
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status | None]] = {
    "acknowledge": (frozenset({"new"}), "acknowledged"),
    "resolve": (frozenset({"new", "acknowledged"}), "resolved"),
    "false_alarm": (frozenset({"new", "acknowledged"}), "false_alarm"),
    "reopen": (frozenset({"resolved", "false_alarm"}), "acknowledged"),
    "note": (frozenset(STATUSES), None),
}


class EventActionRow(Base):
    """One step of an event's workflow: the audit trail, oldest first by `id`."""

    __tablename__ = "event_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(String(1024), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_event_actions_event", "event_id", "id"),)


class TransitionError(Exception):
    """The action does not apply to the event's current status."""


@dataclass(frozen=True, slots=True)
class Step:
    """What an action did: the event's status before and after it."""

    from_status: Status
    to_status: Status


class EventWorkflow:
    """Moves events through the operator's workflow, one transaction per step.

    Resolving or calling a false alarm straight from `new` acknowledges too (one click on the
    wall): the time to acknowledge is then the time to that decision.

    Example:
        >>> workflow = EventWorkflow(index)  # doctest: +SKIP
        >>> workflow.act(event_id, "acknowledge", "night desk", "on it")  # doctest: +SKIP
        Step(from_status='new', to_status='acknowledged')
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def act(self, event_id: str, action: Action, actor: str, note: str = "") -> Step:
        """Apply `action`; KeyError if there is no such event, TransitionError if it does not
        apply now. The status changes by one conditional UPDATE (status still one the action
        applies to), atomic on SQLite and PostgreSQL alike: of two operators who acknowledge
        at once, one gets the event and the other a TransitionError."""
        allowed, target = TRANSITIONS[action]
        now = utcnow()
        with self.database.sessions.begin() as session:
            found = session.execute(
                select(EventRow.status, EventRow.site).where(EventRow.id == event_id)
            ).first()
            if found is None:
                raise KeyError(event_id)
            current, site = found
            new = target or current
            if current not in allowed:
                raise TransitionError(f"cannot {action.replace('_', ' ')} a {current} event")
            if new != current:
                values: dict[str, object] = {"status": new}
                if new in ("resolved", "false_alarm"):
                    values.update(closed_at=now, closed_by=actor)
                elif action == "reopen":
                    values.update(closed_at=None, closed_by=None)
                changed = session.execute(
                    update(EventRow)
                    .where(EventRow.id == event_id, EventRow.status == current)
                    .values(**values)
                )
                if not changed.rowcount:  # type: ignore[attr-defined]
                    raise TransitionError(f"the event is no longer {current}: reload it")
                # The first step out of `new` is the acknowledgement, whichever it was.
                session.execute(
                    update(EventRow)
                    .where(EventRow.id == event_id, EventRow.acknowledged_at.is_(None))
                    .values(acknowledged_at=now, acknowledged_by=actor)
                )
                session.add(EventFeedRow(event_id=event_id, site=site, kind="status"))
            session.add(
                EventActionRow(
                    event_id=event_id,
                    action=action,
                    from_status=current,
                    to_status=new,
                    actor=actor,
                    note=note,
                    at=now,
                )
            )
        return Step(current, new)  # type: ignore[arg-type]  # statuses are written from Status

    def trail(self, event_id: str) -> list[EventActionRow]:
        """The event's workflow steps, oldest first."""
        with self.database.sessions() as session:
            statement = select(EventActionRow).where(EventActionRow.event_id == event_id)
            return list(session.scalars(statement.order_by(EventActionRow.id)))
