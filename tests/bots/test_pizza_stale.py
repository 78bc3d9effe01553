"""The pizza bot's stale-tap protection (stale_taps, on.stale on its menu), through the
simulator: the buttons of an earlier order cannot act on the current one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import bots.pizza as pizza
from botkit import Simulator
from botkit.tools.simulator import SimUser
from tests.bots.test_pizza import ANA, OBELISCO, order_up_to

pytestmark = pytest.mark.anyio

NOTICE = "Ese botón es de un mensaje anterior. Seguimos desde acá 👇"
OLD_MENU = "Ese menú es de antes. Elegí tu pizza de este 👇"


@pytest.fixture
async def ana() -> AsyncIterator[SimUser]:
    async with Simulator(pizza) as simulator:
        yield simulator.user(ANA, name="Ana")


def texts(user: SimUser) -> list[str | None]:
    return [message.text for message in user.messages]


async def test_the_confirmation_of_an_earlier_order_does_not_confirm_the_new_one(
    ana: SimUser,
) -> None:
    await order_up_to(ana, "confirming")
    first_summary = ana.last_message
    await ana.taps("cancel")  # changes her mind, and orders again: one fugazzeta chica
    await ana.says("hola")
    await ana.picks("fugazzeta")
    await ana.taps("chica")
    await ana.says("1")
    await ana.shares_location(*OBELISCO)
    assert ana.state == "confirming"
    await ana.taps("confirm", on=first_summary)  # the summary of the order she cancelled
    assert ana.state == "confirming"
    assert texts(ana)[-2] == NOTICE
    assert "1 x Fugazzeta chica" in (texts(ana)[-1] or "")  # the current summary again
    await ana.taps("confirm")
    assert ana.state == "ordered"


async def test_a_pick_from_an_earlier_menu_says_so_and_sends_the_current_one(
    ana: SimUser,
) -> None:
    await ana.says("hola")
    old_menu = ana.last_message
    await ana.says("???")  # the menu again
    await ana.picks("calabresa", on=old_menu)
    assert ana.state == "choosing"
    assert "pizza" not in ana.data
    assert texts(ana)[-2] == OLD_MENU
    assert ana.last_message.row_ids == list(pizza.MENU.row_ids)
    await ana.picks("calabresa")
    assert ana.state == "sizing"


async def test_a_menu_pick_while_sizing_gets_the_notice_and_the_sizes(ana: SimUser) -> None:
    await ana.says("hola")
    menu = ana.last_message
    await ana.picks("napolitana")
    await ana.picks("rucula", on=menu)
    assert ana.state == "sizing"
    assert ana.data == {"pizza": "napolitana"}
    assert texts(ana)[-2] == NOTICE
    assert ana.last_message.button_ids == ["chica", "mediana", "grande"]
