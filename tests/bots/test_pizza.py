"""Every path of the pizza bot, through the simulator (real webhook app, SQLite, fake provider)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import bots.pizza as pizza
from botkit import Simulator, TriggerError
from botkit.fake.provider import Delivery, ReceivedRequest
from botkit.tools.simulator import SentView, SimUser
from botkit.types import JSONObject
from botkit.wire.messages import FILE_KEY

pytestmark = pytest.mark.anyio

ANA = "5491140123456"
ROWS = ["muzzarella", "napolitana", "fugazzeta", "cuatro_quesos", "calabresa", "rucula"]
SIZES = ["chica", "mediana", "grande"]
CONFIRM = ["confirm", "cancel"]
DELIVERY: JSONObject = {"order_id": "A-17", "eta_minutes": 25}
OBELISCO = (-34.6037, -58.3816, "Obelisco")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """The pizza bot in the simulator."""
    async with Simulator(pizza) as simulator:
        yield simulator


@pytest.fixture
def ana(sim: Simulator) -> SimUser:
    """A customer."""
    return sim.user(ANA, name="Ana")


def uploads(sim: Simulator) -> list[ReceivedRequest]:
    return [r for r in sim.fake.requests if r.path.endswith("/media")]


async def order_up_to(user: SimUser, state: str) -> None:
    """Walks the happy path (2 napolitanas grandes to the Obelisco) until `state`."""
    steps: list[tuple[str, Callable[[], Awaitable[Delivery]]]] = [
        ("choosing", lambda: user.says("hola")),
        ("sizing", lambda: user.picks("napolitana")),
        ("counting", lambda: user.taps("grande")),
        ("locating", lambda: user.says("2")),
        ("confirming", lambda: user.shares_location(*OBELISCO)),
        ("ordered", lambda: user.taps("confirm")),
    ]
    for reached, step in steps:
        if user.state == state:
            return
        await step()
        assert user.state == reached
    assert user.state == state


async def ordered(user: SimUser) -> None:
    await order_up_to(user, "ordered")


# -- the menu --------------------------------------------------------------------------------


async def test_any_text_sends_the_menu_photo_then_the_list(ana: SimUser) -> None:
    await ana.says("hola")
    assert ana.state == "choosing"
    photo, menu = ana.messages
    assert photo.type == "image"
    assert photo.payload["caption"] == "Nuestro menú de hoy 🍕"
    assert isinstance(photo.payload.get("id"), str) and FILE_KEY not in photo.payload
    assert menu.payload["type"] == "list"
    action = menu.payload["action"]
    assert isinstance(action, dict) and isinstance(action["sections"], list)
    titles = [s["title"] for s in action["sections"] if isinstance(s, dict)]
    assert titles == ["Clásicas", "Especiales"]
    assert menu.row_ids == ROWS
    assert menu.rows[1] == {
        "id": "napolitana",
        "title": "Napolitana",
        "description": "Tomate en rodajas, ajo y albahaca · $10.500",
    }
    assert all("$" in str(row["description"]) for row in menu.rows)


async def test_the_photo_is_uploaded_once_for_two_customers_and_sent_by_id(
    sim: Simulator, ana: SimUser
) -> None:
    beto = sim.user("5491155554444", name="Beto")
    await ana.says("hola")
    await beto.says("buenas")
    await ana.says("cancelar")
    await ana.says("hola de nuevo")
    assert len(uploads(sim)) == 1
    photos = [m for m in sim.sent if m.type == "image"]
    assert [m.to for m in photos] == [ANA, "5491155554444", ANA]
    ids = {m.body["image"]["id"] for m in photos}  # type: ignore[index,call-overload]
    assert len(ids) == 1
    assert all(FILE_KEY not in m.body["image"] for m in photos)  # type: ignore[operator]


# -- the whole order -------------------------------------------------------------------------


async def test_a_whole_order_from_the_menu_to_the_summary(ana: SimUser) -> None:
    await ana.says("hola")
    await ana.picks("napolitana")
    assert ana.state == "sizing"
    assert ana.data == {"pizza": "napolitana"}
    sizes = ana.last_message
    assert sizes.text == "Napolitana, ¡buena elección! ¿De qué tamaño?"
    assert sizes.button_ids == SIZES
    assert sizes.button_titles == ["Chica · $8.500", "Mediana · $10.500", "Grande · $13.500"]

    await ana.taps("grande")
    assert ana.state == "counting"
    assert ana.last_message.text == "¿Cuántas querés? Escribí un número del 1 al 10."

    await ana.says("muchas")
    assert ana.state == "counting"
    assert ana.data == {"pizza": "napolitana", "size": "grande"}
    assert ana.last_message.text == (
        "No entendí «muchas» como cantidad. Escribí solo el número, del 1 al 10 (por ejemplo: 2)."
    )
    await ana.says("2")
    assert ana.state == "locating"
    assert "Compartí tu ubicación" in (ana.last_message.text or "")

    await ana.shares_location(*OBELISCO)
    assert ana.state == "confirming"
    confirm = ana.last_message
    assert confirm.button_ids == CONFIRM
    assert confirm.button_titles == ["Confirmar", "Cancelar"]
    assert confirm.text == (
        "Tu pedido:\n2 x Napolitana grande ($13.500 c/u)\nTotal: $27.000\n"
        "Entrega en: Obelisco\n¿Lo confirmamos?"
    )

    await ana.taps("confirm")
    assert ana.state == "ordered"
    summary = ana.last_message
    assert summary.type == "text"
    assert summary.text == (
        "¡Pedido confirmado! 2 x Napolitana grande. Total: $27.000, se paga al recibir. "
        "Lo llevamos a Obelisco; te avisamos cuando salga."
    )
    assert ana.data == {
        "pizza": "napolitana",
        "size": "grande",
        "quantity": 2,
        "location": {"latitude": -34.6037, "longitude": -58.3816},
        "place": "Obelisco",
    }
    assert len(ana.messages) == 8
    assert ana.templates == []


@pytest.mark.parametrize(
    ("size", "line", "each"),
    [("chica", "Muzzarella chica", "$7.000"), ("mediana", "Muzzarella mediana", "$9.000")],
)
async def test_each_size_has_its_price(ana: SimUser, size: str, line: str, each: str) -> None:
    await ana.says("hola")
    await ana.picks("muzzarella")
    await ana.taps(size)
    await ana.says("1")
    await ana.shares_location(-34.6, -58.4, address="Av. Corrientes 1234")
    assert f"1 x {line} ({each} c/u)\nTotal: {each}" in (ana.last_message.text or "")
    assert "Entrega en: Av. Corrientes 1234" in (ana.last_message.text or "")


async def test_a_location_without_a_name_is_shown_by_its_coordinates(ana: SimUser) -> None:
    await order_up_to(ana, "locating")
    await ana.shares_location(-34.60371, -58.38162)
    assert ana.data["place"] == "-34.60371, -58.38162"


# -- the quantity ----------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "quantity"), [("1", 1), (" 10 ", 10), ("3 pizzas", 3)])
async def test_a_quantity_from_1_to_10_moves_on(ana: SimUser, typed: str, quantity: int) -> None:
    await order_up_to(ana, "counting")
    await ana.says(typed)
    assert ana.state == "locating"
    assert ana.data["quantity"] == quantity


@pytest.mark.parametrize("typed", ["0", "11", "250"])
async def test_a_quantity_out_of_range_is_asked_again_with_the_limits(
    ana: SimUser, typed: str
) -> None:
    await order_up_to(ana, "counting")
    before = ana.data
    await ana.says(typed)
    assert ana.state == "counting"
    assert ana.data == before
    assert ana.last_message.text == (
        f"Preparamos de 1 a 10 pizzas por pedido y escribiste {int(typed)}. ¿Cuántas querés?"
    )


@pytest.mark.parametrize("typed", ["dos", "-1", "1.5", "2 empanadas"])
async def test_a_quantity_that_is_not_a_number_is_asked_again(ana: SimUser, typed: str) -> None:
    await order_up_to(ana, "counting")
    await ana.says(typed)
    assert ana.state == "counting"
    assert "quantity" not in ana.data
    assert ana.last_message.text is not None
    assert ana.last_message.text.startswith(f"No entendí «{typed}» como cantidad.")


async def test_a_long_text_is_quoted_short(ana: SimUser) -> None:
    await order_up_to(ana, "counting")
    await ana.says("quiero " * 500)
    assert ana.state == "counting"
    assert ana.last_message.text is not None
    assert "«quiero quiero quiero quiero quiero quier…»" in ana.last_message.text


# -- cancelling ------------------------------------------------------------------------------


async def test_cancel_at_the_confirmation_drops_the_order(ana: SimUser) -> None:
    await order_up_to(ana, "confirming")
    await ana.taps("cancel")
    assert ana.state == "idle"
    assert ana.data == {}
    assert ana.last_message.text == (
        "Listo, cancelamos el pedido. Cuando quieras pedir de nuevo, escribinos."
    )
    await ana.says("hola")
    assert ana.state == "choosing"
    assert [m.type for m in ana.messages[-2:]] == ["image", "interactive"]


@pytest.mark.parametrize("state", ["choosing", "sizing", "counting", "locating", "confirming"])
async def test_typing_cancelar_cancels_at_any_step(ana: SimUser, state: str) -> None:
    await order_up_to(ana, state)
    await ana.says("  Cancelar ")
    assert ana.state == "idle"
    assert ana.data == {}
    assert ana.last_message.text is not None and "cancelamos" in ana.last_message.text


# -- unexpected input re-asks ----------------------------------------------------------------


async def test_anything_else_while_choosing_repeats_the_list(ana: SimUser) -> None:
    await ana.says("hola")
    await ana.says("¿tienen empanadas?")
    await ana.shares_location(*OBELISCO)
    assert ana.state == "choosing"
    assert [m.type for m in ana.messages] == ["image", "interactive", "interactive", "interactive"]
    assert [m.row_ids for m in ana.messages[1:]] == [ROWS, ROWS, ROWS]


async def test_anything_else_while_sizing_repeats_the_sizes(ana: SimUser) -> None:
    await order_up_to(ana, "sizing")
    await ana.says("la más grande")
    assert ana.last_message.button_ids == SIZES
    await ana.picks("rucula")  # a row of the old list: not valid now
    assert ana.state == "sizing"
    assert ana.data == {"pizza": "napolitana"}
    assert ana.last_message.button_ids == SIZES
    assert ana.last_message.text is not None and "Napolitana" in ana.last_message.text


async def test_anything_else_while_counting_repeats_the_question(ana: SimUser) -> None:
    await order_up_to(ana, "counting")
    await ana.taps("chica")  # a button of the old message: the size is already chosen
    assert ana.state == "counting"
    assert ana.data["size"] == "grande"
    assert ana.last_message.text == "¿Cuántas querés? Escribí un número del 1 al 10."
    await ana.shares_location(*OBELISCO)
    assert ana.state == "counting"
    assert ana.last_message.text == "¿Cuántas querés? Escribí un número del 1 al 10."


async def test_a_written_address_is_refused_with_how_to_share_the_location(
    ana: SimUser,
) -> None:
    await order_up_to(ana, "locating")
    await ana.says("Av. Corrientes 1234")
    assert ana.state == "locating"
    assert "location" not in ana.data
    assert ana.last_message.text is not None
    assert ana.last_message.text.startswith("Necesito tu ubicación compartida")
    await ana.taps("grande")
    assert ana.state == "locating"
    assert ana.last_message.text is not None
    assert ana.last_message.text.startswith("¿A dónde te la llevamos?")


async def test_anything_else_while_confirming_repeats_the_order(ana: SimUser) -> None:
    await order_up_to(ana, "confirming")
    await ana.says("sí")
    assert ana.last_message.button_ids == CONFIRM
    await ana.shares_location(-34.0, -58.0, "Otro lugar")
    assert ana.state == "confirming"
    assert ana.data["place"] == "Obelisco"
    assert ana.last_message.button_ids == CONFIRM
    assert ana.last_message.text is not None and "Obelisco" in ana.last_message.text


async def test_anything_in_idle_starts_an_order(ana: SimUser) -> None:
    await ana.shares_location(*OBELISCO)
    assert ana.state == "choosing"
    assert [m.type for m in ana.messages] == ["image", "interactive"]


async def test_text_after_an_order_starts_a_new_one(ana: SimUser) -> None:
    await ordered(ana)
    await ana.says("quiero otra")
    assert ana.state == "choosing"
    assert ana.data == {}
    assert ana.last_message.row_ids == ROWS


async def test_a_second_tap_on_confirm_keeps_the_order(ana: SimUser) -> None:
    await ordered(ana)
    sent = len(ana.messages)
    await ana.taps("confirm")
    assert ana.state == "ordered"
    assert ana.data["quantity"] == 2
    assert len(ana.messages) == sent


# -- the out_for_delivery trigger ------------------------------------------------------------


async def test_out_for_delivery_with_the_window_open_is_a_text(
    sim: Simulator, ana: SimUser
) -> None:
    await ordered(ana)
    await sim.advance(hours=1)
    await sim.trigger(ANA, "out_for_delivery", DELIVERY)
    assert ana.state == "ordered"
    news = ana.last_message
    assert (news.type, news.is_template) == ("text", False)
    assert news.text == "¡Tu pedido #A-17 (2 x Napolitana grande) salió! Llega en unos 25 minutos."
    assert ana.templates == []
    assert ana.data["order_id"] == "A-17"


async def test_out_for_delivery_with_the_window_closed_is_the_template(
    sim: Simulator, ana: SimUser
) -> None:
    await ordered(ana)
    await sim.advance(hours=25)
    await sim.trigger(ANA, "out_for_delivery", DELIVERY)
    assert ana.state == "ordered"
    news: SentView = ana.last_message
    assert news.is_template
    assert news.template_name == "order_out_for_delivery"
    assert news.payload["language"] == {"code": "es_AR"}
    assert news.template_parameters == ["A-17", "2 x Napolitana grande", "25"]
    assert len(ana.templates) == 1
    rows = await sim.outbox(ANA)
    assert (rows[-1].type, rows[-1].instead_of, rows[-1].status) == ("template", "text", "sent")


async def test_out_for_delivery_before_ordering_is_ignored(sim: Simulator, ana: SimUser) -> None:
    await order_up_to(ana, "confirming")
    sent = len(ana.messages)
    await sim.trigger(ANA, "out_for_delivery", DELIVERY)
    assert ana.state == "confirming"
    assert len(ana.messages) == sent


async def test_out_for_delivery_without_its_data_is_a_trigger_error(
    sim: Simulator, ana: SimUser
) -> None:
    await ordered(ana)
    sent = len(ana.messages)
    with pytest.raises(TriggerError) as raised:
        await sim.trigger(ANA, "out_for_delivery", {"order_id": "A-17"})
    assert "'eta_minutes'" in str(raised.value) and "'order_id'" not in str(raised.value)
    assert raised.value.status == 400
    assert len(ana.messages) == sent
    assert ana.state == "ordered"
