"""FastAPI application: events and their workflow, media and evidence, cameras and their
recordings, sites and keys; every route behind an API key and its sites."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from api import admin, cameras, events
from api.auth import Auth, TokenBuckets
from api.config import ApiConfig
from api.context import ApiContext
from api.errors import install_error_handlers
from api.limits import BodyLimit
from api.models import Health
from storage.accounts import ApiKeys
from storage.cameras import CameraConfig
from storage.index import EventIndex
from storage.objects import ObjectStore


def create_app(
    index: EventIndex,
    store: ObjectStore,
    cameras_config: Sequence[CameraConfig],
    settings: ApiConfig,
    heartbeat_stale_s: float,
) -> FastAPI:
    """The API over `index` and `store`; `cameras_config` are the configured cameras (their
    secrets never leave)."""
    app = FastAPI(title="Xueliang", version="0.1.0")
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    keys = ApiKeys(index)
    auth = Auth(keys, TokenBuckets(settings.rate_per_s, settings.burst))
    ctx = ApiContext(index, store, cameras_config, settings, heartbeat_stale_s, auth, keys)

    @app.get("/healthz")
    def healthz() -> Health:
        return Health(status="ok")

    for module in (events, cameras, admin):
        app.include_router(module.routes(ctx))
    return app
