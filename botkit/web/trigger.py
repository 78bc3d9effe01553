"""The trigger API: POST /conversations/{wa_id}/trigger starts a conversation from an application."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botkit import codec
from botkit.config import Settings
from botkit.exceptions import StoreError, TriggerError
from botkit.runtime.ingest import Ingest
from botkit.types import JSON
from botkit.web.auth import bearer_matches
from botkit.web.body import TooLarge, read_limited
from botkit.wire.ids import PHONE_NUMBER_ID_DIGITS, is_ascii_digits

MAX_TRIGGER_BYTES = 64 * 1024


def json_response(status: int, body: JSON) -> Response:
    """A JSON answer (the app's and the trigger API's)."""
    return Response(codec.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, error: str, detail: str) -> Response:
    return json_response(status, {"error": error, "detail": detail})


class TriggerEndpoint:
    """Bearer-token protected; 202 once the trigger is stored; 404 when no token is configured."""

    def __init__(self, ingest: Ingest, settings: Settings) -> None:
        self.ingest = ingest
        token = settings.api_token
        self.token = token.encode() if token else None

    async def handle(self, request: Request) -> Response:
        """Checks the token and the body, then stores the trigger in the inbox."""
        if self.token is None:
            return _error(404, "not_found", "the trigger API is off: set BOTKIT_API_TOKEN")
        if not self._authorized(request.headers.get("authorization", "")):
            return _error(401, "unauthorized", "send Authorization: Bearer <BOTKIT_API_TOKEN>")
        try:  # streamed under the limit, as the webhook's: never more than it in memory
            body = await read_limited(request.scope, request.receive, MAX_TRIGGER_BYTES)
        except TooLarge:
            return _error(413, "payload_too_large", f"the body exceeds {MAX_TRIGGER_BYTES} bytes")
        try:
            name, data, number = _read(body)
            event_id = await self.ingest.trigger(
                request.path_params["wa_id"],
                name,
                data,
                phone_number_id=number,
                key=request.headers.get("idempotency-key"),
            )
        except TriggerError as exc:
            return _error(
                exc.status, "not_found" if exc.status == 404 else "invalid_trigger", str(exc)
            )
        except StoreError:
            return _error(503, "store_unavailable", "the trigger could not be stored; retry later")
        return json_response(202, {"accepted": True, "event_id": event_id})

    def _authorized(self, header: str) -> bool:
        return bearer_matches(header, self.token or b"")


def _read(body: bytes) -> tuple[str, dict[str, JSON], str | None]:
    """The trigger name, its data and the optional phone_number_id; TriggerError names what is wrong."""
    try:
        payload = codec.loads(body, max_depth=codec.MAX_DEPTH)
    except codec.DecodeError as exc:
        raise TriggerError(f"the body is not JSON: {exc}") from exc
    except codec.NestingError as exc:
        raise TriggerError(str(exc)) from exc
    if not isinstance(payload, dict):
        raise TriggerError('the body must be a JSON object: {"trigger": NAME, "data": {...}}')
    name, data, number = (
        payload.get("trigger"),
        payload.get("data", {}),
        payload.get("phone_number_id"),
    )
    if not isinstance(name, str) or not name:
        raise TriggerError('"trigger" must be the name of a declared trigger (a string)')
    if not isinstance(data, dict):
        raise TriggerError('"data" must be a JSON object')
    if number is not None and not (
        isinstance(number, str) and is_ascii_digits(number, *PHONE_NUMBER_ID_DIGITS)
    ):
        low, high = PHONE_NUMBER_ID_DIGITS
        raise TriggerError(
            f'"phone_number_id" must be the numeric Meta id, as a string of {low} to {high} '
            "ASCII digits"
        )
    return name, data, number


def trigger_routes(ingest: Ingest, settings: Settings) -> list[Route]:
    """The routes of the trigger API."""
    endpoint = TriggerEndpoint(ingest, settings)
    return [Route("/conversations/{wa_id}/trigger", endpoint.handle, methods=["POST"])]
