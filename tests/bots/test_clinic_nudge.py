"""The clinic's nudge: 30 quiet minutes in `confirming` (CLINIC_NUDGE_SECONDS changes it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from botkit import Simulator
from botkit.tools.simulator import SimUser
from bots.clinic import NUDGE

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def nudges(user: SimUser) -> int:
    return [message.text for message in user.messages].count(NUDGE)


async def test_a_quiet_user_is_nudged_once_after_30_minutes(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    assert juan.state == "confirming"
    await sim.advance(minutes=29)
    assert nudges(juan) == 0
    await sim.advance(minutes=1)
    assert nudges(juan) == 1
    assert juan.last_message.type == "text"
    await sim.advance(hours=2)
    assert nudges(juan) == 1
    await juan.taps("confirm_yes")  # the nudge changes nothing: the buttons still work
    assert juan.state == "confirmed"


async def test_confirming_in_time_means_no_nudge(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("general")
    await sim.advance(minutes=10)
    await juan.taps("confirm_yes")
    await sim.advance(hours=1)
    assert nudges(juan) == 0
    assert await sim.runtime.store.inspect.timers(juan.wa_id) == []


def test_the_delay_comes_from_clinic_nudge_seconds() -> None:
    code = "import bots.clinic as c; print(c.Clinic.spec.timed('timeout')[0].delay)"
    env = {**os.environ, "CLINIC_NUDGE_SECONDS": "5", "PYTHONPATH": str(ROOT)}
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "5.0"


async def test_no_nudge_while_people_answer(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    await sim.handoff(juan.wa_id, reason="a person takes it")  # the API's handoff: Juan is quiet
    await juan.refresh()
    assert juan.handoff is not None and juan.state == "confirming"
    # the handoff cancelled the nudge: the bot's handlers do not run while people answer
    assert [t.name for t in await sim.runtime.store.inspect.timers(juan.wa_id)] == []
    await sim.advance(minutes=31)
    assert nudges(juan) == 0
    view = await sim.runtime.repairs().conversation(juan.wa_id)
    assert [m for m in view["messages"] if m["summary"] == "timeout"] == []  # type: ignore[index, union-attr]


async def test_a_nudge_into_a_closed_window_becomes_the_reminder_template(
    sim: Simulator, juan: SimUser
) -> None:
    data = {"name": "Juan", "date": "20/05", "time": "10:30", "appointment_id": "123"}
    await sim.trigger(juan.wa_id, "remind", data)  # Juan never wrote: his window is closed
    assert juan.state == "confirming" and len(juan.templates) == 1
    await sim.advance(minutes=31)
    assert nudges(juan) == 0
    assert len(juan.templates) == 2  # the state's fallback, as for any send into a closed window
    assert juan.templates[-1].template_name == "appointment_reminder"
