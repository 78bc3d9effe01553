"""The admin API: failed events and sends listed and retried, one user's conversation shown,
reset and forgotten, behind the Bearer token.

Driven over HTTP with `httpx.ASGITransport` against the simulator's app (a bot whose handler
fails while `BROKEN` says so, a real SQLite file, the fake GoSendAPI; API token
`SIM_API_TOKEN`), and against web replicas (no workers: events stay pending) built with
`create_app` and run through their lifespan.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

import bots.clinic
from botkit import Bot, Context, Conversation, Simulator, State, Text, on
from botkit.config import Settings
from botkit.runtime.runtime import Runtime
from botkit.store.base import NewEvent
from botkit.store.memory import MemoryStore
from botkit.tools.simulator import SIM_API_TOKEN, SimUser
from botkit.web.app import create_app

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
AUTH = {"Authorization": f"Bearer {SIM_API_TOKEN}"}
BROKEN = [False]  # the handler's bug, while True: "boom" fails


class Echo(Conversation):
    start = State(initial=True)
    chatting = State()

    @on.text(states=[start, chatting], to=chatting)
    async def echo(self, ctx: Context) -> None:
        if ctx.text == "boom" and BROKEN[0]:
            raise RuntimeError("the database of appointments is down")
        ctx.data["last"] = ctx.text
        await ctx.send(Text(f"eco: {ctx.text}"))


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    BROKEN[0] = False
    async with Simulator(Bot(Echo), database=tmp_path / "admin.db") as simulator:
        yield simulator


@pytest.fixture
def juan(sim: Simulator) -> SimUser:
    return sim.user(JUAN, name="Juan")


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(sim.app) as client:
        yield client


@contextlib.asynccontextmanager
async def client_of(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        yield client


@contextlib.asynccontextmanager
async def replica(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A service of `runtime` running (its lifespan), and a client of it."""
    app = create_app(runtime)
    async with app.router.lifespan_context(app), client_of(app) as client:
        yield client


async def fail_boom(juan: SimUser) -> None:
    """Juan's "boom" fails in the handler; his "hola" after it does not wait for it."""
    BROKEN[0] = True
    with pytest.raises(RuntimeError, match="appointments is down"):
        await juan.says("boom")
    await juan.says("hola")
    BROKEN[0] = False


# --- events -----------------------------------------------------------------------------------


async def test_a_failed_event_is_listed_shown_and_retried_after_the_users_later_messages(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await fail_boom(juan)
    listed = await api.get("/admin/events", headers=AUTH)
    assert listed.status_code == 200, listed.text
    [line] = listed.json()["events"]
    assert line["user"] == "54911****3456" and JUAN not in listed.text
    assert (line["kind"], line["status"], line["attempts"]) == ("message", "failed", 1)
    assert line["error"] == "RuntimeError: the database of appointments is down"
    assert line["received_at"].endswith("Z") and line["processed_at"].endswith("Z")
    event_id = line["event_id"]

    shown = (await api.get(f"/admin/events/{event_id}", headers=AUTH)).json()
    assert (shown["wa_id"], shown["status"], shown["summary"]) == (JUAN, "failed", "boom")
    assert shown["envelope"]["data"]["message"]["text"]["body"] == "boom"

    retried = await api.post(f"/admin/events/{event_id}/retry", headers=AUTH)
    assert retried.status_code == 200, retried.text
    copy = retried.json()["as"]
    assert (copy["event_id"], copy["status"]) == (f"{event_id}~retry1", "pending")
    await sim.settle()
    await juan.refresh()
    assert juan.data == {"last": "boom"}  # it ran after "hola", from the state "hola" left
    assert [m.text for m in juan.messages] == ["eco: hola", "eco: boom"]
    assert (await api.get("/admin/events", headers=AUTH)).json() == {"events": []}
    original = (await api.get(f"/admin/events/{event_id}", headers=AUTH)).json()
    assert original["status"] == "retried"
    done = (await api.get(f"/admin/events/{event_id}~retry1", headers=AUTH)).json()
    assert done["status"] == "done"


async def test_retrying_what_did_not_fail_is_409_and_an_unknown_event_404(
    juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    [line] = (await api.get("/admin/events?status=done", headers=AUTH)).json()["events"]
    refused = await api.post(f"/admin/events/{line['event_id']}/retry", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "conflict",
        "detail": f"event {line['event_id']!r} is done: only a failed event can be retried",
    }
    for response in (
        await api.get("/admin/events/evt_nope", headers=AUTH),
        await api.post("/admin/events/evt_nope/retry", headers=AUTH),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "error": "not_found",
            "detail": "no event 'evt_nope' in the inbox",
        }


async def test_retry_failed_retries_every_failed_event_oldest_first(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await fail_boom(juan)
    await fail_boom(juan)
    answer = (await api.post("/admin/events/retry-failed", headers=AUTH)).json()
    assert len(answer["retried"]) == 2 and answer["refused"] == [] and answer["more"] is False
    await sim.settle()
    await juan.refresh()
    assert [m.text for m in juan.messages][-2:] == ["eco: boom", "eco: boom"]
    assert (await api.get("/admin/events", headers=AUTH)).json() == {"events": []}


async def test_a_bad_query_is_400(api: httpx.AsyncClient) -> None:
    for url in ("/admin/events?status=lost", "/admin/events?limit=0", "/admin/sends?limit=x"):
        response = await api.get(url, headers=AUTH)
        assert response.status_code == 400, url
        assert response.json()["error"] == "bad_request"


# --- sends ------------------------------------------------------------------------------------


async def test_a_failed_send_is_listed_and_retried_under_a_new_key(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    sim.fail_next(400)
    await juan.says("hola")
    assert juan.messages == []
    [line] = (await api.get("/admin/sends", headers=AUTH)).json()["sends"]
    assert (line["user"], line["type"], line["status"]) == ("54911****3456", "text", "failed")
    assert "400" in line["error"]
    shown = (await api.get(f"/admin/sends/{line['send']}", headers=AUTH)).json()
    assert shown["summary"] == "eco: hola" and shown["wa_id"] == JUAN
    retried = await api.post(f"/admin/sends/{line['send']}/retry", headers=AUTH)
    assert retried.status_code == 200, retried.text
    assert retried.json()["idempotency_key"] == shown["idempotency_key"] + "-r1"
    await sim.settle()
    assert [m.text for m in juan.messages] == ["eco: hola"]
    again = (await api.get(f"/admin/sends/{line['send']}", headers=AUTH)).json()
    assert again["status"] == "sent"
    assert (await api.post(f"/admin/sends/{line['send']}/retry", headers=AUTH)).status_code == 409
    assert (await api.get("/admin/sends/999", headers=AUTH)).status_code == 404


# --- one user ---------------------------------------------------------------------------------


async def test_a_conversation_shows_state_data_window_and_messages_with_their_statuses(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    await sim.status(juan.last_message, "read")
    shown = await api.get(f"/admin/conversations/{JUAN}", headers=AUTH)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    [number] = body["numbers"]
    assert (number["state"], number["initial"], number["data"]) == (
        "chatting", False, {"last": "hola"},
    )  # fmt: skip
    assert number["window"]["open"] is True and number["window"]["closes_at"].endswith("Z")
    assert (number["pending_events"], number["pending_sends"], number["in_flight"]) == (0, 0, False)
    inbound, outbound, status = body["messages"]
    assert (inbound["direction"], inbound["summary"], inbound["status"]) == ("in", "hola", "done")
    assert (outbound["direction"], outbound["summary"]) == ("out", "eco: hola")
    assert (outbound["status"], outbound["delivery_status"]) == ("sent", "read")
    assert status["summary"].startswith("status read of ")
    assert (await api.get("/admin/conversations/5491199999999", headers=AUTH)).status_code == 404


async def test_reset_puts_the_user_back_at_the_initial_state(
    juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    reset = await api.post(f"/admin/conversations/{JUAN}/reset", headers=AUTH)
    assert reset.json() == {"wa_id": JUAN, "state": "start", "sessions_deleted": 1}
    [number] = (await api.get(f"/admin/conversations/{JUAN}", headers=AUTH)).json()["numbers"]
    assert (number["state"], number["initial"], number["data"]) == ("start", True, {})
    await juan.refresh()
    assert juan.state == "start"
    unknown = await api.post("/admin/conversations/5491199999999/reset", headers=AUTH)
    assert unknown.status_code == 404


async def test_forget_deletes_the_user_and_says_what(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    await sim.status(juan.last_message, "delivered")
    other = sim.user("5491140999999")
    await other.says("hola")
    gone = await api.delete(f"/admin/conversations/{JUAN}", headers=AUTH)
    assert gone.status_code == 200, gone.text
    assert gone.json() == {
        "wa_id": JUAN,
        "deleted": {
            "sessions": 1,
            "events": 2,  # his message, and the delivery status of the reply
            "event_results": 0,
            "sends": 1,
            "delivery_statuses": 1,
            "lanes": 1,
        },
        "total": 6,
    }
    assert (await api.get(f"/admin/conversations/{JUAN}", headers=AUTH)).status_code == 404
    assert (await api.delete(f"/admin/conversations/{JUAN}", headers=AUTH)).status_code == 404
    kept = await api.get("/admin/conversations/5491140999999", headers=AUTH)
    assert kept.json()["numbers"][0]["data"] == {"last": "hola"}


async def test_forget_with_events_not_processed_is_409_naming_how_many(tmp_path: Path) -> None:
    """A web replica stores events that its workers (elsewhere) have not processed yet."""
    settings = Settings(database=str(tmp_path / "replica.db"), api_token=SIM_API_TOKEN)
    runtime = Runtime(Bot(Echo), settings, workers=False)
    async with replica(runtime) as api:
        await runtime.store.inbox.add([message("e1"), message("e2")])
        refused = await api.delete(f"/admin/conversations/{JUAN}", headers=AUTH)
        assert refused.status_code == 409
        assert refused.json() == {
            "error": "conflict",
            "detail": f"user {JUAN} has 2 events not processed yet (pending or running): "
            "nothing was deleted; wait until the workers have processed them (botkit "
            "conversations show) and forget again",
        }
        [number] = (await api.get(f"/admin/conversations/{JUAN}", headers=AUTH)).json()["numbers"]
        assert number["pending_events"] == 2


async def test_a_reset_while_a_turn_keeps_running_is_409_busy() -> None:
    store = MemoryStore()
    settings = Settings(api_token=SIM_API_TOKEN)
    runtime = Runtime(Bot(Echo), settings, store=store, workers=False)
    async with replica(runtime) as api:
        await store.inbox.add([message("e1")])
        await store.inbox.claim("stuck", 10, 60.0)  # a turn that runs past the wait
        busy = await api.post(f"/admin/conversations/{JUAN}/reset", headers=AUTH)
        assert busy.status_code == 409
        assert busy.json()["error"] == "busy"
        assert "a turn of theirs is running" in busy.json()["detail"]


def message(event_id: str) -> NewEvent:
    envelope = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": "555123456789",
        "data": {
            "contact": {"wa_id": JUAN},
            "message": {"from": JUAN, "id": f"wamid.{event_id}", "timestamp": "1779199200",
                        "type": "text", "text": {"body": "hola"}},
        },
    }  # fmt: skip
    return NewEvent(event_id, f"wamid.{event_id}", "message", "555123456789", JUAN, envelope)


# --- the token --------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/admin/events"),
    ("GET", "/admin/events/evt_1"),
    ("POST", "/admin/events/evt_1/retry"),
    ("POST", "/admin/events/retry-failed"),
    ("GET", "/admin/sends"),
    ("GET", "/admin/sends/1"),
    ("POST", "/admin/sends/1/retry"),
    ("POST", "/admin/sends/retry-failed"),
    ("GET", f"/admin/conversations/{JUAN}"),
    ("POST", f"/admin/conversations/{JUAN}/reset"),
    ("DELETE", f"/admin/conversations/{JUAN}"),
]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": SIM_API_TOKEN}],
    ids=["missing", "wrong", "no-scheme"],
)
async def test_without_the_right_token_every_route_is_401(
    api: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, url in ROUTES:
        response = await api.request(method, url, headers=headers)
        assert response.status_code == 401, (method, url)
        assert response.json()["error"] == "unauthorized"


async def test_with_no_token_configured_the_admin_api_is_404(tmp_path: Path) -> None:
    settings = Settings(database=str(tmp_path / "off.db"))
    async with replica(Runtime(bots.clinic.bot, settings, workers=False)) as api:
        for method, url in ROUTES:
            response = await api.request(method, url, headers=AUTH)
            assert response.status_code == 404, (method, url)
            assert response.json() == {
                "error": "not_found",
                "detail": "the admin API is off: set BOTKIT_API_TOKEN",
            }
