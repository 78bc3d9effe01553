"""The handoff API over HTTP: POST /conversations/{wa_id}/handoff, /messages and /resume, and
GET /conversations/{wa_id}/handoff, against the simulator's app (the clinic, a real SQLite
file, the fake GoSendAPI and the fake desk), whose API token is `SIM_API_TOKEN`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import bots.clinic
from botkit import Simulator
from botkit.config import Settings
from botkit.fake.provider import FakeGoSendAPI
from botkit.runtime.runtime import Runtime
from botkit.tools.simulator import SIM_API_TOKEN, SimUser
from botkit.types import ManualClock
from botkit.web.app import create_app

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
STRANGER = "5491100000000"
PHONE_NUMBER_ID = "555123456789"
AUTH = {"Authorization": f"Bearer {SIM_API_TOKEN}"}


def url(wa_id: str, what: str) -> str:
    return f"/conversations/{wa_id}/{what}"


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        yield client


async def test_hand_off_answer_and_resume_over_http(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    response = await api.post(url(JUAN, "handoff"), json={"reason": "reclamo"}, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json()["event_id"].startswith("hnd_")
    await sim.settle()
    await juan.says("quiero hablar con alguien")
    assert juan.state == "choosing_service"

    shown = await api.get(url(JUAN, "handoff"), headers=AUTH)
    assert shown.status_code == 200, shown.text
    view = shown.json()
    assert view["handed_off"] is True
    assert view["handoff"]["reason"] == "reclamo"
    assert view["handoff"]["state"] == "choosing_service"
    [message] = view["messages"]
    assert message["status"] == "sent"
    assert message["forwarded"]["message"]["body"] == "quiero hablar con alguien"

    response = await api.post(url(JUAN, "messages"), json={"text": "Hola, soy Ana"}, headers=AUTH)
    assert response.status_code == 202, response.text
    await sim.settle()
    await juan.refresh()
    assert juan.last_message.text == "Hola, soy Ana"

    response = await api.post(url(JUAN, "resume"), json={"state": "idle"}, headers=AUTH)
    assert response.status_code == 202, response.text
    await sim.settle()
    await juan.refresh()
    assert (juan.state, juan.handoff) == ("idle", None)
    view = (await api.get(url(JUAN, "handoff"), headers=AUTH)).json()
    assert view["handed_off"] is False and view["handoff"] is None


@pytest.mark.parametrize(
    ("what", "body"),
    [("handoff", {"reason": "x"}), ("messages", {"text": "hola"}), ("resume", {"state": "idle"})],
)
async def test_a_conversation_the_store_does_not_have_is_404(
    api: httpx.AsyncClient, what: str, body: dict[str, str]
) -> None:
    response = await api.post(url(STRANGER, what), json=body, headers=AUTH)
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    assert "no conversation with '5491100000000'" in response.json()["detail"]
    assert (await api.get(url(STRANGER, "handoff"), headers=AUTH)).status_code == 404


async def test_a_resume_to_an_undeclared_state_is_400_naming_the_declared_ones(
    juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    for body in ({"state": "nowhere"}, {}):
        response = await api.post(url(JUAN, "resume"), json=body, headers=AUTH)
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert "declared: idle, choosing_service, confirming, confirmed" in detail


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, '"text" must be the message to send'),
        ({"text": ""}, '"text" must be the message to send'),
        ({"text": "x" * 5000}, "4096"),
        ({"text": "hola", "fallback": "agent_reply"}, '"fallback" must be a template'),
        ({"text": "hola", "fallback": {"name": "agent_reply"}}, 'needs "name" and "language"'),
        ({"text": "hola", "fallback": {"name": "Agent Reply", "language": "es"}}, "lowercase"),
    ],
)
async def test_a_reply_botkit_cannot_send_is_400(
    juan: SimUser, api: httpx.AsyncClient, body: dict[str, object], says: str
) -> None:
    await juan.says("hola")
    response = await api.post(url(JUAN, "messages"), json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert says in response.json()["detail"]


async def test_a_number_that_is_not_a_phone_number_is_400(api: httpx.AsyncClient) -> None:
    response = await api.post(url("12", "handoff"), json={}, headers=AUTH)
    assert response.status_code == 400, response.text
    assert "12" in response.json()["detail"]


async def test_the_body_must_be_a_json_object(juan: SimUser, api: httpx.AsyncClient) -> None:
    await juan.says("hola")
    for content in (b"[1]", b"{nope"):
        response = await api.post(url(JUAN, "handoff"), content=content, headers=AUTH)
        assert response.status_code == 400, response.text


async def test_a_wrong_token_is_401(juan: SimUser, api: httpx.AsyncClient) -> None:
    await juan.says("hola")
    bad = {"Authorization": "Bearer nope"}
    assert (await api.post(url(JUAN, "handoff"), json={}, headers=bad)).status_code == 401
    assert (await api.get(url(JUAN, "handoff"), headers=bad)).status_code == 401


async def test_the_same_idempotency_key_is_one_reply(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    said = len(juan.messages)
    headers = {**AUTH, "Idempotency-Key": "reply-1"}
    ids = set()
    for _ in range(2):
        response = await api.post(url(JUAN, "messages"), json={"text": "hola"}, headers=headers)
        assert response.status_code == 202
        ids.add(response.json()["event_id"])
    await sim.settle()
    await juan.refresh()
    assert len(ids) == 1
    assert len(juan.messages) == said + 1


@contextlib.asynccontextmanager
async def app_without_a_desk(
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime, FakeGoSendAPI]]:
    """The clinic's app with the API token and no BOTKIT_HANDOFF_URL."""
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, webhook_url="http://bot/webhook", webhook_secret="whsec_h")
    settings = Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_handoff",
        webhook_secrets=("whsec_h",),
        phone_number_id=PHONE_NUMBER_ID,
        database=str(tmp_path / "bot.db"),
        api_token=SIM_API_TOKEN,
    )
    runtime = Runtime(
        bots.clinic.bot, settings, clock=clock, transport=httpx.ASGITransport(app=fake.app)
    )
    app = create_app(runtime)
    fake.webhook_transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client,
    ):
        yield client, runtime, fake
    await fake.aclose()


async def test_without_a_handoff_url_the_messages_are_kept_for_the_api(tmp_path: Path) -> None:
    async with app_without_a_desk(tmp_path) as (client, runtime, fake):
        text = {"type": "text", "text": {"body": "persona"}}
        await fake.receive(wa_id=JUAN, name="Juan", message=text, phone_number_id=PHONE_NUMBER_ID)
        await runtime.settle()
        said = len(fake.messages_to(JUAN))
        text = {"type": "text", "text": {"body": "¿hola?"}}
        await fake.receive(wa_id=JUAN, name="Juan", message=text, phone_number_id=PHONE_NUMBER_ID)
        await runtime.settle()
        assert len(fake.messages_to(JUAN)) == said  # no handler ran
        view = (await client.get(url(JUAN, "handoff"), headers=AUTH)).json()
        assert view["handed_off"] is True
        [message] = view["messages"]
        assert (message["status"], message["attempts"]) == ("sent", 1)
        assert message["forwarded"]["message"]["body"] == "¿hola?"


async def test_a_web_replica_answers_from_the_store_the_workers_share(tmp_path: Path) -> None:
    database = tmp_path / "clinic.db"
    async with Simulator(bots.clinic, database=database) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("hola")
        settings = Settings(
            database=str(database), api_token=SIM_API_TOKEN, phone_number_id=sim.phone_number_id
        )
        replica = Runtime(bots.clinic.bot, settings, clock=sim.clock, workers=False)
        app = create_app(replica)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://web") as client,
        ):
            stranger = await client.post(url(STRANGER, "handoff"), json={}, headers=AUTH)
            assert stranger.status_code == 404, stranger.text
            taken = await client.post(url(JUAN, "handoff"), json={"reason": "x"}, headers=AUTH)
            assert taken.status_code == 202, taken.text
        await sim.settle()
        await juan.refresh()
        assert juan.handoff is not None and juan.handoff.reason == "x"


async def test_an_admin_reset_ends_a_handoff(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("persona")
    assert juan.handoff is not None
    reset = await api.post(f"/admin/conversations/{JUAN}/reset", headers=AUTH)
    assert reset.status_code == 200, reset.text
    await juan.says("hola")
    assert juan.handoff is None
    assert juan.state == "choosing_service"  # the bot answered
