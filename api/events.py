"""Events: the list, one event, its media and evidence, and the operator's workflow."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import urllib3
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from minio.error import S3Error

from api.context import ApiContext, as_utc, client_of
from api.errors import ERROR_RESPONSES
from api.models import (
    ActionIn,
    ActionOut,
    CustodyOut,
    EventOut,
    EventPage,
    HoldIn,
    ResponseStats,
    SiteFigures,
    VerificationOut,
)
from storage.database.accounts import Principal
from storage.database.custody_chain import entry_sha256
from storage.database.engine import utcnow
from storage.database.index import EventQuery, EventRow
from storage.database.workflow import Status, TransitionError
from storage.media.evidence import EvidenceError

MAX_SEQ = 2**31 - 1  # event numbers are 32-bit (PostgreSQL INTEGER): larger cursors mean all
STATS_MAX_DAYS = 31
Media = Literal["clip", "snapshot"]


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) bytes of a single-range `Range` header; None for the whole object;
    416 for a range outside it. Several ranges in one header are answered whole.

    Example:
        >>> byte_range("bytes=100-", 1000), byte_range("bytes=-200", 1000)
        ((100, 999), (800, 999))
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header.removeprefix("bytes=").strip().partition("-")
    try:
        if first:
            start, end = int(first), int(last) if last else size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
    except ValueError:
        return None
    if start > end or start >= size:
        raise HTTPException(416, f"the range is outside the object's {size} bytes")
    return start, min(end, size - 1)


def stats_range(
    start: datetime | None, end: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    """The (since, until) of a figure: `end` (default now) back to `start` (default `default`
    before `end`), STATS_MAX_DAYS at most; 422 otherwise."""
    until = as_utc(end) or utcnow()
    try:
        since = as_utc(start) or until - default
    except OverflowError:  # an `end` near year 1
        raise HTTPException(422, "time out of range") from None
    if not timedelta(0) < until - since <= timedelta(days=STATS_MAX_DAYS):
        raise HTTPException(422, f"end must be after start, by {STATS_MAX_DAYS} days at most")
    return since, until


def routes(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["events"], responses=ERROR_RESPONSES)
    anyone = ctx.auth.allow("admin", "operator", "installer", "shop")
    desk = ctx.auth.allow("admin", "operator")
    viewers = ctx.auth.allow("admin", "operator", "shop")  # clips are evidence

    def kind_of(row: EventRow, key: str | None) -> Media | None:
        return "clip" if key == row.clip_key else "snapshot" if key == row.snapshot_key else None

    @router.get("/events")
    def list_events(
        who: Annotated[Principal, anyone],
        site: str | None = None,
        camera: str | None = None,
        type: str | None = None,
        severity: Literal["low", "medium", "high"] | None = None,
        status: Status | None = None,
        start: Annotated[
            datetime | None, Query(description="started at or after (ISO 8601)")
        ] = None,
        end: Annotated[datetime | None, Query(description="started before (ISO 8601)")] = None,
        cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
        limit: Annotated[int, Query(ge=1)] = 50,
    ) -> EventPage:
        """Events of the key's sites, newest first; `next_cursor` fetches the next page."""
        if site is not None and not who.sees(site):
            return EventPage(items=[], next_cursor=None)  # as a site with no events
        limit = min(limit, ctx.settings.page_limit)
        rows = ctx.index.list_events(
            EventQuery(
                site=site,
                camera_id=camera,
                type=type,
                severity=severity,
                status=status,
                sites=who.sorted_sites,
                start=as_utc(start),
                end=as_utc(end),
                before_seq=min(int(cursor), MAX_SEQ) if cursor else None,
                limit=limit,
            )
        )
        next_cursor = str(rows[-1].seq) if len(rows) == limit else None
        return EventPage(items=[EventOut.of(r) for r in rows], next_cursor=next_cursor)

    @router.get("/events/{event_id}")
    def get_event(who: Annotated[Principal, anyone], event_id: str) -> EventOut:
        return EventOut.of(ctx.event(who, event_id))

    def fetched(
        request: Request, who: Principal, event_id: str, what: Media, redirect: bool
    ) -> StreamingResponse | RedirectResponse:
        """An event's clip or snapshot (presigned redirect, or streamed with HTTP Range), its
        fetch written to the custody log first: once per viewing, not for every range a
        video element asks for after the first."""
        row = ctx.event(who, event_id)
        key = row.clip_key if what == "clip" else row.snapshot_key
        if key is None:
            raise HTTPException(404, f"the event has no {what} (yet)")
        wanted = request.headers.get("range")
        response: StreamingResponse | RedirectResponse
        try:
            if redirect:
                response = RedirectResponse(ctx.store.presigned_url(key), status_code=307)
            else:
                media_type = "video/mp4" if what == "clip" else "image/jpeg"
                stored = ctx.store.stat(key)
                if stored is None:
                    raise HTTPException(404, f"the event's {what} is missing from storage")
                span = byte_range(wanted, stored.size)
                start, end = span or (0, stored.size - 1)
                chunks = ctx.store.open(key, offset=start, length=end - start + 1)
                headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
                if span is not None:
                    headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
                status = 206 if span is not None else 200
                response = StreamingResponse(chunks, status, headers, media_type=media_type)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise HTTPException(404, f"the event's {what} is missing from storage") from None
            raise HTTPException(503, "object storage refused the request") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise HTTPException(503, "object storage is unreachable") from None
        if redirect or not wanted or wanted.replace(" ", "").startswith("bytes=0-"):
            detail = "presigned" if redirect else ""
            ctx.evidence.log.append(event_id, "fetch", who.name, key, client_of(request), detail)
        return response

    @router.get("/events/{event_id}/clip", response_model=None)
    def get_clip(
        request: Request, who: Annotated[Principal, viewers], event_id: str, redirect: bool = False
    ) -> StreamingResponse | RedirectResponse:
        return fetched(request, who, event_id, "clip", redirect)

    @router.get("/events/{event_id}/snapshot", response_model=None)
    def get_snapshot(
        request: Request, who: Annotated[Principal, anyone], event_id: str, redirect: bool = False
    ) -> StreamingResponse | RedirectResponse:
        return fetched(request, who, event_id, "snapshot", redirect)

    @router.post("/events/{event_id}/verify")
    def verify_event(who: Annotated[Principal, desk], event_id: str) -> list[VerificationOut]:
        """Re-read the event's media from storage and compare their SHA-256 with the index."""
        row = ctx.event(who, event_id)
        try:
            results = ctx.evidence.verify_event(event_id, who.name)
        except (urllib3.exceptions.HTTPError, OSError):
            raise HTTPException(503, "object storage is unreachable") from None
        media = [
            VerificationOut(
                kind=kind_of(row, r.key) or "clip",
                ok=r.ok,
                expected_sha256=r.expected,
                actual_sha256=r.actual,
                problem=r.problem,
            )
            for r in results
        ]
        entries = ctx.evidence.custody(event_id)  # the verification just written is the last
        problems = ctx.evidence.log.event_problems(event_id)
        last = entries[-1].entry() if entries else None
        custody = VerificationOut(
            kind="custody",
            ok=not problems,
            expected_sha256=last["sha256"] if last else "",
            actual_sha256=entry_sha256(last) if last else None,
            problem="; ".join(problems),
        )
        return [*media, custody]

    @router.get(
        "/events/{event_id}/bundle",
        response_class=FileResponse,
        responses={200: {"content": {"application/zip": {}}, "description": "a ZIP"}},
    )
    def evidence_bundle(
        request: Request,
        who: Annotated[Principal, desk],
        event_id: str,
        background: BackgroundTasks,
    ) -> FileResponse:
        """The event's evidence for a case or a court, as one ZIP: its clip and snapshot, a
        manifest with their SHA-256 and the event's custody entries (this export included),
        and `verify.py`, which checks them offline with Python alone."""
        ctx.event(who, event_id)
        scratch = Path(tempfile.mkdtemp(prefix="xueliang-bundle-"))
        target = scratch / f"evidence-{event_id}.zip"
        try:
            ctx.evidence.write_bundle(event_id, who.name, client_of(request), target)
        except BaseException as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            if isinstance(exc, EvidenceError):
                raise HTTPException(409, str(exc)) from None
            if isinstance(exc, S3Error | urllib3.exceptions.HTTPError | OSError):
                raise HTTPException(503, "object storage is unreachable") from None
            raise
        background.add_task(shutil.rmtree, scratch, True)
        return FileResponse(target, media_type="application/zip", filename=target.name)

    @router.put("/events/{event_id}/hold", status_code=204)
    def place_hold(who: Annotated[Principal, desk], event_id: str, hold: HoldIn) -> None:
        """A legal hold: the event's media are kept whatever the retention policy says."""
        ctx.event(who, event_id)
        ctx.evidence.hold(event_id, who.name, hold.reason)

    @router.delete("/events/{event_id}/hold", status_code=204)
    def release_hold(who: Annotated[Principal, desk], event_id: str) -> None:
        ctx.event(who, event_id)
        ctx.evidence.release(event_id, who.name)

    @router.get("/events/{event_id}/custody")
    def custody(who: Annotated[Principal, desk], event_id: str) -> list[CustodyOut]:
        """Who fetched, verified or held the event's media, and when, oldest first."""
        row = ctx.event(who, event_id)
        return [
            CustodyOut(
                seq=c.id,
                sha256=c.sha256,
                action=c.action,
                actor=c.actor,
                client=c.client,
                detail=c.detail,
                at=c.at,
                media=kind_of(row, c.object_key),
            )
            for c in ctx.evidence.custody(event_id)
        ]

    @router.post("/events/{event_id}/actions")
    def act(who: Annotated[Principal, desk], event_id: str, step: ActionIn) -> EventOut:
        """Acknowledge, resolve, call a false alarm, reopen, or add a note; 409 if the action
        does not apply to the event's status now."""
        ctx.event(who, event_id)
        try:
            ctx.workflow.act(event_id, step.action, who.name, step.note)
        except TransitionError as exc:
            raise HTTPException(409, str(exc)) from None
        return EventOut.of(ctx.event(who, event_id))

    @router.get("/events/{event_id}/actions")
    def trail(who: Annotated[Principal, desk], event_id: str) -> list[ActionOut]:
        """The event's workflow steps (who, when, notes), oldest first."""
        ctx.event(who, event_id)
        return [ActionOut.of(row) for row in ctx.workflow.trail(event_id)]

    @router.get("/stats/response")
    def response_stats(
        who: Annotated[Principal, desk],
        site: str | None = None,
        start: Annotated[datetime | None, Query(description="default: a day ago")] = None,
        end: Annotated[datetime | None, Query(description="default: now")] = None,
    ) -> ResponseStats:
        """How fast the key's sites' events (started in the range) were acknowledged."""
        since, until = stats_range(start, end, timedelta(days=1))
        times = ctx.index.acknowledgement_times(since, until, site, who.sorted_sites)
        return ResponseStats.of(times)

    @router.get("/stats/sites")
    def site_stats(
        who: Annotated[Principal, desk],
        start: Annotated[datetime | None, Query(description="default: 7 days ago")] = None,
        end: Annotated[datetime | None, Query(description="default: now")] = None,
        type: str | None = None,
    ) -> list[SiteFigures]:
        """The map's figures: each of the key's sites, where it is, and how many of its events
        (of `type`, if given) started in the range, high-severity ones apart."""
        since, until = stats_range(start, end, timedelta(days=7))
        counts = ctx.index.site_event_counts(since, until, type, who.sorted_sites)
        return [SiteFigures.of(site_counts) for site_counts in counts]

    return router
