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
