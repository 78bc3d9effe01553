"""GET /metrics: the process's figures in Prometheus' text format, with the store's pending work
read for each scrape (off with BOTKIT_METRICS=off; behind a Bearer token with
BOTKIT_METRICS_TOKEN)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botkit.exceptions import StoreError
from botkit.metrics import CONTENT_TYPE, Gauge
from botkit.runtime.runtime import Runtime
from botkit.store.base import Pending
from botkit.web.auth import bearer_matches
from botkit.web.trigger import json_response


class MetricsEndpoint:
    """Serves a runtime's metrics: 404 when they are off, 401 without the configured token."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        token = runtime.settings.metrics_token
        self.token = token.encode() if token else None

    async def handle(self, request: Request) -> Response:
        """The scrape."""
        if not self.runtime.metrics.enabled:
            return _error(404, "not_found", "metrics are off (BOTKIT_METRICS=off)")
        if self.token is not None and not self._authorized(request.headers.get("authorization")):
            return _error(401, "unauthorized", "send Authorization: Bearer <BOTKIT_METRICS_TOKEN>")
        gauges = await self.gauges()
        return Response(self.runtime.metrics.render(gauges), media_type=CONTENT_TYPE)

    async def gauges(self) -> list[Gauge]:
        """What is read for each scrape: the store's pending work, the worker child's life."""
        try:
            pending: Pending | None = await self.runtime.store.inspect.pending()
        except StoreError:
            pending = None
        gauges = [
            _one("botkit_store_up", "1 when the store answered this scrape", pending is not None)
        ]
        worker = self.runtime.worker_process
        if worker is not None:
            doc = "1 while the worker child of `botkit run` runs"
            gauges.append(_one("botkit_worker_up", doc, worker.alive))
        if pending is not None:
            gauges += _pending(pending)
        return gauges

    def _authorized(self, header: str | None) -> bool:
        return bearer_matches(header, self.token or b"")


def _pending(pending: Pending) -> list[Gauge]:
    return [
        _one("botkit_inbox_pending_events", "Events stored and not yet processed", pending.events),
        _one(
            "botkit_inbox_oldest_pending_age_seconds",
            "How long the oldest pending event has waited (0: none waits)",
            pending.oldest_event or 0.0,
        ),
        _one("botkit_outbox_pending_sends", "Sends waiting to go (due or retrying)", pending.sends),
        _one(
            "botkit_outbox_oldest_pending_age_seconds",
            "How long the oldest pending send has waited since its handler queued it (0: none)",
            pending.oldest_send or 0.0,
        ),
        _one(
            "botkit_outbox_held_sends",
            "Sends held until their user writes again (closed window, fallback=Hold)",
            pending.held,
        ),
    ]


def _one(name: str, doc: str, value: float) -> Gauge:
    return Gauge(name, doc, {(): float(value)})


def _error(status: int, error: str, detail: str) -> Response:
    return json_response(status, {"error": error, "detail": detail})


def metrics_routes(runtime: Runtime) -> list[Route]:
    """The route of GET /metrics."""
    return [Route("/metrics", MetricsEndpoint(runtime).handle, methods=["GET"])]


__all__ = ["MetricsEndpoint", "metrics_routes"]
