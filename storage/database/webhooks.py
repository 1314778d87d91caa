"""Webhook subscriptions and their deliveries: the feed fanned out into an outbox, claimed,
retried with backoff, dead-lettered, replayed, and every attempt logged."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, false, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.engine import Base, Database, UTCDateTime, utcnow
from storage.database.feed import FeedEntry

FAN_OUT = "webhooks"


class WebhookOutboxRow(Base):
    """One webhook delivery to make: written in the transaction that stores the event, sent
    and retried by the dispatcher (issue 6) until delivered or given up.

    `state` is `pending` (due at `next_attempt_at`), `delivered` or `dead` (no more tries; a
    replay makes it pending again). One row per subscription and feed entry (`feed_id`).
    No foreign key to `events`: the retention sweeper may delete an event whose delivery record
    is still wanted. The dispatcher's query is `state = 'pending' AND next_attempt_at <= now`.

    Example:
        >>> row = WebhookOutboxRow(subscription_id="shop-7", event_id="e1", payload={"a": 1})
        >>> row.subscription_id, row.payload
        ('shop-7', {'a': 1})
    """

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(64))  # the target it goes to
    event_id: Mapped[str] = mapped_column(String(32))
    feed_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the body's content
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_webhook_outbox_due", "state", "next_attempt_at"),
        Index("ix_webhook_outbox_event", "event_id"),
        Index("ux_webhook_outbox_feed", "subscription_id", "feed_id", unique=True),
    )


class WebhookSubscriptionRow(Base):
    """Where to send which events: `types`, `sites` and `cameras` narrow it (empty: any);
    `secret` signs each body (shown once when made)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(String(1024))
    secret: Mapped[str] = mapped_column(String(128))
    types: Mapped[list[str]] = mapped_column(JSON, default=list)
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    cameras: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Made with an admin's key: its receiver is held to the egress policy's admin rules.
    by_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def wants(self, entry: FeedEntry) -> bool:
        event = entry.event
        return (
            self.enabled
            and event is not None
            and entry.at >= self.created_at  # nothing from before it existed
            and (not self.types or event.type in self.types)
            and (not self.changes or entry.kind in self.changes)
            and (not self.sites or event.site in self.sites)
            and (not self.cameras or event.camera_id in self.cameras)
        )


class FeedCursorRow(Base):
    """How far a reader of the event feed that must not miss entries (the webhook fan-out)
    has read, so a restart goes on from there."""

    __tablename__ = "feed_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)


class WebhookAttemptRow(Base):
    """One attempt at a delivery: the delivery log."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(Integer)
    subscription_id: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(256), default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery to make now, with its subscription."""

    delivery: WebhookOutboxRow
    subscription: WebhookSubscriptionRow


class Webhooks:
    """The storage side of webhooks; the API's dispatcher makes the HTTP requests.

    Deliveries are rows of `webhook_outbox`, one per subscription and feed entry (a unique
    pair, so API processes fanning the same entries out add each once). A delivery is
    `pending` until it is `delivered`, or `dead` after its subscription's `max_attempts`.

    Example:
        >>> hooks = Webhooks(index)  # doctest: +SKIP
        >>> row, secret = hooks.create("till alarms", "https://shop.example/hook", by="shop 7",
        ...                            types=["alarm"], sites=["shop-7"])  # doctest: +SKIP
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    # -- subscriptions ------------------------------------------------------------------------

    def create(
        self,
        name: str,
        url: str,
        by: str,
        types: Sequence[str] = (),
        changes: Sequence[str] = (),
        sites: Sequence[str] = (),
        cameras: Sequence[str] = (),
        max_attempts: int = 8,
        by_admin: bool = False,
    ) -> tuple[WebhookSubscriptionRow, str]:
        secret = secrets.token_urlsafe(32)
        row = WebhookSubscriptionRow(
            id=secrets.token_hex(6),
            name=name,
            url=url,
            secret=secret,
            types=list(types),
            changes=list(changes),
            sites=sorted(set(sites)),
            cameras=list(cameras),
            max_attempts=max_attempts,
            enabled=True,
            created_by=by,
            by_admin=by_admin,
        )
        with self.database.sessions.begin() as session:
            session.add(row)
        return row, secret

    def subscriptions(self) -> list[WebhookSubscriptionRow]:
        with self.database.sessions() as session:
            statement = select(WebhookSubscriptionRow).order_by(WebhookSubscriptionRow.created_at)
            return list(session.scalars(statement))

    def get(self, subscription_id: str) -> WebhookSubscriptionRow | None:
        with self.database.sessions() as session:
            return session.get(WebhookSubscriptionRow, subscription_id)

    def delete(self, subscription_id: str) -> None:
        """Remove a subscription; its pending deliveries are not made."""
        with self.database.sessions.begin() as session:
            row = session.get(WebhookSubscriptionRow, subscription_id)
            if row is not None:
                session.delete(row)
            session.execute(
                update(WebhookOutboxRow)
                .where(
                    WebhookOutboxRow.subscription_id == subscription_id,
                    WebhookOutboxRow.state == "pending",
                )
                .values(state="dead", last_error="subscription removed")
            )

    # -- fan-out and delivery -----------------------------------------------------------------

    def cursor(self) -> int | None:
        """Where the fan-out stopped (None: it never ran)."""
        with self.database.sessions() as session:
            row = session.get(FeedCursorRow, FAN_OUT)
            return row.last_id if row is not None else None

    def advance(self, last_id: int) -> None:
        """Move the stored cursor forward (never back: another process may be ahead)."""
        with self.database.sessions.begin() as session:
            row = session.get(FeedCursorRow, FAN_OUT)
            if row is None:
                session.add(FeedCursorRow(name=FAN_OUT, last_id=last_id))
            elif row.last_id < last_id:
                row.last_id = last_id

    def fan_out(self, entries: Sequence[FeedEntry], payload: Any) -> int:
        """Add a delivery per wanted entry and subscription (none twice); `payload(entry)`
        gives the body's content. Returns how many rows were offered."""
        subscriptions = self.subscriptions()
        rows = [
            {
                "subscription_id": subscription.id,
                "event_id": entry.event_id,
                "feed_id": entry.id,
                "payload": payload(entry),
                "attempts": 0,
                "next_attempt_at": utcnow(),
                "state": "pending",
                "created_at": utcnow(),
            }
            for entry in entries
            for subscription in subscriptions
            if subscription.wants(entry)
        ]
        if not rows:
            return 0
        with self.database.sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(WebhookOutboxRow).on_conflict_do_nothing(
                index_elements=["subscription_id", "feed_id"]
            )
            session.execute(statement, rows)
        return len(rows)

    def claim(self, limit: int, lease_s: float) -> list[Claimed]:
        """Due deliveries, each taken for `lease_s` by a conditional update (so two API
        processes never send the same attempt); a process that dies mid-send leaves it due
        again after the lease."""
        now = utcnow()
        with self.database.sessions() as session:
            due = session.scalars(
                select(WebhookOutboxRow.id)
                .where(WebhookOutboxRow.state == "pending", WebhookOutboxRow.next_attempt_at <= now)
                .order_by(WebhookOutboxRow.next_attempt_at)
                .limit(limit)
            ).all()
        claimed = []
        for delivery_id in due:
            with self.database.sessions.begin() as session:
                taken = session.execute(
                    update(WebhookOutboxRow)
                    .where(
                        WebhookOutboxRow.id == delivery_id,
                        WebhookOutboxRow.state == "pending",
                        WebhookOutboxRow.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=now + timedelta(seconds=lease_s))
                )
                if not taken.rowcount:  # type: ignore[attr-defined]
                    continue
                delivery = session.get(WebhookOutboxRow, delivery_id)
                if delivery is None:
                    continue
                subscription = session.get(WebhookSubscriptionRow, delivery.subscription_id)
                if subscription is not None:
                    claimed.append(Claimed(delivery, subscription))
        return claimed

    def attempted(
        self,
        claimed: Claimed,
        status_code: int | None,
        error: str,
        duration_ms: int,
        retry_in_s: float,
    ) -> str:
        """Log an attempt and settle the delivery: `delivered` on a 2xx, else due again in
        `retry_in_s`, or `dead` once the subscription's attempts are spent. Returns the state."""
        delivery, subscription = claimed.delivery, claimed.subscription
        attempt = delivery.attempts + 1
        ok = status_code is not None and 200 <= status_code < 300
        state = "delivered" if ok else "dead" if attempt >= subscription.max_attempts else "pending"
        with self.database.sessions.begin() as session:
            session.add(
                WebhookAttemptRow(
                    delivery_id=delivery.id,
                    subscription_id=subscription.id,
                    attempt=attempt,
                    status_code=status_code,
                    error=error[:256],
                    duration_ms=duration_ms,
                )
            )
            session.execute(
                update(WebhookOutboxRow)
                .where(WebhookOutboxRow.id == delivery.id)
                .values(
                    attempts=attempt,
                    state=state,
                    last_error=None if ok else error[:512],
                    next_attempt_at=utcnow() + timedelta(seconds=retry_in_s),
                )
            )
        return state

    def deliveries(
        self, subscription_id: str, limit: int = 100
    ) -> list[tuple[WebhookOutboxRow, list[WebhookAttemptRow]]]:
        """The subscription's newest deliveries, each with its attempts (the delivery log)."""
        with self.database.sessions() as session:
            rows = session.scalars(
                select(WebhookOutboxRow)
                .where(WebhookOutboxRow.subscription_id == subscription_id)
                .order_by(WebhookOutboxRow.id.desc())
                .limit(limit)
            ).all()
            attempts = session.scalars(
                select(WebhookAttemptRow)
                .where(WebhookAttemptRow.delivery_id.in_([r.id for r in rows]))
                .order_by(WebhookAttemptRow.id)
            ).all()
        by_delivery: dict[int, list[WebhookAttemptRow]] = {}
        for attempt in attempts:
            by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
        return [(row, by_delivery.get(row.id, [])) for row in rows]

    def delivery_counts(self) -> dict[str, int]:
        """How many deliveries are in each state, of every subscription (a state with none is
        left out): the backlog is `pending`, the dead letter `dead`."""
        statement = select(WebhookOutboxRow.state, func.count()).group_by(WebhookOutboxRow.state)
        with self.database.sessions() as session:
            return {state: count for state, count in session.execute(statement)}

    def replay(self, subscription_id: str, delivery_id: int) -> bool:
        """Make a delivery (a dead one, typically) due now with its attempts renewed."""
        with self.database.sessions.begin() as session:
            result = session.execute(
                update(WebhookOutboxRow)
                .where(
                    WebhookOutboxRow.id == delivery_id,
                    WebhookOutboxRow.subscription_id == subscription_id,
                )
                .values(state="pending", attempts=0, next_attempt_at=utcnow())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
