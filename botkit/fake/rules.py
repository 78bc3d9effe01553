"""The provider's rules, as the fake enforces them: limits, request checks, answers and refusals.

Written from the provider's contract, not from botkit's builders or sender: a bug in shared
code would pass on both sides of the wire (see botkit.fake.provider).
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from botkit.types import JSON, Clock, JSONObject

# --- The provider, as modelled: every number and name the fake enforces. ---

API_KEY_PREFIXES = ("gsk_test_", "gsk_live_")
SIGNATURE_HEADER = "X-GoSendAPI-Signature"
DEFAULT_PHONE_NUMBER_ID = "555123456789"
DISPLAY_PHONE_NUMBER = "15550001111"  # what `context.from` shows for the business number
WINDOW_SECONDS = 24 * 3600  # free-form messages: within 24 h of the user's own timestamp
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MEDIA_TTL_SECONDS = 30 * 24 * 3600  # uploads are deleted after 30 days (WhatsApp's rule)
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
E164 = re.compile(r"[1-9][0-9]{7,14}")
DIGITS = re.compile(r"[0-9]+")


# --- Answers and refusals. ---


@dataclass(frozen=True, slots=True)
class Answer:
    """A status, a JSON body and extra headers: what an endpoint answers."""

    status: int
    payload: JSONObject
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        """The Starlette response for this answer."""
        return JSONResponse(self.payload, self.status, self.headers)


class Refusal(Exception):
    """Raised by a check to answer with the provider's error shape."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.payload.get("message"))
        self.answer = answer


def error_answer(status: int, code: str, message: str, **details: JSON) -> Answer:
    """The documented error body: statusCode, message, error, code, details."""
    payload: JSONObject = {
        "statusCode": status,
        "message": message,
        "error": HTTPStatus(status).phrase,
        "code": code,
        "details": details,
    }
    return Answer(status, payload)


def refuse(status: int, code: str, message: str, **details: JSON) -> Refusal:
    """A refusal carrying `error_answer(...)`."""
    return Refusal(error_answer(status, code, message, **details))


def missing(field_name: str) -> Refusal:
    """400 MISSING_REQUIRED_FIELD naming the field."""
    return refuse(400, "MISSING_REQUIRED_FIELD", f"{field_name} is required", field=field_name)


def invalid(field_name: str, reason: str, **details: JSON) -> Refusal:
    """400 INVALID_PARAMETER naming the field and why."""
    message = f"{field_name} {reason}"
    return refuse(400, "INVALID_PARAMETER", message, field=field_name, **details)


# --- Reading a request body, field by field. ---


def _get(parent: JSONObject, key: str, field_name: str) -> JSON:
    """The value under `key`; missing when absent or null."""
    value = parent.get(key)
    if value is None:
        raise missing(field_name)
    return value


def _as_object(value: JSON, field_name: str) -> JSONObject:
    """`value` when it is a JSON object."""
    if not isinstance(value, dict):
        raise invalid(field_name, "must be an object")
    return value


def _object(parent: JSONObject, key: str, field_name: str) -> JSONObject:
    """The required object under `key`."""
    return _as_object(_get(parent, key, field_name), field_name)


def _array(parent: JSONObject, key: str, field_name: str, bounds: tuple[int, int]) -> list[JSON]:
    """The required array under `key`, its length within `bounds`."""
    value = _get(parent, key, field_name)
    if not isinstance(value, list):
        raise invalid(field_name, "must be an array")
    _check_count(field_name, len(value), bounds)
    return value


def _check_count(field_name: str, count: int, bounds: tuple[int, int]) -> None:
    """Refuses a count outside `bounds`, naming the limit."""
    low, high = bounds
    if not low <= count <= high:
        reason = f"has {count} items; it must have {low} to {high}"
        raise invalid(field_name, reason, limit=high, minimum=low, count=count)


def _string(parent: JSONObject, key: str, field_name: str, limit: int) -> str:
    """The required non-blank string under `key`, at most `limit` characters."""
    value = _get(parent, key, field_name)
    if not isinstance(value, str):
        raise invalid(field_name, "must be a string")
    if not value.strip():
        raise invalid(field_name, "must not be empty")
    return _check_length(field_name, value, limit)


def _optional_string(parent: JSONObject, key: str, field_name: str, limit: int) -> None:
    """Checks the type and length of an optional string."""
    value = parent.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        raise invalid(field_name, "must be a string")
    _check_length(field_name, value, limit)


def _check_length(field_name: str, value: str, limit: int) -> str:
    """`value` when it has at most `limit` characters."""
    if len(value) > limit:
        reason = f"has {len(value)} characters; the limit is {limit}"
        raise invalid(field_name, reason, limit=limit, length=len(value))
    return value


def _tap_id(parent: JSONObject, field_name: str, limit: int) -> str:
    """A button or row id: non-blank, bounded, no leading or trailing spaces."""
    value = _string(parent, "id", field_name, limit)
    if value != value.strip():
        raise invalid(field_name, "must not start or end with spaces")
    return value


def _check_unique(ids: list[str], field_name: str) -> None:
    """Refuses repeated ids: WhatsApp could not tell the taps apart."""
    seen: set[str] = set()
    for tap_id in ids:
        if tap_id in seen:
            raise invalid(field_name, f"repeats the id {tap_id!r}", duplicate=tap_id)
        seen.add(tap_id)


# --- The message envelope: who, to whom, what type. ---


@dataclass(frozen=True, slots=True)
class Envelope:
    """The routing fields of a valid message body."""

    phone_number_id: str
    to: str
    type: str


def validate_message(message: JSONObject) -> Envelope:
    """Checks a `POST /v1/messages` body against the contract; returns its routing."""
    for key in ("phone_number_id", "to", "type"):
        _get(message, key, key)
    envelope = Envelope(
        _check_phone_number_id(message["phone_number_id"]),
        _check_to(message["to"]),
        _check_type(message["type"]),
    )
    _TYPE_CHECKS[envelope.type](_get(message, envelope.type, envelope.type), envelope.type)
    return envelope


def _check_phone_number_id(value: JSON) -> str:
    """The sending number's Meta id: a string of digits, never the display number."""
    if isinstance(value, str) and DIGITS.fullmatch(value):
        return value
    message = "phone_number_id must be the numeric id of the sending number, as a string"
    raise refuse(400, "INVALID_PHONE_NUMBER_ID", message, field="phone_number_id")


def _check_to(value: JSON) -> str:
    """The recipient: E.164 digits, no '+', spaces, dashes or parentheses."""
    if isinstance(value, str) and E164.fullmatch(value):
        return value
    message = "to must be E.164 digits without '+', spaces or dashes, e.g. 5491140123456"
    raise refuse(400, "INVALID_PHONE_NUMBER", message, field="to")


def _check_type(value: JSON) -> str:
    """One of the ten message types."""
    if isinstance(value, str) and value in MESSAGE_TYPES:
        return value
    message = f"type {value!r} is not one of {', '.join(sorted(MESSAGE_TYPES))}"
    allowed: list[JSON] = [*sorted(MESSAGE_TYPES)]
    raise refuse(400, "INVALID_MESSAGE_TYPE", message, field="type", allowed=allowed)


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
        raise invalid("template.components", "must be an array")


def _check_media(part: JSON, kind: str) -> None:
    """A media object: a link to download or the id of an upload."""
    media = _as_object(part, kind)
    if not any(isinstance(media.get(key), str) and media.get(key) for key in ("link", "id")):
        message = f"{kind} needs a link or the id of an upload"
        raise refuse(400, "MISSING_REQUIRED_FIELD", message, field=kind, one_of=["link", "id"])


def _check_location(part: JSON, kind: str) -> None:
    """location: numeric latitude and longitude (numbers or numeric strings)."""
    location = _as_object(part, kind)
    for key in ("latitude", "longitude"):
        value = _get(location, key, f"location.{key}")
        if not _is_number(value):
            raise invalid(f"location.{key}", "must be a number")


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
        raise invalid("contacts", "must be a non-empty array")
    for index, card in enumerate(part):
        where = f"contacts[{index}]"
        name = _object(_as_object(card, where), "name", f"{where}.name")
        _string(name, "formatted_name", f"{where}.name.formatted_name", _NAME)


def _check_interactive(part: JSON, kind: str) -> None:
    """interactive: Meta's shape, within WhatsApp's limits."""
    interactive = _as_object(part, kind)
    style = _string(interactive, "type", "interactive.type", _NAME)
    if style not in INTERACTIVE_TYPES:
        raise invalid("interactive.type", f"{style!r} is not an interactive type")
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


def check_api_key(request: Request) -> str:
    """The caller's API key: present, with a known prefix."""
    key = request.headers.get("x-api-key")
    if not key:
        raise refuse(401, "INVALID_API_KEY", "X-API-Key header is required")
    if not key.startswith(API_KEY_PREFIXES):
        message = "API key is malformed: it must start with gsk_test_ or gsk_live_"
        raise refuse(401, "MALFORMED_API_KEY", message)
    return key


def media_type(request: Request) -> str:
    """The Content-Type without parameters, lower-cased."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def parse_json_object(request: Request, body: bytes) -> JSONObject:
    """The body as a JSON object: 415 for another content type, 400 for bad JSON."""
    if media_type(request) != "application/json":
        raise refuse(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise refuse(400, "INVALID_JSON", "the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise refuse(400, "INVALID_JSON", "the body must be a JSON object")
    return parsed


def idempotency_key_of(request: Request) -> str | None:
    """The Idempotency-Key header; a blank one is refused rather than ignored."""
    key = request.headers.get("idempotency-key")
    if key is not None and not key.strip():
        raise refuse(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must not be blank")
    return key


def fingerprint(message: JSONObject) -> str:
    """The body as canonical JSON: key order does not make a different body."""
    return json.dumps(message, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the first call with an Idempotency-Key sent and got."""

    fingerprint: str
    answer: Answer
    at: float


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted failure of `POST /v1/messages`."""

    status: int
    code: str
    retry_after: float | None

    def answer(self) -> Answer:
        """The error this fault answers, with Retry-After when it has a delay."""
        answer = error_answer(
            self.status, self.code, f"{HTTPStatus(self.status).phrase} (scripted)"
        )
        if self.retry_after is None:
            return answer
        answer.payload["retry_after_seconds"] = self.retry_after
        # Retry-After takes whole seconds: round up so that the header never says less.
        headers = {"Retry-After": str(math.ceil(self.retry_after))}
        return Answer(answer.status, answer.payload, headers)


class RollingLimit:
    """At most `limit` messages per phone_number_id in any rolling second; 429 past it.

    Only messages let through count: a client that waits as told gets through.
    """

    def __init__(self, limit: int, clock: Clock) -> None:
        if limit < 1:
            raise ValueError(f"rate_per_number must be at least 1, not {limit}")
        self.limit = limit
        self._clock = clock
        self._times: dict[str, deque[float]] = {}

    def check(self, phone_number_id: str) -> Answer | None:
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

    def _refusal(self, phone_number_id: str, wait: float) -> Answer:
        """The documented 429: retry_after_seconds in the body, Retry-After in whole seconds."""
        text = f"more than {self.limit} messages a second from phone number {phone_number_id}"
        answer = error_answer(429, "RATE_LIMITED", text, limit=self.limit)
        answer.payload["retry_after_seconds"] = round(max(wait, 0.001), 3)
        return Answer(429, answer.payload, {"Retry-After": str(max(1, math.ceil(wait)))})


def new_fault(status: int, retry_after: float | None, code: str | None) -> Fault:
    """A fault, validated; a 429 without a delay waits one second."""
    if status not in {s.value for s in HTTPStatus} or status < 400:
        raise ValueError(f"fail_next takes an HTTP error status (4xx or 5xx), not {status}")
    if retry_after is not None and retry_after < 0:
        raise ValueError(f"retry_after cannot be negative ({retry_after})")
    if status == 429 and retry_after is None:
        retry_after = 1
    return Fault(status, code or HTTPStatus(status).name, retry_after)
