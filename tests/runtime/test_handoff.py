"""Human handoff through the whole bot (the clinic, in the Simulator): a handler hands off,
the user's messages go to the people's webhook (signed, retried) and no handler runs, people
answer through the outbox (window and fallback template), resume hands back, and all of it
survives a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path

import pytest

from botkit import HandoffError, Simulator
from botkit.tools.simulator import SIM_HANDOFF_SECRET, SimUser
from bots import clinic

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
FALLBACK = {"name": "agent_reply", "language": "es_AR", "body": ["Juan"]}


async def handed_off(juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    await juan.says("persona")


async def test_a_handler_hands_off_and_the_next_messages_go_to_people(
    sim: Simulator, juan: SimUser
) -> None:
    await handed_off(juan)
    assert juan.state == "confirming"  # where the user was: a resume may go back to it
    assert juan.handoff is not None
    assert (juan.handoff.reason, juan.handoff.state) == (
        "pidió hablar con una persona",
        "confirming",
    )
    assert "botkit.handoff" not in juan.data  # handlers never see the mark
    said = len(juan.messages)
    assert "persona del equipo" in (juan.last_message.text or "")

    await juan.says("necesito cambiar el turno")
    await juan.says("hola")  # in `confirming` this would re-ask; now no handler runs
    assert len(juan.messages) == said  # the bot said nothing
    assert juan.state == "confirming"
    bodies = sim.desk.messages
    assert [body["message"]["body"] for body in bodies] == ["necesito cambiar el turno", "hola"]
    first = bodies[0]
    assert (first["wa_id"], first["name"], first["message"]["input"]) == (JUAN, "Juan", "TextInput")
    assert first["handoff"]["reason"] == "pidió hablar con una persona"
    assert all(delivery.signed for delivery in sim.desk.deliveries)


async def test_the_forward_is_signed_over_timestamp_and_body(sim: Simulator, juan: SimUser) -> None:
    from botkit.wire.handoff import signature

    await handed_off(juan)
    await juan.says("¿me atienden?")
    [delivery] = sim.desk.deliveries
    assert delivery.signed and delivery.idempotency_key
    body = b'{"a":1}'
    expected = hmac.new(SIM_HANDOFF_SECRET.encode(), b"1700000000." + body, hashlib.sha256)
    assert signature(SIM_HANDOFF_SECRET, "1700000000", body) == "sha256=" + expected.hexdigest()


async def test_a_503_of_the_receiver_is_retried_with_the_same_key(
    sim: Simulator, juan: SimUser
) -> None:
    await handed_off(juan)
    sim.desk.fail_next(503, times=2)
    await juan.says("¿hay alguien?")
    answers = [delivery.answered for delivery in sim.desk.deliveries]
    assert answers == [503, 503, 200]
    assert len({delivery.idempotency_key for delivery in sim.desk.deliveries}) == 1
    [row] = [row for row in await sim.outbox(JUAN) if row.type == "botkit.handoff"]
    assert (row.status, row.attempts) == ("sent", 3)


async def test_a_4xx_of_the_receiver_fails_the_forward_and_keeps_it(
    sim: Simulator, juan: SimUser
) -> None:
    await handed_off(juan)
    sim.desk.fail_next(410)
    await juan.says("hola?")
    [row] = [row for row in await sim.outbox(JUAN) if row.type == "botkit.handoff"]
    assert row.status == "failed"
    assert row.error is not None and "410" in row.error


async def test_people_answer_and_resume_hands_back(sim: Simulator, juan: SimUser) -> None:
    await handed_off(juan)
    await sim.reply(JUAN, "Hola Juan, soy Ana. ¿Para qué día lo querés?")
    assert juan.last_message.text == "Hola Juan, soy Ana. ¿Para qué día lo querés?"
    assert juan.handoff is not None  # a reply does not hand back
    await sim.resume(JUAN, state="choosing_service")
    assert juan.handoff is None
    assert juan.state == "choosing_service"
    assert juan.last_message.row_ids == ["general", "specialist", "lab"]  # the state's prompt
    await juan.picks("general")  # the bot answers again
    assert juan.state == "confirming"


async def test_a_reply_into_a_closed_window_uses_the_fallback_template(
    sim: Simulator, juan: SimUser
) -> None:
    await handed_off(juan)
    await sim.advance(hours=25)
    await sim.reply(JUAN, "¿Seguís ahí?", fallback=FALLBACK)
    last = juan.last_message
    assert last.is_template and last.template_name == "agent_reply"
    assert last.template_parameters == ["Juan"]


async def test_a_reply_into_a_closed_window_without_fallback_records_the_error(
    sim: Simulator, juan: SimUser
) -> None:
    await handed_off(juan)
    said = len(juan.messages)
    await sim.advance(hours=25)
    await sim.reply(JUAN, "¿Seguís ahí?")
    assert len(juan.messages) == said
    failed = [row for row in await sim.outbox(JUAN) if row.status == "failed"]
    assert [row.type for row in failed] == ["text"]
    assert failed[0].error is not None and "window closed" in failed[0].error


async def test_resume_to_an_undeclared_state_names_the_declared_ones(
    sim: Simulator, juan: SimUser
) -> None:
    await handed_off(juan)
    with pytest.raises(HandoffError) as caught:
        await sim.resume(JUAN, state="nowhere")
    assert caught.value.status == 400
    assert "idle, choosing_service, confirming, confirmed" in str(caught.value)
    assert juan.handoff is not None


async def test_an_unknown_conversation_is_404(sim: Simulator) -> None:
    for call in (
        sim.handoff("5491100000000", reason="x"),
        sim.reply("5491100000000", "hola"),
        sim.resume("5491100000000", state="idle"),
    ):
        with pytest.raises(HandoffError) as caught:
            await call
        assert caught.value.status == 404


async def test_the_api_hands_off_a_conversation_the_bot_had(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await sim.handoff(JUAN, reason="vip")
    assert juan.handoff is not None and juan.handoff.state == "choosing_service"
    await juan.picks("lab")  # no handler: forwarded
    assert juan.state == "choosing_service"
    assert sim.desk.messages[-1]["message"]["id"] == "lab"


async def test_a_trigger_while_handed_off_is_ignored(sim: Simulator, juan: SimUser) -> None:
    await handed_off(juan)
    said = len(juan.messages)
    data = {"name": "Juan", "date": "20/05", "time": "10:30", "appointment_id": "1"}
    await sim.trigger(JUAN, "remind", data)
    assert len(juan.messages) == said
    assert "appointment" not in juan.data


async def test_a_handoff_survives_a_restart(tmp_path: Path) -> None:
    database = tmp_path / "clinic.db"
    async with Simulator(clinic, database=database) as sim:
        juan = sim.user(JUAN, name="Juan")
        await handed_off(juan)
    async with Simulator(clinic, database=database) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("sigo acá")
        assert juan.handoff is not None
        assert [body["message"]["body"] for body in sim.desk.messages] == ["sigo acá"]
        assert juan.messages == []  # the bot said nothing (a new fake provider: only this run)
        await sim.resume(JUAN, state="idle")
        assert juan.state == "idle" and juan.handoff is None


async def test_a_handoff_on_postgresql_survives_a_restart(postgres_url: str) -> None:
    async with Simulator(clinic, database=postgres_url) as sim:
        juan = sim.user(JUAN, name="Juan")
        await handed_off(juan)
        sim.desk.fail_next(503)
        await juan.says("primero")
        await sim.reply(JUAN, "Hola, soy Ana")
        assert juan.last_message.text == "Hola, soy Ana"
        assert [body["message"]["body"] for body in sim.desk.messages] == ["primero"]
    async with Simulator(clinic, database=postgres_url) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("sigo acá")
        assert juan.handoff is not None and juan.messages == []
        await sim.resume(JUAN, state="choosing_service")
        assert juan.state == "choosing_service" and juan.handoff is None
        assert juan.last_message.row_ids == ["general", "specialist", "lab"]


async def test_a_forward_refused_before_a_restart_is_delivered_after_it(tmp_path: Path) -> None:
    database = tmp_path / "clinic.db"
    async with Simulator(clinic, database=database) as sim:
        juan = sim.user(JUAN, name="Juan")
        await handed_off(juan)
        sim.desk.fail_next(503)
        text = {"type": "text", "text": {"body": "¿me escuchan?"}}
        await sim.fake.receive(
            wa_id=JUAN, name="Juan", message=text, phone_number_id=sim.phone_number_id
        )
        for _ in range(500):  # the workers run on their own: wait for the refused attempt
            rows = [row for row in await sim.outbox(JUAN) if row.type == "botkit.handoff"]
            if rows and rows[0].attempts == 1:
                break
            await asyncio.sleep(0.01)
        assert [(row.status, row.attempts) for row in rows] == [("pending", 1)]
        assert sim.desk.messages == []
    async with Simulator(clinic, database=database) as sim:
        await sim.settle()  # the retry comes due (the manual clock jumps to it)
        assert [body["message"]["body"] for body in sim.desk.messages] == ["¿me escuchan?"]
        [row] = [row for row in await sim.outbox(JUAN) if row.type == "botkit.handoff"]
        assert (row.status, row.attempts) == ("sent", 2)
