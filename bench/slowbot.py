"""The clinic, plus one slow handler: "dormir" sleeps 5 s (bench/isolation.py)."""

from __future__ import annotations

import asyncio

from botkit import Bot, Context, Text, on
from bots.clinic import Clinic

SLEEP = 5.0


class SlowClinic(Clinic):
    """The clinic bot, where typing "dormir" in the idle state takes five seconds to answer."""

    @on.text("dormir", states=[Clinic.idle])
    async def sleep(self, ctx: Context) -> None:
        await asyncio.sleep(SLEEP)
        await ctx.send(Text("Desperté."))


bot = Bot(SlowClinic)
