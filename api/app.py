"""FastAPI application: events, their media and evidence, camera status and recordings."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import av
import urllib3
from fastapi import BackgroundTasks, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from minio.error import S3Error
from pydantic import BaseModel, ConfigDict, Field

from api.config import ApiConfig
from ingest.config import CameraConfig
from ingest.redact import redact_text
from storage.clips import ClipError
from storage.evidence import Evidence
from storage.index import CameraStatusRow, EventIndex, EventQuery, EventRow
from storage.objects import ObjectStore
from storage.recording import export_range, segments_between

MAX_SEQ = 2**31 - 1  # event numbers are 32-bit (PostgreSQL INTEGER): larger cursors mean all


class EventOut(BaseModel):
    id: str
    site: str
    camera_id: str
    type: str
    label: str
    zone: str
    severity: str
    detail: str
    alarm_method: int | None
    alarm_type: int | None
    state: str
    started_at: datetime
    ended_at: datetime | None
    score: float
    box: list[float] | None
    clip_start: datetime | None
    clip_end: datetime | None
    clip_sha256: str | None
    snapshot_sha256: str | None
    has_clip: bool
    has_snapshot: bool
    clip_error: str | None

    @classmethod
    def of(cls, row: EventRow) -> EventOut:
        """The row's public fields; storage keys stay inside, only whether media exist."""
        public = {name: getattr(row, name) for name in cls.model_fields if hasattr(row, name)}
        return cls(
            **public,
            has_clip=row.clip_key is not None,
            has_snapshot=row.snapshot_key is not None,
        )


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class VerificationOut(BaseModel):
    """One stored object of the event, re-read and re-hashed."""

    kind: Literal["clip", "snapshot"]
    ok: bool
    expected_sha256: str
    actual_sha256: str | None
    problem: str


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=256)


class CustodyOut(BaseModel):
    action: str
    actor: str
    client: str | None
    detail: str
    at: datetime
    media: Literal["clip", "snapshot"] | None


class CameraOut(BaseModel):
    id: str
    name: str
    site: str
    url: str
    detect_url: str | None
    enabled: bool
    state: Literal["connecting", "online", "degraded", "offline", "unknown"]
    reasons: str | None
    input_fps: float
    decode_fps: float
    expected_fps: float | None
    bitrate_kbps: float
    decoded_frames: list[int]
    corrupt_packets: int
    decode_errors: int
    timestamp_jumps: int
    reconnects: int
    last_frame_at: datetime | None
    offline_since: datetime | None
    error: str | None
    worker_id: str | None
    heartbeat_at: datetime | None

    @classmethod
    def of(
        cls, camera: CameraConfig, status: CameraStatusRow | None, stale_before: datetime
    ) -> CameraOut:
        """A configured camera with its last heartbeat; a stale heartbeat means offline."""
        configured = {
            "id": camera.id,
            "name": camera.name,
            "site": camera.site,
            "url": redact_text(camera.url),
            "detect_url": redact_text(camera.detect_url) if camera.detect_url else None,
            "enabled": camera.enabled,
        }
        if status is None:
            return cls(
                **configured, state="unknown", reasons=None, input_fps=0.0, decode_fps=0.0,
                expected_fps=None, bitrate_kbps=0.0, decoded_frames=[], corrupt_packets=0,
                decode_errors=0, timestamp_jumps=0, reconnects=0, last_frame_at=None,
                offline_since=None, error=None, worker_id=None, heartbeat_at=None,
            )  # fmt: skip
        fresh = status.updated_at >= stale_before
        return cls(
            **configured,
            state=status.state if fresh else "offline",
            reasons=status.reasons if fresh else "no heartbeat from the camera's worker",
            input_fps=status.input_fps if fresh else 0.0,
            decode_fps=status.decode_fps if fresh else 0.0,
            expected_fps=status.expected_fps,
            bitrate_kbps=status.bitrate_kbps if fresh else 0.0,
            decoded_frames=status.decoded_frames,
            corrupt_packets=status.corrupt_packets,
            decode_errors=status.decode_errors,
            timestamp_jumps=status.timestamp_jumps,
            reconnects=status.reconnects,
            last_frame_at=status.last_frame_at,
            offline_since=status.offline_since,
            error=status.error,
            worker_id=status.worker_id,
            heartbeat_at=status.updated_at,
        )


class Health(BaseModel):
    status: Literal["ok"]


def as_utc(moment: datetime | None) -> datetime | None:
    """Query times without a zone are taken as UTC."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise HTTPException(422, "time out of range") from None


def create_app(
    index: EventIndex,
    store: ObjectStore,
    cameras: Sequence[CameraConfig],
    settings: ApiConfig,
    heartbeat_stale_s: float,
) -> FastAPI:
    """The API over `index` and `store`; `cameras` are the configured ones (never with secrets)."""
    app = FastAPI(title="Xueliang", version="0.1.0")
    evidence = Evidence(index, store)

    def actor(request: Request) -> tuple[str, str | None]:
        """Who is asking (until API keys exist, everyone is "anonymous") and from where."""
        return "anonymous", request.client.host if request.client else None

    def kind_of(row: EventRow, key: str | None) -> Literal["clip", "snapshot"] | None:
        return "clip" if key == row.clip_key else "snapshot" if key == row.snapshot_key else None

    def event_or_404(event_id: str) -> EventRow:
        row = index.get_event(event_id)
        if row is None:
            raise HTTPException(404, f"no event {event_id}")
        return row

    def media(
        key: str | None, media_type: str, redirect: bool, what: str
    ) -> StreamingResponse | RedirectResponse:
        if key is None:
            raise HTTPException(404, f"the event has no {what} (yet)")
        try:
            if redirect:
                return RedirectResponse(store.presigned_url(key), status_code=307)
            chunks = store.open(key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise HTTPException(404, f"the event's {what} is missing from storage") from None
            raise HTTPException(503, "object storage refused the request") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise HTTPException(503, "object storage is unreachable") from None
        return StreamingResponse(chunks, media_type=media_type)

    @app.get("/healthz")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/api/events")
    def list_events(
        site: str | None = None,
        camera: str | None = None,
        type: str | None = None,
        start: Annotated[
            datetime | None, Query(description="started at or after (ISO 8601)")
        ] = None,
        end: Annotated[datetime | None, Query(description="started before (ISO 8601)")] = None,
        cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
        limit: Annotated[int, Query(ge=1)] = 50,
    ) -> EventPage:
        limit = min(limit, settings.page_limit)
        rows = index.list_events(
            EventQuery(
                site=site,
                camera_id=camera,
                type=type,
                start=as_utc(start),
                end=as_utc(end),
                before_seq=min(int(cursor), MAX_SEQ) if cursor else None,
                limit=limit,
            )
        )
        next_cursor = str(rows[-1].seq) if len(rows) == limit else None
        return EventPage(items=[EventOut.of(r) for r in rows], next_cursor=next_cursor)

    @app.get("/api/events/{event_id}")
    def get_event(event_id: str) -> EventOut:
        return EventOut.of(event_or_404(event_id))

    def fetched(
        request: Request, event_id: str, what: Literal["clip", "snapshot"], redirect: bool
    ) -> StreamingResponse | RedirectResponse:
        """An event's clip or snapshot, its fetch written to the custody log first."""
        row = event_or_404(event_id)
        key = row.clip_key if what == "clip" else row.snapshot_key
        response = media(key, "video/mp4" if what == "clip" else "image/jpeg", redirect, what)
        name, client = actor(request)
        evidence.record(event_id, "fetch", name, key, client, "presigned" if redirect else "")
        return response

    @app.get("/api/events/{event_id}/clip", response_model=None)
    def get_clip(
        request: Request, event_id: str, redirect: bool = False
    ) -> StreamingResponse | RedirectResponse:
        return fetched(request, event_id, "clip", redirect)

    @app.get("/api/events/{event_id}/snapshot", response_model=None)
    def get_snapshot(
        request: Request, event_id: str, redirect: bool = False
    ) -> StreamingResponse | RedirectResponse:
        return fetched(request, event_id, "snapshot", redirect)

    @app.post("/api/events/{event_id}/verify")
    def verify_event(request: Request, event_id: str) -> list[VerificationOut]:
        """Re-read the event's media from storage and compare their SHA-256 with the index."""
        row = event_or_404(event_id)
        try:
            results = evidence.verify_event(event_id, actor(request)[0])
        except (urllib3.exceptions.HTTPError, OSError):
            raise HTTPException(503, "object storage is unreachable") from None
        return [
            VerificationOut(
                kind=kind_of(row, r.key) or "clip", ok=r.ok, expected_sha256=r.expected,
                actual_sha256=r.actual, problem=r.problem,
            )
            for r in results
        ]  # fmt: skip

    @app.put("/api/events/{event_id}/hold", status_code=204)
    def place_hold(request: Request, event_id: str, hold: HoldIn) -> None:
        """A legal hold: the event's media are kept whatever the retention policy says."""
        event_or_404(event_id)
        evidence.hold(event_id, actor(request)[0], hold.reason)

    @app.delete("/api/events/{event_id}/hold", status_code=204)
    def release_hold(request: Request, event_id: str) -> None:
        event_or_404(event_id)
        evidence.release(event_id, actor(request)[0])

    @app.get("/api/events/{event_id}/custody")
    def custody(event_id: str) -> list[CustodyOut]:
        """Who fetched, verified or held the event's media, and when, oldest first."""
        row = event_or_404(event_id)
        return [
            CustodyOut(
                action=c.action, actor=c.actor, client=c.client, detail=c.detail, at=c.at,
                media=kind_of(row, c.object_key),
            )
            for c in evidence.custody(event_id)
        ]  # fmt: skip

    @app.get("/api/cameras/{camera_id}/recording", response_class=FileResponse)
    def export_recording(
        camera_id: str,
        start: Annotated[datetime, Query(description="from (ISO 8601)")],
        end: Annotated[datetime, Query(description="until (ISO 8601)")],
        background: BackgroundTasks,
    ) -> FileResponse:
        """The camera's continuous recording from `start` to `end` as one MP4, stitched from
        its segments without re-encoding (from the keyframe at or before `start`)."""
        since, until = as_utc(start), as_utc(end)
        assert since is not None and until is not None
        if until <= since or until - since > timedelta(seconds=settings.export_max_s):
            raise HTTPException(
                422, f"end must be after start, by {settings.export_max_s} s at most"
            )
        with index.sessions() as session:
            rows = segments_between(session, camera_id, since.timestamp(), until.timestamp())
        if not rows:
            raise HTTPException(404, "no recording of this camera covers that time")
        scratch = Path(tempfile.mkdtemp(prefix="xueliang-export-"))
        target = scratch / f"{camera_id}.mp4"
        try:
            export_range(rows, store.read, since.timestamp(), until.timestamp(), target)
        except BaseException as exc:
            shutil.rmtree(scratch, ignore_errors=True)  # background tasks run only on success
            if isinstance(exc, ClipError):
                raise HTTPException(404, str(exc)) from None
            if isinstance(exc, av.error.FFmpegError):
                raise HTTPException(502, "a stored recording segment cannot be read") from None
            if isinstance(exc, S3Error | urllib3.exceptions.HTTPError | OSError):
                raise HTTPException(503, "object storage is unreachable") from None
            raise
        background.add_task(shutil.rmtree, scratch, True)
        return FileResponse(target, media_type="video/mp4", filename=target.name)

    @app.get("/api/cameras")
    def list_cameras() -> list[CameraOut]:
        statuses = index.camera_statuses()
        stale_before = datetime.now(UTC) - timedelta(seconds=heartbeat_stale_s)
        return [CameraOut.of(c, statuses.get(c.id), stale_before) for c in cameras]

    return app
