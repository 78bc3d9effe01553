"""Tests for botkit.fake.provider: the fake provider over real HTTP semantics, webhooks out."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botkit.fake.provider import (
    Delivery,
    FakeGoSendAPI,
    ReceivedRequest,
    SentMessage,
)
from botkit.types import ManualClock

BASE = "http://gosendapi.test"
KEY = "gsk_test_0123456789abcdef"
PHONE = "555123456789"
USER = "5491140123456"
SECRET = "whsec_test_fake"
WEBHOOK = "http://bot.test/webhook"
DAY = 24 * 3600
DROP = object()  # patched(): remove the key instead of setting it


# --- Helpers: request bodies, a tiny bot that checks signatures on its own. ---


def text(body: str = "hola", **fields: Any) -> dict[str, Any]:
    """A valid text message body."""
    return {"phone_number_id": PHONE, "to": USER, "type": "text", "text": {"body": body}, **fields}


def reply_button(index: int) -> dict[str, Any]:
    """A reply button with a distinct id and title."""
    return {"type": "reply", "reply": {"id": f"b{index}", "title": f"Opción {index}"}}


def row(index: int) -> dict[str, Any]:
    """A list row with a distinct id."""
    return {"id": f"r{index}", "title": f"Fila {index}", "description": "Algo"}


def section(title: str, first: int, count: int) -> dict[str, Any]:
    """A titled section of `count` rows numbered from `first`."""
    return {"title": title, "rows": [row(i) for i in range(first, first + count)]}


BUTTONS: dict[str, Any] = {
    "phone_number_id": PHONE,
    "to": USER,
    "type": "interactive",
    "interactive": {
        "type": "button",
        "header": {"type": "text", "text": "Turno"},
        "body": {"text": "¿Confirmás el turno?"},
        "footer": {"text": "Clínica"},
        "action": {"buttons": [reply_button(0), reply_button(1)]},
    },
}
LIST: dict[str, Any] = {
    "phone_number_id": PHONE,
    "to": USER,
    "type": "interactive",
    "interactive": {
        "type": "list",
        "body": {"text": "Elegí una sede"},
        "action": {"button": "Ver sedes", "sections": [section("Sedes", 0, 2)]},
    },
}
TEMPLATE: dict[str, Any] = {
    "phone_number_id": PHONE,
    "to": USER,
    "type": "template",
    "template": {"name": "appointment_reminder", "language": {"code": "es_AR"}},
}


def patched(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the dotted `path` set to `value` (or removed for DROP)."""
    copied = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = copied
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DROP:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copied


async def post(
    api: httpx.AsyncClient,
    body: Any,
    *,
    key: str | None = KEY,
    idempotency_key: str | None = None,
) -> httpx.Response:
    """POST /v1/messages with an API key and, optionally, an Idempotency-Key."""
    headers = {}
    if key is not None:
        headers["X-API-Key"] = key
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return await api.post("/v1/messages", json=body, headers=headers)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Checks the documented error shape; returns its details."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return dict(body["details"])


def expected_signature(secret: str, body: bytes) -> str:
    """This test's own HMAC, independent of the fake's and of botkit.wire.signing."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a signature header, hex compared case-insensitively."""
    if header is None:
        return False
    return hmac.compare_digest(expected_signature(secret, body), header.lower())


class Receiver:
    """A tiny bot webhook: 401 on a bad signature, else records the body and answers 200."""

    def __init__(self, secret: str, status: int = 200) -> None:
        self.secret = secret
        self.status = status
        self.bodies: list[bytes] = []
        self.signatures: list[str | None] = []
        self.app = Starlette(routes=[Route("/webhook", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        header = request.headers.get("x-gosendapi-signature")
        self.signatures.append(header)
        if not signature_ok(self.secret, body, header):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.bodies.append(body)
        return JSONResponse({"ok": True, "event": json.loads(body)["id"]}, self.status)


# --- Fixtures. ---


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FakeGoSendAPI:
    return FakeGoSendAPI(clock=clock)


@pytest.fixture
async def api(fake: FakeGoSendAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(SECRET)


@pytest.fixture
async def wired(clock: ManualClock, receiver: Receiver) -> AsyncIterator[FakeGoSendAPI]:
    """A fake whose webhooks go to `receiver`."""
    transport = httpx.ASGITransport(app=receiver.app)
    async with FakeGoSendAPI(
        clock=clock, webhook_url=WEBHOOK, webhook_secret=SECRET, webhook_transport=transport
    ) as fake:
        yield fake


@pytest.fixture
async def wired_api(wired: FakeGoSendAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=wired.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def open_now(fake: FakeGoSendAPI, clock: ManualClock) -> None:
    """Opens the window for USER on PHONE as if the user had just written."""
    fake.open_window(PHONE, USER, clock.now())


# --- POST /v1/messages: success. ---


@pytest.mark.anyio
async def test_accepted_message_answers_ids_and_is_recorded(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    response = await post(api, text("Hola, Juan"), idempotency_key="evt_1:0")
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("wamid.")
    assert body["messages"] == [{"id": body["id"]}]
    assert body["messaging_product"] == "whatsapp"
    assert fake.messages == [
        SentMessage(body["id"], PHONE, USER, "text", text("Hola, Juan"), "evt_1:0", clock.now())
    ]
    [request] = fake.requests
    assert (request.method, request.path, request.status) == ("POST", "/v1/messages", 200)
    assert request.headers["x-api-key"] == KEY
    assert json.loads(request.body) == text("Hola, Juan")
    assert request.response == body


@pytest.mark.anyio
async def test_every_message_gets_a_new_id(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    ids = {(await post(api, text())).json()["id"] for _ in range(5)}
    assert len(ids) == 5
    assert [m.message_id for m in fake.messages_to(USER)] == [m.message_id for m in fake.messages]
    assert fake.messages_to("5491100000000") == []


# --- Authentication, content type, JSON. ---


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "INVALID_API_KEY"),
        ("", "INVALID_API_KEY"),
        ("sk_live_123", "MALFORMED_API_KEY"),
        ("gsk_prod_123", "MALFORMED_API_KEY"),
        ("GSK_TEST_123", "MALFORMED_API_KEY"),
    ],
)
async def test_api_key_is_required_and_checked(
    fake: FakeGoSendAPI, api: httpx.AsyncClient, key: str | None, code: str
) -> None:
    response = await post(api, text(), key=key)
    assert_error(response, 401, code)
    assert response.json()["error"] == "Unauthorized"
    assert fake.messages == []
    assert [r.status for r in fake.requests] == [401]


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["gsk_test_x", "gsk_live_x"])
async def test_both_key_prefixes_are_accepted(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient, key: str
) -> None:
    open_now(fake, clock)
    assert (await post(api, text(), key=key)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_declared_json_is_415(
    fake: FakeGoSendAPI, api: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"X-API-Key": KEY}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await api.post("/v1/messages", content=json.dumps(text()), headers=headers)
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert fake.messages == []


@pytest.mark.anyio
async def test_json_with_a_charset_parameter_is_json(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    headers = {"X-API-Key": KEY, "Content-Type": "application/json; charset=utf-8"}
    response = await api.post("/v1/messages", content=json.dumps(text()), headers=headers)
    assert response.status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""])
async def test_a_body_that_is_not_a_json_object_is_400(api: httpx.AsyncClient, raw: bytes) -> None:
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    response = await api.post("/v1/messages", content=raw, headers=headers)
    assert_error(response, 400, "INVALID_JSON")


# --- Fields, numbers, types. ---


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("phone_number_id", "phone_number_id"),
        ("to", "to"),
        ("type", "type"),
        ("text", "text"),
        ("text.body", "text.body"),
    ],
)
async def test_missing_fields_are_named(api: httpx.AsyncClient, path: str, field: str) -> None:
    details = assert_error(
        await post(api, patched(text(), path, DROP)), 400, "MISSING_REQUIRED_FIELD"
    )
    assert details["field"] == field


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["+555123456789", "555 123", "abc", 555123456789, ""])
async def test_phone_number_id_must_be_a_string_of_digits(
    api: httpx.AsyncClient, value: Any
) -> None:
    response = await post(api, text(phone_number_id=value))
    assert_error(response, 400, "INVALID_PHONE_NUMBER_ID")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "to",
    [
        "+5491140123456",
        "549 11 4012 3456",
        "549-11-4012-3456",
        "(549)1140123456",
        "05491140123456",
        "1234567",
        "1234567890123456",
        "549114012345a",
        "".join(chr(0xFF10 + int(digit)) for digit in USER),  # full-width digits: not ASCII
        5491140123456,
    ],
)
async def test_to_must_be_e164_digits(api: httpx.AsyncClient, to: Any) -> None:
    details = assert_error(await post(api, text(to=to)), 400, "INVALID_PHONE_NUMBER")
    assert details["field"] == "to"


@pytest.mark.anyio
@pytest.mark.parametrize("to", ["12345678", "123456789012345", USER])
async def test_e164_lengths_8_to_15_are_accepted(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient, to: str
) -> None:
    fake.open_window(PHONE, to, clock.now())
    assert (await post(api, text(to=to))).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["reaction", "sms", "TEXT", "button"])
async def test_unknown_message_types_are_refused(api: httpx.AsyncClient, kind: str) -> None:
    body = {"phone_number_id": PHONE, "to": USER, "type": kind, kind: {"x": 1}}
    details = assert_error(await post(api, body), 400, "INVALID_MESSAGE_TYPE")
    assert details["field"] == "type"
    assert "reaction" not in details["allowed"]
    assert len(details["allowed"]) == 10


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "length"), [("", 0), ("   ", 3), ("x" * 4097, 4097)], ids=["empty", "blank", "4097"]
)
async def test_text_body_must_have_1_to_4096_characters(
    api: httpx.AsyncClient, body: str, length: int
) -> None:
    details = assert_error(await post(api, text(body)), 400, "INVALID_PARAMETER")
    assert details["field"] == "text.body"
    if length > 4096:
        assert details["limit"] == 4096


@pytest.mark.anyio
async def test_text_body_of_4096_characters_is_accepted(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    assert (await post(api, text("é" * 4096))).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["image", "video", "audio", "document", "sticker"])
@pytest.mark.parametrize("media", [{}, {"caption": "Mi receta"}, {"link": ""}])
async def test_media_needs_a_link_or_an_id(
    api: httpx.AsyncClient, kind: str, media: dict[str, Any]
) -> None:
    body = {"phone_number_id": PHONE, "to": USER, "type": kind, kind: media}
    details = assert_error(await post(api, body), 400, "MISSING_REQUIRED_FIELD")
    assert details["field"] == kind


@pytest.mark.anyio
@pytest.mark.parametrize(
    "media", [{"link": "https://example.com/a.jpg", "caption": "x"}, {"id": "2754859441498128"}]
)
async def test_media_by_link_or_id_is_accepted(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient, media: dict[str, Any]
) -> None:
    open_now(fake, clock)
    body = {"phone_number_id": PHONE, "to": USER, "type": "image", "image": media}
    assert (await post(api, body)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (patched(TEMPLATE, "template.name", DROP), "MISSING_REQUIRED_FIELD", "template.name"),
        (
            patched(TEMPLATE, "template.language", {}),
            "MISSING_REQUIRED_FIELD",
            "template.language.code",
        ),
        (patched(TEMPLATE, "template.components", {}), "INVALID_PARAMETER", "template.components"),
        (
            {"phone_number_id": PHONE, "to": USER, "type": "location", "location": {"latitude": 1}},
            "MISSING_REQUIRED_FIELD",
            "location.longitude",
        ),
        (
            {
                "phone_number_id": PHONE,
                "to": USER,
                "type": "location",
                "location": {"latitude": "north", "longitude": 2},
            },
            "INVALID_PARAMETER",
            "location.latitude",
        ),
        (
            {"phone_number_id": PHONE, "to": USER, "type": "contacts", "contacts": []},
            "INVALID_PARAMETER",
            "contacts",
        ),
        (
            {"phone_number_id": PHONE, "to": USER, "type": "contacts", "contacts": [{"x": 1}]},
            "MISSING_REQUIRED_FIELD",
            "contacts[0].name",
        ),
    ],
    ids=["tpl-name", "tpl-lang", "tpl-components", "loc-missing", "loc-nan", "cards-0", "card"],
)
async def test_other_types_are_checked(
    api: httpx.AsyncClient, body: dict[str, Any], code: str, field: str
) -> None:
    assert assert_error(await post(api, body), 400, code)["field"] == field


@pytest.mark.anyio
async def test_location_and_contacts_are_accepted(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    location = {"latitude": -34.6037, "longitude": "-58.3816", "name": "Obelisco"}
    card = {"name": {"formatted_name": "Clínica"}, "phones": [{"phone": "+5491140000000"}]}
    for kind, part in [("location", location), ("contacts", [card])]:
        body = {"phone_number_id": PHONE, "to": USER, "type": kind, kind: part}
        assert (await post(api, body)).status_code == 200
    assert [m.type for m in fake.messages] == ["location", "contacts"]


# --- Interactive limits. ---

INTERACTIVE_REFUSALS = [
    # (base, path, value, code, field, limit)
    (BUTTONS, "interactive.action.buttons", [reply_button(i) for i in range(4)],
     "INVALID_PARAMETER", "interactive.action.buttons", 3),
    (BUTTONS, "interactive.action.buttons", [],
     "INVALID_PARAMETER", "interactive.action.buttons", 3),
    (BUTTONS, "interactive.action.buttons.0.reply.title", "x" * 21,
     "INVALID_PARAMETER", "interactive.action.buttons[0].reply.title", 20),
    (BUTTONS, "interactive.action.buttons.0.reply.title", "",
     "INVALID_PARAMETER", "interactive.action.buttons[0].reply.title", None),
    (BUTTONS, "interactive.action.buttons.1.reply.id", "x" * 257,
     "INVALID_PARAMETER", "interactive.action.buttons[1].reply.id", 256),
    (BUTTONS, "interactive.action.buttons.1.reply.id", " b1",
     "INVALID_PARAMETER", "interactive.action.buttons[1].reply.id", None),
    (BUTTONS, "interactive.action.buttons.1.reply.id", "b1 ",
     "INVALID_PARAMETER", "interactive.action.buttons[1].reply.id", None),
    (BUTTONS, "interactive.action.buttons.1.reply.id", "b0",
     "INVALID_PARAMETER", "interactive.action.buttons", None),
    (BUTTONS, "interactive.action.buttons.1.reply", DROP,
     "MISSING_REQUIRED_FIELD", "interactive.action.buttons[1].reply", None),
    (BUTTONS, "interactive.header.text", "x" * 61,
     "INVALID_PARAMETER", "interactive.header.text", 60),
    (BUTTONS, "interactive.footer.text", "x" * 61,
     "INVALID_PARAMETER", "interactive.footer.text", 60),
    (BUTTONS, "interactive.body.text", "x" * 1025,
     "INVALID_PARAMETER", "interactive.body.text", 1024),
    (BUTTONS, "interactive.body", DROP,
     "MISSING_REQUIRED_FIELD", "interactive.body", None),
    (BUTTONS, "interactive.action", DROP,
     "MISSING_REQUIRED_FIELD", "interactive.action", None),
    (BUTTONS, "interactive.type", "carousel",
     "INVALID_PARAMETER", "interactive.type", None),
    (LIST, "interactive.body.text", "x" * 4097,
     "INVALID_PARAMETER", "interactive.body.text", 4096),
    (LIST, "interactive.action.button", "x" * 21,
     "INVALID_PARAMETER", "interactive.action.button", 20),
    (LIST, "interactive.action.sections", [section(f"S{i}", i, 1) for i in range(11)],
     "INVALID_PARAMETER", "interactive.action.sections", 10),
    (LIST, "interactive.action.sections", [],
     "INVALID_PARAMETER", "interactive.action.sections", 10),
    (LIST, "interactive.action.sections", [section("A", 0, 6), section("B", 6, 5)],
     "INVALID_PARAMETER", "interactive.action.sections[*].rows", 10),
    (LIST, "interactive.action.sections", [section("A", 0, 11)],
     "INVALID_PARAMETER", "interactive.action.sections[0].rows", 10),
    (LIST, "interactive.action.sections", [section("A", 0, 2), section("B", 1, 2)],
     "INVALID_PARAMETER", "interactive.action.sections[*].rows", None),
    (LIST, "interactive.action.sections", [section("A", 0, 1), {"rows": [row(1)]}],
     "MISSING_REQUIRED_FIELD", "interactive.action.sections[1].title", None),
    (LIST, "interactive.action.sections.0.title", "x" * 25,
     "INVALID_PARAMETER", "interactive.action.sections[0].title", 24),
    (LIST, "interactive.action.sections.0.rows.1.id", "x" * 201,
     "INVALID_PARAMETER", "interactive.action.sections[0].rows[1].id", 200),
    (LIST, "interactive.action.sections.0.rows.1.title", "x" * 25,
     "INVALID_PARAMETER", "interactive.action.sections[0].rows[1].title", 24),
    (LIST, "interactive.action.sections.0.rows.1.description", "x" * 73,
     "INVALID_PARAMETER", "interactive.action.sections[0].rows[1].description", 72),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(("base", "path", "value", "code", "field", "limit"), INTERACTIVE_REFUSALS)
async def test_interactive_limits_name_the_field(
    fake: FakeGoSendAPI,
    clock: ManualClock,
    api: httpx.AsyncClient,
    base: dict[str, Any],
    path: str,
    value: Any,
    code: str,
    field: str,
    limit: int | None,
) -> None:
    open_now(fake, clock)  # the window is open: only the limit can refuse
    response = await post(api, patched(base, path, value))
    details = assert_error(response, 400, code)
    assert details["field"] == field
    assert field in response.json()["message"]
    if limit is not None:
        assert details["limit"] == limit
    assert fake.messages == []


INTERACTIVE_AT_THE_LIMIT = [
    (BUTTONS, "interactive.action.buttons", [
        {"type": "reply", "reply": {"id": str(i) * 256, "title": str(i) * 20}} for i in range(3)
    ]),
    (BUTTONS, "interactive.action.buttons", [reply_button(0)]),
    (BUTTONS, "interactive.header.text", "x" * 60),
    (BUTTONS, "interactive.header", {"type": "image", "image": {"id": "123"}}),
    (BUTTONS, "interactive.footer.text", "x" * 60),
    (BUTTONS, "interactive.body.text", "x" * 1024),
    (LIST, "interactive.body.text", "x" * 4096),
    (LIST, "interactive.action.button", "x" * 20),
    (LIST, "interactive.action.sections", [section("A" * 24, 0, 6), section("B", 6, 4)]),
    (LIST, "interactive.action.sections", [section("S", 0, 10)]),
    (LIST, "interactive.action.sections", [section(f"S{i}", i, 1) for i in range(10)]),
    (LIST, "interactive.action.sections", [{"rows": [row(0)]}]),  # one section needs no title
    (LIST, "interactive.action.sections.0.rows.0",
     {"id": "i" * 200, "title": "t" * 24, "description": "d" * 72}),
    (LIST, "interactive.action.sections.0.rows.0", {"id": "no-description", "title": "T"}),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(("base", "path", "value"), INTERACTIVE_AT_THE_LIMIT)
async def test_interactive_at_the_limits_is_accepted(
    fake: FakeGoSendAPI,
    clock: ManualClock,
    api: httpx.AsyncClient,
    base: dict[str, Any],
    path: str,
    value: Any,
) -> None:
    open_now(fake, clock)
    response = await post(api, patched(base, path, value))
    assert response.status_code == 200, response.text
    assert fake.messages[0].type == "interactive"


# --- The 24-hour window. ---


@pytest.mark.anyio
async def test_free_form_to_a_user_who_never_wrote_is_403(
    fake: FakeGoSendAPI, api: httpx.AsyncClient
) -> None:
    response = await post(api, text())
    assert_error(response, 403, "WINDOW_CLOSED")
    assert response.json()["error"] == "Forbidden"
    assert "24-hour" in response.json()["message"]
    assert fake.messages == []
    assert fake.requests[0].status == 403


@pytest.mark.anyio
async def test_window_is_measured_from_the_inbound_timestamp(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    fake.open_window(PHONE, USER, clock.now() - 3600)  # the user wrote an hour ago
    clock.advance(DAY - 3600 - 1)
    assert fake.window_open(PHONE, USER)
    assert (await post(api, text())).status_code == 200
    clock.advance(1)
    assert not fake.window_open(PHONE, USER)
    assert_error(await post(api, text()), 403, "WINDOW_CLOSED")


@pytest.mark.anyio
async def test_the_business_own_messages_do_not_extend_the_window(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    for _ in range(3):
        clock.advance(DAY / 3 - 10)
        assert (await post(api, text())).status_code == 200
    clock.advance(30)
    assert_error(await post(api, text()), 403, "WINDOW_CLOSED")


@pytest.mark.anyio
async def test_a_template_is_allowed_with_the_window_closed(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    assert not fake.window_open(PHONE, USER)
    response = await post(api, TEMPLATE)
    assert response.status_code == 200
    assert fake.messages[0].type == "template"


@pytest.mark.anyio
async def test_the_window_is_per_business_number(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    assert_error(await post(api, text(phone_number_id="555000000001")), 403, "WINDOW_CLOSED")
    assert (await post(api, text())).status_code == 200


def test_the_latest_inbound_wins_and_never_moves_back(
    fake: FakeGoSendAPI, clock: ManualClock
) -> None:
    fake.open_window(PHONE, USER, clock.now())
    fake.open_window(PHONE, USER, clock.now() - DAY)  # a late redelivery of an old message
    clock.advance(DAY - 1)
    assert fake.window_open(PHONE, USER)
    clock.advance(1)
    assert not fake.window_open(PHONE, USER)


@pytest.mark.anyio
async def test_enforce_window_false_sends_anything(clock: ManualClock) -> None:
    fake = FakeGoSendAPI(clock=clock, enforce_window=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url=BASE) as api:
        assert (await post(api, text())).status_code == 200


# --- Idempotency. ---


@pytest.mark.anyio
async def test_same_key_and_body_replays_the_first_answer_and_sends_once(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    first = await post(api, text(), idempotency_key="evt_1:0")
    clock.advance(60)
    again = await post(api, text(), idempotency_key="evt_1:0")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert len(fake.messages) == 1
    assert [r.status for r in fake.requests] == [200, 200]


@pytest.mark.anyio
async def test_key_order_in_the_body_does_not_make_another_body(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    first = await post(api, text(), idempotency_key="k")
    reordered = dict(reversed(list(text().items())))
    assert (await post(api, reordered, idempotency_key="k")).json() == first.json()
    assert len(fake.messages) == 1


@pytest.mark.anyio
async def test_same_key_with_another_body_is_409(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    await post(api, text("uno"), idempotency_key="evt_1:0")
    details = assert_error(
        await post(api, text("dos"), idempotency_key="evt_1:0"), 409, "IDEMPOTENCY_KEY_REUSED"
    )
    assert details["field"] == "Idempotency-Key"
    assert len(fake.messages) == 1


@pytest.mark.anyio
async def test_a_refused_send_keeps_its_key_so_a_fallback_needs_its_own(
    fake: FakeGoSendAPI, api: httpx.AsyncClient
) -> None:
    assert_error(await post(api, text(), idempotency_key="evt_1:0"), 403, "WINDOW_CLOSED")
    replay = await post(api, text(), idempotency_key="evt_1:0")
    assert_error(replay, 403, "WINDOW_CLOSED")
    assert_error(
        await post(api, TEMPLATE, idempotency_key="evt_1:0"), 409, "IDEMPOTENCY_KEY_REUSED"
    )
    assert (await post(api, TEMPLATE, idempotency_key="evt_1:0:fallback")).status_code == 200


@pytest.mark.anyio
async def test_keys_expire_after_24_hours(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    first = await post(api, TEMPLATE, idempotency_key="k")
    clock.advance(DAY - 1)
    assert (await post(api, TEMPLATE, idempotency_key="k")).json() == first.json()
    clock.advance(1)
    fresh = await post(api, TEMPLATE, idempotency_key="k")
    assert fresh.status_code == 200
    assert fresh.json()["id"] != first.json()["id"]
    assert len(fake.messages) == 2


@pytest.mark.anyio
async def test_a_blank_idempotency_key_is_refused(api: httpx.AsyncClient) -> None:
    response = await post(api, TEMPLATE, idempotency_key=" ")
    assert_error(response, 400, "INVALID_IDEMPOTENCY_KEY")


# --- Scripted faults. ---


@pytest.mark.anyio
async def test_503_then_ok_and_the_retry_with_the_same_key_sends(
    fake: FakeGoSendAPI, api: httpx.AsyncClient
) -> None:
    fake.fail_next(503)
    details = assert_error(
        await post(api, TEMPLATE, idempotency_key="k"), 503, "SERVICE_UNAVAILABLE"
    )
    assert details == {}
    assert fake.messages == []
    assert (await post(api, TEMPLATE, idempotency_key="k")).status_code == 200
    assert len(fake.messages) == 1
    assert [r.status for r in fake.requests] == [503, 200]


@pytest.mark.anyio
async def test_faults_queue_in_order(fake: FakeGoSendAPI, api: httpx.AsyncClient) -> None:
    fake.fail_next(503, times=2)
    fake.fail_next(500, code="UPSTREAM_ERROR")
    fake.fail_next(403, code="TEMPLATE_NOT_IN_WABA")
    statuses = [(await post(api, TEMPLATE)).status_code for _ in range(5)]
    assert statuses == [503, 503, 500, 403, 200]
    assert fake.requests[2].response["code"] == "UPSTREAM_ERROR"
    assert fake.requests[3].response["code"] == "TEMPLATE_NOT_IN_WABA"
    assert len(fake.messages) == 1


@pytest.mark.anyio
async def test_429_carries_retry_after_in_header_and_body(
    fake: FakeGoSendAPI, api: httpx.AsyncClient
) -> None:
    fake.fail_next(429, retry_after=2.5)
    fake.fail_next(429)
    response = await post(api, TEMPLATE)
    assert_error(response, 429, "TOO_MANY_REQUESTS")
    assert response.json()["retry_after_seconds"] == 2.5
    assert response.headers["Retry-After"] == "3"  # whole seconds, never less than the body
    default = await post(api, TEMPLATE)
    assert default.json()["retry_after_seconds"] == 1
    assert default.headers["Retry-After"] == "1"


@pytest.mark.anyio
async def test_faults_apply_before_validation_but_after_auth(
    fake: FakeGoSendAPI, api: httpx.AsyncClient
) -> None:
    fake.fail_next(500)
    assert_error(await post(api, TEMPLATE, key=None), 401, "INVALID_API_KEY")
    assert_error(await post(api, {"bad": "body"}), 500, "INTERNAL_SERVER_ERROR")
    assert (await post(api, TEMPLATE)).status_code == 200


@pytest.mark.parametrize(
    ("status", "kwargs"),
    [(200, {}), (302, {}), (999, {}), (503, {"times": 0}), (429, {"retry_after": -1})],
)
def test_fail_next_refuses_nonsense(
    fake: FakeGoSendAPI, status: int, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        fake.fail_next(status, **kwargs)


# --- GET /v1/messages/{id}. ---


@pytest.mark.anyio
async def test_get_message_reports_its_status(fake: FakeGoSendAPI, api: httpx.AsyncClient) -> None:
    message_id = (await post(api, TEMPLATE)).json()["id"]
    response = await api.get(f"/v1/messages/{message_id}", headers={"X-API-Key": KEY})
    assert response.status_code == 200
    assert response.json()["id"] == message_id
    assert response.json()["recipient_id"] == USER
    assert response.json()["status"] == "accepted"
    missing = await api.get("/v1/messages/wamid.nope", headers={"X-API-Key": KEY})
    assert_error(missing, 404, "MESSAGE_NOT_FOUND")
    assert_error(await api.get(f"/v1/messages/{message_id}"), 401, "INVALID_API_KEY")


@pytest.mark.anyio
async def test_unknown_routes_answer_in_the_error_shape(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/v2/nothing"), 404, "NOT_FOUND")
    assert_error(await api.get("/v1/media"), 405, "METHOD_NOT_ALLOWED")


# --- POST /v1/media. ---


@pytest.mark.anyio
async def test_media_upload_answers_an_id(fake: FakeGoSendAPI, api: httpx.AsyncClient) -> None:
    files = {"file": ("receta.jpg", b"\xff\xd8\xff jpeg bytes", "image/jpeg")}
    data = {"phone_number_id": PHONE, "type": "image/jpeg"}
    response = await api.post("/v1/media", data=data, files=files, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    media_id = response.json()["id"]
    assert isinstance(media_id, str) and media_id.isdigit()
    [request] = fake.requests
    assert (request.path, request.status) == ("/v1/media", 200)
    assert b"jpeg bytes" in request.body
    assert (await api.get("/_fake/stats")).json()["media"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize("missing", ["phone_number_id", "file", "type"])
async def test_media_upload_needs_every_field(
    fake: FakeGoSendAPI, api: httpx.AsyncClient, missing: str
) -> None:
    data = {"phone_number_id": PHONE, "type": "image/jpeg"}
    files = {"file": ("receta.jpg", b"bytes", "image/jpeg")}
    data.pop(missing, None)
    files.pop(missing, None)
    if not files:  # a plain field named "file", and a file under another name
        data["file"] = "not a file"
        files["attachment"] = ("receta.jpg", b"bytes", "image/jpeg")
    response = await api.post("/v1/media", data=data, files=files, headers={"X-API-Key": KEY})
    assert assert_error(response, 400, "MISSING_REQUIRED_FIELD")["field"] == missing
    assert fake.requests[0].status == 400


@pytest.mark.anyio
async def test_media_upload_checks_key_and_content_type(api: httpx.AsyncClient) -> None:
    files = {"file": ("a.jpg", b"bytes", "image/jpeg")}
    data = {"phone_number_id": PHONE, "type": "image/jpeg"}
    assert_error(await api.post("/v1/media", data=data, files=files), 401, "INVALID_API_KEY")
    as_json = await api.post("/v1/media", json=data, headers={"X-API-Key": KEY})
    assert_error(as_json, 415, "UNSUPPORTED_MEDIA_TYPE")


# --- Webhooks out: receive, redeliver, send_status. ---


def test_the_receivers_own_check_matches_the_fixture(fixtures_dir: Path) -> None:
    vector = json.loads((fixtures_dir / "signed_body.json").read_text())
    body = (fixtures_dir / vector["body_file"]).read_bytes()
    assert vector["header"] == "X-GoSendAPI-Signature"
    assert signature_ok(vector["secret"], body, vector["value"])
    assert signature_ok(vector["secret"], body, vector["value"].upper().replace("SHA256", "sha256"))
    assert not signature_ok(vector["secret"], body + b" ", vector["value"])
    assert not signature_ok("whsec_other", body, vector["value"])


@pytest.mark.anyio
async def test_the_fake_signs_exactly_like_the_fixture(fixtures_dir: Path) -> None:
    vector = json.loads((fixtures_dir / "signed_body.json").read_text())
    body = (fixtures_dir / vector["body_file"]).read_bytes()
    receiver = Receiver(vector["secret"])
    async with FakeGoSendAPI(
        webhook_url=WEBHOOK,
        webhook_secret=vector["secret"],
        webhook_transport=httpx.ASGITransport(app=receiver.app),
    ) as fake:
        delivery = await fake.redeliver(Delivery(json.loads(body), body, 0, None))
    assert delivery.status_code == 200
    assert receiver.signatures == [vector["value"]]
    assert receiver.bodies == [body]


@pytest.mark.anyio
async def test_receive_posts_a_signed_envelope_shaped_like_the_fixtures(
    wired: FakeGoSendAPI, receiver: Receiver, clock: ManualClock, fixtures_dir: Path
) -> None:
    delivery = await wired.receive(
        wa_id=USER, name="Juan", message={"type": "text", "text": {"body": "Sí, hola"}}
    )
    assert delivery.status_code == 200
    assert receiver.bodies == [delivery.body]
    assert delivery.response == {"ok": True, "event": delivery.envelope["id"]}
    assert json.loads(delivery.body) == delivery.envelope
    assert "Sí".encode() in delivery.body  # UTF-8, compact, like signed_body.bin
    fixture = json.loads((fixtures_dir / "text.json").read_text())
    envelope: Any = delivery.envelope
    assert envelope.keys() == fixture.keys()
    assert envelope["type"] == "whatsapp.message.received"
    assert envelope["id"].startswith("evt_")
    assert envelope["created_at"] == "2026-05-19T14:00:00Z"
    assert envelope["phone_number_id"] == PHONE
    assert envelope["data"]["contact"] == fixture["data"]["contact"]
    message = envelope["data"]["message"]
    assert message.keys() == fixture["data"]["message"].keys()
    assert message["from"] == USER
    assert message["id"].startswith("wamid.")
    assert message["timestamp"] == str(int(clock.now()))
    assert message["text"] == {"body": "Sí, hola"}


@pytest.mark.anyio
async def test_receive_carries_context_and_opens_the_window_from_its_timestamp(
    wired: FakeGoSendAPI, clock: ManualClock, fixtures_dir: Path
) -> None:
    tap: dict[str, Any] = {"type": "interactive", "interactive": {"type": "button_reply",
           "button_reply": {"id": "confirm_yes", "title": "Sí, confirmo"}}}  # fmt: skip
    written = clock.now() - 3600
    delivery = await wired.receive(
        wa_id=USER, message=tap, context_id="wamid.out.0001", timestamp=written
    )
    message: Any = delivery.envelope["data"]
    fixture = json.loads((fixtures_dir / "button_reply.json").read_text())["data"]["message"]
    assert message["message"]["context"] == fixture["context"]
    assert message["message"]["interactive"] == fixture["interactive"]
    assert message["message"]["timestamp"] == str(int(written))
    assert "profile" not in message["contact"]
    clock.advance(DAY - 3601)
    assert wired.window_open(PHONE, USER)
    clock.advance(1)
    assert not wired.window_open(PHONE, USER)


@pytest.mark.anyio
async def test_each_received_message_has_its_own_ids(wired: FakeGoSendAPI) -> None:
    part: dict[str, Any] = {"type": "text", "text": {"body": "hola"}}
    first, second = [await wired.receive(wa_id=USER, message=part) for _ in range(2)]
    envelopes: list[Any] = [first.envelope, second.envelope]
    assert envelopes[0]["id"] != envelopes[1]["id"]
    assert envelopes[0]["data"]["message"]["id"] != envelopes[1]["data"]["message"]["id"]


@pytest.mark.anyio
async def test_a_wrong_secret_is_caught_by_the_receiver(
    clock: ManualClock, receiver: Receiver
) -> None:
    async with FakeGoSendAPI(
        clock=clock,
        webhook_url=WEBHOOK,
        webhook_secret="whsec_wrong",
        webhook_transport=httpx.ASGITransport(app=receiver.app),
    ) as fake:
        delivery = await fake.receive(wa_id=USER, message={"type": "text", "text": {"body": "x"}})
    assert delivery.status_code == 401
    assert delivery.response == {"error": "bad signature"}
    assert receiver.bodies == []


@pytest.mark.anyio
async def test_redeliver_sends_identical_bytes(
    wired: FakeGoSendAPI, receiver: Receiver, clock: ManualClock
) -> None:
    first = await wired.receive(wa_id=USER, message={"type": "text", "text": {"body": "x"}})
    clock.advance(60)
    again = await wired.redeliver(first)
    assert receiver.bodies == [first.body, first.body]
    assert receiver.signatures[0] == receiver.signatures[1]
    assert (again.envelope, again.body, again.status_code) == (
        first.envelope,
        first.body,
        first.status_code,
    )


@pytest.mark.anyio
async def test_redeliver_does_not_re_encode(
    wired: FakeGoSendAPI, receiver: Receiver, fixtures_dir: Path
) -> None:
    pretty = (fixtures_dir / "text.json").read_bytes()  # indented: not what the fake would write
    delivery = await wired.redeliver(Delivery(json.loads(pretty), pretty, 0, None))
    assert delivery.status_code == 200
    assert receiver.bodies == [pretty]
    assert delivery.body == pretty


@pytest.mark.anyio
async def test_the_webhook_answer_is_returned_as_is(clock: ManualClock) -> None:
    def bot(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="busy")

    async with FakeGoSendAPI(
        clock=clock, webhook_url=WEBHOOK, webhook_transport=httpx.MockTransport(bot)
    ) as fake:
        delivery = await fake.receive(wa_id=USER, message={"type": "text", "text": {"body": "x"}})
    assert (delivery.status_code, delivery.response) == (503, "busy")


@pytest.mark.anyio
async def test_receive_without_a_webhook_url_says_so(fake: FakeGoSendAPI) -> None:
    with pytest.raises(RuntimeError, match="webhook_url"):
        await fake.receive(wa_id=USER, message={"type": "text", "text": {"body": "x"}})


@pytest.mark.anyio
async def test_receive_needs_a_typed_message(wired: FakeGoSendAPI) -> None:
    with pytest.raises(ValueError, match="type"):
        await wired.receive(wa_id=USER, message={"text": {"body": "x"}})


@pytest.mark.anyio
async def test_send_status_reports_on_a_sent_message(
    wired: FakeGoSendAPI, wired_api: httpx.AsyncClient, clock: ManualClock, fixtures_dir: Path
) -> None:
    message_id = (await post(wired_api, TEMPLATE)).json()["id"]
    clock.advance(5)
    delivery = await wired.send_status(message_id, "delivered")
    fixture = json.loads((fixtures_dir / "status_delivered.json").read_text())
    envelope: Any = delivery.envelope
    assert envelope.keys() == fixture.keys()
    assert envelope["type"] == "whatsapp.message.delivered"
    assert envelope["phone_number_id"] == PHONE
    assert envelope["data"]["status"] == {
        "id": message_id,
        "status": "delivered",
        "timestamp": str(int(clock.now())),
        "recipient_id": USER,
    }
    assert delivery.status_code == 200
    record = await wired_api.get(f"/v1/messages/{message_id}", headers={"X-API-Key": KEY})
    assert record.json()["status"] == "delivered"


@pytest.mark.anyio
async def test_send_status_failed_carries_errors(
    wired: FakeGoSendAPI, wired_api: httpx.AsyncClient, fixtures_dir: Path
) -> None:
    message_id = (await post(wired_api, TEMPLATE)).json()["id"]
    fixture = json.loads((fixtures_dir / "status_failed.json").read_text())
    errors = fixture["data"]["status"]["errors"]
    delivery = await wired.send_status(message_id, "failed", errors=errors)
    status: Any = delivery.envelope["data"]
    assert delivery.envelope["type"] == "whatsapp.message.failed"
    assert status["status"]["errors"] == errors
    assert status["status"].keys() == fixture["data"]["status"].keys()


@pytest.mark.anyio
async def test_send_status_refuses_unknown_ids_and_statuses(
    wired: FakeGoSendAPI, wired_api: httpx.AsyncClient
) -> None:
    with pytest.raises(KeyError, match=r"wamid\.nope"):
        await wired.send_status("wamid.nope", "read")
    message_id = (await post(wired_api, TEMPLATE)).json()["id"]
    with pytest.raises(ValueError, match="delivred"):
        await wired.send_status(message_id, "delivred")


# --- Control endpoints. ---


@pytest.mark.anyio
async def test_fake_messages_lists_what_was_sent(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    other = "5491100000000"
    await post(api, TEMPLATE, idempotency_key="k1")
    await post(api, patched(TEMPLATE, "to", other))
    everything = (await api.get("/_fake/messages")).json()
    assert [m["to"] for m in everything] == [USER, other]
    assert everything[0] == {
        "message_id": fake.messages[0].message_id,
        "phone_number_id": PHONE,
        "to": USER,
        "type": "template",
        "body": TEMPLATE,
        "idempotency_key": "k1",
        "at": clock.now(),
    }
    only = (await api.get("/_fake/messages", params={"to": other})).json()
    assert [m["to"] for m in only] == [other]


@pytest.mark.anyio
async def test_fake_fail_scripts_faults_over_http(api: httpx.AsyncClient) -> None:
    spec = {"status": 429, "times": 2, "retry_after": 7, "code": "SLOW_DOWN"}
    assert (await api.post("/_fake/fail", json=spec)).json() == {"pending_faults": 2}
    for _ in range(2):
        response = await post(api, TEMPLATE)
        assert_error(response, 429, "SLOW_DOWN")
        assert response.headers["Retry-After"] == "7"
    assert (await post(api, TEMPLATE)).status_code == 200
    bad = await api.post("/_fake/fail", json={"status": 200})
    assert_error(bad, 400, "INVALID_PARAMETER")
    assert_error(await api.post("/_fake/fail", json={"times": 1}), 400, "INVALID_PARAMETER")


@pytest.mark.anyio
async def test_fake_inbound_calls_the_webhook_and_answers_what_it_answered(
    wired: FakeGoSendAPI, wired_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    response = await wired_api.post(
        "/_fake/inbound", json={"wa_id": USER, "name": "Juan", "text": "hola"}
    )
    assert response.status_code == 200
    [body] = receiver.bodies
    envelope = json.loads(body)
    assert response.json() == {"ok": True, "event": envelope["id"]}
    assert envelope["data"]["message"]["text"] == {"body": "hola"}
    assert envelope["data"]["contact"]["profile"] == {"name": "Juan"}
    assert wired.window_open(PHONE, USER)
    assert (await post(wired_api, text())).status_code == 200


@pytest.mark.anyio
async def test_fake_inbound_takes_a_meta_part_and_context(
    wired_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    part = {"type": "button", "button": {"payload": "confirm_yes_apt_123", "text": "Confirmar"}}
    spec = {"wa_id": USER, "message": part, "phone_number_id": "555000000001", "context_id": "w1"}
    assert (await wired_api.post("/_fake/inbound", json=spec)).status_code == 200
    envelope = json.loads(receiver.bodies[0])
    assert envelope["phone_number_id"] == "555000000001"
    assert envelope["data"]["message"]["button"] == part["button"]
    assert envelope["data"]["message"]["context"] == {"from": "15550001111", "id": "w1"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spec",
    [{"text": "hola"}, {"wa_id": USER}, {"wa_id": USER, "text": "a", "message": {"type": "x"}}],
)
async def test_fake_inbound_refuses_incomplete_requests(
    wired_api: httpx.AsyncClient, receiver: Receiver, spec: dict[str, Any]
) -> None:
    response = await wired_api.post("/_fake/inbound", json=spec)
    assert response.status_code == 400
    assert receiver.bodies == []


@pytest.mark.anyio
@pytest.mark.parametrize("wa_id", ["abc", "+5491140123456", "54 911 4012"])
async def test_fake_inbound_refuses_a_user_number_that_is_not_e164(
    wired_api: httpx.AsyncClient, receiver: Receiver, wa_id: str
) -> None:
    response = await wired_api.post("/_fake/inbound", json={"wa_id": wa_id, "text": "hola"})
    assert_error(response, 400, "INVALID_PARAMETER")
    assert "wa_id" in response.json()["message"]
    assert receiver.bodies == []


@pytest.mark.anyio
async def test_fake_inbound_without_a_webhook_is_409(api: httpx.AsyncClient) -> None:
    response = await api.post("/_fake/inbound", json={"wa_id": USER, "text": "hola"})
    assert_error(response, 409, "NO_WEBHOOK_URL")


@pytest.mark.anyio
async def test_fake_stats_count(
    fake: FakeGoSendAPI, clock: ManualClock, api: httpx.AsyncClient
) -> None:
    open_now(fake, clock)
    await post(api, text(), idempotency_key="k")
    await post(api, text(), idempotency_key="k")
    await post(api, text(), key=None)
    fake.fail_next(503)
    stats = (await api.get("/_fake/stats")).json()
    assert stats["messages"] == 1
    assert stats["requests"] == 3
    assert stats["replays"] == 1
    assert stats["pending_faults"] == 1
    assert stats["open_windows"] == 1


def test_requests_are_frozen_values() -> None:
    request = ReceivedRequest("POST", "/v1/messages", {}, b"", 200, {}, 0.0)
    with pytest.raises(AttributeError):
        request.status = 500  # type: ignore[misc]


# --- Rate limits per phone number. ---

OTHER_PHONE = "555000000001"


def assert_rate_limited(response: httpx.Response, wait: float) -> None:
    """The documented 429: retry_after_seconds in the body, Retry-After in whole seconds."""
    assert_error(response, 429, "RATE_LIMITED")
    assert response.json()["retry_after_seconds"] == pytest.approx(wait)
    assert response.headers["Retry-After"] == str(max(1, math.ceil(wait)))


def limited_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.mark.anyio
async def test_the_fake_answers_429_past_n_messages_a_second_from_one_number(
    clock: ManualClock,
) -> None:
    fake = FakeGoSendAPI(clock=clock, rate_per_number=3)
    async with limited_client(fake.app) as api:
        for _ in range(3):
            assert (await post(api, TEMPLATE)).status_code == 200
        assert_rate_limited(await post(api, TEMPLATE), 1.0)
        other = patched(TEMPLATE, "phone_number_id", OTHER_PHONE)
        assert (await post(api, other)).status_code == 200  # another number, another count
        clock.advance(0.4)
        assert_rate_limited(await post(api, TEMPLATE), 0.6)
        clock.advance(0.6)
        assert (await post(api, TEMPLATE)).status_code == 200  # the second has rolled by
        stats = (await api.get("/_fake/stats")).json()
    assert (stats["messages"], stats["requests"], stats["rate_limited"]) == (5, 7, 2)
    assert fake.rate_limited == 2


@pytest.mark.anyio
async def test_the_fakes_window_rolls_with_each_message(clock: ManualClock) -> None:
    fake = FakeGoSendAPI(clock=clock, rate_per_number=2)
    start = clock.now()
    answers = []
    async with limited_client(fake.app) as api:
        for at in [0.0, 0.6, 0.9, 1.0, 1.5, 1.6]:
            clock.set(start + at)
            answers.append((await post(api, TEMPLATE)).status_code)
    assert answers == [200, 200, 429, 200, 429, 200]


@pytest.mark.anyio
async def test_a_429_keeps_no_idempotency_key_and_replays_are_not_counted(
    clock: ManualClock,
) -> None:
    fake = FakeGoSendAPI(clock=clock, rate_per_number=2)
    async with limited_client(fake.app) as api:
        first = await post(api, TEMPLATE, idempotency_key="k1")
        await post(api, TEMPLATE, idempotency_key="k2")
        assert_rate_limited(await post(api, TEMPLATE, idempotency_key="k3"), 1.0)
        replay = await post(api, TEMPLATE, idempotency_key="k1")  # answered again, not sent
        assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
        clock.advance(1.0)
        retried = await post(api, TEMPLATE, idempotency_key="k3")
    assert retried.status_code == 200  # a fresh send, not the 429 replayed
    assert [m.idempotency_key for m in fake.messages] == ["k1", "k2", "k3"]


def test_a_rate_per_number_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_number"):
        FakeGoSendAPI(rate_per_number=0)


# --- serve(): the real server, over a real socket. ---


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_runs_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    code = f"from botkit.fake.provider import serve; serve('127.0.0.1', {port})"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=out)
        try:
            stats = wait_for_stats(f"http://127.0.0.1:{port}", server, log)
            assert stats["messages"] == 0
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                headers = {"X-API-Key": KEY}
                response = client.post("/v1/messages", json=TEMPLATE, headers=headers)
            assert response.status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.mark.slow
def test_the_fake_api_command_takes_a_rate_per_number(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "botkit.tools.cli", "fake-api", "--port", str(port)]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([*command, "--rate-per-number", "1"], stdout=out, stderr=out)
        try:
            wait_for_stats(f"http://127.0.0.1:{port}", server, log)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                # One a second: the second of two requests made at once is refused.
                answers = [
                    client.post("/v1/messages", json=TEMPLATE, headers={"X-API-Key": KEY})
                    for _ in range(2)
                ]
                stats = client.get("/_fake/stats").json()
            assert [answer.status_code for answer in answers] == [200, 429]
            assert answers[1].headers["Retry-After"] == "1"
            assert stats["rate_limited"] == 1
        finally:
            server.terminate()
            server.wait(timeout=10)


def wait_for_stats(base: str, server: subprocess.Popen[bytes], log: Path) -> Any:
    """Polls /_fake/stats until the server answers (server start-up is real time)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve() exited early: {log.read_text()}")
        try:
            return httpx.get(f"{base}/_fake/stats", timeout=1).json()
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"serve() did not answer within 15 s: {log.read_text()}")
