"""The other side of the wire: a fake GoSendAPI for tests and local runs.

`FakeGoSendAPI.app` answers `POST /v1/messages`, `POST /v1/media` and
`GET /v1/messages/{id}` the way ``shared/gosendapi.md`` describes the provider,
and the fake delivers signed webhooks (`receive`, `send_status`, `redeliver`).
Control endpoints under ``/_fake/`` drive it over real HTTP. (The benchmarks' sink, which
accepts everything cheaply, is bench/sink.py.)

This module shares nothing with botkit's sender, message builders or signing
code, on purpose: a bug in shared code would pass on both sides of the wire.
It imports only the stdlib, starlette, httpx and `botkit.types`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Self

import httpx
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botkit.fake.rules import (
    DEFAULT_PHONE_NUMBER_ID,
    DIGITS,
    DISPLAY_PHONE_NUMBER,
    E164,
    IDEMPOTENCY_TTL_SECONDS,
    MEDIA_TTL_SECONDS,
    SIGNATURE_HEADER,
    STATUSES,
    WEBHOOK_TIMEOUT_SECONDS,
    WINDOW_SECONDS,
    Answer,
    Envelope,
    Fault,
    KeyRecord,
    Refusal,
    RollingLimit,
    check_api_key,
    error_answer,
    fingerprint,
    idempotency_key_of,
    invalid,
    media_type,
    missing,
    new_fault,
    parse_json_object,
    refuse,
    validate_message,
)
from botkit.types import JSON, Clock, JSONObject, SystemClock

logger = logging.getLogger(__name__)

# --- Values the fake records. ---


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message the fake accepted: what a test asserts the bot sent."""

    message_id: str
    phone_number_id: str
    to: str
    type: str
    body: JSONObject
    idempotency_key: str | None
    at: float


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request to `POST /v1/messages` or `/v1/media`, accepted or not, and the answer."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    response: JSONObject
    at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook POST made by the fake, and what the bot answered."""

    envelope: JSONObject
    body: bytes
    status_code: int
    response: JSON


# --- Webhook envelopes. ---


def _iso(timestamp: float) -> str:
    """A Unix time as the envelope's created_at: ISO 8601, UTC, whole seconds."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(event_type: str, phone_number_id: str, data: JSONObject, now: float) -> JSONObject:
    """The GoSendAPI event envelope around `data`."""
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created_at": _iso(now),
        "phone_number_id": phone_number_id,
        "data": data,
    }


def _inbound_message(
    wa_id: str, message: JSONObject, timestamp: float, context_id: str | None
) -> JSONObject:
    """Meta's `messages[]` item for something the user sent."""
    if not isinstance(message.get("type"), str):
        raise ValueError(f"message needs a 'type', e.g. {{'type': 'text', ...}}; got {message!r}")
    item: JSONObject = {
        "from": wa_id,
        "id": f"wamid.in.{uuid.uuid4().hex}",
        "timestamp": str(int(timestamp)),
        **message,
    }
    if context_id is not None:
        item["context"] = {"from": DISPLAY_PHONE_NUMBER, "id": context_id}
    return item


def _contact(wa_id: str, name: str | None) -> JSONObject:
    """The envelope's `data.contact`."""
    if name is None:
        return {"wa_id": wa_id}
    return {"wa_id": wa_id, "profile": {"name": name}}


def _encode(envelope: JSONObject) -> bytes:
    """Compact UTF-8 JSON, as the provider sends it."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _signature(secret: str, body: bytes) -> str:
    """The signature header value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _response_json(response: httpx.Response) -> JSON:
    """The webhook's answer: JSON when it parses, else its text, None when empty."""
    if not response.content:
        return None
    try:
        parsed: JSON = response.json()
    except ValueError:
        return response.text
    return parsed


def _message_json(sent: SentMessage) -> JSONObject:
    """A sent message as JSON, for the control endpoints."""
    record: JSONObject = asdict(sent)
    return record


# --- The fake provider. ---


class FakeGoSendAPI:
    """A fake GoSendAPI: the HTTP API in `app`, webhooks out through `receive` and friends."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        enforce_window: bool = True,
        rate_per_number: int | None = None,
        media_ttl: float = MEDIA_TTL_SECONDS,
    ) -> None:
        """With `rate_per_number`, more messages than that in a rolling second answer 429.

        Uploaded media is deleted `media_ttl` seconds after its upload: a message that names
        a deleted media id is refused with 404 MEDIA_NOT_FOUND.
        """
        self.messages: list[SentMessage] = []
        self.webhook_transport = (
            webhook_transport  # settable: the bot's app may be built after the fake
        )
        self.requests: list[ReceivedRequest] = []
        self._clock = clock or SystemClock()
        self._webhook_url = webhook_url
        self._webhook_secret = webhook_secret
        self._webhook_client: httpx.AsyncClient | None = None
        self._client_transport: httpx.AsyncBaseTransport | None = None
        self._old_clients: list[httpx.AsyncClient] = []
        self._enforce_window = enforce_window
        self._faults: deque[Fault] = deque()
        self._windows: dict[tuple[str, str], float] = {}
        self._keys: dict[tuple[str, str], KeyRecord] = {}
        self._statuses: dict[str, JSONObject] = {}
        self._media: dict[str, JSONObject] = {}
        self._media_content: dict[
            str, bytes
        ] = {}  # what media() answers (the dev server's pictures)
        self.media_ttl = media_ttl  # settable: tests make the provider forget uploads sooner
        self._replays = 0
        self._deliveries = 0
        self._limit = (
            None if rate_per_number is None else RollingLimit(rate_per_number, self._clock)
        )
        self.rate_limited = 0
        self.app = self._build_app()

    # -- test-facing API --

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        """Makes the next `times` POST /v1/messages fail with `status`; calls queue in order."""
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        fault = new_fault(status, retry_after, code)
        self._faults.extend([fault] * times)

    def open_window(self, phone_number_id: str, wa_id: str, timestamp: float) -> None:
        """Records an inbound message's time; the latest wins, the window never moves back."""
        key = (phone_number_id, wa_id)
        self._windows[key] = max(timestamp, self._windows.get(key, timestamp))

    def window_open(self, phone_number_id: str, wa_id: str) -> bool:
        """Whether a free-form message from `phone_number_id` to `wa_id` is allowed now."""
        last = self._windows.get((phone_number_id, wa_id))
        return last is not None and self._clock.now() - last < WINDOW_SECONDS

    def media(self, media_id: str) -> tuple[bytes, str] | None:
        """An uploaded file's bytes and MIME type, while the provider keeps it; else None."""
        upload, content = self._media.get(media_id), self._media_content.get(media_id)
        if upload is None or content is None:
            return None
        uploaded_at = upload.get("uploaded_at")
        if isinstance(uploaded_at, float) and self._clock.now() - uploaded_at >= self.media_ttl:
            return None
        return content, str(upload.get("type"))

    def messages_to(self, wa_id: str) -> list[SentMessage]:
        """The accepted messages to one user, in order."""
        return [sent for sent in self.messages if sent.to == wa_id]

    # -- webhooks out --

    async def receive(
        self,
        *,
        wa_id: str,
        message: JSONObject,
        name: str | None = None,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        context_id: str | None = None,
        timestamp: float | None = None,
    ) -> Delivery:
        """Delivers a user's message (Meta's type part, e.g. a text) to the webhook."""
        sent_at = self._clock.now() if timestamp is None else timestamp
        data: JSONObject = {
            "contact": _contact(wa_id, name),
            "message": _inbound_message(wa_id, message, sent_at, context_id),
        }
        envelope = _envelope("whatsapp.message.received", phone_number_id, data, self._clock.now())
        self.open_window(phone_number_id, wa_id, sent_at)
        return await self._deliver(envelope, _encode(envelope))

    async def send_status(
        self, message_id: str, status: str, *, errors: Sequence[JSONObject] = ()
    ) -> Delivery:
        """Delivers a status event (sent, delivered, read, failed) for a sent message."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}, not {status!r}")
        sent = self._sent(message_id)
        item = self._status_item(sent, status, errors)
        self._statuses[message_id] = item
        envelope = _envelope(
            f"whatsapp.message.{status}", sent.phone_number_id, {"status": item}, self._clock.now()
        )
        return await self._deliver(envelope, _encode(envelope))

    async def redeliver(self, delivery: Delivery) -> Delivery:
        """Delivers the same raw bytes again, as the provider's retries do."""
        return await self._deliver(delivery.envelope, delivery.body)

    async def aclose(self) -> None:
        """Closes the webhook client."""
        while self._old_clients:
            await self._old_clients.pop().aclose()
        if self._webhook_client is not None:
            await self._webhook_client.aclose()
            self._webhook_client = None

    async def __aenter__(self) -> Self:
        """Returns the fake; `aclose` runs on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Closes the webhook client."""
        await self.aclose()

    def _sent(self, message_id: str) -> SentMessage:
        """The accepted message with this id."""
        for sent in self.messages:
            if sent.message_id == message_id:
                return sent
        raise KeyError(f"the fake sent no message with id {message_id!r}")

    def _status_item(
        self, sent: SentMessage, status: str, errors: Sequence[JSONObject]
    ) -> JSONObject:
        """Meta's `statuses[]` item."""
        item: JSONObject = {
            "id": sent.message_id,
            "status": status,
            "timestamp": str(int(self._clock.now())),
            "recipient_id": sent.to,
        }
        if errors:
            item["errors"] = list(errors)
        return item

    async def _deliver(self, envelope: JSONObject, body: bytes) -> Delivery:
        """POSTs `body`, signed when there is a secret, to the webhook URL."""
        if self._webhook_url is None:
            raise RuntimeError("FakeGoSendAPI has no webhook_url: pass webhook_url= to deliver")
        headers = {"Content-Type": "application/json"}
        if self._webhook_secret is not None:
            headers[SIGNATURE_HEADER] = _signature(self._webhook_secret, body)
        response = await self._client().post(self._webhook_url, content=body, headers=headers)
        self._deliveries += 1
        logger.debug("webhook %s answered %d", envelope.get("type"), response.status_code)
        return Delivery(envelope, body, response.status_code, _response_json(response))

    def _client(self) -> httpx.AsyncClient:
        """The webhook client, made on first use and again when webhook_transport changes."""
        if self._webhook_client is None or self._client_transport is not self.webhook_transport:
            if self._webhook_client is not None:
                self._old_clients.append(self._webhook_client)
            self._client_transport = self.webhook_transport
            self._webhook_client = httpx.AsyncClient(
                transport=self.webhook_transport, timeout=WEBHOOK_TIMEOUT_SECONDS
            )
        return self._webhook_client

    # -- the HTTP API --

    def _build_app(self) -> Starlette:
        """The Starlette app: the provider's /v1 API and the /_fake control endpoints."""
        routes = [
            Route("/v1/messages", self._post_message, methods=["POST"]),
            Route("/v1/messages/{message_id}", self._get_message, methods=["GET"]),
            Route("/v1/media", self._post_media, methods=["POST"]),
            Route("/_fake/messages", self._fake_messages, methods=["GET"]),
            Route("/_fake/fail", self._fake_fail, methods=["POST"]),
            Route("/_fake/inbound", self._fake_inbound, methods=["POST"]),
            Route("/_fake/stats", self._fake_stats, methods=["GET"]),
        ]
        handlers = {HTTPException: _http_exception}
        return Starlette(routes=routes, exception_handlers=handlers, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Closes the webhook client when the server stops."""
        yield
        await self.aclose()

    async def _post_message(self, request: Request) -> Response:
        """POST /v1/messages."""
        body = await request.body()
        try:
            answer = self._answer_message(request, body)
        except Refusal as refusal:
            answer = refusal.answer
        self._record(request, body, answer)
        return answer.response()

    def _answer_message(self, request: Request, body: bytes) -> Answer:
        """Auth, scripted faults, parsing, then the idempotent send."""
        api_key = check_api_key(request)
        if self._faults:
            return self._faults.popleft().answer()
        message = parse_json_object(request, body)
        key = idempotency_key_of(request)
        if key is None:
            return self._send(message, None)
        return self._send_once(message, (api_key, key))

    def _send_once(self, message: JSONObject, scope: tuple[str, str]) -> Answer:
        """Replays the first answer for a known key and body; 409 for another body."""
        self._forget_old_keys()
        digest = fingerprint(message)
        known = self._keys.get(scope)
        if known is not None and known.fingerprint != digest:
            text = "this Idempotency-Key was used with a different body"
            raise refuse(409, "IDEMPOTENCY_KEY_REUSED", text, field="Idempotency-Key")
        if known is not None:
            self._replays += 1
            return known.answer
        # Refusals are kept too: the provider answers 409 when a refused key comes back with
        # another body. Scripted faults (5xx, 429) never get here, so a retry can succeed.
        answer = self._send(message, scope[1])
        self._keys[scope] = KeyRecord(digest, answer, self._clock.now())
        return answer

    def _forget_old_keys(self) -> None:
        """Drops keys older than 24 h of clock time (they are kept in time order)."""
        horizon = self._clock.now() - IDEMPOTENCY_TTL_SECONDS
        for scope, record in list(self._keys.items()):
            if record.at > horizon:
                break
            del self._keys[scope]

    def _send(self, message: JSONObject, key: str | None) -> Answer:
        """Validates, checks the window and accepts; a refusal becomes its answer."""
        try:
            envelope = validate_message(message)
            self._check_window(envelope)
            self._check_media_id(message, envelope)
        except Refusal as refusal:
            return refusal.answer
        self._check_rate(envelope.phone_number_id)
        return self._accept(message, envelope, key)

    def _check_rate(self, phone_number_id: str) -> None:
        """Raises the 429 past the rate; raised, not returned, so the key is not kept with it."""
        refusal = None if self._limit is None else self._limit.check(phone_number_id)
        if refusal is not None:
            self.rate_limited += 1
            raise Refusal(refusal)

    def _check_window(self, envelope: Envelope) -> None:
        """403 for a free-form message outside the 24-hour window; templates always pass."""
        if envelope.type == "template" or not self._enforce_window:
            return
        if not self.window_open(envelope.phone_number_id, envelope.to):
            last = self._windows.get((envelope.phone_number_id, envelope.to))
            text = "the 24-hour customer service window is closed: send a template instead"
            raise refuse(
                403,
                "WINDOW_CLOSED",
                text,
                field="to",
                last_inbound_at=last,
                window_seconds=WINDOW_SECONDS,
            )

    def _check_media_id(self, message: JSONObject, envelope: Envelope) -> None:
        """404 for a media id this provider issued and has deleted since (ids it never issued
        are taken as ids from elsewhere, and pass)."""
        part = message.get(envelope.type)
        media_id = part.get("id") if isinstance(part, dict) else None
        upload = self._media.get(media_id) if isinstance(media_id, str) else None
        if upload is None:
            return
        uploaded_at = upload.get("uploaded_at")
        if isinstance(uploaded_at, float) and self._clock.now() - uploaded_at >= self.media_ttl:
            text = f"media {media_id} is no longer available (uploads are kept 30 days)"
            raise refuse(404, "MEDIA_NOT_FOUND", text, field=f"{envelope.type}.id")

    def _accept(self, message: JSONObject, envelope: Envelope, key: str | None) -> Answer:
        """Records the message and answers with its new id."""
        message_id = f"wamid.out.{uuid.uuid4().hex}"
        now = self._clock.now()
        self.messages.append(
            SentMessage(
                message_id, envelope.phone_number_id, envelope.to, envelope.type, message, key, now
            )
        )
        self._statuses[message_id] = {
            "id": message_id,
            "status": "accepted",
            "timestamp": str(int(now)),
            "recipient_id": envelope.to,
        }
        return Answer(
            200,
            {
                "id": message_id,
                "messaging_product": "whatsapp",
                "contacts": [{"input": envelope.to, "wa_id": envelope.to}],
                "messages": [{"id": message_id}],
            },
        )

    def _record(self, request: Request, body: bytes, answer: Answer) -> None:
        """Keeps every request to the sending endpoints, with what was answered."""
        headers = dict(request.headers.items())
        self.requests.append(
            ReceivedRequest(
                request.method,
                request.url.path,
                headers,
                body,
                answer.status,
                answer.payload,
                self._clock.now(),
            )
        )

    async def _get_message(self, request: Request) -> Response:
        """GET /v1/messages/{id}: the status record (discouraged by the provider)."""
        try:
            check_api_key(request)
            return JSONResponse(self._status_record(request.path_params["message_id"]))
        except Refusal as refusal:
            return refusal.answer.response()

    def _status_record(self, message_id: str) -> JSONObject:
        """The latest status of a sent message."""
        record = self._statuses.get(message_id)
        if record is None:
            raise refuse(404, "MESSAGE_NOT_FOUND", f"no message with id {message_id}", field="id")
        return record

    async def _post_media(self, request: Request) -> Response:
        """POST /v1/media: multipart phone_number_id, file, type; answers the media id."""
        body = await request.body()
        try:
            answer = await self._answer_media(request)
        except Refusal as refusal:
            answer = refusal.answer
        self._record(request, body, answer)
        return answer.response()

    async def _answer_media(self, request: Request) -> Answer:
        """Checks the upload and keeps what it described (not the bytes)."""
        check_api_key(request)
        if media_type(request) != "multipart/form-data":
            raise refuse(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be multipart/form-data")
        try:
            async with request.form() as form:
                upload, content = await _read_upload(form)
        except HTTPException as exc:  # starlette's answer to a malformed multipart body
            raise refuse(400, "INVALID_MULTIPART", exc.detail) from None
        media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        self._media[media_id] = {**upload, "uploaded_at": self._clock.now()}
        self._media_content[media_id] = content
        return Answer(200, {"id": media_id})

    # -- control endpoints --

    async def _fake_messages(self, request: Request) -> Response:
        """GET /_fake/messages[?to=]: accepted messages as JSON."""
        to = request.query_params.get("to")
        sent = self.messages if to is None else self.messages_to(to)
        return JSONResponse([_message_json(message) for message in sent])

    async def _fake_fail(self, request: Request) -> Response:
        """POST /_fake/fail {status, times?, retry_after?, code?}: calls fail_next."""
        try:
            spec = parse_json_object(request, await request.body())
            status, times, retry_after, code = _fail_arguments(spec)
            self.fail_next(status, times=times, retry_after=retry_after, code=code)
        except Refusal as refusal:
            return refusal.answer.response()
        except (TypeError, ValueError) as exc:
            return error_answer(400, "INVALID_PARAMETER", str(exc)).response()
        return JSONResponse({"pending_faults": len(self._faults)})

    async def _fake_inbound(self, request: Request) -> Response:
        """POST /_fake/inbound: a user's message through receive(); answers as the webhook did."""
        try:
            spec = parse_json_object(request, await request.body())
            if self._webhook_url is None:
                raise refuse(409, "NO_WEBHOOK_URL", "the fake was started without a webhook_url")
            delivery = await self._inbound(spec)
        except Refusal as refusal:
            return refusal.answer.response()
        except httpx.HTTPError as exc:
            return error_answer(
                502, "WEBHOOK_UNREACHABLE", f"the webhook failed: {exc!r}"
            ).response()
        return JSONResponse(delivery.response, delivery.status_code)

    async def _inbound(self, spec: JSONObject) -> Delivery:
        """receive() with the fields of a /_fake/inbound body."""
        wa_id = _optional_text(spec, "wa_id")
        if wa_id is None:
            raise missing("wa_id")
        if not E164.fullmatch(wa_id):  # the user's number, as WhatsApp reports it
            raise invalid("wa_id", "must be E.164 digits without '+', spaces or dashes")
        return await self.receive(
            wa_id=wa_id,
            message=_inbound_part(spec),
            name=_optional_text(spec, "name"),
            phone_number_id=_optional_text(spec, "phone_number_id") or DEFAULT_PHONE_NUMBER_ID,
            context_id=_optional_text(spec, "context_id"),
        )

    async def _fake_stats(self, request: Request) -> Response:
        """GET /_fake/stats: counters for dashboards and smoke tests."""
        return JSONResponse(
            {
                "messages": len(self.messages),
                "requests": len(self.requests),
                "replays": self._replays,
                "pending_faults": len(self._faults),
                "deliveries": self._deliveries,
                "media": len(self._media),
                "open_windows": sum(self.window_open(*key) for key in self._windows),
                "rate_limited": self.rate_limited,
            }
        )


async def _read_upload(form: FormData) -> tuple[JSONObject, bytes]:
    """The upload's phone_number_id, file and type fields, checked."""
    phone = _form_digits(form.get("phone_number_id"))
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise missing("file")
    mime = _form_mime(form.get("type"))
    content = await upload.read()
    described: JSONObject = {
        "phone_number_id": phone,
        "type": mime,
        "size": len(content),
        "filename": upload.filename,
    }
    return described, content


def _form_digits(value: UploadFile | str | None) -> str:
    """The upload's phone_number_id form field: a string of digits."""
    if value is None:
        raise missing("phone_number_id")
    if not isinstance(value, str) or not DIGITS.fullmatch(value):
        raise refuse(
            400,
            "INVALID_PHONE_NUMBER_ID",
            "phone_number_id must be digits",
            field="phone_number_id",
        )
    return value


def _form_mime(value: UploadFile | str | None) -> str:
    """The upload's type form field: a MIME type such as image/jpeg."""
    if value is None:
        raise missing("type")
    if not isinstance(value, str) or "/" not in value:
        raise invalid("type", "must be a MIME type such as image/jpeg")
    return value


def _fail_arguments(spec: JSONObject) -> tuple[int, int, float | None, str | None]:
    """fail_next's status, times, retry_after and code from a /_fake/fail body."""
    status, times = spec.get("status"), spec.get("times", 1)
    retry_after, code = spec.get("retry_after"), spec.get("code")
    if not isinstance(status, int) or not isinstance(times, int):
        raise invalid("status", "and times must be integers")
    if retry_after is not None and not isinstance(retry_after, int | float):
        raise invalid("retry_after", "must be a number of seconds")
    if code is not None and not isinstance(code, str):
        raise invalid("code", "must be a string")
    return status, times, retry_after, code


def _optional_text(spec: JSONObject, key: str) -> str | None:
    """An optional string field of a control request."""
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(key, "must be a string")
    return value


def _inbound_part(spec: JSONObject) -> JSONObject:
    """The Meta type part: from "text", or "message" as given."""
    text, message = spec.get("text"), spec.get("message")
    if (text is None) == (message is None):
        raise invalid("text", "or message: give exactly one of them")
    if isinstance(text, str):
        return {"type": "text", "text": {"body": text}}
    if isinstance(message, dict) and isinstance(message.get("type"), str):
        return message
    raise invalid("message", "must be a Meta message part with a type, or text a string")


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) in the provider's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = HTTPStatus(status).name
    return error_answer(
        status, code, f"{request.method} {request.url.path}: {code.lower()}"
    ).response()


# --- Running it. ---


def serve(
    host: str,
    port: int,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    rate_per_number: int | None = None,
    enforce_window: bool = True,
) -> None:
    """Runs the fake under uvicorn until interrupted.

    With `rate_per_number`, it answers 429 past that many messages in a rolling second for
    one phone_number_id; with `enforce_window=False`, it sends free-form messages whatever
    the 24-hour window.
    """
    import uvicorn  # only a running server needs it; tests drive the app in process

    fake = FakeGoSendAPI(
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        rate_per_number=rate_per_number,
        enforce_window=enforce_window,
    )
    uvicorn.run(fake.app, host=host, port=port, log_level="info")
