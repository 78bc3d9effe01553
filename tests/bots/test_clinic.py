"""Every path of the reference clinic bot, through the simulator (real webhook app, SQLite, fake provider)."""

from __future__ import annotations

import pytest

from botkit import Simulator
from botkit.tools.simulator import SimUser

pytestmark = pytest.mark.anyio

ROWS = ["general", "specialist", "lab"]


async def test_any_text_in_idle_sends_the_service_list(juan: SimUser) -> None:
    await juan.says("hola")
    assert juan.state == "choosing_service"
    shown = juan.last_message
    assert shown.type == "interactive"
    assert shown.payload["type"] == "list"
    assert shown.row_ids == ROWS
    sections = shown.payload["action"]["sections"]  # type: ignore[index,call-overload]
    assert [s["title"] for s in sections] == ["Consultas", "Estudios"]
    assert shown.rows[0] == {
        "id": "general",
        "title": "Consulta general",
        "description": "30 min · $5000",
    }
    assert shown.rows[1] == {
        "id": "specialist",
        "title": "Especialista",
        "description": "45 min · $8000",
    }
    assert shown.rows[2] == {
        "id": "lab",
        "title": "Laboratorio",
        "description": "Análisis de sangre",
    }


@pytest.mark.parametrize("row", ROWS)
async def test_picking_a_service_asks_to_confirm_it(juan: SimUser, row: str) -> None:
    await juan.says("hola")
    await juan.picks(row)
    assert juan.state == "confirming"
    assert juan.data == {"service": row}
    assert juan.last_message.button_ids == ["confirm_yes", "reschedule"]
    assert juan.last_message.button_titles == ["Sí, confirmo", "Reprogramar"]
    assert len(juan.messages) == 2


async def test_confirming_sends_a_text_and_ends_confirmed(juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    await juan.taps("confirm_yes")
    assert juan.state == "confirmed"
    assert juan.last_message.type == "text"
    assert "Laboratorio" in (juan.last_message.text or "")


async def test_reschedule_shows_the_list_again(juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("general")
    await juan.taps("reschedule")
    assert juan.state == "choosing_service"
    assert juan.last_message.row_ids == ROWS
    await juan.picks("specialist")
    assert juan.state == "confirming"
    assert juan.data == {"service": "specialist"}


async def test_text_after_confirmed_starts_again(juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    await juan.taps("confirm_yes")
    await juan.says("quiero otro turno")
    assert juan.state == "choosing_service"
    assert juan.last_message.row_ids == ROWS


async def test_anything_else_while_choosing_repeats_the_list(juan: SimUser) -> None:
    await juan.says("hola")
    await juan.says("no sé")
    assert juan.state == "choosing_service"
    assert juan.last_message.row_ids == ROWS
    await juan.shares_location(-34.6037, -58.3816, "Obelisco")
    assert juan.state == "choosing_service"
    assert [m.row_ids for m in juan.messages] == [ROWS, ROWS, ROWS]


async def test_anything_else_while_confirming_repeats_the_buttons(juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    await juan.says("¿cuánto sale?")
    assert juan.state == "confirming"
    assert juan.last_message.button_ids == ["confirm_yes", "reschedule"]
    await juan.picks("general")  # a row of the old list: not valid now
    assert juan.state == "confirming"
    assert juan.data == {"service": "lab"}
    assert juan.last_message.button_ids == ["confirm_yes", "reschedule"]
    assert len(juan.messages) == 4


async def test_a_tap_in_idle_sends_nothing(juan: SimUser) -> None:
    await juan.shares_location(-34.6, -58.4)
    assert juan.state == "idle"
    assert juan.messages == []


async def test_two_users_have_separate_conversations(sim: Simulator, juan: SimUser) -> None:
    ana = sim.user("5491155554444", name="Ana")
    await juan.says("hola")
    await ana.says("hola")
    await ana.picks("general")
    assert juan.state == "choosing_service"
    assert ana.state == "confirming"
    assert len(juan.messages) == 1
    assert len(ana.messages) == 2
