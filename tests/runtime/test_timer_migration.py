"""A deploy that renames a state (`migrations`) keeps its users' pending inactivity timeouts:
a timer set in the old state fires as one of the new state's (botkit.runtime.timer_rules)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from botkit import Bot, Context, Conversation, Simulator, State, Text, on
from botkit.types import ManualClock

pytestmark = pytest.mark.anyio

ANA = "5491155550000"
NUDGE = "¿Seguís ahí?"


def version_1() -> type[Conversation]:
    class Quote(Conversation):
        """Version 1: the question's state is `asking`."""

        idle = State(initial=True)
        asking = State(prompt=Text("¿Confirmás?"))

        @on.text(states=[idle], to=asking)
        async def start(self, ctx: Context) -> None: ...

        @on.timeout(after=timedelta(minutes=30), states=[asking])
        async def nudge(self, ctx: Context) -> None:
            await ctx.send(Text(NUDGE))

    return Quote


def version_2() -> type[Conversation]:
    class Quote(Conversation):
        """Version 2 (the same conversation): `asking` was renamed `confirming`."""

        migrations = {"asking": "confirming"}

        idle = State(initial=True)
        confirming = State(prompt=Text("¿Confirmás?"))

        @on.text(states=[idle], to=confirming)
        async def start(self, ctx: Context) -> None: ...

        @on.timeout(after=timedelta(minutes=30), states=[confirming])
        async def nudge(self, ctx: Context) -> None:
            await ctx.send(Text(NUDGE))

    return Quote


async def nudges(sim: Simulator) -> list[str]:
    rows = await sim.outbox(ANA)
    return [
        r.status for r in rows if isinstance(r.payload, dict) and r.payload.get("body") == NUDGE
    ]


async def test_a_timeout_set_in_a_renamed_state_fires_in_the_new_one(tmp_path: Path) -> None:
    clock = ManualClock()
    database = tmp_path / "bot.db"
    async with Simulator(Bot(version_1()), database=database, clock=clock) as first:
        ana = first.user(ANA, name="Ana")
        await ana.says("hola")
        assert ana.state == "asking"
        await first.advance(minutes=10)
    # the deploy: asking is now confirming; the nudge set in asking is still pending
    async with Simulator(Bot(version_2()), database=database, clock=clock) as second:
        await second.advance(minutes=21)
        # it ran (this fake provider never heard Ana write: the send may be refused, which
        # is the provider's word, not the timer's)
        assert len(await nudges(second)) == 1
        ana = second.user(ANA, name="Ana")
        await ana.refresh()
        assert ana.state == "confirming"
        await second.advance(hours=2)
        assert len(await nudges(second)) == 1  # once


async def test_a_timeout_older_than_the_marks_is_not_carried_into_a_renamed_state() -> None:
    # written by a botkit without the `entered` mark: nothing proves the user did not come to
    # the new state some other way since, so it stays checked by its state's name
    from botkit.runtime.turn import take_turn
    from botkit.store.base import InboxLane, Session
    from botkit.wire.window import Window
    from tests.runtime.test_timer_turn import timer_item
    from tests.runtime.test_turn import ANA as USER
    from tests.runtime.test_turn import NOW, PN

    quote = version_2()
    stored = Session(PN, USER, "Quote", "confirming", {}, quote.spec.version)
    guard = {"state": "asking", "inbound_seq": 1}
    fired = timer_item(2, "timeout:nudge", NOW, data={}, guard=guard)
    lane = InboxLane(PN, USER, "c", (fired,), stored, Window(NOW - 60, 1), 1)
    [result] = (await take_turn(quote(), lane, NOW)).outcome.results
    assert (result.status, result.error) == (
        "ignored",
        "timeout: the user left state 'asking' (now 'confirming')",
    )


async def test_the_marks_forget_a_reminder_the_code_no_longer_declares() -> None:
    from botkit.runtime.turn import take_turn
    from botkit.store.base import InboxLane, Session
    from botkit.wire.window import Window
    from tests.runtime.test_turn import ANA as USER
    from tests.runtime.test_turn import NOW, PN, text_item

    quote = version_2()
    marks = {"entered": 1, "reminders": {"removed_by_a_deploy": None}}
    stored = Session(PN, USER, "Quote", "idle", {"botkit.timers": marks}, quote.spec.version)
    lane = InboxLane(PN, USER, "c", (text_item(2, "hola"),), stored, Window(), 1)
    session = (await take_turn(quote(), lane, NOW)).outcome.session
    assert session is not None
    assert "reminders" not in session.data["botkit.timers"]  # type: ignore[operator]
