"""The other side of the wire: a fake GoSendAPI for tests and local runs.

`FakeGoSendAPI.app` answers `POST /v1/messages`, `POST /v1/media` and
`GET /v1/messages/{id}` the way ``shared/gosendapi.md`` describes the provider,
and the fake delivers signed webhooks (`receive`, `send_status`, `redeliver`).
Control endpoints under ``/_fake/`` drive it over real HTTP. `sink_app` is a
bare ASGI callable that accepts everything cheaply, for benchmarks.

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
import math
import re
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
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
from starlette.types import Message, Receive, Scope, Send

from botkit.types import JSON, Clock, JSONObject, SystemClock

logger = logging.getLogger(__name__)

# --- The provider, as modelled: every number and name the fake enforces. ---

API_KEY_PREFIXES = ("gsk_test_", "gsk_live_")
SIGNATURE_HEADER = "X-GoSendAPI-Signature"
DEFAULT_PHONE_NUMBER_ID = "555123456789"
DISPLAY_PHONE_NUMBER = "15550001111"  # what `context.from` shows for the business number
WINDOW_SECONDS = 24 * 3600  # free-form messages: within 24 h of the user's own timestamp
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
WEBHOOK_TIMEOUT_SECONDS = 10.0
MESSAGE_TYPES = frozenset({
    "text", "template", "image", "video", "audio", "document", "sticker", "location",
    "interactive", "contacts",
})  # fmt: skip
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
INTERACTIVE_TYPES = frozenset({  # Meta's; only button and list have limits checked here
    "button", "list", "cta_url", "flow", "product", "product_list", "catalog_message",
    "location_request_message", "address_message",
})  # fmt: skip
STATUSES = frozenset({"sent", "delivered", "read", "failed"})
_BUTTONS = (1, 3)
_BUTTON_TITLE = 20
_BUTTON_ID = 256
_LIST_BUTTON = 20
_SECTIONS = (1, 10)
_ROWS = (1, 10)
_ROW_ID = 200
_ROW_TITLE = 24
_ROW_DESCRIPTION = 72
_SECTION_TITLE = 24
_HEADER_TEXT = 60
_FOOTER_TEXT = 60
_BODY_WITH_BUTTONS = 1024
_BODY_WITH_LIST = 4096
_TEXT_BODY = 4096
_NAME = 512  # template names, language codes and the like: generous, only catches garbage
_E164 = re.compile(r"[1-9][0-9]{7,14}")
_DIGITS = re.compile(r"[0-9]+")


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


# --- Answers and refusals. ---


@dataclass(frozen=True, slots=True)
class _Answer:
    """A status, a JSON body and extra headers: what an endpoint answers."""

    status: int
    payload: JSONObject
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        """The Starlette response for this answer."""
        return JSONResponse(self.payload, self.status, self.headers)


class _Refusal(Exception):
    """Raised by a check to answer with the provider's error shape."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.payload.get("message"))
        self.answer = answer


def _error(status: int, code: str, message: str, **details: JSON) -> _Answer:
    """The documented error body: statusCode, message, error, code, details."""
    payload: JSONObject = {
        "statusCode": status,
        "message": message,
        "error": HTTPStatus(status).phrase,
        "code": code,
        "details": details,
    }
    return _Answer(status, payload)


def _refuse(status: int, code: str, message: str, **details: JSON) -> _Refusal:
    """A refusal carrying `_error(...)`."""
    return _Refusal(_error(status, code, message, **details))


def _missing(field_name: str) -> _Refusal:
    """400 MISSING_REQUIRED_FIELD naming the field."""
    return _refuse(400, "MISSING_REQUIRED_FIELD", f"{field_name} is required", field=field_name)


def _invalid(field_name: str, reason: str, **details: JSON) -> _Refusal:
    """400 INVALID_PARAMETER naming the field and why."""
    message = f"{field_name} {reason}"
    return _refuse(400, "INVALID_PARAMETER", message, field=field_name, **details)


# --- Reading a request body, field by field. ---


def _get(parent: JSONObject, key: str, field_name: str) -> JSON:
    """The value under `key`; missing when absent or null."""
    value = parent.get(key)
    if value is None:
        raise _missing(field_name)
    return value


def _as_object(value: JSON, field_name: str) -> JSONObject:
    """`value` when it is a JSON object."""
    if not isinstance(value, dict):
        raise _invalid(field_name, "must be an object")
    return value


def _object(parent: JSONObject, key: str, field_name: str) -> JSONObject:
    """The required object under `key`."""
    return _as_object(_get(parent, key, field_name), field_name)


def _array(parent: JSONObject, key: str, field_name: str, bounds: tuple[int, int]) -> list[JSON]:
    """The required array under `key`, its length within `bounds`."""
    value = _get(parent, key, field_name)
    if not isinstance(value, list):
        raise _invalid(field_name, "must be an array")
    _check_count(field_name, len(value), bounds)
    return value


def _check_count(field_name: str, count: int, bounds: tuple[int, int]) -> None:
    """Refuses a count outside `bounds`, naming the limit."""
    low, high = bounds
    if not low <= count <= high:
        reason = f"has {count} items; it must have {low} to {high}"
        raise _invalid(field_name, reason, limit=high, minimum=low, count=count)


def _string(parent: JSONObject, key: str, field_name: str, limit: int) -> str:
    """The required non-blank string under `key`, at most `limit` characters."""
    value = _get(parent, key, field_name)
    if not isinstance(value, str):
        raise _invalid(field_name, "must be a string")
    if not value.strip():
        raise _invalid(field_name, "must not be empty")
    return _check_length(field_name, value, limit)


def _optional_string(parent: JSONObject, key: str, field_name: str, limit: int) -> None:
    """Checks the type and length of an optional string."""
    value = parent.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        raise _invalid(field_name, "must be a string")
    _check_length(field_name, value, limit)


def _check_length(field_name: str, value: str, limit: int) -> str:
    """`value` when it has at most `limit` characters."""
    if len(value) > limit:
        reason = f"has {len(value)} characters; the limit is {limit}"
        raise _invalid(field_name, reason, limit=limit, length=len(value))
    return value


def _tap_id(parent: JSONObject, field_name: str, limit: int) -> str:
    """A button or row id: non-blank, bounded, no leading or trailing spaces."""
    value = _string(parent, "id", field_name, limit)
    if value != value.strip():
        raise _invalid(field_name, "must not start or end with spaces")
    return value


def _check_unique(ids: list[str], field_name: str) -> None:
    """Refuses repeated ids: WhatsApp could not tell the taps apart."""
    seen: set[str] = set()
    for tap_id in ids:
        if tap_id in seen:
            raise _invalid(field_name, f"repeats the id {tap_id!r}", duplicate=tap_id)
        seen.add(tap_id)


# --- The message envelope: who, to whom, what type. ---


@dataclass(frozen=True, slots=True)
class _Envelope:
    """The routing fields of a valid message body."""

    phone_number_id: str
    to: str
    type: str


def _validate_message(message: JSONObject) -> _Envelope:
    """Checks a `POST /v1/messages` body against the contract; returns its routing."""
    for key in ("phone_number_id", "to", "type"):
        _get(message, key, key)
    envelope = _Envelope(
        _check_phone_number_id(message["phone_number_id"]),
        _check_to(message["to"]),
        _check_type(message["type"]),
    )
    _TYPE_CHECKS[envelope.type](_get(message, envelope.type, envelope.type), envelope.type)
    return envelope


def _check_phone_number_id(value: JSON) -> str:
    """The sending number's Meta id: a string of digits, never the display number."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return value
    message = "phone_number_id must be the numeric id of the sending number, as a string"
    raise _refuse(400, "INVALID_PHONE_NUMBER_ID", message, field="phone_number_id")


def _check_to(value: JSON) -> str:
    """The recipient: E.164 digits, no '+', spaces, dashes or parentheses."""
    if isinstance(value, str) and _E164.fullmatch(value):
        return value
    message = "to must be E.164 digits without '+', spaces or dashes, e.g. 5491140123456"
    raise _refuse(400, "INVALID_PHONE_NUMBER", message, field="to")


def _check_type(value: JSON) -> str:
    """One of the ten message types."""
    if isinstance(value, str) and value in MESSAGE_TYPES:
        return value
    message = f"type {value!r} is not one of {', '.join(sorted(MESSAGE_TYPES))}"
    allowed: list[JSON] = [*sorted(MESSAGE_TYPES)]
    raise _refuse(400, "INVALID_MESSAGE_TYPE", message, field="type", allowed=allowed)


# --- One check per message type; each takes the object named after the type. ---


def _check_text(part: JSON, kind: str) -> None:
    """text.body: 1 to 4096 characters."""
    _string(_as_object(part, kind), "body", "text.body", _TEXT_BODY)


def _check_template(part: JSON, kind: str) -> None:
    """template: name, language.code, components as an array when present."""
    template = _as_object(part, kind)
    _string(template, "name", "template.name", _NAME)
    _string(
        _object(template, "language", "template.language"), "code", "template.language.code", _NAME
    )
    components = template.get("components")
    if components is not None and not isinstance(components, list):
        raise _invalid("template.components", "must be an array")


def _check_media(part: JSON, kind: str) -> None:
    """A media object: a link to download or the id of an upload."""
    media = _as_object(part, kind)
    if not any(isinstance(media.get(key), str) and media.get(key) for key in ("link", "id")):
        message = f"{kind} needs a link or the id of an upload"
        raise _refuse(400, "MISSING_REQUIRED_FIELD", message, field=kind, one_of=["link", "id"])


def _check_location(part: JSON, kind: str) -> None:
    """location: numeric latitude and longitude (numbers or numeric strings)."""
    location = _as_object(part, kind)
    for key in ("latitude", "longitude"):
        value = _get(location, key, f"location.{key}")
        if not _is_number(value):
            raise _invalid(f"location.{key}", "must be a number")


def _is_number(value: JSON) -> bool:
    """True for a finite number or a string holding one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _check_contacts(part: JSON, kind: str) -> None:
    """contacts: a non-empty array of cards, each with name.formatted_name."""
    if not isinstance(part, list) or not part:
        raise _invalid("contacts", "must be a non-empty array")
    for index, card in enumerate(part):
        where = f"contacts[{index}]"
        name = _object(_as_object(card, where), "name", f"{where}.name")
        _string(name, "formatted_name", f"{where}.name.formatted_name", _NAME)


def _check_interactive(part: JSON, kind: str) -> None:
    """interactive: Meta's shape, within WhatsApp's limits."""
    interactive = _as_object(part, kind)
    style = _string(interactive, "type", "interactive.type", _NAME)
    if style not in INTERACTIVE_TYPES:
        raise _invalid("interactive.type", f"{style!r} is not an interactive type")
    _check_header(interactive)
    _check_footer(interactive)
    _check_body(interactive, style)
    if style == "button":
        _check_buttons(_object(interactive, "action", "interactive.action"))
    elif style == "list":
        _check_list(_object(interactive, "action", "interactive.action"))


def _check_header(interactive: JSONObject) -> None:
    """A text header has at most 60 characters; media headers pass."""
    if interactive.get("header") is None:
        return
    header = _object(interactive, "header", "interactive.header")
    if header.get("type", "text") == "text":
        _string(header, "text", "interactive.header.text", _HEADER_TEXT)


def _check_footer(interactive: JSONObject) -> None:
    """A footer has at most 60 characters."""
    if interactive.get("footer") is not None:
        footer = _object(interactive, "footer", "interactive.footer")
        _string(footer, "text", "interactive.footer.text", _FOOTER_TEXT)


def _check_body(interactive: JSONObject, style: str) -> None:
    """Buttons and lists need a body: 1024 characters with buttons, 4096 with a list."""
    if style not in ("button", "list") and interactive.get("body") is None:
        return
    limit = _BODY_WITH_LIST if style == "list" else _BODY_WITH_BUTTONS
    body = _object(interactive, "body", "interactive.body")
    _string(body, "text", "interactive.body.text", limit)


def _check_buttons(action: JSONObject) -> None:
    """1 to 3 reply buttons with distinct ids."""
    buttons = _array(action, "buttons", "interactive.action.buttons", _BUTTONS)
    ids = [
        _check_button(button, f"interactive.action.buttons[{index}]")
        for index, button in enumerate(buttons)
    ]
    _check_unique(ids, "interactive.action.buttons")


def _check_button(button: JSON, where: str) -> str:
    """One reply button: title up to 20, id up to 256; returns the id."""
    reply = _object(_as_object(button, where), "reply", f"{where}.reply")
    _string(reply, "title", f"{where}.reply.title", _BUTTON_TITLE)
    return _tap_id(reply, f"{where}.reply.id", _BUTTON_ID)


def _check_list(action: JSONObject) -> None:
    """A list: a button label, 1 to 10 sections, at most 10 rows in all, distinct ids."""
    _string(action, "button", "interactive.action.button", _LIST_BUTTON)
    sections = _array(action, "sections", "interactive.action.sections", _SECTIONS)
    titled = len(sections) > 1  # Meta requires section titles only when there are several
    ids = [
        row_id
        for index, section in enumerate(sections)
        for row_id in _check_section(section, f"interactive.action.sections[{index}]", titled)
    ]
    _check_count("interactive.action.sections[*].rows", len(ids), _ROWS)
    _check_unique(ids, "interactive.action.sections[*].rows")


def _check_section(section: JSON, where: str, titled: bool) -> list[str]:
    """One list section; returns its row ids."""
    found = _as_object(section, where)
    if titled or found.get("title") is not None:
        _string(found, "title", f"{where}.title", _SECTION_TITLE)
    rows = _array(found, "rows", f"{where}.rows", _ROWS)
    return [_check_row(row, f"{where}.rows[{index}]") for index, row in enumerate(rows)]


def _check_row(row: JSON, where: str) -> str:
    """One list row: title up to 24, description up to 72, id up to 200; returns the id."""
    found = _as_object(row, where)
    _string(found, "title", f"{where}.title", _ROW_TITLE)
    _optional_string(found, "description", f"{where}.description", _ROW_DESCRIPTION)
    return _tap_id(found, f"{where}.id", _ROW_ID)


_TYPE_CHECKS: dict[str, Callable[[JSON, str], None]] = {
    "text": _check_text,
    "template": _check_template,
    "location": _check_location,
    "contacts": _check_contacts,
    "interactive": _check_interactive,
    **dict.fromkeys(MEDIA_TYPES, _check_media),
}


# --- Request-level checks shared by the /v1 endpoints. ---


def _check_api_key(request: Request) -> str:
    """The caller's API key: present, with a known prefix."""
    key = request.headers.get("x-api-key")
    if not key:
        raise _refuse(401, "INVALID_API_KEY", "X-API-Key header is required")
    if not key.startswith(API_KEY_PREFIXES):
        message = "API key is malformed: it must start with gsk_test_ or gsk_live_"
        raise _refuse(401, "MALFORMED_API_KEY", message)
    return key


def _media_type(request: Request) -> str:
    """The Content-Type without parameters, lower-cased."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _parse_json_object(request: Request, body: bytes) -> JSONObject:
    """The body as a JSON object: 415 for another content type, 400 for bad JSON."""
    if _media_type(request) != "application/json":
        raise _refuse(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise _refuse(400, "INVALID_JSON", "the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _refuse(400, "INVALID_JSON", "the body must be a JSON object")
    return parsed


def _idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header; a blank one is refused rather than ignored."""
    key = request.headers.get("idempotency-key")
    if key is not None and not key.strip():
        raise _refuse(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must not be blank")
    return key


def _fingerprint(message: JSONObject) -> str:
    """The body as canonical JSON: key order does not make a different body."""
    return json.dumps(message, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _KeyRecord:
    """What the first call with an Idempotency-Key sent and got."""

    fingerprint: str
    answer: _Answer
    at: float


@dataclass(frozen=True, slots=True)
class _Fault:
    """One scripted failure of `POST /v1/messages`."""

    status: int
    code: str
    retry_after: float | None

    def answer(self) -> _Answer:
        """The error this fault answers, with Retry-After when it has a delay."""
        answer = _error(self.status, self.code, f"{HTTPStatus(self.status).phrase} (scripted)")
        if self.retry_after is None:
            return answer
        answer.payload["retry_after_seconds"] = self.retry_after
        # Retry-After takes whole seconds: round up so that the header never says less.
        headers = {"Retry-After": str(math.ceil(self.retry_after))}
        return _Answer(answer.status, answer.payload, headers)


class _RollingLimit:
    """At most `limit` messages per phone_number_id in any rolling second; 429 past it.

    Only messages let through count: a client that waits as told gets through.
    """

    def __init__(self, limit: int, clock: Clock) -> None:
        if limit < 1:
            raise ValueError(f"rate_per_number must be at least 1, not {limit}")
        self.limit = limit
        self._clock = clock
        self._times: dict[str, deque[float]] = {}

    def check(self, phone_number_id: str) -> _Answer | None:
        """None, counting the message, when it may go; else the 429 to answer."""
        now = self._clock.now()
        times = self._times.setdefault(phone_number_id, deque())
        while times and times[0] <= now - 1.0:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return None
        return self._refusal(phone_number_id, times[0] + 1.0 - now)

    def clear(self) -> None:
        """Forgets every count."""
        self._times.clear()

    def _refusal(self, phone_number_id: str, wait: float) -> _Answer:
        """The documented 429: retry_after_seconds in the body, Retry-After in whole seconds."""
        text = f"more than {self.limit} messages a second from phone number {phone_number_id}"
        answer = _error(429, "RATE_LIMITED", text, limit=self.limit)
        answer.payload["retry_after_seconds"] = round(max(wait, 0.001), 3)
        return _Answer(429, answer.payload, {"Retry-After": str(max(1, math.ceil(wait)))})


def _new_fault(status: int, retry_after: float | None, code: str | None) -> _Fault:
    """A fault, validated; a 429 without a delay waits one second."""
    if status not in {s.value for s in HTTPStatus} or status < 400:
        raise ValueError(f"fail_next takes an HTTP error status (4xx or 5xx), not {status}")
    if retry_after is not None and retry_after < 0:
        raise ValueError(f"retry_after cannot be negative ({retry_after})")
    if status == 429 and retry_after is None:
        retry_after = 1
    return _Fault(status, code or HTTPStatus(status).name, retry_after)


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
    ) -> None:
        """With `rate_per_number`, more messages than that in a rolling second answer 429."""
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
        self._faults: deque[_Fault] = deque()
        self._windows: dict[tuple[str, str], float] = {}
        self._keys: dict[tuple[str, str], _KeyRecord] = {}
        self._statuses: dict[str, JSONObject] = {}
        self._media: dict[str, JSONObject] = {}
        self._replays = 0
        self._deliveries = 0
        self._limit = (
            None if rate_per_number is None else _RollingLimit(rate_per_number, self._clock)
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
        fault = _new_fault(status, retry_after, code)
        self._faults.extend([fault] * times)

    def open_window(self, phone_number_id: str, wa_id: str, timestamp: float) -> None:
        """Records an inbound message's time; the latest wins, the window never moves back."""
        key = (phone_number_id, wa_id)
        self._windows[key] = max(timestamp, self._windows.get(key, timestamp))

    def window_open(self, phone_number_id: str, wa_id: str) -> bool:
        """Whether a free-form message from `phone_number_id` to `wa_id` is allowed now."""
        last = self._windows.get((phone_number_id, wa_id))
        return last is not None and self._clock.now() - last < WINDOW_SECONDS

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
        except _Refusal as refusal:
            answer = refusal.answer
        self._record(request, body, answer)
        return answer.response()

    def _answer_message(self, request: Request, body: bytes) -> _Answer:
        """Auth, scripted faults, parsing, then the idempotent send."""
        api_key = _check_api_key(request)
        if self._faults:
            return self._faults.popleft().answer()
        message = _parse_json_object(request, body)
        key = _idempotency_key(request)
        if key is None:
            return self._send(message, None)
        return self._send_once(message, (api_key, key))

    def _send_once(self, message: JSONObject, scope: tuple[str, str]) -> _Answer:
        """Replays the first answer for a known key and body; 409 for another body."""
        self._forget_old_keys()
        fingerprint = _fingerprint(message)
        known = self._keys.get(scope)
        if known is not None and known.fingerprint != fingerprint:
            text = "this Idempotency-Key was used with a different body"
            raise _refuse(409, "IDEMPOTENCY_KEY_REUSED", text, field="Idempotency-Key")
        if known is not None:
            self._replays += 1
            return known.answer
        # Refusals are kept too: the provider answers 409 when a refused key comes back with
        # another body. Scripted faults (5xx, 429) never get here, so a retry can succeed.
        answer = self._send(message, scope[1])
        self._keys[scope] = _KeyRecord(fingerprint, answer, self._clock.now())
        return answer

    def _forget_old_keys(self) -> None:
        """Drops keys older than 24 h of clock time (they are kept in time order)."""
        horizon = self._clock.now() - IDEMPOTENCY_TTL_SECONDS
        for scope, record in list(self._keys.items()):
            if record.at > horizon:
                break
            del self._keys[scope]

    def _send(self, message: JSONObject, key: str | None) -> _Answer:
        """Validates, checks the window and accepts; a refusal becomes its answer."""
        try:
            envelope = _validate_message(message)
            self._check_window(envelope)
        except _Refusal as refusal:
            return refusal.answer
        self._check_rate(envelope.phone_number_id)
        return self._accept(message, envelope, key)

    def _check_rate(self, phone_number_id: str) -> None:
        """Raises the 429 past the rate; raised, not returned, so the key is not kept with it."""
        refusal = None if self._limit is None else self._limit.check(phone_number_id)
        if refusal is not None:
            self.rate_limited += 1
            raise _Refusal(refusal)

    def _check_window(self, envelope: _Envelope) -> None:
        """403 for a free-form message outside the 24-hour window; templates always pass."""
        if envelope.type == "template" or not self._enforce_window:
            return
        if not self.window_open(envelope.phone_number_id, envelope.to):
            last = self._windows.get((envelope.phone_number_id, envelope.to))
            text = "the 24-hour customer service window is closed: send a template instead"
            raise _refuse(
                403,
                "WINDOW_CLOSED",
                text,
                field="to",
                last_inbound_at=last,
                window_seconds=WINDOW_SECONDS,
            )

    def _accept(self, message: JSONObject, envelope: _Envelope, key: str | None) -> _Answer:
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
        return _Answer(
            200,
            {
                "id": message_id,
                "messaging_product": "whatsapp",
                "contacts": [{"input": envelope.to, "wa_id": envelope.to}],
                "messages": [{"id": message_id}],
            },
        )

    def _record(self, request: Request, body: bytes, answer: _Answer) -> None:
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
            _check_api_key(request)
            return JSONResponse(self._status_record(request.path_params["message_id"]))
        except _Refusal as refusal:
            return refusal.answer.response()

    def _status_record(self, message_id: str) -> JSONObject:
        """The latest status of a sent message."""
        record = self._statuses.get(message_id)
        if record is None:
            raise _refuse(404, "MESSAGE_NOT_FOUND", f"no message with id {message_id}", field="id")
        return record

    async def _post_media(self, request: Request) -> Response:
        """POST /v1/media: multipart phone_number_id, file, type; answers the media id."""
        body = await request.body()
        try:
            answer = await self._answer_media(request)
        except _Refusal as refusal:
            answer = refusal.answer
        self._record(request, body, answer)
        return answer.response()

    async def _answer_media(self, request: Request) -> _Answer:
        """Checks the upload and keeps what it described (not the bytes)."""
        _check_api_key(request)
        if _media_type(request) != "multipart/form-data":
            raise _refuse(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be multipart/form-data")
        try:
            async with request.form() as form:
                upload = await _read_upload(form)
        except HTTPException as exc:  # starlette's answer to a malformed multipart body
            raise _refuse(400, "INVALID_MULTIPART", exc.detail) from None
        media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        self._media[media_id] = upload
        return _Answer(200, {"id": media_id})

    # -- control endpoints --

    async def _fake_messages(self, request: Request) -> Response:
        """GET /_fake/messages[?to=]: accepted messages as JSON."""
        to = request.query_params.get("to")
        sent = self.messages if to is None else self.messages_to(to)
        return JSONResponse([_message_json(message) for message in sent])

    async def _fake_fail(self, request: Request) -> Response:
        """POST /_fake/fail {status, times?, retry_after?, code?}: calls fail_next."""
        try:
            spec = _parse_json_object(request, await request.body())
            status, times, retry_after, code = _fail_arguments(spec)
            self.fail_next(status, times=times, retry_after=retry_after, code=code)
        except _Refusal as refusal:
            return refusal.answer.response()
        except (TypeError, ValueError) as exc:
            return _error(400, "INVALID_PARAMETER", str(exc)).response()
        return JSONResponse({"pending_faults": len(self._faults)})

    async def _fake_inbound(self, request: Request) -> Response:
        """POST /_fake/inbound: a user's message through receive(); answers as the webhook did."""
        try:
            spec = _parse_json_object(request, await request.body())
            if self._webhook_url is None:
                raise _refuse(409, "NO_WEBHOOK_URL", "the fake was started without a webhook_url")
            delivery = await self._inbound(spec)
        except _Refusal as refusal:
            return refusal.answer.response()
        except httpx.HTTPError as exc:
            return _error(502, "WEBHOOK_UNREACHABLE", f"the webhook failed: {exc!r}").response()
        return JSONResponse(delivery.response, delivery.status_code)

    async def _inbound(self, spec: JSONObject) -> Delivery:
        """receive() with the fields of a /_fake/inbound body."""
        wa_id = _optional_text(spec, "wa_id")
        if wa_id is None:
            raise _missing("wa_id")
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


async def _read_upload(form: FormData) -> JSONObject:
    """The upload's phone_number_id, file and type fields, checked."""
    phone = _form_digits(form.get("phone_number_id"))
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise _missing("file")
    mime = _form_mime(form.get("type"))
    size = len(await upload.read())
    return {"phone_number_id": phone, "type": mime, "size": size, "filename": upload.filename}


def _form_digits(value: UploadFile | str | None) -> str:
    """The upload's phone_number_id form field: a string of digits."""
    if value is None:
        raise _missing("phone_number_id")
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise _refuse(
            400,
            "INVALID_PHONE_NUMBER_ID",
            "phone_number_id must be digits",
            field="phone_number_id",
        )
    return value


def _form_mime(value: UploadFile | str | None) -> str:
    """The upload's type form field: a MIME type such as image/jpeg."""
    if value is None:
        raise _missing("type")
    if not isinstance(value, str) or "/" not in value:
        raise _invalid("type", "must be a MIME type such as image/jpeg")
    return value


def _fail_arguments(spec: JSONObject) -> tuple[int, int, float | None, str | None]:
    """fail_next's status, times, retry_after and code from a /_fake/fail body."""
    status, times = spec.get("status"), spec.get("times", 1)
    retry_after, code = spec.get("retry_after"), spec.get("code")
    if not isinstance(status, int) or not isinstance(times, int):
        raise _invalid("status", "and times must be integers")
    if retry_after is not None and not isinstance(retry_after, int | float):
        raise _invalid("retry_after", "must be a number of seconds")
    if code is not None and not isinstance(code, str):
        raise _invalid("code", "must be a string")
    return status, times, retry_after, code


def _optional_text(spec: JSONObject, key: str) -> str | None:
    """An optional string field of a control request."""
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise _invalid(key, "must be a string")
    return value


def _inbound_part(spec: JSONObject) -> JSONObject:
    """The Meta type part: from "text", or "message" as given."""
    text, message = spec.get("text"), spec.get("message")
    if (text is None) == (message is None):
        raise _invalid("text", "or message is required, not both")
    if isinstance(text, str):
        return {"type": "text", "text": {"body": text}}
    if isinstance(message, dict) and isinstance(message.get("type"), str):
        return message
    raise _invalid("message", "must be a Meta message part with a type, or text a string")


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) in the provider's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = HTTPStatus(status).name
    return _error(status, code, f"{request.method} {request.url.path}: {code.lower()}").response()


# --- Fast sink mode. ---


class SinkApp:
    """A bare ASGI app that accepts every well-keyed JSON send: for benchmarks.

    It checks only the API key prefix and the JSON content type, answers 200
    with a fresh id, and dedupes on Idempotency-Key (the same key gets the same
    id and counts as a duplicate). With `rate_per_number`, a new message past that
    many in a rolling second for its phone_number_id answers 429 (the body is read
    for that number only then). `GET /_fake/stats`, `GET /_fake/keys` and
    `POST /_fake/reset` report and clear.
    """

    def __init__(
        self,
        api_key_prefixes: tuple[str, ...],
        *,
        rate_per_number: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._prefixes = tuple(prefix.encode() for prefix in api_key_prefixes)
        self._clock = clock or SystemClock()
        self._limit = (
            None if rate_per_number is None else _RollingLimit(rate_per_number, self._clock)
        )
        self.requests = 0
        self.messages = 0
        self.duplicates = 0
        self.rejected = 0
        self.rate_limited = 0
        self.first_message_at: float | None = None
        self.last_message_at: float | None = None
        self.keys: dict[str, int] = {}
        self._ids: dict[str, bytes] = {}

    def reset(self) -> None:
        """Forgets every request and key."""
        self.requests = self.messages = self.duplicates = self.rejected = self.rate_limited = 0
        self.first_message_at = self.last_message_at = None
        self.keys.clear()
        self._ids.clear()
        if self._limit is not None:
            self._limit.clear()

    def stats(self) -> JSONObject:
        """Counts of messages, requests, repeated keys and refusals; first and last message times."""
        return {
            "messages": self.messages,
            "requests": self.requests,
            "duplicate_keys": self.duplicates,
            "rejected": self.rejected,
            "rate_limited": self.rate_limited,
            "first_message_at": self.first_message_at,
            "last_message_at": self.last_message_at,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Routes on method and path, without a router."""
        if scope["type"] == "lifespan":
            await _lifespan_protocol(receive, send)
            return
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        if route != ("POST", "/v1/messages"):
            await _drain(receive)
            await _reply(send, *self._control(route))
            return
        body = await _drain(receive, keep=self._limit is not None)
        await _reply(send, *self._message(scope["headers"], body))

    def _message(
        self, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        """One send: 401 or 415, 429 past the rate, else 200 with an id (the same for a key)."""
        self.requests += 1
        found = dict(headers)
        refusal = self._refusal(found)
        if refusal is not None:
            self.rejected += 1
            return (*refusal, {})
        raw_key = found.get(b"idempotency-key")
        key = raw_key.decode("latin-1") if raw_key is not None else None
        limited = self._check_rate(key, body)
        if limited is not None:
            return limited.status, _encode(limited.payload), limited.headers
        message_id = self._id_for(key)
        answer = b'{"id":"%s","messaging_product":"whatsapp","messages":[{"id":"%s"}]}' % (
            message_id,
            message_id,
        )
        return 200, answer, {}

    def _check_rate(self, key: str | None, body: bytes) -> _Answer | None:
        """The 429 for a new message past the rate; a repeated key is answered, not counted."""
        if self._limit is None or (key is not None and key in self._ids):
            return None
        limited = self._limit.check(_sink_phone_number_id(body))
        if limited is not None:
            self.rate_limited += 1
        return limited

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple[int, bytes] | None:
        """401 for a missing or malformed key, 415 for a non-JSON body, else None."""
        api_key = headers.get(b"x-api-key")
        if not api_key:
            return 401, _encode(_error(401, "INVALID_API_KEY", "X-API-Key is required").payload)
        if not api_key.startswith(self._prefixes):
            return 401, _encode(_error(401, "MALFORMED_API_KEY", "malformed API key").payload)
        media = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        if media != b"application/json":
            text = "Content-Type must be application/json"
            return 415, _encode(_error(415, "UNSUPPORTED_MEDIA_TYPE", text).payload)
        return None

    def _id_for(self, key: str | None) -> bytes:
        """A fresh id, or the one already given to this key."""
        if key is not None and key in self._ids:
            self.keys[key] += 1
            self.duplicates += 1
            return self._ids[key]
        self.messages += 1
        self.last_message_at = self._clock.now()
        if self.first_message_at is None:
            self.first_message_at = self.last_message_at
        message_id = b"wamid.sink.%d" % self.messages
        if key is not None:
            self.keys[key] = 1
            self._ids[key] = message_id
        return message_id

    def _control(self, route: tuple[str, str]) -> tuple[int, bytes]:
        """The /_fake endpoints; 404 for anything else."""
        if route == ("GET", "/_fake/stats"):
            return 200, _encode(self.stats())
        if route == ("GET", "/_fake/keys"):
            keys: JSONObject = dict(self.keys)
            return 200, _encode({"keys": keys})
        if route == ("POST", "/_fake/reset"):
            self.reset()
            return 200, _encode({"reset": True})
        return 404, _encode(_error(404, "NOT_FOUND", f"{route[0]} {route[1]}: not found").payload)


def sink_app(
    *,
    api_key_prefixes: tuple[str, ...] = API_KEY_PREFIXES,
    rate_per_number: int | None = None,
    clock: Clock | None = None,
) -> SinkApp:
    """A fast sink for benchmarks: see `SinkApp`."""
    return SinkApp(api_key_prefixes, rate_per_number=rate_per_number, clock=clock)


def _sink_phone_number_id(body: bytes) -> str:
    """The body's phone_number_id for the sink's rate limit; "" when it has none."""
    try:
        message = json.loads(body)
    except ValueError:
        return ""
    number = message.get("phone_number_id") if isinstance(message, dict) else None
    return number if isinstance(number, str) else ""


async def _drain(receive: Receive, *, keep: bool = False) -> bytes:
    """Reads the request body: returns it when `keep`, else drops it and returns b""."""
    chunks: list[bytes] = []
    message: Message = {"more_body": True}
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        if keep:
            chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _reply(send: Send, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    """Sends a JSON response, with `extra` headers."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(name.lower().encode(), value.encode()) for name, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan_protocol(receive: Receive, send: Send) -> None:
    """Acknowledges the server's startup and shutdown: the sink holds no resources."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- Running it. ---


def serve(
    host: str,
    port: int,
    *,
    sink: bool = False,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    rate_per_number: int | None = None,
) -> None:
    """Runs the fake (or the sink) under uvicorn until interrupted.

    With `rate_per_number`, either answers 429 past that many messages in a rolling second
    for one phone_number_id.
    """
    import uvicorn  # only a running server needs it; tests drive the app in process

    if sink:
        app = sink_app(rate_per_number=rate_per_number)
        # a line per request would cost the sink more than answering it
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
        return
    fake = FakeGoSendAPI(
        webhook_url=webhook_url, webhook_secret=webhook_secret, rate_per_number=rate_per_number
    )
    uvicorn.run(fake.app, host=host, port=port, log_level="info")
