"""The trigger API: POST /conversations/{wa_id}/trigger, and the same from Python.

Driven over HTTP with `httpx.ASGITransport` against the simulator's app (the clinic bot, a
real SQLite file, the fake GoSendAPI), whose API token is `SIM_API_TOKEN`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import bots.clinic
from botkit import (
    Bot,
    BotkitError,
    Context,
    Conversation,
    Simulator,
    State,
    Text,
    TriggerError,
    on,
)
from botkit.config import Settings
from botkit.fake.provider import FakeGoSendAPI
from botkit.runtime.runtime import Runtime
from botkit.store.sqlite import SqliteStore
from botkit.tools.simulator import SIM_API_TOKEN, SimUser
from botkit.types import ManualClock
from botkit.web.app import create_app

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
URL = f"/conversations/{JUAN}/trigger"
AUTH = {"Authorization": f"Bearer {SIM_API_TOKEN}"}
REMIND = {
    "trigger": "remind",
    "data": {"name": "Juan", "date": "20/05", "time": "10:30", "appointment_id": "123"},
}


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        yield client


async def trigger_events(sim: Simulator) -> list[tuple[str, str, str]]:
    """The inbox's triggers: (event id, wa_id, phone_number_id)."""
    store = sim.runtime.store
    assert isinstance(store, SqliteStore)
    rows = await store.run(
        lambda db: db.execute(
            "SELECT event_id, wa_id, phone_number_id FROM incoming.inbox WHERE kind = 'trigger'"
            " ORDER BY seq"
        ).fetchall()
    )
    return [(row[0], row[1], row[2]) for row in rows]


# --- 202 ------------------------------------------------------------------------------------


async def test_an_accepted_trigger_answers_202_with_its_event_id_and_runs(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    response = await api.post(URL, json=REMIND, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["accepted"] is True
    [(event_id, wa_id, number)] = await trigger_events(sim)
    assert body["event_id"] == event_id
    assert (wa_id, number) == (JUAN, sim.phone_number_id)
    await sim.settle()
    await juan.refresh()
    assert juan.state == "confirming"
    assert [view.template_name for view in juan.messages] == ["appointment_reminder"]
    assert await sim.runtime.store.inspect.event_status(event_id) == ("done", None)


async def test_the_bearer_scheme_is_case_insensitive(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.post(
        URL, json=REMIND, headers={"Authorization": f"bearer {SIM_API_TOKEN}"}
    )
    assert response.status_code == 202, response.text


async def test_the_human_format_of_a_number_reaches_the_same_user(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    response = await api.post(
        "/conversations/+54 9 11 4012-3456/trigger", json=REMIND, headers=AUTH
    )
    assert response.status_code == 202, response.text
    [(_, wa_id, _)] = await trigger_events(sim)
    assert wa_id == JUAN
    await sim.settle()
    await juan.refresh()
    assert juan.state == "confirming"
    assert [view.template_name for view in juan.messages] == ["appointment_reminder"]


async def test_an_escaped_human_format_in_the_path_is_read_too(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    path = "/conversations/%2B54%209%2011%204012-3456/trigger"
    response = await api.post(path, json=REMIND, headers=AUTH)
    assert response.status_code == 202, response.text
    [(_, wa_id, _)] = await trigger_events(sim)
    assert wa_id == JUAN


async def test_phone_number_id_in_the_body_chooses_the_sending_number(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.post(URL, json={**REMIND, "phone_number_id": "555000111222"}, headers=AUTH)
    assert response.status_code == 202, response.text
    await sim.settle()
    [sent] = sim.sent
    assert (sent.phone_number_id, sent.to, sent.type) == ("555000111222", JUAN, "template")


async def test_the_same_idempotency_key_twice_makes_one_event(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    headers = {**AUTH, "Idempotency-Key": "reminder-123"}
    first = await api.post(URL, json=REMIND, headers=headers)
    second = await api.post(URL, json=REMIND, headers=headers)
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["event_id"] == second.json()["event_id"]
    assert len(await trigger_events(sim)) == 1
    await sim.settle()
    assert len(juan.messages) == 1


async def test_the_same_key_for_another_user_is_not_silently_dropped(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    headers = {**AUTH, "Idempotency-Key": "reminder-2026-05-20"}
    first = await api.post(URL, json=REMIND, headers=headers)
    second = await api.post("/conversations/5491155550000/trigger", json=REMIND, headers=headers)
    assert first.status_code == 202
    await sim.settle()
    # Either the second user is reminded too, or the reuse is refused (409) rather than lost.
    reminded = len(sim.fake.messages_to("5491155550000")) == 1
    assert reminded or second.status_code == 409


async def test_different_keys_make_different_events(sim: Simulator, api: httpx.AsyncClient) -> None:
    first = await api.post(URL, json=REMIND, headers={**AUTH, "Idempotency-Key": "a"})
    second = await api.post(URL, json=REMIND, headers={**AUTH, "Idempotency-Key": "b"})
    assert first.json()["event_id"] != second.json()["event_id"]
    assert len(await trigger_events(sim)) == 2


async def test_without_a_key_every_request_is_a_new_event(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    first = await api.post(URL, json=REMIND, headers=AUTH)
    second = await api.post(URL, json=REMIND, headers=AUTH)
    assert first.json()["event_id"] != second.json()["event_id"]
    assert len(await trigger_events(sim)) == 2


# --- 401 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {SIM_API_TOKEN}x"},
        {"Authorization": f"Bearer {SIM_API_TOKEN[:-1]}"},
        {"Authorization": "Bearer "},
        {"Authorization": SIM_API_TOKEN},
        {"Authorization": f"Basic {SIM_API_TOKEN}"},
        {"X-API-Key": SIM_API_TOKEN},
    ],
    ids=["none", "wrong", "longer", "shorter", "empty", "no-scheme", "basic", "other-header"],
)
async def test_a_missing_or_wrong_token_is_401_and_stores_nothing(
    sim: Simulator, api: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await api.post(URL, json=REMIND, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert await trigger_events(sim) == []


async def test_the_token_is_checked_before_the_body(api: httpx.AsyncClient) -> None:
    response = await api.post(URL, content=b"{not json", headers={"Authorization": "Bearer no"})
    assert response.status_code == 401


# --- 404 ------------------------------------------------------------------------------------


async def test_an_undeclared_trigger_is_404_naming_the_declared_ones(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.post(URL, json={"trigger": "birthday", "data": {}}, headers=AUTH)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "not_found"
    assert "birthday" in body["detail"] and "remind" in body["detail"]
    assert await trigger_events(sim) == []


async def test_only_post_is_routed(api: httpx.AsyncClient) -> None:
    response = await api.get(URL, headers=AUTH)
    assert response.status_code == 405


# --- 400 ------------------------------------------------------------------------------------

BAD_BODIES: dict[str, tuple[bytes | None, Any, str]] = {
    # id: (raw body, or None to send the JSON given, what the detail must mention)
    "malformed-json": (b'{"trigger": "remind",', None, "JSON"),
    "not-utf8": (b"\xff\xfe", None, "JSON"),
    "an-array": (None, [REMIND], "object"),
    "a-string": (None, "remind", "object"),
    "no-trigger": (None, {"data": REMIND["data"]}, "trigger"),
    "trigger-not-a-string": (None, {"trigger": 7, "data": REMIND["data"]}, "trigger"),
    "empty-trigger": (None, {"trigger": "", "data": REMIND["data"]}, "trigger"),
    "data-a-list": (None, {"trigger": "remind", "data": ["Juan"]}, "data"),
    "data-a-string": (None, {"trigger": "remind", "data": "Juan"}, "data"),
    "no-data": (None, {"trigger": "remind"}, "appointment_id"),
    "phone-number-id-letters": (
        None,
        {**REMIND, "phone_number_id": "my-number"},
        "phone_number_id",
    ),
    "phone-number-id-a-number": (
        None,
        {**REMIND, "phone_number_id": 555123456789},
        "phone_number_id",
    ),
    "phone-number-id-display-format": (
        None,
        {**REMIND, "phone_number_id": "+1 555 000 1111"},
        "phone_number_id",
    ),
    # str.isdigit() says yes to these; the provider does not
    "phone-number-id-arabic-indic-digits": (
        None,
        {**REMIND, "phone_number_id": "\u0665" * 12},
        "ASCII digits",
    ),
    "phone-number-id-superscripts": (None, {**REMIND, "phone_number_id": "²³"}, "ASCII digits"),
    "phone-number-id-too-long": (None, {**REMIND, "phone_number_id": "5" * 21}, "ASCII digits"),
    # parsed, but nested deeper than can be stored: refused now, not 503 at every retry
    "data-nested-300-levels": (
        ("{" + '"trigger": "remind", "data": ' + '{"a": ' * 300 + "1" + "}" * 301).encode(),
        None,
        "deeper than 64 levels",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
async def test_a_malformed_body_is_400_and_stores_nothing(
    sim: Simulator, api: httpx.AsyncClient, case: str
) -> None:
    raw, document, mentioned = BAD_BODIES[case]
    if raw is None:
        response = await api.post(URL, json=document, headers=AUTH)
    else:
        headers = {**AUTH, "Content-Type": "application/json"}
        response = await api.post(URL, content=raw, headers=headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_trigger"
    assert mentioned in body["detail"]
    assert await trigger_events(sim) == []


async def test_a_missing_data_key_is_400_naming_it(sim: Simulator, api: httpx.AsyncClient) -> None:
    data = {"name": "Juan", "date": "20/05", "time": "10:30"}
    response = await api.post(URL, json={"trigger": "remind", "data": data}, headers=AUTH)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "appointment_id" in detail
    assert "'name'" not in detail  # only what is missing
    assert await trigger_events(sim) == []


async def test_every_missing_data_key_is_named(api: httpx.AsyncClient) -> None:
    response = await api.post(
        URL, json={"trigger": "remind", "data": {"name": "Juan"}}, headers=AUTH
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert all(key in detail for key in ("date", "time", "appointment_id"))


@pytest.mark.parametrize(
    "wa_id", ["hello", "12", "+1 555", "+999 123456789", "549114012345678901234"]
)
async def test_an_invalid_phone_number_is_400(
    sim: Simulator, api: httpx.AsyncClient, wa_id: str
) -> None:
    response = await api.post(f"/conversations/{wa_id}/trigger", json=REMIND, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_trigger"
    assert await trigger_events(sim) == []


async def test_a_body_over_64_kib_is_refused(api: httpx.AsyncClient) -> None:
    data = {**REMIND["data"], "padding": "x" * (64 * 1024)}  # type: ignore[dict-item]
    response = await api.post(URL, json={"trigger": "remind", "data": data}, headers=AUTH)
    assert response.status_code == 413


async def test_a_huge_body_is_refused_as_it_streams_never_read_whole(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sent = 0

    async def twenty_mib() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        nonlocal sent
        for _ in range(320):
            sent += 1
            yield b"x" * 65536

    response = await api.post(URL, content=twenty_mib(), headers=AUTH)
    assert response.status_code == 413
    assert sent <= 3  # read up to the limit, not the 20 MiB
    assert await trigger_events(sim) == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    api: httpx.AsyncClient,
) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read += 1
        yield b"{}"

    headers = {**AUTH, "Content-Length": str(20 * 1024 * 1024)}
    response = await api.post(URL, content=body(), headers=headers)
    assert response.status_code == 413
    assert read == 0


# --- disabled -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def app_client(
    tmp_path: Path, *, api_token: str | None, phone_number_id: str | None = "555123456789"
) -> AsyncIterator[httpx.AsyncClient]:
    """The clinic's app, running, built from Settings with or without an API token."""
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock)
    settings = Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_triggers",
        webhook_secrets=("whsec_triggers",),
        phone_number_id=phone_number_id,
        database=str(tmp_path / "bot.db"),
        api_token=api_token,
    )
    runtime = Runtime(
        bots.clinic.bot, settings, clock=clock, transport=httpx.ASGITransport(app=fake.app)
    )
    app = create_app(runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client,
    ):
        yield client
    await fake.aclose()


@pytest.mark.parametrize(
    "headers", [{}, AUTH, {"Authorization": "Bearer "}], ids=["none", "a-token", "empty"]
)
async def test_without_a_configured_token_the_api_is_off(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async with app_client(tmp_path, api_token=None) as client:
        response = await client.post(URL, json=REMIND, headers=headers)
        assert response.status_code == 404
        assert "BOTKIT_API_TOKEN" in response.json()["detail"]


async def test_no_number_to_send_from_is_400(tmp_path: Path) -> None:
    async with app_client(tmp_path, api_token="s3cret", phone_number_id=None) as client:
        headers = {"Authorization": "Bearer s3cret"}
        response = await client.post(URL, json=REMIND, headers=headers)
        assert response.status_code == 400
        assert "phone_number_id" in response.json()["detail"]
        body = {**REMIND, "phone_number_id": "555123456789"}
        assert (await client.post(URL, json=body, headers=headers)).status_code == 202


async def test_a_configured_token_turns_it_on(tmp_path: Path) -> None:
    async with app_client(tmp_path, api_token="s3cret") as client:
        assert (await client.post(URL, json=REMIND)).status_code == 401
        response = await client.post(URL, json=REMIND, headers={"Authorization": "Bearer s3cret"})
        assert response.status_code == 202


# --- from Python: bot.trigger / sim.trigger -------------------------------------------------


async def test_bot_trigger_returns_the_event_id_and_runs_it(sim: Simulator, juan: SimUser) -> None:
    event_id = await sim.bot.trigger(JUAN, "remind", REMIND["data"])  # type: ignore[arg-type]
    assert event_id.startswith("trg_")
    await sim.settle()
    assert await sim.runtime.store.inspect.event_status(event_id) == ("done", None)


async def test_the_same_key_from_python_is_the_same_event(sim: Simulator) -> None:
    data = REMIND["data"]
    first = await sim.bot.trigger(JUAN, "remind", data, key="k1")  # type: ignore[arg-type]
    second = await sim.bot.trigger(JUAN, "remind", data, key="k1")  # type: ignore[arg-type]
    assert first == second
    assert len(await trigger_events(sim)) == 1


async def test_an_undeclared_trigger_from_python_is_a_404_trigger_error(sim: Simulator) -> None:
    with pytest.raises(TriggerError, match="remind") as raised:
        await sim.trigger(JUAN, "birthday")
    assert raised.value.status == 404


async def test_an_invalid_number_from_python_is_a_trigger_error(sim: Simulator) -> None:
    with pytest.raises(TriggerError) as raised:
        await sim.trigger("not a number", "remind", REMIND["data"])  # type: ignore[arg-type]
    assert raised.value.status == 400


async def test_a_bot_that_is_not_running_cannot_be_triggered() -> None:
    bot = Bot(bots.clinic.Clinic)
    with pytest.raises(BotkitError, match="not running"):
        await bot.trigger(JUAN, "remind", REMIND["data"])  # type: ignore[arg-type]


async def test_a_trigger_waits_for_the_users_earlier_messages(
    sim: Simulator, juan: SimUser
) -> None:
    # A message and a trigger stored back to back are handled in that order: the reminder
    # arrives with the window open (buttons, not the template), after the service list.
    delivery = await sim.fake.receive(
        wa_id=JUAN, name="Juan", message={"type": "text", "text": {"body": "hola"}}
    )
    assert delivery.status_code == 200
    await sim.bot.trigger(JUAN, "remind", REMIND["data"])  # type: ignore[arg-type]
    await sim.settle()
    await juan.refresh()
    assert [view.type for view in juan.messages] == ["interactive", "interactive"]
    assert juan.messages[0].row_ids == ["general", "specialist", "lab"]
    assert juan.messages[1].button_ids == ["confirm_yes", "reschedule"]
    assert juan.state == "confirming"


class Reminders(Conversation):
    """`remind` is only declared for users who booked."""

    idle = State(initial=True)
    booked = State()

    @on.text(to=booked)
    async def book(self, ctx: Context) -> None:
        await ctx.send(Text("reservado"))

    @on.trigger("remind", states=[booked], requires=["when"])
    async def remind(self, ctx: Context) -> None:
        await ctx.send(Text(f"recordatorio: {ctx.input.data['when']}"))  # type: ignore[union-attr]


async def test_a_trigger_not_declared_for_the_users_state_is_ignored_with_a_reason() -> None:
    async with Simulator(Bot(Reminders)) as sim:
        user = sim.user(JUAN)
        event_id = await sim.trigger(JUAN, "remind", {"when": "mañana"})
        status, reason = await sim.runtime.store.inspect.event_status(event_id) or ("", None)
        assert status == "ignored"
        assert reason is not None and "remind" in reason and "idle" in reason
        assert sim.sent == []
        await user.says("hola")
        await sim.trigger(JUAN, "remind", {"when": "mañana"})
        assert [view.text for view in user.messages] == ["reservado", "recordatorio: mañana"]
