"""ctx.handoff in a turn, with a bot of the test's own: a handler that fails hands nothing
off, the handler's own data and state are kept beside the mark, and the data a resumed
state's prompt sees has no mark in it."""

from __future__ import annotations

import pytest

from botkit import Bot, Button, Buttons, Context, Conversation, Simulator, State, Text, on

pytestmark = pytest.mark.anyio

ANA = "5491140000001"
SEEN: list[list[str]] = []


def menu(ctx: Context) -> Buttons:
    SEEN.append(sorted(ctx.data))
    return Buttons("¿Qué hacemos?", [Button("a", "A"), Button("b", "B")])


class Desk(Conversation):
    start = State(initial=True)
    waiting = State()
    menu_state = State(prompt=menu)

    @on.text("ayuda", states=[start], to=waiting)
    async def help(self, ctx: Context) -> None:
        ctx.data["asked"] = True
        await ctx.send(Text("Ya viene alguien"))
        await ctx.handoff(reason="ayuda")

    @on.text("roto", states=[start])
    async def broken(self, ctx: Context) -> None:
        await ctx.handoff(reason="roto")
        raise RuntimeError("a bug after handoff")

    @on.text(states=[start, waiting, menu_state])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(f"eco: {ctx.text}"))


bot = Bot(Desk)


async def test_a_handler_that_fails_hands_nothing_off() -> None:
    async with Simulator(bot) as sim:
        ana = sim.user(ANA, name="Ana")
        with pytest.raises(RuntimeError, match="a bug after handoff"):
            await ana.says("roto")
        assert ana.handoff is None
        await ana.says("hola")
        assert ana.last_message.text == "eco: hola"
        assert sim.desk.deliveries == []


async def test_the_handlers_state_data_and_sends_are_kept_with_the_mark() -> None:
    async with Simulator(bot) as sim:
        ana = sim.user(ANA, name="Ana")
        await ana.says("ayuda")
        assert ana.state == "waiting"
        assert ana.data == {"asked": True}
        assert ana.handoff is not None and ana.handoff.state == "waiting"
        assert ana.session is not None and "botkit.handoff" in ana.session.data  # stored
        assert ana.last_message.text == "Ya viene alguien"
        await ana.says("hola")
        assert ana.last_message.text == "Ya viene alguien"  # no echo: forwarded instead
        assert sim.desk.messages[-1]["message"]["body"] == "hola"


async def test_a_resumed_prompt_sees_the_data_without_the_mark() -> None:
    SEEN.clear()
    async with Simulator(bot) as sim:
        ana = sim.user(ANA, name="Ana")
        await ana.says("ayuda")
        await sim.resume(ANA, state="menu_state")
        assert SEEN == [["asked"]]
        assert ana.last_message.button_ids == ["a", "b"]
        assert ana.session is not None and "botkit.handoff" not in ana.session.data
        await ana.says("de nuevo")
        assert ana.last_message.text == "eco: de nuevo"


async def test_a_second_handoff_keeps_the_first_mark() -> None:
    async with Simulator(bot) as sim:
        ana = sim.user(ANA, name="Ana")
        await ana.says("ayuda")
        first = ana.handoff
        await sim.advance(minutes=5)
        await sim.handoff(ANA, reason="otra vez")
        assert ana.handoff == first


async def test_a_resume_of_a_conversation_the_bot_has_changes_nothing() -> None:
    async with Simulator(bot) as sim:
        ana = sim.user(ANA, name="Ana")
        await ana.says("hola")
        await sim.resume(ANA, state="menu_state")  # not handed off: ignored
        assert ana.state == "start"
