"""A fired timer that something overtook before its event ran, through the Simulator: it runs
only if it is still the latest one set under its name for the user (botkit.runtime.timer_rules).

The races are made deterministic with a trigger whose handler waits at a gate: while it holds
the user's lane, the test stores the events that overtake the timer and fires the timer into
the inbox behind them; then it opens the gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from botkit import Bot, Context, Simulator, on
from botkit.tools.simulator import SimUser
from botkit.types import JSONObject
from tests.runtime.timer_bot import NUDGE, Timed

pytestmark = pytest.mark.anyio

ANA = "5491155550000"


class Gate:
    """Where the `hold` trigger's handler waits until the test lets it finish."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()


GATES: list[Gate] = []


class Racy(Timed):
    """The timer bot, with triggers that move the user without their writing, and a gate."""

    @on.trigger("leave", to="idle")
    async def leave(self, ctx: Context) -> None:
        """Out of `asking` (its timers are cancelled)."""

    @on.trigger("back", to="asking")
    async def back(self, ctx: Context) -> None:
        """Into `asking` again (its timers are set again)."""

    @on.trigger("hold")
    async def hold(self, ctx: Context) -> None:
        """Holds the user's lane until the test opens the gate; changes nothing."""
        gate = GATES[-1]
        gate.entered.set()
        await gate.opened.wait()

    @on.text("stop", states=["done"])
    async def cancel_held(self, ctx: Context) -> None:
        """Cancels the reminder, then holds the lane (the reminder fires meanwhile)."""
        ctx.cancel("reminder")
        gate = GATES[-1]
        gate.entered.set()
        await gate.opened.wait()

    @on.text("later", states=["done"])
    async def later_held(self, ctx: Context) -> None:
        """Moves the reminder two hours on, then holds the lane (the old one fires meanwhile)."""
        ctx.schedule("reminder", after=7200, data={"n": 3})
        gate = GATES[-1]
        gate.entered.set()
        await gate.opened.wait()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    GATES.append(Gate())
    async with Simulator(Bot(Racy)) as simulator:
        yield simulator


@pytest.fixture
def ana(sim: Simulator) -> SimUser:
    return sim.user(ANA, name="Ana")


def texts(user: SimUser) -> list[str | None]:
    return [message.text for message in user.messages]


async def held() -> None:
    """Waits until the gated handler holds the user's lane."""
    await asyncio.wait_for(GATES[-1].entered.wait(), 10)


async def says_held(sim: Simulator, user: SimUser, text: str) -> None:
    """The user writes `text`, whose handler holds the lane (the step does not wait for it)."""
    message: JSONObject = {"type": "text", "text": {"body": text}}
    delivery = await sim.fake.receive(
        wa_id=user.wa_id, name=user.name, message=message, phone_number_id=sim.phone_number_id
    )
    assert delivery.status_code == 200
    await held()


async def fire_due(sim: Simulator) -> None:
    """Fires what is due into the inbox now (the timer loop would, a moment later)."""
    workers = sim.runtime.workers
    assert workers is not None
    await workers.timers.fire_due()


async def opened(sim: Simulator, user: SimUser) -> None:
    GATES[-1].opened.set()
    await sim.settle()
    await user.refresh()


async def test_a_fired_timeout_the_user_left_and_reentered_the_state_since_is_dropped(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")  # asking: the nudge is due in 30 minutes
    await sim.bot.trigger(ANA, "hold")
    await held()
    await sim.bot.trigger(ANA, "leave")  # stored behind the held trigger
    await sim.bot.trigger(ANA, "back")
    sim.clock.advance(31 * 60)
    await fire_due(sim)  # the nudge set on "hola" enters the inbox behind "back"
    await opened(sim, ana)
    assert ana.state == "asking"
    assert NUDGE not in texts(ana)  # she entered asking again a moment ago: not quiet for 30
    await sim.advance(minutes=29)
    assert NUDGE not in texts(ana)
    await sim.advance(minutes=2)  # 30 minutes after she came back
    assert texts(ana).count(NUDGE) == 1


async def test_leaving_and_reentering_within_one_turn_sets_the_timeout_again(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")  # asking: the nudge is due in 30 minutes
    await sim.advance(minutes=20)
    await sim.bot.trigger(ANA, "hold")
    await held()
    await sim.bot.trigger(ANA, "leave")  # both run in the turn after the held one
    await sim.bot.trigger(ANA, "back")
    await opened(sim, ana)
    assert ana.state == "asking"
    await sim.advance(minutes=11)  # 31 minutes after "hola", 11 after she came back
    assert NUDGE not in texts(ana)
    await sim.advance(minutes=20)
    assert texts(ana).count(NUDGE) == 1


async def reminded(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await ana.taps("yes")
    await ana.says("remind")  # the reminder is due in two hours
    assert ana.state == "done"


async def fired_while_saying(sim: Simulator, ana: SimUser, word: str) -> None:
    """The reminder comes due, and fires, while the handler of `word` (which changes it) runs."""
    await reminded(sim, ana)
    await sim.advance(hours=1, minutes=59)
    await says_held(sim, ana, word)
    sim.clock.advance(120)
    await fire_due(sim)
    await opened(sim, ana)


def reminders(ana: SimUser) -> list[str | None]:
    return [t for t in texts(ana) if t and t.startswith("Recordatorio")]


async def test_a_reminder_fired_before_a_handler_cancelled_it_does_not_run(
    sim: Simulator, ana: SimUser
) -> None:
    await fired_while_saying(sim, ana, "stop")
    assert not reminders(ana)
    await sim.advance(hours=5)
    assert not reminders(ana)


async def test_a_reminder_fired_before_a_handler_moved_it_runs_once_at_the_new_time(
    sim: Simulator, ana: SimUser
) -> None:
    await fired_while_saying(sim, ana, "later")  # the old one fires while it is moved
    assert not reminders(ana)
    await sim.advance(hours=2)
    assert reminders(ana) == ["Recordatorio 3"]
