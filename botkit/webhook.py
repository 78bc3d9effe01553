"""The Starlette app: verify, store, acknowledge (POST /webhook), and GET /healthz."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from botkit import codec
from botkit.api import trigger_routes
from botkit.bot import Runtime
from botkit.events import parse_body
from botkit.exceptions import PayloadError, StoreError
from botkit.signing import SIGNATURE_HEADER, verify

log = logging.getLogger(__name__)


def _json(status: int, body: object) -> Response:
    return Response(codec.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, error: str, detail: str) -> Response:
    return _json(status, {"error": error, "detail": detail})


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds `limit` bytes (never buffers more than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class WebhookEndpoint:
    """POST /webhook: 413 if too big, 401 if unsigned, 400 if unreadable, else stored then 200."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.secrets = runtime.settings.webhook_secrets
        self.limit = runtime.settings.max_body_bytes

    async def handle(self, request: Request) -> Response:
        body = await _read_limited(request, self.limit)
        if body is None:
            return _error(413, "payload_too_large", f"the body exceeds {self.limit} bytes")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            return _error(401, "missing_signature", f"the {SIGNATURE_HEADER} header is missing")
        if not verify(self.secrets, body, signature):
            return _error(401, "invalid_signature", f"{SIGNATURE_HEADER} does not match the body")
        try:
            events = parse_body(body)
        except PayloadError as exc:
            return _error(400, "invalid_payload", str(exc))
        try:
            flags = await self.runtime.accept(events)
        except StoreError as exc:
            log.error("could not store a webhook body, answering 503 so it is retried: %s", exc)
            return _error(503, "store_unavailable", "the event could not be stored; retry later")
        new = sum(flags)
        return _json(200, {"accepted": new, "duplicates": len(flags) - new})


def create_app(runtime: Runtime, *, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The webhook service of a runtime; its lifespan opens the store and runs the workers."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runtime.running():
            yield

    async def healthz(request: Request) -> Response:
        inbox, outbox = await runtime.store.backlog()
        provider = "fake" if runtime.settings.uses_fake_provider else "gosendapi"
        worker = runtime.worker_process
        if worker is not None and not worker.alive:
            pending = {"events": inbox, "sends": outbox}
            return _json(503, {"status": "worker process down", "pending": pending})
        return _json(
            200,
            {"status": "ok", "provider": provider, "pending": {"events": inbox, "sends": outbox}},
        )

    routes: list[BaseRoute] = [
        Route("/webhook", WebhookEndpoint(runtime).handle, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        *trigger_routes(runtime),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


__all__ = ["create_app"]
