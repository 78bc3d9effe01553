"""The dev server's JSON API, over httpx.ASGITransport with the app's lifespan running."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from botkit.tools.cli import parser
from botkit.tools.devserver import DevBot, create_dev_app
from botkit.types import ManualClock

JUAN = "5491140123456"
MENU_PNG = (Path(__file__).resolve().parents[2] / "bots" / "assets" / "menu.png").read_bytes()
REMINDER = {"name": "Juan", "date": "lunes 3", "time": "10:00", "appointment_id": "123"}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _client(
    dev: DevBot, watch_every: float | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_dev_app(dev, watch_every=watch_every)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
            yield client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    dev = DevBot("bots.clinic", tmp_path / "dev.db", clock=ManualClock())
    async for each in _client(dev):
        yield each


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def last_bot(state: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = [i for i in state["user"]["timeline"] if i["from"] == "bot"][-1]
    return found


async def book(client: httpx.AsyncClient) -> dict[str, Any]:
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    listed = last_bot(state)
    state = await post(
        client, f"/api/users/{JUAN}/pick", {"message_id": listed["message_id"], "id": "lab"}
    )
    buttons = last_bot(state)
    return await post(
        client,
        f"/api/users/{JUAN}/tap",
        {"message_id": buttons["message_id"], "id": "confirm_yes"},
    )


async def test_the_page_and_its_files_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert '<script src="/static/app.js">' in page.text
    for name in ("app.js", "app.css", "favicon.svg"):
        assert (await client.get(f"/static/{name}")).status_code == 200
    assert '<link rel="icon" href="/static/favicon.svg"' in page.text
    icon = await client.get("/favicon.ico")  # what a browser asks for on its own: no 404
    assert (icon.status_code, icon.headers["content-type"]) == (200, "image/svg+xml")


async def test_the_state_names_the_bot_its_triggers_and_the_default_user(
    client: httpx.AsyncClient,
) -> None:
    state = (await client.get("/api/state")).json()
    assert state["bot"] == "Clinic"
    assert state["triggers"] == {"remind": ["name", "date", "time", "appointment_id"]}
    assert state["users"] == [{"wa_id": JUAN, "name": "Juan"}]
    assert state["user"]["state"] == "idle"
    assert state["user"]["window"] == {
        "open": False,
        "closes_at": None,
        "refused": False,
        "closed_at": None,
    }


async def test_text_list_pick_and_button_tap_book_an_appointment(
    client: httpx.AsyncClient,
) -> None:
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    listed = last_bot(state)
    assert listed["body"]["interactive"]["type"] == "list"
    assert state["user"]["state"] == "choosing_service"
    state = await book(client)
    user = state["user"]
    assert user["state"] == "confirmed"
    assert user["data"] == {"service": "lab"}
    assert "quedó confirmado" in last_bot(state)["body"]["text"]["body"]
    shown = [(i["from"], i.get("text")) for i in user["timeline"] if i["from"] == "user"]
    assert shown == [
        ("user", "hola"),
        ("user", "hola"),
        ("user", "Laboratorio"),
        ("user", "Sí, confirmo"),
    ]


async def test_the_window_is_open_until_24_hours_after_the_last_message(
    client: httpx.AsyncClient,
) -> None:
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    window = state["user"]["window"]
    assert window["open"] is True
    assert window["closes_at"] == state["now"] + 24 * 3600
    state = await post(client, "/api/clock/advance?user=" + JUAN, {"hours": 25})
    assert state["user"]["window"]["open"] is False


async def test_the_wire_shows_the_inbound_event_the_request_and_the_answer(
    client: httpx.AsyncClient,
) -> None:
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    inbound, request = state["user"]["exchanges"]
    assert inbound["direction"] == "in"
    assert inbound["payload"]["type"] == "whatsapp.message.received"
    assert inbound["answer"] == {"status": 200, "body": {"accepted": 1, "duplicates": 0}}
    assert request["title"] == "POST /v1/messages"
    assert request["payload"]["body"]["to"] == JUAN
    assert request["payload"]["idempotency_key"]
    assert request["answer"]["status"] == 200


async def test_a_reminder_after_25_hours_arrives_as_a_template(client: httpx.AsyncClient) -> None:
    await book(client)
    await post(client, "/api/clock/advance", {"hours": 25})
    state = await post(client, f"/api/users/{JUAN}/trigger", {"name": "remind", "data": REMINDER})
    template = last_bot(state)
    assert template["type"] == "template"
    body = template["body"]["template"]
    assert body["name"] == "appointment_reminder"
    params = [p["text"] for c in body["components"] if c["type"] == "body" for p in c["parameters"]]
    assert params == ["Juan", "lunes 3", "10:00"]
    assert state["user"]["state"] == "confirming"
    assert template["template"] == {  # as Juan reads it: the wording the clinic declares
        "name": "appointment_reminder",
        "language": "es_AR",
        "header": None,
        "text": "Hola Juan, te recordamos tu turno del lunes 3 a las 10:00. ¿Lo confirmás?",
        "buttons": [{"payload": "confirm_yes_apt_123", "text": "Sí, confirmo"}],
        "declared": True,
    }
    tap = {"payload": "confirm_yes_apt_123", "message_id": template["message_id"]}
    state = await post(client, f"/api/users/{JUAN}/payload", tap)
    assert state["user"]["state"] == "confirmed"
    mine = [i for i in state["user"]["timeline"] if i["from"] == "user"][-1]
    assert (mine["text"], mine["id"]) == ("Sí, confirmo", "confirm_yes_apt_123")
    sent = state["user"]["exchanges"][-2]["payload"]["data"]["message"]
    assert sent["button"] == {"payload": "confirm_yes_apt_123", "text": "Sí, confirmo"}
    assert sent["context"]["id"] == template["message_id"]
    other = await client.post(
        f"/api/users/{JUAN}/payload", json={"payload": "nope", "message_id": template["message_id"]}
    )
    assert other.status_code == 400
    assert "offers no quick reply 'nope'" in other.json()["error"]


async def test_a_trigger_missing_data_or_undeclared_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/api/users/{JUAN}/trigger", json={"name": "remind", "data": {"name": "Juan"}}
    )
    assert response.status_code == 400
    assert "date" in response.json()["error"]
    response = await client.post(f"/api/users/{JUAN}/trigger", json={"name": "nope"})
    assert "no trigger 'nope'" in response.json()["error"]


async def test_users_are_created_switched_and_reset(client: httpx.AsyncClient) -> None:
    ana = "5491140999999"
    state = await post(client, "/api/users", {"wa_id": f"+{ana}", "name": "Ana"})
    assert {"wa_id": ana, "name": "Ana"} in state["users"]
    await post(client, f"/api/users/{ana}/say", {"text": "hola"})
    state = (await client.get(f"/api/state?user={ana}")).json()
    assert state["user"]["state"] == "choosing_service"
    assert (await client.get(f"/api/state?user={JUAN}")).json()["user"]["state"] == "idle"
    state = await post(client, f"/api/users/{ana}/reset", {})
    assert state["user"]["state"] == "idle"
    assert state["user"]["data"] == {}
    assert [i["from"] for i in state["user"]["timeline"]] == ["system"]
    bad = await client.post("/api/users", json={"wa_id": "12ab"})
    assert bad.status_code == 400
    unknown = await client.post("/api/users/5491100000000/say", json={"text": "hola"})
    assert unknown.status_code == 400


async def test_delivering_the_last_event_again_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    state = await post(client, f"/api/users/{JUAN}/redeliver", {})
    assert state["user"]["exchanges"][-1]["answer"]["body"] == {"accepted": 0, "duplicates": 1}
    assert len([i for i in state["user"]["timeline"] if i["from"] == "bot"]) == 1


@pytest.mark.parametrize("status", [503, 429])
async def test_a_failed_send_is_retried(client: httpx.AsyncClient, status: int) -> None:
    await post(client, "/api/provider/fail", {"status": status})
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    statuses = [
        x["answer"]["status"] for x in state["user"]["exchanges"] if x["direction"] == "out"
    ]
    assert statuses == [status, 200]
    assert state["user"]["state"] == "choosing_service"


async def test_a_403_closes_the_window_and_is_shown(client: httpx.AsyncClient) -> None:
    await post(client, "/api/provider/fail", {"status": 403})
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    statuses = [
        x["answer"]["status"] for x in state["user"]["exchanges"] if x["direction"] == "out"
    ]
    assert statuses[0] == 403
    [line] = [i["text"] for i in state["user"]["timeline"] if "refused" in i.get("text", "")]
    assert line.startswith("the provider refused an interactive message: 403 ")
    assert line.endswith(
        "the window is closed: no fallback (a Template or HOLD) applies, so the send failed"
    )
    bad = await client.post("/api/provider/fail", json={"status": 500})
    assert bad.status_code == 400


async def test_a_403_answered_with_the_fallback_template_says_so(client: httpx.AsyncClient) -> None:
    await book(client)
    await post(client, "/api/provider/fail", {"status": 403})
    state = await post(client, f"/api/users/{JUAN}/trigger", {"name": "remind", "data": REMINDER})
    [line] = [i["text"] for i in state["user"]["timeline"] if "refused" in i.get("text", "")]
    assert line.endswith("the window is closed: botkit sent the fallback template instead")
    assert last_bot(state)["type"] == "template"


async def test_tapping_what_was_not_offered_is_a_400(client: httpx.AsyncClient) -> None:
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    listed = last_bot(state)
    response = await client.post(
        f"/api/users/{JUAN}/pick", json={"message_id": listed["message_id"], "id": "x"}
    )
    assert response.status_code == 400
    assert "no row 'x'" in response.json()["error"]


BOT_SOURCE = """
from botkit import Bot, Context, Conversation, State, Text, on


class Echo(Conversation):
    idle = State(initial=True)
    talking = State()

    @on.text(states=[idle, talking], to=talking)
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text("{reply} " + (ctx.text or "")))


bot = Bot(Echo)
"""


@pytest.fixture
def echo_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    name = f"echo_{os.getpid()}_{id(tmp_path)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(BOT_SOURCE).replace("{reply}", "first"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    sys.modules.pop(name, None)


def break_(path: Path) -> None:
    path.write_text("def broken(:\n")


def edit(path: Path, reply: str) -> None:
    path.write_text(textwrap.dedent(BOT_SOURCE).replace("{reply}", reply))
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))


async def test_editing_the_module_reloads_it_and_keeps_states(
    tmp_path: Path, echo_module: Path
) -> None:
    dev = DevBot(echo_module.stem, tmp_path / "dev.db", clock=ManualClock())
    async for client in _client(dev, watch_every=0.01):
        await post(client, f"/api/users/{JUAN}/say", {"text": "uno"})
        edit(echo_module, "second")
        with anyio.fail_after(5):
            seen = dev.version
            while dev.reloads == 0:
                seen = await dev.wait_change(seen, 1)
        state = await post(client, f"/api/users/{JUAN}/say", {"text": "dos"})
        assert state["reloads"] == 1
        assert state["user"]["state"] == "talking"
        texts = [i["body"]["text"]["body"] for i in state["user"]["timeline"] if i["from"] == "bot"]
        assert texts == ["first uno", "second dos"]


async def test_a_broken_edit_keeps_the_previous_bot_running(
    tmp_path: Path, echo_module: Path
) -> None:
    dev = DevBot(echo_module.stem, tmp_path / "dev.db", clock=ManualClock())
    async for client in _client(dev):
        break_(echo_module)
        response = await client.post("/api/reload", json={})
        assert response.status_code == 400
        assert "SyntaxError" in response.json()["error"]
        state = await post(client, f"/api/users/{JUAN}/say", {"text": "uno"})
        assert state["reload_error"].startswith("SyntaxError")
        assert last_bot(state)["body"]["text"]["body"] == "first uno"


async def test_events_announce_changes(tmp_path: Path) -> None:
    dev = DevBot("bots.clinic", tmp_path / "dev.db", clock=ManualClock())
    seen = dev.version
    assert await dev.wait_change(seen, 0.01) == seen
    await dev.publish()
    assert await dev.wait_change(seen, 1) == seen + 1


def test_the_dev_command_line() -> None:
    args = parser().parse_args(["dev", "bots.clinic", "--port", "8123", "--no-reload"])
    assert (args.target, args.port, args.no_reload, args.database) == (
        "bots.clinic",
        8123,
        True,
        None,  # botkit-dev-clinic.db: the bot's own (botkit.config.database_for)
    )


async def get_into(client: httpx.AsyncClient, path: str, got: list[httpx.Response]) -> None:
    got.append(await client.get(path))


async def test_the_event_stream_says_hello_then_each_change_and_ends_when_told(
    tmp_path: Path,
) -> None:
    dev = DevBot("bots.clinic", tmp_path / "dev.db", clock=ManualClock())
    dev.stream_slice = 0.01
    async for client in _client(dev):
        async with anyio.create_task_group() as group:
            got: list[httpx.Response] = []
            group.start_soon(get_into, client, "/api/events", got)
            with anyio.fail_after(5):  # ASGITransport answers only once the stream ends
                while dev.listeners == 0:
                    await anyio.lowlevel.checkpoint()
            await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
            dev.end_streams()
        response = got[0]
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.text.startswith("event: hello\ndata: 0\n\n")
        assert "event: changed\ndata: " in response.text
        assert dev.listeners == 0


async def test_a_tap_no_handler_takes_leaves_a_line_naming_what_the_state_takes(
    client: httpx.AsyncClient,
) -> None:
    state = await book(client)
    assert not [i for i in state["user"]["timeline"] if "no handler" in i.get("text", "")]
    state = await post(client, f"/api/users/{JUAN}/payload", {"payload": "stale_offer"})
    line = state["user"]["timeline"][-1]["text"]
    assert line.startswith("no handler in state confirmed takes payload 'stale_offer'")
    assert line.endswith(
        "confirmed takes: text 'persona', text 'hablar con una persona', text 'humano', any text"
    )


async def test_an_uploaded_image_is_served_to_the_page(tmp_path: Path) -> None:
    dev = DevBot("bots.pizza", tmp_path / "dev.db", clock=ManualClock())
    async for client in _client(dev):
        state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
        [photo] = [i for i in state["user"]["timeline"] if i.get("type") == "image"]
        media_id = photo["body"]["image"]["id"]
        picture = await client.get(f"/api/media/{media_id}")
        assert picture.status_code == 200
        assert picture.headers["content-type"] == "image/png"
        assert picture.content == MENU_PNG
        missing = await client.get("/api/media/1234")
        assert missing.status_code == 404
        assert "no such media" in missing.json()["error"]


async def test_a_shared_location_goes_to_the_bot(client: httpx.AsyncClient) -> None:
    body = {"latitude": -34.6, "longitude": -58.38}
    state = await post(client, f"/api/users/{JUAN}/location", body)
    mine = [i for i in state["user"]["timeline"] if i["from"] == "user"]
    assert mine[-1]["kind"] == "location"
    assert state["user"]["timeline"][-1]["text"] == (  # the clinic's idle takes no location
        "no handler in state idle takes a location; the bot answers with the state's prompt, "
        "if it has one. idle takes: text 'persona', text 'hablar con una persona', "
        "text 'humano', any text"
    )
    message = state["user"]["exchanges"][0]["payload"]["data"]["message"]
    assert message["location"] == {"latitude": -34.6, "longitude": -58.38}
    bad = await client.post(f"/api/users/{JUAN}/location", json={"latitude": "x"})
    assert bad.status_code == 400


async def test_after_a_403_the_users_next_message_reopens_the_window(
    client: httpx.AsyncClient,
) -> None:
    listed = last_bot(await post(client, f"/api/users/{JUAN}/say", {"text": "hola"}))
    await post(client, "/api/provider/fail", {"status": 403})
    await client.post("/api/clock/advance", json={"hours": 1})
    state = await post(
        client, f"/api/users/{JUAN}/pick", {"message_id": listed["message_id"], "id": "lab"}
    )
    window = state["user"]["window"]
    assert (window["open"], window["refused"]) == (False, True)
    assert window["closed_at"] == state["now"]  # when the provider refused, not in the future
    for _ in range(2):
        state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
        statuses = [x["answer"]["status"] for x in state["user"]["exchanges"][-2:]]
        assert statuses == [200, 200]  # the webhook event, then the bot's reply
        assert state["user"]["window"]["open"] is True
        assert state["user"]["window"]["closed_at"] is None
    assert not [n for n in state["notes"] if "raised" in n["text"]]


async def test_a_window_that_ran_out_closed_24_hours_after_the_last_message(
    client: httpx.AsyncClient,
) -> None:
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
    said_at = state["now"]
    state = await post(client, "/api/clock/advance", {"hours": 25})
    window = state["user"]["window"]
    assert (window["open"], window["refused"]) == (False, False)
    assert window["closed_at"] == window["closes_at"] == said_at + 24 * 3600


async def test_a_users_timers_show_and_fire_with_time_travel(client: httpx.AsyncClient) -> None:
    listed = last_bot(await post(client, f"/api/users/{JUAN}/say", {"text": "hola"}))
    state = await post(
        client, f"/api/users/{JUAN}/pick", {"message_id": listed["message_id"], "id": "lab"}
    )
    assert state["user"]["timers"] == [
        {"name": "timeout:nudge", "due_at": state["now"] + 1800, "data": {}}
    ]
    asked_at = state["now"]
    state = await post(client, "/api/clock/advance?user=" + JUAN, {"hours": 2})
    nudge = last_bot(state)
    assert nudge["at"] == asked_at + 1800  # fired at its own time, not at the end of the jump
    assert state["user"]["timers"] == []
    state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})  # quiet time anew
    assert [t["name"] for t in state["user"]["timers"]] == ["timeout:nudge"]
    state = await post(client, f"/api/users/{JUAN}/reset", {})
    assert state["user"]["timers"] == []


async def test_the_data_panel_shows_what_the_handlers_see(tmp_path: Path) -> None:
    """The pizza bot tells stale taps apart: botkit keeps its latest prompt's key in the
    session's data, which the panel (as ctx.data) leaves out."""
    dev = DevBot("bots.pizza", tmp_path / "dev.db", clock=ManualClock())
    async for client in _client(dev):
        state = await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
        listed = last_bot(state)
        state = await post(
            client,
            f"/api/users/{JUAN}/pick",
            {
                "message_id": listed["message_id"],
                "id": listed["body"]["interactive"]["action"]["sections"][0]["rows"][0]["id"],
            },
        )
        data = state["user"]["data"]
        assert data and not any(key.startswith("botkit.") for key in data), data


BURSTY_SOURCE = """
from botkit import Bot, Context, Conversation, State, Text, on


class Bursty(Conversation):
    coalesce = 0.3

    idle = State(initial=True)

    @on.text(states=[idle])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(" + ".join(ctx.texts)))


bot = Bot(Bursty)
"""


async def test_a_burst_ends_on_the_real_clock_after_the_last_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"bursty_{os.getpid()}_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(BURSTY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    dev = DevBot(name, tmp_path / "dev.db", clock=ManualClock())
    try:
        async for client in _client(dev):
            await post(client, f"/api/users/{JUAN}/say", {"text": "hola"})
            state = await post(client, f"/api/users/{JUAN}/say", {"text": "¿están?"})
            assert [i for i in state["user"]["timeline"] if i["from"] == "bot"] == []
            assert "burst:texts" in json.dumps(state["user"])  # the pending timer is shown
            with anyio.fail_after(5):
                seen = dev.version
                while not dev.fake.messages_to(JUAN):
                    seen = await dev.wait_change(seen, 1)
            [reply] = dev.fake.messages_to(JUAN)
            assert reply.body["text"]["body"] == "hola + ¿están?"  # type: ignore[index, call-overload]
    finally:
        sys.modules.pop(name, None)
