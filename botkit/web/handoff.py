"""The handoff API: people take a conversation over, answer it, and give it back.

    POST /conversations/{wa_id}/handoff    {"reason": "..."}                   hand it to people
    POST /conversations/{wa_id}/messages   {"text": "...", "fallback": {...}}  a person's reply
    POST /conversations/{wa_id}/resume     {"state": "..."}                    back to the bot
    GET  /conversations/{wa_id}/handoff    the mark and the messages forwarded to people

Bearer-token protected as the trigger API (BOTKIT_API_TOKEN; unset: 404). The POSTs store an
inbox event in the user's lane and answer 202 with its id (an Idempotency-Key header makes a
retried request one event); 404 names a conversation the store does not have, 400 what is
wrong with the body (a resume to an undeclared state names the declared ones).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botkit import codec
from botkit.config import Settings
from botkit.exceptions import HandoffError, StoreError
from botkit.runtime.ingest import Ingest
from botkit.types import JSON, JSONObject
from botkit.web.auth import bearer_matches
from botkit.web.body import TooLarge, read_limited
from botkit.web.trigger import json_response
from botkit.wire.handoff import FORWARD_TYPE, MARK_KEY, HandoffMark
from botkit.wire.ids import PHONE_NUMBER_ID_DIGITS, is_ascii_digits

MAX_BODY_BYTES = 64 * 1024

Action = Callable[[Request, JSONObject], Awaitable[str]]


def _error(status: int, error: str, detail: str) -> Response:
    return json_response(status, {"error": error, "detail": detail})


class HandoffAPI:
    """The handoff routes over an Ingest, behind the Bearer token."""

    def __init__(self, ingest: Ingest, settings: Settings) -> None:
        self.ingest = ingest
        token = settings.api_token
        self.token = token.encode() if token else None

    def routes(self) -> list[Route]:
        """The four routes, under /conversations/{wa_id}."""
        return [
            Route("/conversations/{wa_id}/handoff", self._post(self._handoff), methods=["POST"]),
            Route("/conversations/{wa_id}/messages", self._post(self._reply), methods=["POST"]),
            Route("/conversations/{wa_id}/resume", self._post(self._resume), methods=["POST"]),
            Route("/conversations/{wa_id}/handoff", self._show, methods=["GET"]),
        ]

    def _refused(self, request: Request) -> Response | None:
        if self.token is None:
            return _error(404, "not_found", "the handoff API is off: set BOTKIT_API_TOKEN")
        if not bearer_matches(request.headers.get("authorization"), self.token):
            return _error(401, "unauthorized", "send Authorization: Bearer <BOTKIT_API_TOKEN>")
        return None

    def _post(self, action: Action) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refused = self._refused(request)
            if refused is not None:
                return refused
            try:
                body = await read_limited(request.scope, request.receive, MAX_BODY_BYTES)
            except TooLarge:
                return _error(413, "payload_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
            try:
                event_id = await action(request, _object(body))
            except HandoffError as exc:
                kind = "not_found" if exc.status == 404 else "invalid_request"
                return _error(exc.status, kind, str(exc))
            except StoreError:
                return _error(503, "store_unavailable", "not stored; retry later")
            return json_response(202, {"accepted": True, "event_id": event_id})

        return endpoint

    async def _handoff(self, request: Request, body: JSONObject) -> str:
        reason = body.get("reason", "")
        timeout, resume_to = body.get("timeout"), body.get("resume_to")
        if not isinstance(reason, str):
            raise HandoffError('"reason" must be a string')
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            raise HandoffError('"timeout" must be a number of seconds')
        if resume_to is not None and not isinstance(resume_to, str):
            raise HandoffError('"resume_to" must name a state')
        return await self.ingest.handoff(
            request.path_params["wa_id"], reason=reason, timeout=timeout, resume_to=resume_to,
            **_options(request, body),
        )  # fmt: skip

    async def _reply(self, request: Request, body: JSONObject) -> str:
        text, fallback = body.get("text"), body.get("fallback")
        if not isinstance(text, str) or not text:
            raise HandoffError('"text" must be the message to send (a non-empty string)')
        if fallback is not None and not isinstance(fallback, dict):
            raise HandoffError(
                '"fallback" must be a template: {"name": ..., "language": ..., "body": [...]}'
            )
        return await self.ingest.reply(
            request.path_params["wa_id"], text, fallback=fallback, **_options(request, body)
        )

    async def _resume(self, request: Request, body: JSONObject) -> str:
        state = body.get("state")
        if not isinstance(state, str) or not state:
            declared = ", ".join(self.ingest.spec.states)
            raise HandoffError(f'"state" must name the state to resume in (declared: {declared})')
        return await self.ingest.resume(
            request.path_params["wa_id"], state, **_options(request, body)
        )

    async def _show(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        wa_id = request.path_params["wa_id"]
        number = request.query_params.get("phone_number_id") or self.ingest.phone_number_id
        try:
            _check_number(number)
            user, number = await self.ingest.existing(wa_id, number)
            return json_response(200, await self._view(number, user))
        except HandoffError as exc:
            kind = "not_found" if exc.status == 404 else "invalid_request"
            return _error(exc.status, kind, str(exc))
        except StoreError:
            return _error(503, "store_unavailable", "the store cannot be read; retry later")

    async def _view(self, number: str, user: str) -> JSONObject:
        store = self.ingest.store
        found = await store.sessions.get(number, user)
        data = found.session.data if found.session is not None else {}
        mark = HandoffMark.from_json(data.get(MARK_KEY))
        rows = await store.inspect.outbox(user)
        messages: list[JSON] = [
            {"status": row.status, "attempts": row.attempts, "error": row.error,
             "forwarded": row.payload}
            for row in rows
            if row.type == FORWARD_TYPE and row.phone_number_id == number
        ]  # fmt: skip
        return {
            "wa_id": user,
            "phone_number_id": number,
            "handed_off": mark is not None,
            "handoff": None if mark is None else mark.to_json(),
            "messages": messages,
        }


def _object(body: bytes) -> JSONObject:
    try:
        payload = codec.loads(body or b"{}", max_depth=codec.MAX_DEPTH)
    except codec.DecodeError as exc:
        raise HandoffError(f"the body is not JSON: {exc}") from exc
    except codec.NestingError as exc:
        raise HandoffError(str(exc)) from exc
    if not isinstance(payload, dict):
        raise HandoffError("the body must be a JSON object")
    return payload


def _options(request: Request, body: JSONObject) -> dict[str, str | None]:
    number = body.get("phone_number_id")
    _check_number(number)
    return {"phone_number_id": number if isinstance(number, str) else None,
            "key": request.headers.get("idempotency-key")}  # fmt: skip


def _check_number(number: object) -> None:
    if number is not None and not (
        isinstance(number, str) and is_ascii_digits(number, *PHONE_NUMBER_ID_DIGITS)
    ):
        low, high = PHONE_NUMBER_ID_DIGITS
        raise HandoffError(
            f'"phone_number_id" must be the numeric Meta id, a string of {low} to {high} '
            "ASCII digits"
        )


def handoff_routes(ingest: Ingest, settings: Settings) -> list[Route]:
    """The routes of the handoff API."""
    return HandoffAPI(ingest, settings).routes()


__all__ = ["HandoffAPI", "handoff_routes"]
