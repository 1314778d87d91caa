"""Cameras: their health, the ones installers add over the API (with a probe first), and
their continuous recording by time range."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

import base64
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import av
import urllib3
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query
from fastapi.responses import FileResponse, Response
from minio.error import S3Error
from pydantic import SecretStr, ValidationError

from api.context import ApiContext, as_utc
from api.errors import ERROR_RESPONSES
from api.models import CameraDetail, CameraOut, HealthPoint, ProbeIn, ProbeOut
from common.egress import EgressRefusedError
from common.redact import redact_text
from ingest.gb28181 import channel_of_url
from ingest.probe import ProbeError, probe
from storage.database.accounts import Principal
from storage.database.cameras import CREDENTIALS, ROW_FIELDS, CameraConfig, NetworkCameraConfig
from storage.database.devices import GbDevices
from storage.database.recordings import segments_between
from storage.media.clips import ClipError
from storage.media.continuous import export_range

HEALTH_MAX_HOURS = 7 * 24  # the history kept by default (retention.health_days)


def routes(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["cameras"], responses=ERROR_RESPONSES)
    anyone = ctx.auth.allow("admin", "operator", "installer", "shop")
    viewers = ctx.auth.allow("admin", "operator", "shop")
    installers = ctx.auth.allow("admin", "installer")
    keepers = ctx.auth.allow("admin", "operator", "installer")  # who keeps cameras working

    devices = GbDevices(ctx.index, ctx.sealer)

    def source(camera: CameraConfig) -> Literal["config", "api"]:
        return "config" if ctx.configured(camera.id) else "api"

    def health(cameras: list[CameraConfig]) -> list[CameraOut]:
        statuses = ctx.heartbeats.statuses()
        stale_before = datetime.now(UTC) - timedelta(seconds=ctx.heartbeat_stale_s)
        return [CameraOut.of(c, statuses.get(c.id), stale_before, source(c)) for c in cameras]

    def stored(who: Principal, camera_id: str) -> NetworkCameraConfig:
        """A camera added over the API that the key may change (409 for the config file's)."""
        camera = ctx.camera(who, camera_id)
        if not isinstance(camera, NetworkCameraConfig):
            raise HTTPException(409, f"camera {camera_id} is in the config file: change it there")
        return camera

    def writable(who: Principal, camera: NetworkCameraConfig) -> None:
        """The camera's site must exist and be the key's, its addresses ones the key may
        reach (the egress policy, with the site's camera networks). A name that does not
        resolve is refused but to an admin's key: the workers do not check it again."""
        ctx.site(who, camera.site)
        if camera.url.lower().startswith("gb28181:"):
            device = devices.get(channel_of_url(camera.url)[0])
            if device is None or device.state != "approved" or device.site != camera.site:
                raise HTTPException(403, "the GB/T 28181 device is not approved into this site")
            return  # the device sends its video to the workers: no address to reach
        destination = ctx.destination(who, [camera.site])
        for url in filter(None, (camera.url, camera.detect_url)):
            unresolved = who.role == "admin"
            ctx.check_reach(destination, url, "the camera's address", unresolved=unresolved)

    @router.get("/cameras")
    def list_cameras(who: Annotated[Principal, anyone]) -> list[CameraOut]:
        """The key's sites' cameras with their health from the workers' heartbeats."""
        return health(ctx.all_cameras(who))

    @router.get("/cameras/{camera_id}")
    def get_camera(who: Annotated[Principal, anyone], camera_id: str) -> CameraDetail:
        """One camera: health and configuration (zones, lines, rules), never credentials."""
        camera = ctx.camera(who, camera_id)
        config = camera.model_dump(mode="json", exclude={*ROW_FIELDS, "detect_url"})
        return CameraDetail(**health([camera])[0].model_dump(), config=config)

    @router.get(
        "/cameras/{camera_id}/picture",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}},
    )
    def camera_picture(who: Annotated[Principal, anyone], camera_id: str) -> Response:
        """The camera's latest picture (its newest keyframe, refreshed about every 10 s by
        the worker running it; faces blurred where the camera has privacy on)."""
        ctx.camera(who, camera_id)
        picture = ctx.heartbeats.picture(camera_id)
        if picture is None:
            raise HTTPException(404, f"camera {camera_id} has no picture yet")
        taken = picture.taken_at.isoformat()
        headers = {"Cache-Control": "no-store", "X-Taken-At": taken}
        return Response(picture.jpeg, media_type="image/jpeg", headers=headers)

    @router.get("/cameras/{camera_id}/health")
    def camera_health(
        who: Annotated[Principal, keepers],
        camera_id: str,
        hours: Annotated[int, Query(ge=1, le=HEALTH_MAX_HOURS, description="how far back")] = 24,
    ) -> list[HealthPoint]:
        """The camera's health minute by minute, oldest first: the worst state of each minute,
        its frame rates, bitrate and reconnects. Minutes without a heartbeat (no worker ran
        the camera) are missing, not zero."""
        ctx.camera(who, camera_id)
        since = datetime.now(UTC) - timedelta(hours=hours)
        return [HealthPoint.model_validate(row) for row in ctx.heartbeats.history(camera_id, since)]

    @router.post("/cameras", status_code=201)
    def add_camera(who: Annotated[Principal, installers], camera: NetworkCameraConfig) -> CameraOut:
        """Add a camera to one of the key's sites; the workers start it at their next lease
        round (within `ingest.lease_s`), no restart needed. Its credentials are kept for
        the workers and never answered."""
        writable(who, camera)
        if ctx.configured(camera.id) or ctx.api_cameras.get(camera.id) is not None:
            raise HTTPException(409, f"there is a camera {camera.id} already")
        ctx.api_cameras.put(camera)
        return health([camera])[0]

    @router.put("/cameras/{camera_id}")
    def replace_camera(
        who: Annotated[Principal, installers], camera_id: str, camera: NetworkCameraConfig
    ) -> CameraOut:
        """Replace a camera's configuration; credentials left out of the body are kept (an
        empty string clears one). Workers restart it with the new one at their next round."""
        old = stored(who, camera_id)
        if camera.id != camera_id:
            raise HTTPException(422, "the body's id differs from the camera's")
        writable(who, camera)
        credentials: dict[str, object] = {}
        for name in CREDENTIALS:
            given = getattr(camera, name) if name in camera.model_fields_set else getattr(old, name)
            text = given.get_secret_value() if isinstance(given, SecretStr) else given
            credentials[name] = text or None  # left out: kept; "": cleared
        for name in ("url", "detect_url"):
            # A URL given back as the API showed it (secrets in its query starred) is the
            # stored one: an edit of the zones must not replace a token with stars.
            stored_url = getattr(old, name)
            if stored_url is not None and getattr(camera, name) == redact_text(stored_url):
                credentials[name] = stored_url
        try:
            merged = NetworkCameraConfig.model_validate({**camera.model_dump(), **credentials})
        except ValidationError:
            raise HTTPException(422, "the camera's configuration is not valid") from None
        ctx.api_cameras.put(merged)
        return health([merged])[0]

    @router.delete("/cameras/{camera_id}", status_code=204)
    def remove_camera(who: Annotated[Principal, installers], camera_id: str) -> None:
        """Remove a camera added over the API: workers stop it at their next round; its
        events and recordings stay until retention removes them."""
        stored(who, camera_id)
        ctx.api_cameras.delete(camera_id)

    @router.post("/cameras/probe", responses={502: {"model": ERROR_RESPONSES[404]["model"]}})
    def probe_camera(who: Annotated[Principal, installers], target: ProbeIn) -> ProbeOut:
        """Connect to a stream before it is saved: its codec, size, frame rate and first
        picture. A 403 if the key may not reach its address (give `site` for the site's camera
        networks), a 502 with one of a few reasons if it cannot be read in `timeout_s`."""
        sites = [ctx.site(who, target.site).id] if target.site is not None else []
        try:
            given = target.model_dump(exclude={"timeout_s", "site"}, exclude_none=True)
            camera = NetworkCameraConfig(id="probe", site="probe", **given)
        except ValidationError as exc:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise HTTPException(422, reasons) from None
        if camera.url.lower().startswith("gb28181:"):
            raise HTTPException(422, "a GB/T 28181 channel is not probed: enable its camera")
        try:  # checked as it connects: its address, every redirect, every segment
            found = probe(camera, target.timeout_s, ctx.destination(who, sites))
        except EgressRefusedError as exc:
            raise HTTPException(
                403, f"the camera's address may not be reached by this key: {exc.reason}"
            ) from None
        except ProbeError as exc:
            raise HTTPException(502, str(exc)) from None
        return ProbeOut(
            codec=found.codec,
            width=found.width,
            height=found.height,
            fps=found.fps,
            snapshot_jpeg=base64.b64encode(found.snapshot_jpeg).decode(),
        )

    @router.get("/cameras/{camera_id}/recording", response_class=FileResponse)
    def export_recording(
        who: Annotated[Principal, viewers],
        camera_id: str,
        start: Annotated[datetime, Query(description="from (ISO 8601)")],
        end: Annotated[datetime, Query(description="until (ISO 8601)")],
        background: BackgroundTasks,
    ) -> FileResponse:
        """The camera's continuous recording from `start` to `end` as one MP4, stitched from
        its segments without re-encoding (from the keyframe at or before `start`)."""
        ctx.camera(who, camera_id)
        since, until = as_utc(start), as_utc(end)
        assert since is not None and until is not None
        limit = ctx.settings.export_max_s
        if until <= since or until - since > timedelta(seconds=limit):
            raise HTTPException(422, f"end must be after start, by {limit} s at most")
        rows = segments_between(ctx.index, camera_id, since.timestamp(), until.timestamp())
        if not rows:
            raise HTTPException(404, "no recording of this camera covers that time")
        scratch = Path(tempfile.mkdtemp(prefix="xueliang-export-"))
        target = scratch / f"{camera_id}.mp4"
        try:
            export_range(rows, ctx.store.read, since.timestamp(), until.timestamp(), target)
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

    return router
