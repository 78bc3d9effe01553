"""The bot of the timer process test (tests/tools/test_timers_processes.py): any text asks a
question, and a user who stays quiet BOTKIT_TEST_QUIET_SECONDS (default 1) gets one nudge."""

from __future__ import annotations

import os

from botkit import Bot, Context, Conversation, State, Text, on

QUIET_SECONDS = float(os.environ.get("BOTKIT_TEST_QUIET_SECONDS", "1"))


class Quiet(Conversation):
    """idle -> asking; the timeout nudges once per silence."""

    idle = State(initial=True)
    asking = State(prompt=Text("¿Confirmás?"))

    @on.text(states=[idle], to=asking)
    async def ask(self, ctx: Context) -> None: ...

    @on.text(states=[asking])
    async def chatter(self, ctx: Context) -> None:
        await ctx.send(Text("ok"))

    @on.timeout(after=QUIET_SECONDS, states=[asking])
    async def nudge(self, ctx: Context) -> None:
        await ctx.send(Text("nudge"))


bot = Bot(Quiet)
