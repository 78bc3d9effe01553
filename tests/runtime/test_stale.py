"""Stale taps through the Simulator (real webhook app, SQLite file, fake provider, manual
clock): a tap on an older prompt than the current one runs no handler of the current state.
The race (a tap while the newest prompt is queued but not sent) is in test_stale_turn.py: the
Simulator sends everything before a step returns."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botkit import Bot, Context, Conversation, DefinitionError, Simulator, SimulatorError, Text, on
from botkit.tools.check import check
from botkit.tools.graph import mermaid
from botkit.tools.simulator import SentView, SimUser
from tests.runtime import stale_bot
from tests.runtime.stale_bot import DONE, Order

pytestmark = pytest.mark.anyio

ANA, BEN = "5491155550000", "5491155550001"
STALE = "Esa opción ya no está disponible."


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(stale_bot) as simulator:
        yield simulator


@pytest.fixture
def ana(sim: Simulator) -> SimUser:
    return sim.user(ANA, name="Ana")


def texts(user: SimUser) -> list[str | None]:
    return [message.text for message in user.messages]


async def to_drinking(user: SimUser) -> tuple[SentView, SentView]:
    """Walks to `drinking`; the menu and the confirmation the user was sent on the way."""
    await user.says("hola")
    menu = user.last_message
    await user.picks("muzza")
    confirm = user.last_message
    await user.taps("yes")
    assert user.state == "drinking"
    return menu, confirm


async def test_taps_on_the_current_prompt_run_their_handlers(ana: SimUser) -> None:
    await to_drinking(ana)
    await ana.taps("no")
    assert ana.state == "done"
    assert ana.data == {"pizza": "muzza", "order": "yes", "drink": "no"}
    assert texts(ana)[-1] == DONE


async def test_a_tap_on_an_older_prompt_gets_the_notice_and_the_current_prompt(
    ana: SimUser,
) -> None:
    _, confirm = await to_drinking(ana)
    await ana.taps("no", on=confirm)  # "no" is also a drink answer: it must not be taken as one
    assert ana.state == "drinking"
    assert ana.data == {"pizza": "muzza", "order": "yes"}
    assert texts(ana)[-2:] == [STALE, "¿Querés bebida?"]
    await ana.taps("yes")  # the prompt sent again is the current one
    assert ana.data["drink"] == "yes"
    assert ana.state == "done"


async def test_a_pick_from_an_old_list_is_stale(ana: SimUser) -> None:
    menu, _ = await to_drinking(ana)
    await ana.picks("fuga", on=menu)
    assert ana.state == "drinking"
    assert ana.data["pizza"] == "muzza"
    assert texts(ana)[-2:] == [STALE, "¿Querés bebida?"]


async def test_a_tap_without_context_keeps_todays_behaviour(ana: SimUser) -> None:
    await to_drinking(ana)
    reply = {"type": "button_reply", "button_reply": {"id": "no", "title": "No"}}
    await ana.sends({"type": "interactive", "interactive": reply})  # no context.id
    assert ana.state == "done"
    assert ana.data["drink"] == "no"


async def test_two_users_are_independent(sim: Simulator, ana: SimUser) -> None:
    ben = sim.user(BEN, name="Ben")
    await ana.says("hola")
    await ana.picks("muzza")
    await ben.says("hola")
    await ben.picks("fuga")
    ana_confirm = ana.last_message
    await ana.taps("yes")  # Ana moves on; Ben's confirmation is still his current prompt
    await ben.taps("yes")
    assert ben.state == "drinking"
    assert ben.data == {"pizza": "fuga", "order": "yes"}
    await ana.taps("no", on=ana_confirm)
    assert ana.state == "drinking"
    assert texts(ana)[-2] == STALE
    assert STALE not in texts(ben)


async def test_the_current_prompt_survives_a_restart(tmp_path: object) -> None:
    database = f"{tmp_path}/stale.db"
    async with Simulator(stale_bot, database=database) as sim:
        ana = sim.user(ANA)
        _, confirm = await to_drinking(ana)
    async with Simulator(stale_bot, database=database) as sim:
        ana = sim.user(ANA)
        await ana.refresh()
        await ana.taps("no", on=confirm)
        assert ana.state == "drinking"
        assert ana.data == {"pizza": "muzza", "order": "yes"}


class Handled(Order):
    """Its own answer to stale taps: in drinking a text and the prompt; in confirming, back
    to the menu; in choosing, nothing more (ctx.stay)."""

    stale_text = Text("Eso ya pasó.")

    @on.stale(states=[Order.drinking])
    async def old_tap(self, ctx: Context) -> None:
        """Says which option was tapped."""
        await ctx.send(Text(f"«{ctx.choice}» era de antes."))

    @on.stale(states=[Order.confirming], to=Order.choosing)
    async def back_to_menu(self, ctx: Context) -> None:
        """Starts over."""

    @on.stale(states=[Order.choosing])
    async def quiet(self, ctx: Context) -> None:
        """Says it and stays, with no prompt."""
        await ctx.send(Text("Elegí de la lista nueva."))
        ctx.stay()


@pytest.fixture
async def handled() -> AsyncIterator[SimUser]:
    async with Simulator(Bot(Handled)) as simulator:
        yield simulator.user(ANA)


async def test_an_on_stale_handler_answers_and_the_prompt_follows(handled: SimUser) -> None:
    _, confirm = await to_drinking(handled)
    await handled.taps("no", on=confirm)
    assert handled.state == "drinking"
    assert texts(handled)[-2:] == ["«no» era de antes.", "¿Querés bebida?"]


async def test_an_on_stale_handler_that_moves_sends_the_new_states_prompt_only(
    handled: SimUser,
) -> None:
    await handled.says("hola")
    menu = handled.last_message
    await handled.picks("muzza")
    await handled.picks("fuga", on=menu)  # in confirming: back to the menu
    assert handled.state == "choosing"
    assert texts(handled)[-2:] == ["¿Confirmás el pedido?", "¿Qué pizza?"]


async def test_an_on_stale_handler_that_stays_sends_no_prompt(handled: SimUser) -> None:
    await handled.says("hola")
    old = handled.last_message
    await handled.says("?")  # the list again: the first one is now an older prompt
    await handled.picks("fuga", on=old)
    assert handled.state == "choosing"
    assert texts(handled)[-1] == "Elegí de la lista nueva."
    assert "pizza" not in handled.data


async def test_without_stale_taps_an_old_tap_runs_the_current_states_handler() -> None:
    class Unprotected(Order):
        stale_taps = False

    async with Simulator(Bot(Unprotected)) as sim:
        ana = sim.user(ANA)
        _, confirm = await to_drinking(ana)
        await ana.taps("no", on=confirm)
        assert ana.data["drink"] == "no"  # today's accident, kept for bots that do not opt in


async def test_stale_taps_and_stale_text_are_checked_at_import() -> None:
    with pytest.raises(DefinitionError, match=r"Bad.stale_text takes a message"):

        class Bad(Conversation):
            stale_text = "ya no"  # type: ignore[assignment]

    with pytest.raises(DefinitionError, match=r"Worse.stale_taps takes True or False"):

        class Worse(Conversation):
            stale_taps = "yes"  # type: ignore[assignment]


def test_check_and_graph_take_on_stale() -> None:
    assert check(Handled) == []
    text = mermaid(Handled.spec)
    assert "    confirming --> choosing: stale" in text
    assert "    drinking --> drinking: stale" in text


async def test_tapping_a_message_that_does_not_offer_the_id_is_a_simulator_error(
    ana: SimUser,
) -> None:
    menu, _ = await to_drinking(ana)
    with pytest.raises(SimulatorError, match="offers no button 'yes'; it offers: none"):
        await ana.taps("yes", on=menu)


async def test_the_prompt_a_resume_sends_is_the_current_one(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    menu = ana.last_message
    await sim.handoff(ANA, reason="asked for a person")
    await sim.resume(ANA, state="confirming")
    await ana.refresh()
    assert ana.last_message.text == "¿Confirmás el pedido?"
    await ana.picks("fuga", on=menu)  # the menu from before the handoff
    assert ana.state == "confirming" and "pizza" not in ana.data
    assert texts(ana)[-2] == STALE
    await ana.taps("yes")  # the confirmation sent again on resume, and again after the notice
    assert ana.state == "drinking"
