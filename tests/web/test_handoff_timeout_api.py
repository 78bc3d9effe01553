"""POST /conversations/{wa_id}/handoff with a timeout: the bot resumes by itself, and the GET
shows when; a bad timeout or state is 400."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from botkit import Simulator
from botkit.tools.simulator import SIM_API_TOKEN, SimUser

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
AUTH = {"Authorization": f"Bearer {SIM_API_TOKEN}"}
HANDOFF = f"/conversations/{JUAN}/handoff"


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        yield client


async def test_a_handoff_with_a_timeout_resumes_by_itself(
    sim: Simulator, juan: SimUser, api: httpx.AsyncClient
) -> None:
    await juan.says("hola")
    body = {"reason": "reclamo", "timeout": 600, "resume_to": "idle"}
    response = await api.post(HANDOFF, json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    await sim.settle()
    mark = (await api.get(HANDOFF, headers=AUTH)).json()["handoff"]
    assert (mark["timeout"], mark["resume_to"]) == (600.0, "idle")
    assert mark["active"] == mark["since"]
    await sim.advance(minutes=11)
    await juan.refresh()
    assert (juan.state, juan.handoff) == ("idle", None)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"timeout": -5}, "positive duration"),
        ({"timeout": "10m"}, "number of seconds"),
        ({"timeout": 60, "resume_to": "lunch"}, "declared: idle, choosing_service"),
        ({"resume_to": "idle"}, "goes with a"),
    ],
)
async def test_a_bad_timeout_or_state_is_400(
    juan: SimUser, api: httpx.AsyncClient, body: dict[str, object], says: str
) -> None:
    await juan.says("hola")
    response = await api.post(HANDOFF, json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert says in response.text
