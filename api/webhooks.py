"""Webhooks: subscriptions over the API, and the dispatcher that signs and sends deliveries."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

import hashlib
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator

from api.context import ApiContext
from api.errors import ERROR_RESPONSES
from api.models import EventOut, In, SiteIn
from common.backoff import Backoff
from common.egress import EgressRefusedError, send_checked
from common.periodic import Periodic
from common.urls import check_url
from storage.database.accounts import Principal
from storage.database.feed import FeedEntry, FeedReader
from storage.database.webhooks import Claimed, Webhooks, WebhookSubscriptionRow

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Xueliang-Signature"
ROUND_S = 0.5
SEND_TIMEOUT_S = 10.0
SENDERS = 4
CLAIM_LEASE_S = 60.0  # a delivery taken by a process that died is due again after this


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `t=<unix time>,v1=<HMAC-SHA256 of "t." + body>`.

    A receiver recomputes the HMAC with its secret over the timestamp, a dot and the raw body,
    compares in constant time, and refuses timestamps too far from its clock (replays).

    Example:
        >>> sign("s3cret", 1700000000, b'{"a":1}')[:40]
        't=1700000000,v1=1698a50bc74d1ff1db85c4e0'
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookDispatcher:
    """One thread per API process: fans new feed entries out into deliveries (from where the
    deployment last stopped: the cursor is in the index), then sends the due ones, signed,
    on a few sender threads; failures are retried with exponential backoff until the
    subscription's `max_attempts`, then dead-lettered.

    Example:
        >>> dispatcher = WebhookDispatcher(ctx); dispatcher.start()  # doctest: +SKIP
    """

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.hooks = Webhooks(ctx.index)
        settings = ctx.settings
        self.backoff = Backoff(settings.webhook_retry_min_s, settings.webhook_retry_max_s)
        self._task: Periodic | None = None
        self.failures = 0  # attempts that failed, since this process started

    def start(self) -> None:
        stored = self.hooks.cursor()
        self._reader = FeedReader(self.ctx.index, after=stored)
        if stored is None:
            self.hooks.advance(self._reader.cursor)  # the first start: from now on
        self._senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook-send")
        self._client = httpx.Client(timeout=SEND_TIMEOUT_S, follow_redirects=False)
        self._task = Periodic("webhooks", ROUND_S, self.round)
        self._task.start()

    def stop(self) -> None:
        if self._task is not None:
            self._task.stop()
            self._senders.shutdown(wait=True)
            self._client.close()

    def round(self) -> None:
        entries = self._reader.read()
        if entries:
            self.hooks.fan_out(entries, self._content)
            self.hooks.advance(self._reader.cursor)
        claimed = self.hooks.claim(limit=SENDERS * 4, lease_s=CLAIM_LEASE_S)
        list(self._senders.map(self.send, claimed))

    @staticmethod
    def _content(entry: FeedEntry) -> dict[str, Any]:
        assert entry.event is not None  # fanned out only with their event
        return {"change": entry.kind, "event": EventOut.of(entry.event).model_dump(mode="json")}

    def body(self, claimed: Claimed) -> bytes:
        """The delivery's body, made at send time so its links are fresh: short-lived
        presigned GETs of the event's clip and snapshot (each written to the custody log)."""
        delivery, subscription = claimed.delivery, claimed.subscription
        content = delivery.payload
        row = self.ctx.index.get_event(delivery.event_id)
        media: dict[str, str | None] = {"clip": None, "snapshot": None}
        for name, key in (("clip", row and row.clip_key), ("snapshot", row and row.snapshot_key)):
            if key:
                media[name] = self.ctx.store.presigned_url(key, expires_s=3600)
                actor = f"webhook {subscription.name}"
                self.ctx.evidence.log.append(
                    delivery.event_id, "fetch", actor, key, None, "link sent"
                )
        document = {
            "id": delivery.id,
            "type": f"event.{content['change']}",
            "event": content["event"],
            "media": media,
            "api": {"clip": f"/api/events/{delivery.event_id}/clip"},
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def send(self, claimed: Claimed) -> str:
        delivery, subscription = claimed.delivery, claimed.subscription
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            body = self.body(claimed)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(subscription.secret, int(time.time()), body),
                "X-Xueliang-Delivery": str(delivery.id),
                "User-Agent": "xueliang-webhooks",
            }
            # Checked at each attempt, redirects too: a name may resolve elsewhere by now.
            destination = self.ctx.destination_of(subscription.sites, subscription.by_admin)
            answer = send_checked(
                self._client, "POST", subscription.url, destination, content=body, headers=headers
            )
            status = answer.status_code
            error = "" if answer.is_success else f"HTTP {status}"
        except EgressRefusedError as exc:
            error = f"the receiver may not be reached: {exc.reason}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:256]
        duration_ms = int((time.monotonic() - started) * 1000)
        retry_in = self.backoff.delay(delivery.attempts)
        state = self.hooks.attempted(claimed, status, error, duration_ms, retry_in)
        if state != "delivered":
            self.failures += 1
        if state == "dead":
            log.warning(
                "webhook delivery %d to %s dead after %d attempts: %s",
                delivery.id,
                subscription.name,
                delivery.attempts + 1,
                error,
            )
        return state


class WebhookIn(In):
    name: str = Field(min_length=1, max_length=128)
    url: str = Field(max_length=1024, description="http:// or https:// receiver")
    types: list[str] = Field(default_factory=list, description="event types; empty: all")
    changes: list[Literal["started", "ended", "clip", "snapshot", "status", "updated"]] = Field(
        default_factory=list, description="which changes; empty: all"
    )
    sites: list[str] = Field(default_factory=list, description="empty: all (all-sites keys)")
    cameras: list[str] = Field(default_factory=list, description="empty: all of the sites")
    max_attempts: int = Field(8, ge=1, le=50)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        return check_url(url, ("http", "https"))

    @field_validator("sites")
    @classmethod
    def _site_ids(cls, sites: list[str]) -> list[str]:
        return [SiteIn.check_id(site) for site in sites]


class WebhookOut(BaseModel):
    id: str
    name: str
    url: str
    types: list[str]
    changes: list[str]
    sites: list[str]
    cameras: list[str]
    max_attempts: int
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookSubscriptionRow) -> "WebhookOut":
        return cls(
            id=row.id,
            name=row.name,
            url=row.url,
            types=row.types,
            changes=row.changes,
            sites=row.sites,
            cameras=row.cameras,
            max_attempts=row.max_attempts,
            created_by=row.created_by,
            created_at=row.created_at,
        )


class WebhookCreated(WebhookOut):
    secret: str = Field(description=f"signs each body ({SIGNATURE_HEADER}); shown this once")


class AttemptOut(BaseModel):
    attempt: int
    status_code: int | None
    error: str
    duration_ms: int
    at: datetime


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    change: str
    state: Literal["pending", "delivered", "dead"]
    attempts: list[AttemptOut]
    next_attempt_at: datetime


def routes(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)
    subscribers = ctx.auth.allow("admin", "operator", "shop")
    hooks = Webhooks(ctx.index)

    def visible(who: Principal, row: WebhookSubscriptionRow) -> bool:
        """All its sites are the key's (one for every site: only keys of every site)."""
        return who.sites is None or (bool(row.sites) and all(map(who.sees, row.sites)))

    def subscription(who: Principal, subscription_id: str) -> WebhookSubscriptionRow:
        row = hooks.get(subscription_id)
        if row is None or not visible(who, row):
            raise HTTPException(404, f"no webhook {subscription_id}")
        return row

    @router.get("")
    def list_webhooks(who: Annotated[Principal, subscribers]) -> list[WebhookOut]:
        return [WebhookOut.of(row) for row in hooks.subscriptions() if visible(who, row)]

    @router.post("", status_code=201)
    def create_webhook(who: Annotated[Principal, subscribers], hook: WebhookIn) -> WebhookCreated:
        """Subscribe a receiver to events of the key's sites; the answer holds the signing
        secret, shown this once."""
        if who.sites is not None and not hook.sites:
            raise HTTPException(422, "name the sites: this key does not have every site")
        for site in hook.sites:
            ctx.site(who, site)
        for camera in hook.cameras:
            ctx.camera(who, camera)
        destination = ctx.destination(who, hook.sites)
        ctx.check_reach(destination, hook.url, "the webhook's receiver", unresolved=True)
        row, secret = hooks.create(
            hook.name,
            hook.url,
            who.name,
            hook.types,
            hook.changes,
            hook.sites,
            hook.cameras,
            hook.max_attempts,
            by_admin=who.role == "admin",
        )
        return WebhookCreated(**WebhookOut.of(row).model_dump(), secret=secret)

    @router.get("/{webhook_id}")
    def get_webhook(who: Annotated[Principal, subscribers], webhook_id: str) -> WebhookOut:
        return WebhookOut.of(subscription(who, webhook_id))

    @router.delete("/{webhook_id}", status_code=204)
    def delete_webhook(who: Annotated[Principal, subscribers], webhook_id: str) -> None:
        """Remove a subscription; its pending deliveries are not sent."""
        subscription(who, webhook_id)
        hooks.delete(webhook_id)

    @router.get("/{webhook_id}/deliveries")
    def deliveries(who: Annotated[Principal, subscribers], webhook_id: str) -> list[DeliveryOut]:
        """The newest deliveries and each attempt (status, error, time): the delivery log."""
        subscription(who, webhook_id)
        return [
            DeliveryOut(
                id=row.id,
                event_id=row.event_id,
                change=str(row.payload.get("change", "")),
                state=row.state,
                next_attempt_at=row.next_attempt_at,
                attempts=[
                    AttemptOut(
                        attempt=a.attempt,
                        status_code=a.status_code,
                        error=a.error,
                        duration_ms=a.duration_ms,
                        at=a.at,
                    )
                    for a in attempts
                ],
            )
            for row, attempts in hooks.deliveries(webhook_id)
        ]

    @router.post("/{webhook_id}/deliveries/{delivery_id}/replay", status_code=204)
    def replay(who: Annotated[Principal, subscribers], webhook_id: str, delivery_id: int) -> None:
        """Send a delivery again (a dead-lettered one, typically) with fresh attempts."""
        subscription(who, webhook_id)
        if not hooks.replay(webhook_id, delivery_id):
            raise HTTPException(404, f"no delivery {delivery_id}")

    return router
