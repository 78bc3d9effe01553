"""The README's first bot does what the README says."""

from __future__ import annotations

import pytest

import bots.hello as hello
from botkit import Simulator
from botkit.tools.check import check

pytestmark = pytest.mark.anyio


async def test_the_first_bot_greets_asks_and_remembers() -> None:
    async with Simulator(hello) as sim:
        ana = sim.user("5491140000001", name="Ana")
        await ana.says("hola")
        assert [m.text for m in ana.messages] == ["¡Hola Ana!", "¿Querés recibir novedades?"]
        await ana.says("¿qué?")  # not a button: the question again
        assert ana.state == "asking" and ana.last_message.button_ids == ["yes", "no"]
        await ana.taps("yes")
        assert (ana.state, ana.data) == ("done", {"news": True})
        assert ana.last_message.text == "¡Anotado!"


def test_the_first_bot_passes_the_checks() -> None:
    assert [p for p in check(hello.Hello) if not p.warning] == []
