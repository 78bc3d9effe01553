"""The clinic's `remind` trigger, both ways (window open: buttons; closed: the template), and
the confirmation by the template's quick-reply button."""

from __future__ import annotations

import pytest

from botkit import Simulator, TriggerError
from botkit.tools.simulator import SimUser

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
DATA = {"name": "Juan", "date": "20/05", "time": "10:30", "appointment_id": "123"}
PAYLOAD = "confirm_yes_apt_123"


async def test_with_the_window_open_the_reminder_asks_with_buttons(
    sim: Simulator, juan: SimUser
) -> None:
    await juan.says("hola")
    await sim.advance(hours=23)
    await sim.trigger(JUAN, "remind", DATA)
    assert juan.state == "confirming"
    reminder = juan.last_message
    assert (reminder.type, reminder.is_template) == ("interactive", False)
    assert reminder.button_ids == ["confirm_yes", "reschedule"]
    assert reminder.button_titles == ["Sí, confirmo", "Reprogramar"]
    assert reminder.text is not None
    assert all(value in reminder.text for value in ("Juan", "20/05", "10:30"))
    assert juan.templates == []
    assert juan.data["appointment"] == DATA


async def test_confirming_the_reminder_with_the_button(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await sim.trigger(JUAN, "remind", DATA)
    await juan.taps("confirm_yes")
    assert juan.state == "confirmed"
    confirmation = juan.last_message
    assert confirmation.type == "text"
    assert confirmation.text is not None
    assert "20/05" in confirmation.text and "10:30" in confirmation.text
    assert "appointment" not in juan.data


async def test_rescheduling_from_the_reminder_shows_the_services(
    sim: Simulator, juan: SimUser
) -> None:
    await juan.says("hola")
    await sim.trigger(JUAN, "remind", DATA)
    await juan.taps("reschedule")
    assert juan.state == "choosing_service"
    assert juan.last_message.row_ids == ["general", "specialist", "lab"]
    assert "appointment" not in juan.data


@pytest.mark.parametrize("hours", [24, 25, 24 * 30])
async def test_with_the_window_closed_the_reminder_is_the_template(
    sim: Simulator, juan: SimUser, hours: int
) -> None:
    await juan.says("hola")
    await sim.advance(hours=hours)
    await sim.trigger(JUAN, "remind", DATA)
    assert juan.state == "confirming"
    reminder = juan.last_message
    assert reminder.is_template
    assert reminder.template_name == "appointment_reminder"
    assert reminder.payload["language"] == {"code": "es_AR"}
    assert reminder.template_parameters == ["Juan", "20/05", "10:30"]
    assert reminder.quick_reply_payloads == [PAYLOAD]
    assert len(juan.templates) == 1


async def test_the_template_components_on_the_wire(sim: Simulator, juan: SimUser) -> None:
    await sim.trigger(JUAN, "remind", DATA)
    [sent] = sim.fake.messages_to(JUAN)
    assert sent.type == "template"
    assert sent.body["template"] == {
        "name": "appointment_reminder",
        "language": {"code": "es_AR"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Juan"},
                    {"type": "text", "text": "20/05"},
                    {"type": "text", "text": "10:30"},
                ],
            },
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "0",
                "parameters": [{"type": "payload", "payload": PAYLOAD}],
            },
        ],
    }
    [row] = await sim.outbox(JUAN)
    assert (row.type, row.instead_of, row.status) == ("template", "interactive", "sent")


async def test_a_user_who_never_wrote_gets_the_template(sim: Simulator, juan: SimUser) -> None:
    await sim.trigger(JUAN, "remind", DATA)
    assert juan.state == "confirming"
    [reminder] = juan.messages
    assert reminder.template_name == "appointment_reminder"
    assert reminder.template_parameters == ["Juan", "20/05", "10:30"]
    assert [r.status for r in sim.fake.requests] == [200]  # no free-form attempt


async def test_the_quick_reply_confirms(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await sim.advance(hours=30)
    await sim.trigger(JUAN, "remind", DATA)
    await juan.taps_payload(PAYLOAD, "Sí, confirmo")
    assert juan.state == "confirmed"
    confirmation = juan.last_message
    assert confirmation.type == "text"  # the tap reopened the window
    assert confirmation.text is not None
    assert "20/05" in confirmation.text and "10:30" in confirmation.text
    assert "appointment" not in juan.data
    assert juan.window.last_inbound_at == sim.clock.now()


async def test_the_quick_reply_confirms_for_a_user_who_never_wrote(
    sim: Simulator, juan: SimUser
) -> None:
    await sim.trigger(JUAN, "remind", DATA)
    await juan.taps_payload(PAYLOAD)
    assert juan.state == "confirmed"
    assert [view.type for view in juan.messages] == ["template", "text"]


async def test_text_instead_of_the_tap_asks_again_with_buttons(
    sim: Simulator, juan: SimUser
) -> None:
    await sim.trigger(JUAN, "remind", DATA)
    await juan.says("¿qué es esto?")
    assert juan.state == "confirming"
    again = juan.last_message
    assert again.type == "interactive"  # the window is open now: the buttons, not the template
    assert again.button_ids == ["confirm_yes", "reschedule"]
    assert again.text is not None and "20/05" in again.text


async def test_a_reminder_replaces_a_booking_in_progress(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    assert juan.state == "confirming"
    await sim.trigger(JUAN, "remind", DATA)
    assert juan.state == "confirming"
    assert juan.last_message.text is not None and "10:30" in juan.last_message.text
    await juan.taps("confirm_yes")
    assert juan.state == "confirmed"
    assert "10:30" in (juan.last_message.text or "")


async def test_remind_is_valid_in_every_state(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("general")
    await juan.taps("confirm_yes")
    assert juan.state == "confirmed"
    await sim.trigger(JUAN, "remind", DATA)
    assert juan.state == "confirming"
    assert juan.last_message.button_ids == ["confirm_yes", "reschedule"]


async def test_numbers_in_the_data_are_sent_as_text(sim: Simulator, juan: SimUser) -> None:
    await sim.trigger(JUAN, "remind", {**DATA, "appointment_id": 77})
    assert juan.last_message.quick_reply_payloads == ["confirm_yes_apt_77"]


async def test_remind_without_its_data_is_a_trigger_error_naming_the_keys(
    sim: Simulator, juan: SimUser
) -> None:
    with pytest.raises(TriggerError) as raised:
        await sim.trigger(JUAN, "remind", {"name": "Juan", "date": "20/05"})
    message = str(raised.value)
    assert "'time'" in message and "'appointment_id'" in message
    assert "'name'" not in message and "'date'" not in message
    assert raised.value.status == 400
    assert sim.sent == []
    assert juan.state == "idle"


async def test_remind_with_no_data_at_all_names_every_key(sim: Simulator) -> None:
    with pytest.raises(TriggerError) as raised:
        await sim.trigger(JUAN, "remind")
    assert all(f"'{key}'" in str(raised.value) for key in DATA)
