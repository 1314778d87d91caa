"""Live: events and camera status pushed over WebSocket and Server-Sent Events, each client
getting only what its key's sites allow."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from api.auth import SESSION_COOKIE, key_of_headers, same_origin
from api.context import ApiContext
from api.errors import ERROR_RESPONSES
from api.models import EventOut
from common.periodic import Periodic
from storage.database.accounts import Principal
from storage.database.feed import FeedEntry, FeedReader

log = logging.getLogger(__name__)
POLL_S = 0.2
CAMERAS_EVERY_S = 1.0
PENDING_MAX = 20_000  # messages: a client this far behind is dropped, the process stays small
KEEPALIVE_S = 15.0
RECHECK_S = 2.0  # how often open streams' keys and sessions are checked again


@dataclass(frozen=True, slots=True)
class Message:
    """One push: `kind` "event" or "camera", its site and type (for the filters), the JSON."""

    id: int
    kind: str
    site: str
    type: str
    camera_id: str
    data: str


@dataclass(frozen=True)
class Credential:
    """What a stream was opened with: a key, or a console session's token."""

    presented: str
    session: bool = False

    @classmethod
    def of(cls, headers: Mapping[str, str], cookies: Mapping[str, str]) -> "Credential | None":
        """The key of a request's headers, else its session cookie (the order the API's
        authentication takes them in)."""
        key, token = key_of_headers(headers), cookies.get(SESSION_COOKIE)
        if key is not None:
            return cls(key)
        return cls(token, session=True) if token else None


@dataclass(eq=False)
class Subscriber:
    principal: Principal
    credential: Credential
    types: frozenset[str] | None
    cameras: frozenset[str] | None
    loop: asyncio.AbstractEventLoop
    # A round's messages for this client come as one batch: one wake-up, one frame to send.
    queue: asyncio.Queue[list[Message] | None] = field(default_factory=asyncio.Queue)
    pending: int = 0
    lagging: bool = False
    revoked: bool = False  # its key was revoked, or its session ended

    def wants(self, message: Message) -> bool:
        if not self.principal.sees(message.site):
            return False
        if message.kind == "event" and self.types is not None and message.type not in self.types:
            return False
        return self.cameras is None or message.camera_id in self.cameras

    def offer(self, batch: list[Message] | None) -> None:
        """On the subscriber's event loop: queue a batch, or (None, or a client too far
        behind) end the stream."""
        if batch is not None and self.pending + len(batch) > PENDING_MAX:
            self.lagging = True
            batch = None
        if batch is None:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.pending = 0
            self.queue.put_nowait(None)
            return
        self.pending += len(batch)
        self.queue.put_nowait(batch)

    async def next(self, timeout: float | None = None) -> list[Message] | None:
        """The next batch, None at the end; TimeoutError after `timeout` without one."""
        batch = await asyncio.wait_for(self.queue.get(), timeout)
        self.pending -= len(batch) if batch else 0
        return batch


class LiveHub:
    """One thread per API process reads the event feed (every POLL_S) and the cameras'
    heartbeats (every CAMERAS_EVERY_S), renders each change once and hands it to every
    connected client whose key and filters want it.

    Example:
        >>> hub = LiveHub(ctx); hub.start()  # doctest: +SKIP
        >>> subscriber = hub.subscribe(principal, Credential(key), None, None)  # doctest: +SKIP
    """

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._camera_states: dict[str, tuple[str, str | None]] = {}
        self._reader: FeedReader
        self._task: Periodic | None = None
        self._next_cameras = 0.0
        self._next_recheck = 0.0
        self.delivered = 0
        self.events_by_type: Counter[str] = Counter()  # started since this process started

    def start(self) -> None:
        """Start at the feed's current end: clients get what happens from now on."""
        self._reader = FeedReader(self.ctx.index)
        self._task = Periodic("live feed", POLL_S, self.round)
        self._task.start()

    def stop(self) -> None:
        if self._task is not None:
            self._task.stop()
        with self._lock:
            for subscriber in self._subscribers:
                subscriber.loop.call_soon_threadsafe(subscriber.offer, None)

    def subscribe(
        self,
        principal: Principal,
        credential: Credential,
        types: frozenset[str] | None,
        cameras: frozenset[str] | None,
    ) -> Subscriber:
        subscriber = Subscriber(principal, credential, types, cameras, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def round(self) -> None:
        """Push what changed since the last round."""
        messages = [self._event_message(entry) for entry in self._reader.read()]
        if time.monotonic() >= self._next_cameras:
            self._next_cameras = time.monotonic() + CAMERAS_EVERY_S
            messages += self._camera_messages()
        if time.monotonic() >= self._next_recheck:
            self._next_recheck = time.monotonic() + RECHECK_S
            self._end_revoked()
        self._publish([m for m in messages if m is not None])

    def _end_revoked(self) -> None:
        """End the streams of keys revoked and sessions ended since they were opened: an
        open stream must not outlive the right to it."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            credential = subscriber.credential
            if subscriber.revoked or self.ctx.auth.still_valid(
                credential.presented, credential.session
            ):
                continue
            subscriber.revoked = True
            subscriber.loop.call_soon_threadsafe(subscriber.offer, None)

    def _event_message(self, entry: FeedEntry) -> Message | None:
        if entry.event is None:
            return None
        if entry.kind == "started":
            self.events_by_type[entry.event.type] += 1
        event = EventOut.of(entry.event).model_dump(mode="json")
        data = json.dumps({"kind": "event", "change": entry.kind, "event": event})
        row = entry.event
        return Message(entry.id, "event", row.site, row.type, row.camera_id, data)

    def _camera_messages(self) -> list[Message]:
        stale_before = datetime.now(UTC) - timedelta(seconds=self.ctx.heartbeat_stale_s)
        messages = []
        for status in self.ctx.heartbeats.statuses().values():
            fresh = status.updated_at >= stale_before
            state = status.state if fresh else "offline"
            reasons = status.reasons if fresh else "no heartbeat from the camera's worker"
            if self._camera_states.get(status.camera_id) == (state, reasons):
                continue
            self._camera_states[status.camera_id] = (state, reasons)
            data = json.dumps(
                {
                    "kind": "camera",
                    "camera": {
                        "id": status.camera_id,
                        "site": status.site,
                        "state": state,
                        "reasons": reasons,
                        "at": status.updated_at.isoformat(),
                    },
                }
            )
            messages.append(Message(0, "camera", status.site, "", status.camera_id, data))
        return messages

    def _publish(self, messages: list[Message]) -> None:
        if not messages:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            wanted = [m for m in messages if subscriber.wants(m)]
            if wanted:
                self.delivered += len(wanted)
                subscriber.loop.call_soon_threadsafe(subscriber.offer, wanted)


def routes(ctx: ApiContext, hub: LiveHub) -> APIRouter:
    router = APIRouter(prefix="/api/live", tags=["live"], responses=ERROR_RESPONSES)
    anyone = ctx.auth.allow("admin", "operator", "installer", "shop")

    def filters(types: str | None, cameras: str | None) -> tuple[frozenset[str] | None, ...]:
        return tuple(frozenset(v.split(",")) if v else None for v in (types, cameras))

    @router.get("/events", response_class=StreamingResponse)
    async def server_sent_events(
        who: Annotated[Principal, anyone],
        request: Request,
        types: Annotated[str | None, Query(description="event types, comma-separated")] = None,
        cameras: Annotated[str | None, Query(description="camera ids, comma-separated")] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: `event: event` (an event started, ended, got its media or
        changed status) and `event: camera` (a camera's state changed)."""
        wanted_types, wanted_cameras = filters(types, cameras)
        credential = Credential.of(request.headers, request.cookies)
        assert credential is not None  # `who` was authenticated with it
        subscriber = hub.subscribe(who, credential, wanted_types, wanted_cameras)

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                while True:
                    try:
                        batch = await subscriber.next(KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if batch is None:
                        return
                    yield "".join(
                        (f"id: {m.id}\n" if m.id else "") + f"event: {m.kind}\ndata: {m.data}\n\n"
                        for m in batch
                    )
            finally:
                hub.unsubscribe(subscriber)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @router.websocket("/ws")
    async def websocket(
        socket: WebSocket,
        types: str | None = None,
        cameras: str | None = None,
    ) -> None:
        """The same pushes, each frame a JSON array of messages, oldest first (what changed
        since the last frame); the key in `Authorization: Bearer` or `X-API-Key`, or the
        console's session cookie from the console's own origin (else the handshake is
        refused)."""
        credential = Credential.of(socket.headers, socket.cookies)
        # A browser sends the session cookie from any page: only the console's own may use it.
        if credential is None or (credential.session and not same_origin(socket.headers)):
            await socket.close(code=1008)
            return
        try:
            principal = ctx.auth.authenticate_key(credential.presented, credential.session)
        except HTTPException:
            await socket.close(code=1008)
            return
        await socket.accept()
        wanted_types, wanted_cameras = filters(types, cameras)
        subscriber = hub.subscribe(principal, credential, wanted_types, wanted_cameras)
        try:
            while (batch := await subscriber.next()) is not None:
                await socket.send_text("[" + ",".join(m.data for m in batch) + "]")
            # 1008: the key or session no longer admits it; 1013: too far behind, come again
            code = 1008 if subscriber.revoked else 1013 if subscriber.lagging else 1001
            await socket.close(code=code)
        except WebSocketDisconnect:
            pass
        finally:
            hub.unsubscribe(subscriber)

    return router
