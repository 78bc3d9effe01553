"""The people's side in the dev server's JSON API: a handed-off user shows as such (since,
reason), the person answers through the outbox (window rules and all) and their messages show
apart from the bot's, and a resume puts the bot back in a declared state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.tools.devserver import DevBot, create_dev_app
from botkit.types import ManualClock

JUAN = "5491140123456"
USER = f"/api/users/{JUAN}"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    dev = DevBot("bots.clinic", tmp_path / "dev.db", clock=ManualClock(1_767_225_600))
    app = create_dev_app(dev, watch_every=None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
            yield client


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def said(state: dict[str, Any], who: str) -> list[str]:
    return [
        item["body"]["text"]["body"]
        for item in state["user"]["timeline"]
        if item["from"] == who and item["type"] == "text"
    ]


async def test_persona_hands_off_the_person_answers_and_resume_gives_it_back(
    client: httpx.AsyncClient,
) -> None:
    await post(client, f"{USER}/say", {"text": "hola"})
    state = await post(client, f"{USER}/say", {"text": "persona"})
    mark = state["user"]["handoff"]
    assert (mark["reason"], mark["state"]) == ("pidió hablar con una persona", "choosing_service")
    assert mark["since"] == state["now"] and mark["resumes_at"] is None
    assert "botkit.handoff" not in state["user"]["data"]  # shown on its own, not as data

    state = await post(client, f"{USER}/say", {"text": "quiero cambiar el turno"})
    notes = [i["text"] for i in state["user"]["timeline"] if i["from"] == "system"]
    assert not [note for note in notes if "no handler" in note]  # it went to the people
    state = await post(client, f"{USER}/person", {"text": "Hola Juan, soy Ana"})
    assert said(state, "person") == ["Hola Juan, soy Ana"]
    assert "Hola Juan, soy Ana" not in said(state, "bot")
    [request] = [x for x in state["user"]["exchanges"] if "Ana" in str(x["payload"])]
    assert request["title"] == "POST /v1/messages"  # the API path: the outbox, to the provider

    state = await post(client, f"{USER}/resume", {"state": "idle"})
    assert (state["user"]["state"], state["user"]["handoff"]) == ("idle", None)
    assert "resumed by the bot in idle" in [i.get("text") for i in state["user"]["timeline"]]
    state = await post(client, f"{USER}/say", {"text": "hola"})
    assert state["user"]["state"] == "choosing_service"  # the bot answers again


async def test_a_handoff_with_a_timeout_resumes_with_the_clock(client: httpx.AsyncClient) -> None:
    await post(client, f"{USER}/say", {"text": "hola"})
    body = {"reason": "reclamo", "timeout": 1800, "resume_to": "idle"}
    state = await post(client, f"{USER}/handoff", body)
    mark = state["user"]["handoff"]
    assert mark["resumes_at"] == mark["since"] + 1800
    assert "handoff:resume" in [t["name"] for t in state["user"]["timers"]]
    state = await post(client, "/api/clock/advance", {"hours": 1})
    assert (state["user"]["state"], state["user"]["handoff"]) == ("idle", None)


async def test_a_persons_message_into_a_closed_window_is_not_sent_and_says_so(
    client: httpx.AsyncClient,
) -> None:
    await post(client, f"{USER}/say", {"text": "persona"})
    await post(client, "/api/clock/advance", {"hours": 25})
    state = await post(client, f"{USER}/person", {"text": "¿Seguís ahí?"})
    assert said(state, "person") == []
    notes = [i.get("text", "") for i in state["user"]["timeline"] if i["from"] == "system"]
    assert any("window is closed" in note for note in notes)


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("resume", {"state": "lunch"}, "declared: idle, choosing_service"),
        ("resume", {}, "'state' is required"),
        ("person", {"text": ""}, "'text' is required"),
        ("handoff", {"timeout": -1}, "positive duration"),
        ("handoff", {"timeout": "1h"}, "number of seconds"),
    ],
)
async def test_what_cannot_be_done_is_a_400(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], says: str
) -> None:
    await post(client, f"{USER}/say", {"text": "hola"})
    response = await client.post(f"{USER}/{path}", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]
