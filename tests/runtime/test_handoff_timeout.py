"""A handoff with a timeout: the bot resumes the conversation by itself when no message has
passed either way for that long (a durable timer that fires once), in the state asked for or
the one the user was in; a resume by people, or a message either way, comes first."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from botkit import Bot, Context, Conversation, HandoffError, Simulator, State, Text, on
from botkit.runtime import handoff_timer
from botkit.tools.simulator import SimUser
from botkit.types import ManualClock
from bots import clinic

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
BACK = "Volviste con el bot. ¿Qué necesitás?"


class Desk(Conversation):
    """Hands off for ten minutes from any state; the bot comes back in `menu`."""

    start = State(initial=True)
    menu = State(prompt=Text(BACK))

    @on.text("persona")
    async def human(self, ctx: Context) -> None:
        await ctx.handoff(reason="pidió", timeout=timedelta(minutes=10), resume_to=Desk.menu)

    @on.text(states=[start, menu])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(f"eco: {ctx.text}"))


async def timers(sim: Simulator, wa_id: str = JUAN) -> list[str]:
    return [t.name for t in await sim.runtime.store.inspect.timers(wa_id)]


async def asked(sim: Simulator) -> int:
    """How many times the bot asked Juan to confirm (the prompt of `confirming`)."""
    rows = await sim.outbox(JUAN)
    return len([row for row in rows if "¿Confirmás el turno?" in str(row.payload)])


async def handed_off(sim: Simulator, juan: SimUser, minutes: float = 45) -> None:
    await juan.says("hola")
    await juan.picks("lab")  # confirming
    await sim.handoff(JUAN, reason="reclamo", timeout=timedelta(minutes=minutes))
    # the state's own nudge (30 minutes after entering confirming) comes due meanwhile


async def test_the_bot_resumes_in_the_users_state_when_the_people_stay_silent(
    sim: Simulator, juan: SimUser
) -> None:
    await handed_off(sim, juan)
    assert juan.handoff is not None and juan.handoff.resumes_at is not None
    assert handoff_timer.NAME in await timers(sim)
    await sim.advance(minutes=44)
    assert juan.handoff is not None  # the nudge fired at 30 minutes and ran nothing
    await sim.advance(minutes=2)
    assert (juan.state, juan.handoff) == ("confirming", None)
    assert "¿Confirmás el turno?" in (juan.last_message.text or "")  # its prompt again
    assert handoff_timer.NAME not in await timers(sim)
    await juan.says("sí")  # the bot answers again
    assert juan.last_message.text != "sí"


async def test_a_message_either_way_starts_the_timeout_again(sim: Simulator, juan: SimUser) -> None:
    await handed_off(sim, juan)
    await sim.advance(minutes=40)
    await juan.says("¿hay alguien?")  # the user writes: 45 minutes from now
    await sim.advance(minutes=40)
    await sim.reply(JUAN, "Hola Juan, soy Ana")  # a person writes: 45 minutes from now
    await sim.advance(minutes=44)
    assert juan.handoff is not None
    await sim.advance(minutes=2)
    assert juan.handoff is None and juan.state == "confirming"


async def test_a_resume_before_the_timeout_cancels_it(sim: Simulator, juan: SimUser) -> None:
    await handed_off(sim, juan)
    await sim.resume(JUAN, state="idle")
    assert handoff_timer.NAME not in await timers(sim)
    await sim.advance(hours=2)
    assert (juan.state, juan.handoff) == ("idle", None)
    prompts = [m for m in juan.messages if "¿Confirmás el turno?" in (m.text or "")]
    assert len(prompts) == 1  # only the first ask: nothing resumed a second time


async def test_a_handler_hands_off_with_a_timeout_and_a_state_to_resume_to() -> None:
    async with Simulator(Bot(Desk)) as sim:
        ana = sim.user(JUAN, name="Ana")
        await ana.says("persona")
        assert ana.handoff is not None
        assert (ana.handoff.timeout, ana.handoff.resume_to) == (600.0, "menu")
        await ana.says("¿hola?")
        assert ana.messages == []  # the people have it
        await sim.advance(minutes=11)
        assert (ana.state, ana.handoff, ana.last_message.text) == ("menu", None, BACK)


async def test_a_fired_timeout_a_message_overtook_resumes_nothing() -> None:
    async with Simulator(Bot(Desk)) as sim:
        ana = sim.user(JUAN, name="Ana")
        await ana.says("persona")
        await sim.reply(JUAN, "ya te atiendo")
        assert ana.handoff is not None
        await sim.resume(JUAN, state="start")
        await ana.says("persona")  # a second handoff: the first one's timer must not end it
        await sim.advance(minutes=9)
        assert ana.handoff is not None
        await sim.advance(minutes=2)
        assert ana.handoff is None and ana.state == "menu"


async def test_the_timeout_fires_once_across_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    database = tmp_path / "clinic.db"
    async with Simulator(clinic, database=database, clock=clock) as first:
        juan = first.user(JUAN, name="Juan")
        await handed_off(first, juan)
        await first.advance(minutes=10)
    clock.advance(3600)  # down for an hour: the timeout came due meanwhile
    async with Simulator(clinic, database=database, clock=clock) as second:
        await second.settle()
        juan = second.user(JUAN, name="Juan")
        await juan.refresh()
        assert (juan.state, juan.handoff) == ("confirming", None)
        await second.advance(minutes=20)  # (before the state's nudge, set again on resuming)
        assert await asked(second) == 2  # on entering confirming, and once on resuming


async def test_the_timeout_fires_once_with_two_processes_on_postgresql(
    postgres_url: str,
) -> None:
    clock = ManualClock()
    async with Simulator(clinic, database=postgres_url, clock=clock) as first:
        juan = first.user(JUAN, name="Juan")
        await handed_off(first, juan)  # on one process: each has a fake provider of its own
        sent = await first.outbox(JUAN)
        async with Simulator(clinic, database=postgres_url, clock=clock) as second:
            clock.advance(46 * 60)  # both processes' timer loops find it due
            await asyncio.gather(first.settle(), second.settle())
            # (one clock: 20 minutes in all, before the state's nudge, set again on resuming)
            await first.advance(minutes=10)
            await second.advance(minutes=10)
            await juan.refresh()
            assert juan.handoff is None
            # once resumed: one prompt, whichever process fired the timer (when the second
            # did, its fake provider never heard Juan write and refused it: the row failed,
            # or became its fallback template in place; still one row)
            resumed = [row for row in await first.outbox(JUAN) if row.seq > sent[-1].seq]
            assert len(resumed) == 1, resumed


async def test_a_bad_timeout_or_state_is_refused(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    with pytest.raises(HandoffError, match="positive duration"):
        await sim.handoff(JUAN, timeout=0)
    with pytest.raises(HandoffError, match="declared: idle, choosing_service"):
        await sim.handoff(JUAN, timeout=60, resume_to="nowhere")
    with pytest.raises(HandoffError, match="goes with a"):
        await sim.handoff(JUAN, resume_to="idle")
