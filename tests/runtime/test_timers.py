"""Durable timers through the Simulator (real webhook app, SQLite file, fake provider, manual
clock): inactivity timeouts, the window's last call, reminders, and a restart in between."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit import Bot, Context, Conversation, Simulator, State, Text, on
from botkit.tools.simulator import SimUser
from botkit.types import ManualClock
from tests.runtime import timer_bot
from tests.runtime.timer_bot import LAST_CALL, NUDGE

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(timer_bot) as simulator:
        yield simulator


@pytest.fixture
def ana(sim: Simulator) -> SimUser:
    return sim.user("5491155550000", name="Ana")


def texts(user: SimUser) -> list[str | None]:
    return [message.text for message in user.messages]


async def test_a_timeout_fires_once_after_the_quiet_time_in_its_state(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    assert ana.state == "asking"
    await sim.advance(minutes=29)
    assert NUDGE not in texts(ana)
    await sim.advance(minutes=2)
    assert texts(ana).count(NUDGE) == 1
    await sim.advance(hours=3)
    assert texts(ana).count(NUDGE) == 1  # once per silence, not every 30 minutes
    assert ana.state == "asking"


async def test_writing_in_the_state_starts_the_quiet_time_again(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await sim.advance(minutes=20)
    await ana.says("mmm")  # stays in asking
    await sim.advance(minutes=20)
    assert NUDGE not in texts(ana)  # 40 minutes since the first message, 20 since the last
    await sim.advance(minutes=11)
    assert texts(ana).count(NUDGE) == 1


async def test_leaving_the_state_cancels_the_timeout(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    names = [t.name for t in await sim.runtime.store.inspect.timers(ana.wa_id)]
    assert names == ["timeout:nudge", "window_closing:last_call"]
    await ana.taps("yes")
    assert ana.state == "done"
    assert await sim.runtime.store.inspect.timers(ana.wa_id) == []
    await sim.advance(hours=30)
    assert NUDGE not in texts(ana) and LAST_CALL not in texts(ana)


async def test_the_last_call_comes_an_hour_before_the_window_ends_and_is_free_form(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await sim.advance(hours=22, minutes=59)
    assert LAST_CALL not in texts(ana)
    await sim.advance(minutes=2)
    [last] = [m for m in ana.messages if m.text == LAST_CALL]
    assert last.type == "text"  # the window is still open: no template needed
    [row] = [r for r in await sim.outbox(ana.wa_id) if _body(r.payload) == LAST_CALL]
    assert row.status == "sent" and row.instead_of is None


async def test_a_message_moves_the_last_call_with_the_window(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await sim.advance(hours=10)
    await ana.says("sigo acá")
    await sim.advance(hours=13, minutes=30)  # the first window's last call would be past
    assert LAST_CALL not in texts(ana)
    await sim.advance(hours=10)
    assert texts(ana).count(LAST_CALL) == 1


async def test_a_reminder_fires_when_scheduled_with_its_data(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await ana.taps("yes")
    await ana.says("remind")
    [timer] = await sim.runtime.store.inspect.timers(ana.wa_id)
    assert timer.name == "reminder"
    assert timer.due_at == sim.clock.now() + 2 * 3600
    await sim.advance(hours=1, minutes=59)
    assert "Recordatorio 1" not in texts(ana)
    await sim.advance(minutes=1)
    assert texts(ana).count("Recordatorio 1") == 1
    assert await sim.runtime.store.inspect.timers(ana.wa_id) == []


async def test_a_cancelled_reminder_never_fires(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await ana.taps("yes")
    await ana.says("remind")
    await ana.says("cancel")
    assert await sim.runtime.store.inspect.timers(ana.wa_id) == []
    await sim.advance(hours=5)
    assert not [t for t in texts(ana) if t and t.startswith("Recordatorio")]


async def test_a_reminder_in_a_closed_window_follows_the_states_fallback(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await ana.taps("yes")
    await ana.says("remind tomorrow")
    await sim.advance(hours=31)
    assert "Recordatorio 2" not in texts(ana)  # held (the state's fallback=HOLD)
    [held] = [r for r in await sim.outbox(ana.wa_id) if _body(r.payload) == "Recordatorio 2"]
    assert held.status == "held"
    await ana.says("hola de nuevo")  # the user writes: what was held goes out
    assert "Recordatorio 2" in texts(ana)


async def test_a_timer_due_while_stopped_fires_once_after_start(tmp_path: Path) -> None:
    clock = ManualClock()
    database = tmp_path / "timers.db"
    async with Simulator(timer_bot, database=database, clock=clock) as first:
        ana = first.user("5491155550000")
        await ana.says("hola")
        await first.advance(minutes=5)
    clock.advance(3600)  # the service is down for an hour: the nudge came due meanwhile
    async with Simulator(timer_bot, database=database, clock=clock) as second:
        await second.settle()
        # fired once; this fake provider is new and never heard Ana open her window, so it
        # refuses the free-form nudge, which the state's fallback holds until she writes
        nudges = [r for r in await second.outbox() if _body(r.payload) == NUDGE]
        assert [r.status for r in nudges] == ["held"]
        await second.advance(hours=2)
        assert len([r for r in await second.outbox() if _body(r.payload) == NUDGE]) == 1
        ana = second.user("5491155550000")
        await ana.says("sigo acá")
        assert texts(ana).count(NUDGE) == 1
        assert ana.state == "asking"


def _body(payload: object) -> object:
    return payload.get("body") if isinstance(payload, dict) else None


async def test_a_conversations_view_names_the_timer_events(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await sim.advance(minutes=31)
    view = await sim.runtime.repairs().conversation(ana.wa_id)
    inbound = [m["summary"] for m in view["messages"] if m["direction"] == "in"]  # type: ignore[union-attr, index, call-overload]
    assert inbound == ["hola", "timeout"]
    assert [t["name"] for t in view["timers"]] == ["window_closing:last_call"]  # type: ignore[index, union-attr]


class Expiring(Conversation):
    """A quote that expires: the timeout moves the user on (to=), like any route."""

    idle = State(initial=True)
    quoted = State(prompt=Text("Tu presupuesto vale 10 minutos."))
    expired = State(final=True)

    @on.text(states=[idle], to=quoted)
    async def quote(self, ctx: Context) -> None: ...

    @on.timeout(after=600, states=[quoted], to=expired)
    async def expire(self, ctx: Context) -> None:
        await ctx.send(Text("Tu presupuesto venció."))


async def test_a_timeout_with_to_moves_the_user_and_is_not_set_again() -> None:
    async with Simulator(Bot(Expiring)) as sim:
        ana = sim.user("5491155550000")
        await ana.says("hola")
        await sim.advance(minutes=10)
        assert ana.state == "expired"
        assert texts(ana)[-1] == "Tu presupuesto venció."
        assert await sim.runtime.store.inspect.timers() == []


async def test_a_fired_timer_is_counted_as_an_event_of_kind_timer(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await sim.advance(minutes=31)
    exposed = sim.runtime.metrics.render([]).decode()
    assert 'botkit_events_processed_total{kind="timer",outcome="done"} 1.0' in exposed
