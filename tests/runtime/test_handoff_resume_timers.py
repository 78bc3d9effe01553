"""A conversation handed back to the bot (by people, or by a handoff's timeout) has its
state's own timers set again, as if the user had just entered the state, and the timers of a
state they are no longer in cancelled (botkit.runtime.turn, `_resumed`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from botkit import Simulator
from botkit.tools.simulator import SimUser
from tests.runtime import timer_bot
from tests.runtime.timer_bot import LAST_CALL, NUDGE

pytestmark = pytest.mark.anyio

ANA = "5491155550000"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(timer_bot) as simulator:
        yield simulator


@pytest.fixture
def ana(sim: Simulator) -> SimUser:
    return sim.user(ANA, name="Ana")


def texts(user: SimUser) -> list[str | None]:
    return [message.text for message in user.messages]


async def timers(sim: Simulator) -> list[str]:
    return [t.name for t in await sim.runtime.store.inspect.timers(ANA)]


async def test_a_resume_in_the_same_state_sets_its_timers_again(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")  # asking
    assert await timers(sim) == ["timeout:nudge", "window_closing:last_call"]
    await sim.handoff(ANA, reason="duda")
    assert await timers(sim) == []  # people answer: the state's own timers would not run
    await sim.advance(hours=1)
    assert NUDGE not in texts(ana)
    await sim.resume(ANA, state="asking")  # the state she was handed off in
    assert ana.state == "asking"
    assert await timers(sim) == ["timeout:nudge", "window_closing:last_call"]
    await sim.advance(minutes=29)
    assert NUDGE not in texts(ana)
    await sim.advance(minutes=2)  # 30 quiet minutes after the bot took her back
    assert texts(ana).count(NUDGE) == 1


async def test_a_handoffs_timeout_resuming_sets_the_states_timers_again(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")  # asking
    await sim.handoff(ANA, reason="duda", timeout=timedelta(hours=1))
    await sim.advance(hours=1, minutes=1)  # the nudge ran nothing; then the bot resumed
    assert (ana.state, ana.handoff) == ("asking", None)
    assert NUDGE not in texts(ana)
    await sim.advance(minutes=31)
    assert texts(ana).count(NUDGE) == 1


async def test_a_resume_in_another_state_cancels_the_timers_of_the_one_left(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")  # asking: a nudge and a last call pending
    await sim.handoff(ANA, reason="duda")
    await sim.resume(ANA, state="done")
    assert await timers(sim) == []
    await sim.advance(hours=30)
    assert NUDGE not in texts(ana) and LAST_CALL not in texts(ana)


async def test_a_resume_with_the_window_still_open_sets_the_last_call_again(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")  # asking
    await sim.handoff(ANA, reason="duda")
    await sim.advance(hours=23, minutes=30)  # the last call came due and ran nothing
    assert LAST_CALL not in texts(ana)
    await sim.resume(ANA, state="asking")  # as if she had entered asking now: it is due
    await sim.advance(seconds=1)
    assert texts(ana).count(LAST_CALL) == 1
    await sim.advance(hours=1)  # the window closed
    assert texts(ana).count(LAST_CALL) == 1
