"""Tests for botkit.web.app: POST /webhook verifies, stores and acknowledges; GET /healthz.

Every test runs the real app (its lifespan opens a real SQLite file and starts the workers)
over `httpx.ASGITransport`, with the clinic bot replying to the fake GoSendAPI in process.
Bodies are signed here with `hmac` directly, not with botkit.wire.signing, so that a bug in the
signing module cannot pass on both sides of the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

import bots.clinic
from botkit.config import MAX_BODY_BYTES, Settings
from botkit.fake.provider import FakeGoSendAPI, SentMessage
from botkit.runtime.runtime import Runtime
from botkit.store.base import Backlog
from botkit.types import ManualClock
from botkit.web import decoder
from botkit.web.app import create_app

pytestmark = pytest.mark.anyio

SECRET = "whsec_test_5f1d2c"  # the secret of fixtures/webhooks/signed_body.json
API_KEY = "gsk_test_webhook"
PHONE_NUMBER_ID = "555123456789"  # the business number every fixture came to
JUAN = "5491140123456"  # the user of every fixture
HEADER = "X-GoSendAPI-Signature"
SERVICE_ROWS = ["general", "specialist", "lab"]  # the clinic's first question


def signature(body: bytes, secret: str = SECRET) -> str:
    """The header GoSendAPI sends: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def received(event_id: str, message_id: str, part: dict[str, Any]) -> dict[str, Any]:
    """A `whatsapp.message.received` envelope from Juan carrying Meta's message `part`."""
    message = {"from": JUAN, "id": message_id, "timestamp": "1779199200", **part}
    return {
        "id": event_id,
        "type": "whatsapp.message.received",
        "created_at": "2026-05-19T14:00:05Z",
        "phone_number_id": PHONE_NUMBER_ID,
        "data": {"contact": {"wa_id": JUAN, "profile": {"name": "Juan"}}, "message": message},
    }


def meta_body(*messages: dict[str, Any]) -> dict[str, Any]:
    """Meta's own webhook body carrying `messages` from Juan."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Juan"}, "wa_id": JUAN}],
        "messages": list(messages),
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "8856996819413533", "changes": [{"field": "messages", "value": value}]}],
    }


def row_ids(sent: SentMessage) -> list[str]:
    """The ids of the rows of a list message, across its sections."""
    interactive = sent.body.get("interactive")
    assert isinstance(interactive, dict) and interactive.get("type") == "list", sent.body
    action = interactive["action"]
    assert isinstance(action, dict)
    return [row["id"] for section in action["sections"] for row in section["rows"]]


@dataclass
class Rig:
    """The bot's webhook app, running, with the fake provider it replies to."""

    runtime: Runtime
    fake: FakeGoSendAPI
    client: httpx.AsyncClient
    app: Starlette

    async def post(
        self, body: bytes, *, secret: str | None = SECRET, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POSTs `body` to /webhook, signed with `secret` (unsigned when None)."""
        sent = {"Content-Type": "application/json"}
        if secret is not None:
            sent[HEADER] = signature(body, secret)
        sent.update(headers or {})
        return await self.client.post("/webhook", content=body, headers=sent)

    async def status(self, event_id: str) -> str | None:
        """The inbox status of an event, None when it was never stored."""
        found = await self.runtime.store.inspect.event_status(event_id)
        return None if found is None else found[0]

    async def nothing_stored(self) -> bool:
        return (
            await self.runtime.store.inspect.backlog() == Backlog(0, 0)
            and not await self.processed()
        )

    async def processed(self) -> bool:
        """Whether any event reached the conversation (a session exists for Juan)."""
        return (await self.runtime.store.sessions.get(PHONE_NUMBER_ID, JUAN)).session is not None

    def replies(self) -> list[SentMessage]:
        """What the provider accepted for Juan, in order."""
        return self.fake.messages_to(JUAN)


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": "http://provider/v1",
        "api_key": API_KEY,
        "webhook_secrets": (SECRET,),
        "phone_number_id": PHONE_NUMBER_ID,
        "database": str(tmp_path / "bot.db"),
    }
    return Settings(**{**values, **changes})


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *, settings: Settings | None = None, workers: bool = True
) -> AsyncIterator[Rig]:
    """The clinic bot's app with its lifespan running, answering through the fake provider."""
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock)
    # The fixtures' messages were sent at the clock's start: Juan's 24-hour window is open.
    fake.open_window(PHONE_NUMBER_ID, JUAN, clock.now())
    runtime = Runtime(
        bots.clinic.bot,
        settings or settings_for(tmp_path),
        clock=clock,
        transport=httpx.ASGITransport(app=fake.app),
        workers=workers,
    )
    app = create_app(runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client,
    ):
        yield Rig(runtime, fake, client, app)


# --- every fixture is accepted, stored and processed -------------------------------------

FIXTURES: dict[str, tuple[list[str], int | None]] = {
    # file: (event ids stored, replies the clinic sends from its initial state; None: at least 1)
    "text.json": (["evt_0001"], 1),
    "button_reply.json": (["evt_0002"], 0),
    "list_reply.json": (["evt_0003"], 0),
    "template_quick_reply.json": (["evt_0004"], 0),
    "image.json": (["evt_0005"], 0),
    "location.json": (["evt_0006"], 0),
    "status_delivered.json": (["evt_0007"], 0),
    "status_read.json": (["evt_0008"], 0),
    "status_failed.json": (["evt_0009"], 0),
    # Two messages and a status. The text gets the list; what the tap on an old prompt
    # (context wamid.out.0001) gets is the conversation's business, not the webhook's.
    "meta_native.json": (
        ["meta:wamid.in.0010", "meta:wamid.in.0011", "meta:status:wamid.out.0001:read"],
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
async def test_a_signed_fixture_is_acknowledged_stored_and_processed(
    tmp_path: Path, fixtures_dir: Path, name: str
) -> None:
    event_ids, replies = FIXTURES[name]
    body = (fixtures_dir / name).read_bytes()
    async with running(tmp_path) as rig:
        response = await rig.post(body)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": len(event_ids), "duplicates": 0}
        await rig.runtime.settle()
        assert [await rig.status(event_id) for event_id in event_ids] == ["done"] * len(event_ids)
        if replies is not None:
            assert len(rig.replies()) == replies
        if replies != 0:
            assert row_ids(rig.replies()[0]) == SERVICE_ROWS
            assert rig.replies()[0].phone_number_id == PHONE_NUMBER_ID


async def test_a_text_gets_the_clinic_list_from_the_number_it_came_to(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    async with running(tmp_path) as rig:
        assert (await rig.post((fixtures_dir / "text.json").read_bytes())).status_code == 200
        await rig.runtime.settle()
        [reply] = rig.replies()
        assert row_ids(reply) == SERVICE_ROWS
        assert reply.phone_number_id == PHONE_NUMBER_ID
        session = (await rig.runtime.store.sessions.get(PHONE_NUMBER_ID, JUAN)).session
        assert session is not None and session.state == "choosing_service"


async def test_the_exact_signed_body_of_the_fixture_verifies(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    spec = json.loads((fixtures_dir / "signed_body.json").read_text())
    body = (fixtures_dir / spec["body_file"]).read_bytes()
    settings = settings_for(tmp_path, webhook_secrets=(spec["secret"],))
    async with running(tmp_path, settings=settings) as rig:
        response = await rig.post(body, secret=None, headers={spec["header"]: spec["value"]})
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 1, "duplicates": 0}
        assert await rig.status("evt_0002") is not None


# --- signatures ----------------------------------------------------------------------------


async def test_a_missing_signature_is_401_and_nothing_is_stored(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    async with running(tmp_path) as rig:
        response = await rig.post((fixtures_dir / "text.json").read_bytes(), secret=None)
        assert response.status_code == 401
        assert response.json()["error"] == "missing_signature"
        assert HEADER in response.json()["detail"]
        await rig.runtime.settle()
        assert await rig.status("evt_0001") is None
        assert await rig.nothing_stored()
        assert rig.replies() == []


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(signature(b"another body"), id="signature-of-another-body"),
        pytest.param(signature(b"", "whsec_someone_else"), id="another-secret"),
        pytest.param("sha1=" + "0" * 40, id="sha1-scheme"),
        pytest.param("sha256=not-hex", id="not-hex"),
        pytest.param("sha256=", id="empty-digest"),
    ],
)
async def test_a_wrong_signature_is_401_and_nothing_is_stored(
    tmp_path: Path, fixtures_dir: Path, header: str
) -> None:
    body = (fixtures_dir / "text.json").read_bytes()
    async with running(tmp_path) as rig:
        response = await rig.post(body, secret=None, headers={HEADER: header})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_signature"
        await rig.runtime.settle()
        assert await rig.status("evt_0001") is None
        assert rig.replies() == []


async def test_a_body_signed_with_another_secret_is_401(tmp_path: Path, fixtures_dir: Path) -> None:
    body = (fixtures_dir / "text.json").read_bytes()
    async with running(tmp_path) as rig:
        response = await rig.post(body, secret="whsec_not_ours")
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_signature"
        assert await rig.nothing_stored()


async def test_a_signature_in_upper_case_hex_is_accepted(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    body = (fixtures_dir / "text.json").read_bytes()
    upper = "sha256=" + signature(body).removeprefix("sha256=").upper()
    async with running(tmp_path) as rig:
        response = await rig.post(body, secret=None, headers={HEADER: upper})
        assert response.status_code == 200, response.text
        assert await rig.status("evt_0001") is not None


async def test_while_rotating_a_body_signed_with_any_configured_secret_is_accepted(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    env = {
        "GOSENDAPI_API_KEY": API_KEY,
        "GOSENDAPI_WEBHOOK_SECRET": "whsec_old_one, whsec_new_one",
        "GOSENDAPI_BASE_URL": "http://provider/v1",
        "BOTKIT_DATABASE": str(tmp_path / "bot.db"),
    }
    settings = Settings.from_env(env)
    text = (fixtures_dir / "text.json").read_bytes()
    image = (fixtures_dir / "image.json").read_bytes()
    async with running(tmp_path, settings=settings) as rig:
        assert (await rig.post(text, secret="whsec_new_one")).status_code == 200
        assert (await rig.post(image, secret="whsec_old_one")).status_code == 200
        assert (await rig.post(text, secret="whsec_older_still")).status_code == 401
        assert await rig.status("evt_0001") is not None
        assert await rig.status("evt_0005") is not None


# --- size ----------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid envelope padded with trailing whitespace to exactly `size` bytes."""
    body = encode(received("evt_big", "wamid.in.big", {"type": "text", "text": {"body": "Hola"}}))
    return body + b" " * (size - len(body))


async def test_a_body_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    body = padded(MAX_BODY_BYTES)
    async with running(tmp_path) as rig:
        response = await rig.post(body)
        assert response.status_code == 200, response.text
        assert await rig.status("evt_big") is not None


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_body_over_1_mib_is_413_before_the_signature_is_checked(
    tmp_path: Path, signed: bool
) -> None:
    body = padded(MAX_BODY_BYTES + 1)
    async with running(tmp_path) as rig:
        response = await rig.post(body, secret=SECRET if signed else None)
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"
        assert await rig.status("evt_big") is None
        assert await rig.nothing_stored()


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_chunked_body_over_1_mib_is_413_without_a_content_length(
    tmp_path: Path, signed: bool
) -> None:
    body = padded(MAX_BODY_BYTES + 1)
    chunks_sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for start in range(0, len(body), 64 * 1024):
            chunks_sent += 1
            yield body[start : start + 64 * 1024]

    headers = {"Content-Type": "application/json"}
    if signed:
        headers[HEADER] = signature(body)
    async with running(tmp_path) as rig:
        response = await rig.client.post("/webhook", content=stream(), headers=headers)
        assert "content-length" not in {k.lower() for k in response.request.headers}
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"
        assert chunks_sent > 1  # the body really arrived in pieces
        assert await rig.nothing_stored()


async def test_a_chunked_body_under_the_limit_is_accepted(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    body = (fixtures_dir / "text.json").read_bytes()

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    headers = {"Content-Type": "application/json", HEADER: signature(body)}
    async with running(tmp_path) as rig:
        response = await rig.client.post("/webhook", content=stream(), headers=headers)
        assert response.status_code == 200, response.text
        assert await rig.status("evt_0001") is not None


# --- bodies botkit cannot read ---------------------------------------------------------------


async def test_malformed_json_is_400_naming_the_problem(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        response = await rig.post(b'{"id": "evt_1", "type": ')
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_payload"
        assert "malformed JSON" in response.json()["detail"]
        assert await rig.nothing_stored()


async def test_a_json_array_is_400_asking_for_an_object(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        response = await rig.post(b"[1, 2]")
        assert response.status_code == 400
        assert "object" in response.json()["detail"]


async def test_a_body_of_neither_shape_is_400_naming_both_shapes(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        response = await rig.post(encode({"hello": "world", "event": "message"}))
        assert response.status_code == 400
        detail = response.json()["detail"]
        assert "envelope" in detail and "'type'" in detail and "'data'" in detail
        assert "Meta" in detail and "'object'" in detail and "'entry'" in detail
        assert "event, hello" in detail  # the keys it did find
        assert await rig.nothing_stored()


async def test_an_envelope_missing_a_required_field_is_400_naming_its_path(
    tmp_path: Path,
) -> None:
    envelope = received("evt_nofrom", "wamid.in.nofrom", {"type": "text", "text": {"body": "x"}})
    del envelope["data"]["message"]["from"]
    async with running(tmp_path) as rig:
        response = await rig.post(encode(envelope))
        assert response.status_code == 400
        assert "data.message.from" in response.json()["detail"]
        assert await rig.status("evt_nofrom") is None


async def test_an_absurd_timestamp_is_400_not_a_server_error(tmp_path: Path) -> None:
    """A digit string past Python's int limit once raised a bare ValueError: a 500, retried."""
    envelope = received("evt_ts", "wamid.in.ts", {"type": "text", "text": {"body": "x"}})
    envelope["data"]["message"]["timestamp"] = "9" * 5000
    body = encode(envelope)
    async with running(tmp_path) as rig:
        # As a server would: an exception in the app becomes a 500, not a test crash.
        transport = httpx.ASGITransport(app=rig.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            response = await client.post(
                "/webhook", content=body, headers={HEADER: signature(body)}
            )
        assert response.status_code == 400


def nested(levels: int) -> Any:
    """A JSON value `levels` containers deep."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


NESTED_300: dict[str, Any] = {
    # parsed (the JSON parser reads 1,024 levels), but deeper than can be stored again
    "message-text": received("evt_deep", "wamid.in.deep", {"type": "text", "text": nested(300)}),
    # an unknown type without an id: its id is a hash of the envelope, which was a 500
    "unknown-type-without-id": {"type": "whatsapp.other.thing", "data": nested(300)},
    "meta-body": meta_body({"from": JUAN, "id": "wamid.deep", "type": "text", "text": nested(300)}),
}


@pytest.mark.parametrize("case", sorted(NESTED_300))
async def test_a_body_nested_deeper_than_can_be_stored_is_400_not_503(
    tmp_path: Path, case: str
) -> None:
    async with running(tmp_path) as rig:
        response = await rig.post(encode(NESTED_300[case]))
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_payload"
        assert "deeper than 64 levels" in response.json()["detail"]
        assert await rig.nothing_stored()


async def test_deep_bodies_among_valid_ones_fail_alone_and_no_neighbour_gets_503(
    tmp_path: Path,
) -> None:
    """30 bodies nested 300 levels among 300 valid events of 300 users, all at once: once,
    129 of the valid ones got 503 (their group commit failed with the deep ones)."""
    users = [f"54911{n:08d}" for n in range(300)]
    valid = []
    for n, user in enumerate(users):
        envelope = received(
            f"evt_ok{n}", f"wamid.in.ok{n}", {"type": "text", "text": {"body": "hola"}}
        )
        envelope["data"]["message"]["from"] = user
        envelope["data"]["contact"] = {"wa_id": user}
        valid.append(encode(envelope))
    deep = [
        encode(received(f"evt_deep{n}", f"wamid.deep{n}", {"type": "text", "text": nested(300)}))
        for n in range(30)
    ]
    bodies = valid[:]
    for n, body in enumerate(deep):
        bodies.insert(n * 10, body)
    async with running(tmp_path, workers=False) as rig:
        responses = await asyncio.gather(*(rig.post(body) for body in bodies))
        statuses = [r.status_code for r in responses]
        assert statuses.count(400) == len(deep)
        assert statuses.count(200) == len(valid)
        assert [await rig.status(f"evt_ok{n}") for n in range(len(users))] == ["pending"] * 300


async def test_one_unprocessable_event_does_not_hold_up_another_users_reply(
    tmp_path: Path,
) -> None:
    """A timestamp too big for a float was once stored, then crashed the dispatcher's whole
    batch (dispatch.py `float(event.timestamp)`), holding every other user's event with it."""
    ana = "5491140000001"
    text = {"type": "text", "text": {"body": "hola"}}
    bad = received("evt_bad", "wamid.in.bad", text)
    bad["data"]["message"]["timestamp"] = "9" * 400
    good = received("evt_ana", "wamid.in.ana", text)
    good["data"]["message"]["from"] = ana
    good["data"]["contact"] = {"wa_id": ana}
    async with running(tmp_path, workers=False) as rig:  # both pending: one batch on restart
        await rig.post(encode(bad))
        assert (await rig.post(encode(good))).status_code == 200
    async with running(tmp_path) as rig:
        rig.fake.open_window(PHONE_NUMBER_ID, ana, rig.runtime.clock.now())
        await rig.runtime.settle(within=1.0)
        assert await rig.status("evt_bad") in (None, "failed")  # refused (400) or failed
        assert await rig.status("evt_ana") == "done"
        assert [row_ids(sent) for sent in rig.fake.messages_to(ana)] == [SERVICE_ROWS]


# --- identifiers are checked at the edge -----------------------------------------------------


def with_status(recipient: str) -> dict[str, Any]:
    """A Meta body carrying one status about a message sent to `recipient`."""
    body = meta_body()
    status = {"id": "wamid.out.1", "status": "read", "timestamp": "1779199200"}
    body["entry"][0]["changes"][0]["value"]["statuses"] = [{**status, "recipient_id": recipient}]
    return body


IDENTIFIERS = [
    (
        "phone_number_id",
        {
            **received("evt_a", "wamid.a", {"type": "text", "text": {"body": "x"}}),
            "phone_number_id": "pn_1",
        },
    ),
    (
        "data.message.from",
        received("evt_b", "wamid.b", {"type": "text", "text": {"body": "x"}, "from": "juan"}),
    ),
    (
        "data.message.from",
        received("evt_c", "wamid.c", {"type": "text", "text": {"body": "x"}, "from": "٥٤٩١١٤٠١٢٣"}),
    ),
    ("entry[0].changes[0].value.statuses[0].recipient_id", with_status("+5491140123456")),
    (
        "entry[0].changes[0].value.messages[0].from",
        meta_body({"from": "1", "id": "wamid.d", "timestamp": "1779199200", "type": "text"}),
    ),
]


@pytest.mark.parametrize(("field", "document"), IDENTIFIERS, ids=[f for f, _ in IDENTIFIERS])
async def test_an_identifier_that_is_not_ascii_digits_is_400_naming_the_field(
    tmp_path: Path, field: str, document: dict[str, Any]
) -> None:
    async with running(tmp_path) as rig:
        response = await rig.post(encode(document))
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_payload"
        assert response.json()["detail"].startswith(f"{field}: ")
        assert "ASCII digits" in response.json()["detail"]
        assert await rig.nothing_stored()


async def test_a_meta_phone_number_id_that_is_not_digits_is_400(tmp_path: Path) -> None:
    body = meta_body({"from": JUAN, "id": "wamid.e", "timestamp": "1779199200", "type": "text"})
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "555-123"
    async with running(tmp_path) as rig:
        response = await rig.post(encode(body))
        assert response.status_code == 400
        field = "entry[0].changes[0].value.metadata.phone_number_id"
        assert response.json()["detail"].startswith(f"{field}: ")


# --- one odd message does not refuse the body -------------------------------------------------


async def test_an_interactive_without_its_object_is_accepted_beside_the_rest(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """A real Meta delivery that was once refused (400), and so retried by Meta for days."""
    broken = {
        "from": JUAN,
        "id": "wamid.in.broken",
        "timestamp": "1779199200",
        "type": "interactive",
        "errors": [{"code": 131000, "title": "Something went wrong"}],
    }
    text = {"from": JUAN, "id": "wamid.in.ok", "timestamp": "1779199200", "type": "text"}
    body = meta_body(broken, {**text, "text": {"body": "hola"}})
    async with running(tmp_path) as rig:
        response = await rig.post(encode(body))
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 2, "duplicates": 0}
        await rig.runtime.settle()
        assert await rig.status("meta:wamid.in.broken") == "done"
        assert await rig.status("meta:wamid.in.ok") == "done"


async def test_a_body_at_the_size_limit_of_the_worst_shape_is_accepted(tmp_path: Path) -> None:
    """Issue 10's shape (each message's contact last among many), grown to the limit: it is
    parsed off the event loop, in time linear in its size (bench/parse.py times it)."""
    contacts = [{"profile": {"name": "A"}, "wa_id": str(5491100000000 + i)} for i in range(18500)]
    body = meta_body()
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = contacts
    value["messages"] = [
        {"from": str(5491100018499 - i), "id": f"wamid.{i}", "timestamp": "1779199200"}
        | {"type": "text", "text": {"body": "x"}}
        for i in range(200)
    ]
    raw = encode(body)
    assert MAX_BODY_BYTES - 100_000 < len(raw) <= MAX_BODY_BYTES
    async with running(tmp_path, workers=False) as rig:
        response = await rig.post(raw)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 200, "duplicates": 0}


# --- unknown things --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type", ["whatsapp.conversation.created", "whatsapp.phone_number.created"]
)
async def test_an_envelope_of_an_unknown_type_is_200_stored_and_ignored(
    tmp_path: Path, event_type: str
) -> None:
    envelope = {
        "id": "evt_other",
        "type": event_type,
        "created_at": "2026-05-19T14:00:05Z",
        "phone_number_id": PHONE_NUMBER_ID,
        "data": {"conversation": {"id": "conv_1", "origin": {"type": "service"}}},
    }
    async with running(tmp_path) as rig:
        response = await rig.post(encode(envelope))
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 1, "duplicates": 0}
        await rig.runtime.settle()
        assert await rig.status("evt_other") == "ignored"
        assert rig.replies() == []
        # A redelivery is still a duplicate, not a second event.
        assert (await rig.post(encode(envelope))).json() == {"accepted": 0, "duplicates": 1}


async def test_an_unsupported_message_in_idle_is_done_and_sends_nothing(tmp_path: Path) -> None:
    reaction = {"type": "reaction", "reaction": {"message_id": "wamid.out.1", "emoji": "👍"}}
    async with running(tmp_path) as rig:
        response = await rig.post(encode(received("evt_react", "wamid.in.react", reaction)))
        assert response.status_code == 200, response.text
        await rig.runtime.settle()
        assert await rig.runtime.store.inspect.event_status("evt_react") == ("done", None)
        assert rig.replies() == []
        session = (await rig.runtime.store.sessions.get(PHONE_NUMBER_ID, JUAN)).session
        assert session is not None and session.state == "idle"


async def test_an_unsupported_message_reaches_the_conversation_which_asks_again(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    meta_unsupported = {
        "type": "unsupported",
        "errors": [{"code": 131051, "title": "Message type unknown"}],
    }
    async with running(tmp_path) as rig:
        await rig.post((fixtures_dir / "text.json").read_bytes())
        await rig.runtime.settle()
        response = await rig.post(encode(received("evt_u", "wamid.in.u", meta_unsupported)))
        assert response.status_code == 200, response.text
        await rig.runtime.settle()
        assert await rig.runtime.store.inspect.event_status("evt_u") == ("done", None)
        # The clinic has no handler for it in choosing_service: the list is asked again.
        assert [row_ids(sent) for sent in rig.replies()] == [SERVICE_ROWS, SERVICE_ROWS]


# --- duplicates ------------------------------------------------------------------------------


async def test_a_redelivered_body_is_200_with_one_duplicate_and_one_reply(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    body = (fixtures_dir / "text.json").read_bytes()
    async with running(tmp_path) as rig:
        first = await rig.post(body)
        await rig.runtime.settle()
        second = await rig.post(body)
        await rig.runtime.settle()
        assert first.json() == {"accepted": 1, "duplicates": 0}
        assert second.status_code == 200
        assert second.json() == {"accepted": 0, "duplicates": 1}
        assert len(rig.replies()) == 1
        assert len(rig.fake.requests) == 1


async def test_two_simultaneous_deliveries_of_one_body_store_one_event(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    body = (fixtures_dir / "text.json").read_bytes()
    async with running(tmp_path, workers=False) as rig:
        answers = await asyncio.gather(*(rig.post(body) for _ in range(5)))
        assert [a.status_code for a in answers] == [200] * 5
        assert sum(a.json()["accepted"] for a in answers) == 1
        assert sum(a.json()["duplicates"] for a in answers) == 4
        assert await rig.runtime.store.inspect.backlog() == Backlog(1, 0)


async def test_a_meta_body_repeating_an_envelopes_wamid_is_a_duplicate(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    text = {"type": "text", "text": {"body": "Hola"}}
    same = meta_body({"from": JUAN, "id": "wamid.in.0001", "timestamp": "1779199200", **text})
    async with running(tmp_path) as rig:
        assert (await rig.post((fixtures_dir / "text.json").read_bytes())).json()["accepted"] == 1
        again = await rig.post(encode(same))
        await rig.runtime.settle()
        assert again.status_code == 200
        assert again.json() == {"accepted": 0, "duplicates": 1}
        assert await rig.status("meta:wamid.in.0001") is None
        assert len(rig.replies()) == 1


async def test_an_envelope_repeating_a_meta_bodys_wamid_is_a_duplicate(
    tmp_path: Path,
) -> None:
    text = {"type": "text", "text": {"body": "Hola"}}
    first = meta_body({"from": JUAN, "id": "wamid.in.0042", "timestamp": "1779199200", **text})
    async with running(tmp_path) as rig:
        assert (await rig.post(encode(first))).json() == {"accepted": 1, "duplicates": 0}
        again = await rig.post(encode(received("evt_0042", "wamid.in.0042", text)))
        await rig.runtime.settle()
        assert again.json() == {"accepted": 0, "duplicates": 1}
        assert await rig.status("evt_0042") is None
        assert len(rig.replies()) == 1


# --- the acknowledgement does not wait for the bot --------------------------------------------


async def test_the_ack_does_not_wait_for_processing(tmp_path: Path, fixtures_dir: Path) -> None:
    async with running(tmp_path, workers=False) as rig:
        response = await rig.post((fixtures_dir / "text.json").read_bytes())
        assert response.status_code == 200
        assert response.json() == {"accepted": 1, "duplicates": 0}
        assert await rig.runtime.store.inspect.event_status("evt_0001") == ("pending", None)
        assert await rig.runtime.store.inspect.backlog() == Backlog(1, 0)
        assert rig.replies() == []
        assert not await rig.processed()


async def test_an_acknowledged_event_survives_a_restart_and_is_then_answered(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    async with running(tmp_path, workers=False) as rig:
        assert (await rig.post((fixtures_dir / "text.json").read_bytes())).status_code == 200
    async with running(tmp_path) as rig:
        await rig.runtime.settle()
        assert await rig.status("evt_0001") == "done"
        [reply] = rig.replies()
        assert row_ids(reply) == SERVICE_ROWS


# --- health ----------------------------------------------------------------------------------


async def test_healthz_reports_pending_events_and_sends(tmp_path: Path, fixtures_dir: Path) -> None:
    async with running(tmp_path, workers=False) as rig:
        before = await rig.client.get("/healthz")
        await rig.post((fixtures_dir / "text.json").read_bytes())
        await rig.post((fixtures_dir / "image.json").read_bytes())
        after = await rig.client.get("/healthz")
    assert before.status_code == 200
    assert before.json() == {
        "status": "ok",
        "provider": "gosendapi",
        "pending": {"events": 0, "sends": 0},
    }
    assert after.json()["pending"] == {"events": 2, "sends": 0}


async def test_healthz_says_fake_when_no_api_key_is_set(tmp_path: Path) -> None:
    async with running(tmp_path, settings=settings_for(tmp_path, api_key=None)) as rig:
        response = await rig.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["provider"] == "fake"


async def test_the_root_says_what_this_service_is_and_where_its_docs_are(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as rig:
        response = await rig.client.get("/")
    assert response.status_code == 200
    about = response.json()
    assert "botkit" in about["service"] and "Clinic" in about["service"]
    assert {"POST /webhook", "GET /healthz"} <= set(about["endpoints"])
    assert "README" in about["docs"] and "https://docs.gosendapi.com" in about["docs"]


async def test_webhook_only_takes_post(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        assert (await rig.client.get("/webhook")).status_code == 405


# --- the bare ASGI path: what Starlette's layers did for /webhook -------------------------


async def test_an_app_mounted_under_a_prefix_still_takes_webhooks(tmp_path: Path) -> None:
    from starlette.routing import Mount

    async with running(tmp_path) as rig:
        outer = Starlette(routes=[Mount("/bots/clinic", app=rig.app)])
        body = encode(
            received("evt_mounted", "wamid.mounted", {"type": "text", "text": {"body": "hola"}})
        )
        transport = httpx.ASGITransport(app=outer)
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as client:
            response = await client.post(
                "/bots/clinic/webhook",
                content=body,
                headers={"Content-Type": "application/json", HEADER: signature(body)},
            )
            unsigned = await client.post("/bots/clinic/webhook", content=body)
        assert (response.status_code, response.json()) == (200, {"accepted": 1, "duplicates": 0})
        assert unsigned.status_code == 401
        assert await rig.status("evt_mounted") is not None


async def test_a_client_that_disconnects_mid_body_stores_nothing(tmp_path: Path) -> None:
    body = encode(received("evt_gone", "wamid.gone", {"type": "text", "text": {"body": "hola"}}))
    parts = [
        {"type": "http.request", "body": body[:20], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return parts.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhook",
        "root_path": "",
        "headers": [(b"x-gosendapi-signature", signature(body).encode())],
    }
    async with running(tmp_path) as rig:
        await rig.app(scope, receive, send)
        assert sent == []  # nobody to answer
        assert await rig.status("evt_gone") is None


async def test_an_unexpected_error_while_storing_is_a_500_in_json(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:

        async def broken(events: Any) -> list[bool]:
            raise RuntimeError("a bug, not a store outage")

        rig.runtime.ingest.accept = broken  # type: ignore[method-assign]
        body = encode(received("evt_bug", "wamid.bug", {"type": "text", "text": {"body": "hola"}}))
        response = await rig.post(body)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "internal_error"


@pytest.mark.parametrize(
    ("where", "path"),
    [("envelope", "id"), ("message", "data.message.id"), ("type", "type")],
)
async def test_an_id_of_a_megabyte_is_400_naming_it_and_never_stored(
    tmp_path: Path, where: str, path: str
) -> None:
    envelope = received("evt_long", "wamid.in.long", {"type": "text", "text": {"body": "hola"}})
    huge = "i" * 1_000_000
    if where == "envelope":
        envelope["id"] = huge
    elif where == "message":
        envelope["data"]["message"]["id"] = huge
    else:
        envelope["type"] = huge
    async with running(tmp_path) as rig:
        response = await rig.post(encode(envelope))
        assert response.status_code == 400, response.text[:300]
        detail = response.json()["detail"]
        assert detail.startswith(f"{path}: ") and "at most 512 characters" in detail
        assert len(detail) < 300  # the value is not repeated back in full
        assert await rig.nothing_stored()


# --- large bodies: decoded in a child process ------------------------------------------------


def large_meta_body(messages: int, *, broken: int | None = None, first: int = 0) -> dict[str, Any]:
    """A Meta body of `messages` texts from distinct users (one malformed at `broken`)."""
    items = []
    for n in range(messages):
        item: dict[str, Any] = {"from": f"54911{n:08d}", "id": f"wamid.big.{first + n}",
                                "timestamp": "1779199200", "type": "text", "text": {"body": "x" * 40}}  # fmt: skip
        if n == broken:
            item["from"] = "not a number"
        items.append(item)
    return meta_body(*items)


async def test_a_large_body_is_stored_as_the_same_rows_the_loop_would_store(tmp_path: Path) -> None:
    from botkit.runtime.ingest import new_event
    from botkit.store.base import envelope_json
    from botkit.wire.events import parse_body

    raw = encode(large_meta_body(800))
    assert len(raw) > decoder.LARGE
    async with running(tmp_path, workers=False) as rig:
        response = await rig.post(raw)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 800, "duplicates": 0}
        assert (await rig.post(raw)).json() == {"accepted": 0, "duplicates": 800}
        child = rig.app.webhook.decoder._child
        assert child is not None and child.poll() is None  # decoded apart, by a child
        expected = [new_event(event) for event in parse_body(raw)]
        store = rig.runtime.store
        rows = await store.run(  # type: ignore[attr-defined]
            lambda db: db.execute(
                "SELECT event_id, message_id, kind, phone_number_id, wa_id, envelope"
                " FROM incoming.inbox ORDER BY seq"
            ).fetchall()
        )
        assert [tuple(row) for row in rows] == [
            (e.event_id, e.message_id, e.kind, e.phone_number_id, e.wa_id, envelope_json(e))
            for e in expected
        ]
    assert child.wait(timeout=10) is not None  # ended with the app


async def test_a_large_body_is_refused_with_the_same_400_as_a_small_one(tmp_path: Path) -> None:
    small = encode(large_meta_body(3, broken=1))
    large = encode(large_meta_body(800, broken=1))
    async with running(tmp_path) as rig:
        answers = [await rig.post(small), await rig.post(large)]
        assert [a.status_code for a in answers] == [400, 400]
        assert answers[0].json()["detail"] == answers[1].json()["detail"]
        assert "messages[1].from" in answers[1].json()["detail"]
        assert await rig.runtime.store.inspect.backlog() == Backlog(0, 0)


async def test_a_decoder_process_that_died_gives_503_once_then_is_replaced(tmp_path: Path) -> None:
    raw = encode(large_meta_body(800))
    async with running(tmp_path, workers=False) as rig:
        assert (await rig.post(encode(large_meta_body(800, first=5000)))).status_code == 200
        child = rig.app.webhook.decoder._child
        assert child is not None
        child.kill()
        child.wait()
        answers = [await rig.post(raw) for _ in range(2)]
        # the first may find it dead mid-answer (503, delivered again) or be replaced at once
        assert answers[-1].status_code == 200, answers[-1].text
        assert all(a.status_code in (200, 503) for a in answers)
        assert sum(a.json().get("accepted", 0) for a in answers) == 800
