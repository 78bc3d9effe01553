"""The admin API: failed events and sends, listed and retried, and one user's conversation,
shown, reset or forgotten (botkit.runtime.repair says what each answers).

Bearer-token protected as the trigger API (BOTKIT_API_TOKEN): with no token configured every
route answers 404, a missing or wrong token 401. What names nothing the store has answers 404,
what the store refuses as things stand 409 (a forget while events of the user are pending,
naming how many; a retry of what did not fail; a reset while a turn of theirs keeps running),
each with `{"error", "detail"}`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botkit.config import Settings
from botkit.exceptions import LaneBusyError, RepairError, StoreError
from botkit.runtime.repair import MAX_LIMIT, Repairs
from botkit.store.base import DONE, FAILED, IGNORED, PENDING
from botkit.store.repair import RETRIED
from botkit.types import JSON
from botkit.web.trigger import json_response

EVENT_STATUSES = (FAILED, PENDING, DONE, IGNORED, RETRIED)
SEND_STATUSES = (FAILED, "pending", "held", "sent")

Handler = Callable[[Request], Awaitable[JSON]]


def _error(status: int, error: str, detail: str) -> Response:
    return json_response(status, {"error": error, "detail": detail})


class BadRequest(Exception):
    """A query parameter that cannot be used; the message says which and why."""


class AdminAPI:
    """The admin routes over a Repairs, behind the Bearer token."""

    def __init__(self, repairs: Repairs, settings: Settings) -> None:
        self.repairs = repairs
        token = settings.api_token
        self.token = token.encode() if token else None

    def routes(self) -> list[Route]:
        """The routes, under /admin."""
        guarded = self._guarded
        return [
            Route("/admin/events", guarded(self._events), methods=["GET"]),
            Route("/admin/events/retry-failed", guarded(self._retry_events), methods=["POST"]),
            Route("/admin/events/{event_id:path}", guarded(self._event), methods=["GET"]),
            Route(
                "/admin/events/{event_id:path}/retry", guarded(self._retry_event), methods=["POST"]
            ),
            Route("/admin/sends", guarded(self._sends), methods=["GET"]),
            Route("/admin/sends/retry-failed", guarded(self._retry_sends), methods=["POST"]),
            Route("/admin/sends/{seq:int}", guarded(self._send), methods=["GET"]),
            Route("/admin/sends/{seq:int}/retry", guarded(self._retry_send), methods=["POST"]),
            Route("/admin/conversations/{wa_id}", guarded(self._show), methods=["GET"]),
            Route("/admin/conversations/{wa_id}", guarded(self._forget), methods=["DELETE"]),
            Route("/admin/conversations/{wa_id}/reset", guarded(self._reset), methods=["POST"]),
        ]

    def _guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind the token, its errors as JSON answers."""

        async def endpoint(request: Request) -> Response:
            if self.token is None:
                return _error(404, "not_found", "the admin API is off: set BOTKIT_API_TOKEN")
            if not self._authorized(request.headers.get("authorization", "")):
                return _error(401, "unauthorized", "send Authorization: Bearer <BOTKIT_API_TOKEN>")
            try:
                return json_response(200, await handler(request))
            except BadRequest as exc:
                return _error(400, "bad_request", str(exc))
            except LaneBusyError as exc:
                return _error(409, "busy", str(exc))
            except RepairError as exc:
                return _error(
                    exc.status, "not_found" if exc.status == 404 else "conflict", str(exc)
                )
            except StoreError as exc:
                return _error(503, "store_unavailable", str(exc))

        return endpoint

    def _authorized(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        token = self.token or b""
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)

    async def _events(self, request: Request) -> JSON:
        status = _choice(request, "status", EVENT_STATUSES)
        return {"events": await self.repairs.events(status, _limit(request))}

    async def _event(self, request: Request) -> JSON:
        return await self.repairs.event(request.path_params["event_id"])

    async def _retry_event(self, request: Request) -> JSON:
        return await self.repairs.retry_event(request.path_params["event_id"])

    async def _retry_events(self, request: Request) -> JSON:
        return await self.repairs.retry_failed_events()

    async def _sends(self, request: Request) -> JSON:
        status = _choice(request, "status", SEND_STATUSES)
        return {"sends": await self.repairs.sends(status, _limit(request))}

    async def _send(self, request: Request) -> JSON:
        return await self.repairs.send(request.path_params["seq"])

    async def _retry_send(self, request: Request) -> JSON:
        return await self.repairs.retry_send(request.path_params["seq"])

    async def _retry_sends(self, request: Request) -> JSON:
        return await self.repairs.retry_failed_sends()

    async def _show(self, request: Request) -> JSON:
        recent = _limit(request, name="recent", default=20)
        return await self.repairs.conversation(request.path_params["wa_id"], recent)

    async def _reset(self, request: Request) -> JSON:
        return await self.repairs.reset(request.path_params["wa_id"])

    async def _forget(self, request: Request) -> JSON:
        return await self.repairs.forget(request.path_params["wa_id"])


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str:
    value = request.query_params.get(name, allowed[0])
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}, not {value[:40]!r}")
    return value


def _limit(request: Request, *, name: str = "limit", default: int = 50) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"{name} must be a whole number from 1 to {MAX_LIMIT}, not {raw[:40]!r}")
    return int(raw)


def admin_routes(repairs: Repairs, settings: Settings) -> list[Route]:
    """The routes of the admin API."""
    return AdminAPI(repairs, settings).routes()
