"""Prometheus metrics: camera health from the heartbeats, each worker's figures, events by
type, the webhook backlog; read from the index at each scrape, so every API node answers the
same."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.context import ApiContext
from api.errors import ERROR_RESPONSES
from api.live import LiveHub
from api.webhooks import WebhookDispatcher
from storage.database.accounts import Principal

Family = type[GaugeMetricFamily] | type[CounterMetricFamily]
# (kind, figure, help) of each camera's heartbeat and each worker's figures shown.
CAMERA_FIGURES: list[tuple[Family, str, str]] = [
    (GaugeMetricFamily, "input_fps", "frames a second the camera sends"),
    (GaugeMetricFamily, "decode_fps", "frames a second decoded"),
    (GaugeMetricFamily, "bitrate_kbps", "the stream's bitrate"),
    (CounterMetricFamily, "decode_errors", "frames that failed to decode"),
    (CounterMetricFamily, "corrupt_packets", "packets the demuxer flagged corrupt"),
    (CounterMetricFamily, "reconnects", "times the stream was reopened"),
    (CounterMetricFamily, "media_lost", "GB/T 28181: RTP packets never received"),
    (CounterMetricFamily, "media_dropped", "GB/T 28181: RTP packets dropped (wrong source/SSRC)"),
]
WORKER_FIGURES: list[tuple[Family, str, str]] = [
    (GaugeMetricFamily, "spool_entries", "objects waiting in the spool"),
    (GaugeMetricFamily, "spool_bytes", "bytes waiting in the spool"),
    (GaugeMetricFamily, "cameras", "cameras the worker runs"),
    (CounterMetricFamily, "uploads", "objects uploaded and verified"),
    (CounterMetricFamily, "upload_failures", "upload attempts that failed"),
    (CounterMetricFamily, "spool_quarantined", "spool files quarantined"),
    (CounterMetricFamily, "detector_calls", "detector calls"),
]
LATENCY_QUANTILES = {"detector_p50_s": "0.5", "detector_p99_s": "0.99"}


class IndexCollector(Collector):
    """Reads the figures a scrape shows, limited to what `principal` may see."""

    def __init__(
        self, ctx: ApiContext, hub: LiveHub, dispatcher: WebhookDispatcher, principal: Principal
    ) -> None:
        self.ctx = ctx
        self.hub = hub
        self.dispatcher = dispatcher
        self.principal = principal

    def collect(self) -> Iterator[Metric]:
        yield from self._cameras()
        if self.principal.sites is None:  # deployment-wide figures: for keys of every site
            yield from self._workers()
            yield from self._webhooks()
        events = CounterMetricFamily(
            "xueliang_events", "events started, since this API process started", labels=["type"]
        )
        for event_type, count in sorted(self.hub.events_by_type.items()):
            events.add_metric([event_type], count)
        yield events
        yield GaugeMetricFamily(
            "xueliang_live_clients", "WebSocket and SSE clients", value=self.hub.clients
        )

    def _cameras(self) -> Iterator[Metric]:
        statuses = [
            s for s in self.ctx.heartbeats.statuses().values() if self.principal.sees(s.site)
        ]
        labels = ["camera", "site"]
        up = GaugeMetricFamily("xueliang_camera_online", "1 if online or degraded", labels=labels)
        for status in statuses:
            up.add_metric([status.camera_id, status.site], status.state in ("online", "degraded"))
        yield up
        for family, name, text in CAMERA_FIGURES:
            metric = family(f"xueliang_camera_{name}", text, labels=labels)
            for status in statuses:
                metric.add_metric([status.camera_id, status.site], getattr(status, name))
            yield metric

    def _workers(self) -> Iterator[Metric]:
        stats = self.ctx.worker_stats.all()
        latency = GaugeMetricFamily(
            "xueliang_detector_latency_seconds",
            "detector time per analysed frame, recent calls",
            labels=["worker", "quantile"],
        )
        for worker, figures in stats.items():
            for key, quantile in LATENCY_QUANTILES.items():
                if key in figures:
                    latency.add_metric([worker, quantile], figures[key])
        yield latency
        for family, key, text in WORKER_FIGURES:
            metric = family(f"xueliang_worker_{key}", text, labels=["worker"])
            for worker, figures in stats.items():
                metric.add_metric([worker], figures.get(key, 0.0))
            yield metric

    def _webhooks(self) -> Iterator[Metric]:
        states = self.dispatcher.hooks.delivery_counts()
        yield GaugeMetricFamily(
            "xueliang_webhook_backlog", "deliveries not made yet", value=states.get("pending", 0)
        )
        yield GaugeMetricFamily(
            "xueliang_webhook_dead", "deliveries given up (replayable)", value=states.get("dead", 0)
        )
        yield CounterMetricFamily(
            "xueliang_webhook_failed_attempts",
            "delivery attempts that failed, since this API process started",
            value=self.dispatcher.failures,
        )


def routes(ctx: ApiContext, hub: LiveHub, dispatcher: WebhookDispatcher) -> APIRouter:
    router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)
    desk = ctx.auth.allow("admin", "operator")

    @router.get("/metrics", response_class=Response)
    def metrics(who: Annotated[Principal, desk]) -> Response:
        """Prometheus text format (scrape with the key as a bearer token)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(IndexCollector(ctx, hub, dispatcher, who))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
