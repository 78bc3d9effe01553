"""The bot of the process tests (tests/tools/processes.py): it echoes each text, so that every
reply names the message it answers, a little slowly, so that a worker stopped under load has
turns in flight."""

from __future__ import annotations

import asyncio
import os

from botkit import Bot, Context, Conversation, State, Text, on

# a test may slow it down, to have turns in flight when it stops or kills a process
HANDLER_SECONDS = float(os.environ.get("BOTKIT_TEST_ECHO_SECONDS", "0.02"))


class Echo(Conversation):
    """Answers "echo TEXT" to every text."""

    idle = State(initial=True)

    @on.text()
    async def echo(self, ctx: Context) -> None:
        await asyncio.sleep(HANDLER_SECONDS)
        await ctx.send(Text(f"echo {ctx.text}"))


bot = Bot(Echo)
