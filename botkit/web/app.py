"""The service's Starlette app: POST /webhook on the hot path, GET /healthz, the trigger API, and
GET / saying what this service is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from botkit.exceptions import StoreError
from botkit.runtime.runtime import Runtime
from botkit.types import JSONObject
from botkit.web.admin import admin_routes
from botkit.web.handoff import handoff_routes
from botkit.web.health import health_routes
from botkit.web.metrics import metrics_routes
from botkit.web.trigger import json_response, trigger_routes
from botkit.web.webhook import WebhookEndpoint


class WebhookApp(Starlette):
    """The service's Starlette app, answering POST /webhook without going through the router."""

    def __init__(self, webhook: WebhookEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook = webhook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/webhook"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(runtime: Runtime, *, extra_routes: list[BaseRoute] | None = None) -> WebhookApp:
    """The webhook service of a runtime (its ingest, over HTTP); its lifespan opens the store
    and runs the workers the runtime runs (none for a web replica: `botkit run --no-workers`)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with runtime.running():
                yield
        finally:
            await asyncio.to_thread(webhook.decoder.close)

    async def healthz(request: Request) -> Response:
        try:
            backlog = await runtime.store.inspect.backlog()
        except StoreError as exc:  # the database is down: webhooks get 503 too, and are retried
            return json_response(503, {"status": "store unavailable", "detail": str(exc)})
        inbox, outbox = backlog.events, backlog.sends
        provider = "fake" if runtime.settings.uses_fake_provider else "gosendapi"
        worker = runtime.worker_process
        if worker is not None and not worker.alive:
            pending: JSONObject = {"events": inbox, "sends": outbox}
            return json_response(503, {"status": "worker process down", "pending": pending})
        return json_response(
            200,
            {"status": "ok", "provider": provider, "pending": {"events": inbox, "sends": outbox}},
        )

    async def index(request: Request) -> Response:
        return json_response(200, _about(runtime, extra_routes or []))

    webhook = WebhookEndpoint(runtime.ingest, runtime.settings, runtime.metrics, runtime.tracing)
    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/webhook", webhook, methods=["POST"]),  # what a mounted app (root_path) uses
        Route("/healthz", healthz, methods=["GET"]),
        *health_routes(runtime),
        *metrics_routes(runtime),
        *trigger_routes(runtime.ingest, runtime.settings),
        *handoff_routes(runtime.ingest, runtime.settings),
        *admin_routes(runtime.repairs(), runtime.settings),
        *(extra_routes or []),
    ]
    return WebhookApp(webhook, routes=routes, lifespan=lifespan)


def _about(runtime: Runtime, extra_routes: list[BaseRoute]) -> JSONObject:
    """What a person who opens the service's root in a browser needs to know."""
    endpoints: JSONObject = {
        "POST /webhook": "GoSendAPI's events, signed with X-GoSendAPI-Signature",
        "GET /healthz": "status, provider and pending work",
        "GET /readyz": "ready for traffic: the store answers, the worker runs, events flow",
    }
    if runtime.settings.metrics:
        endpoints["GET /metrics"] = "Prometheus metrics" + (
            " (Authorization: Bearer BOTKIT_METRICS_TOKEN)"
            if runtime.settings.metrics_token
            else ""
        )
    if runtime.settings.api_token is not None:
        endpoints["POST /conversations/{wa_id}/trigger"] = (
            "fires a declared trigger (Authorization: Bearer BOTKIT_API_TOKEN)"
        )
        endpoints["/conversations/{wa_id}/handoff, messages, resume"] = (
            "people take a conversation over and give it back: docs/guide/handoff.md"
        )
        endpoints["/admin/..."] = (
            "failed events and sends, one user's conversation: docs/repair.md (the same token)"
        )
    for route in extra_routes:
        if isinstance(route, Mount) and route.name:
            endpoints[f"{route.path}/..."] = route.name
    return {
        "service": f"botkit: the WhatsApp bot {runtime.bot.name!r} on GoSendAPI",
        "endpoints": endpoints,
        "docs": "README.md of the botkit project; GoSendAPI: https://docs.gosendapi.com",
    }


__all__ = ["create_app"]
