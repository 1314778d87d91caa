"""FastAPI application: events and their workflow, media and evidence, cameras and their
recordings, sites and keys; every route behind an API key and its sites."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Protocol

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api import admin, alarms, cameras, devices, events, live, metrics, webhooks
from api.auth import Auth, TokenBuckets
from api.config import ApiConfig
from api.context import ApiContext
from api.errors import install_error_handlers
from api.headers import SecurityHeaders
from api.limits import BodyLimit
from api.live import LiveHub
from api.models import Health
from api.mqtt import MqttPublisher
from api.webhooks import WebhookDispatcher
from common.egress import EgressPolicy, IPAddress
from common.periodic import Periodic
from storage.database.accounts import ApiKeys
from storage.database.cameras import CameraConfig
from storage.database.index import EventIndex
from storage.database.limits import SharedBuckets
from storage.database.sealing import CredentialSealer
from storage.media.objects import ObjectStore

CONSOLE = Path(__file__).resolve().parent / "console"


class BackgroundJob(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def create_app(
    index: EventIndex,
    store: ObjectStore,
    cameras_config: Sequence[CameraConfig],
    settings: ApiConfig,
    heartbeat_stale_s: float,
    sealer: CredentialSealer,
    chores: Sequence[Periodic] = (),
    services: Collection[tuple[IPAddress, int]] = frozenset(),
) -> FastAPI:
    """The API over `index` and `store`; `cameras_config` are the configured cameras (their
    secrets never leave); `sealer` seals the credentials of cameras added over the API;
    `services` are the platform's own addresses, which only admins may make it connect to.

    Its background jobs (the live hub, the webhook dispatcher, the MQTT publisher where on,
    and the deployment's `chores`) run while it serves, started and stopped in one place."""
    keys = ApiKeys(index)
    auth = Auth(keys, TokenBuckets(SharedBuckets(index, settings.rate_per_s, settings.burst)))
    allow, deny = settings.egress.networks()
    egress = EgressPolicy(allow, deny, services)
    ctx = ApiContext(
        index, store, cameras_config, settings, heartbeat_stale_s, auth, keys, sealer, egress
    )
    hub = LiveHub(ctx)
    dispatcher = WebhookDispatcher(ctx)
    publishers = [MqttPublisher(index, settings.mqtt)] if settings.mqtt.enabled else []
    jobs: list[BackgroundJob] = [hub, dispatcher, *publishers, *chores]

    serving = 0  # servers (or test clients) running this app at once share its threads

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal serving
        serving += 1
        if serving == 1:
            for job in jobs:
                job.start()
        try:
            yield
        finally:
            serving -= 1
            if serving == 0:
                for job in reversed(jobs):
                    job.stop()

    app = FastAPI(title="Xueliang", version="0.1.0", lifespan=lifespan)
    app.state.hub, app.state.dispatcher = hub, dispatcher
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/", include_in_schema=False)
    def console_home() -> RedirectResponse:
        return RedirectResponse("/console/")

    # The console: static pages on this API, no build step (api/console/).
    app.mount("/console", StaticFiles(directory=CONSOLE, html=True), name="console")

    for module in (events, cameras, admin, webhooks, alarms, devices):
        app.include_router(module.routes(ctx))
    app.include_router(live.routes(ctx, hub))
    app.include_router(metrics.routes(ctx, hub, dispatcher))
    return app
