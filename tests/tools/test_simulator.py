"""The simulator: conversations, provider faults, redeliveries and what the provider saw."""

from __future__ import annotations

import pytest

from botkit import Simulator, SimulatorError
from botkit.tools.simulator import SimUser
from botkit.wire.idempotency import idempotency_key

pytestmark = pytest.mark.anyio


async def test_a_new_user_is_in_the_initial_state_with_no_messages(juan: SimUser) -> None:
    assert juan.state == "idle"
    assert juan.data == {}
    assert juan.messages == []
    with pytest.raises(SimulatorError, match="no message yet"):
        _ = juan.last_message


async def test_the_same_number_is_the_same_user(sim: Simulator, juan: SimUser) -> None:
    assert sim.user("5491140123456") is juan


async def test_a_503_is_retried_with_the_same_key_without_sleeping(
    sim: Simulator, juan: SimUser
) -> None:
    sim.fail_next(503)
    started = sim.clock.now()
    delivery = await juan.says("hola")
    assert juan.last_message.row_ids == ["general", "specialist", "lab"]
    posts = [r for r in sim.fake.requests if r.path.endswith("/messages")]
    assert [r.status for r in posts] == [503, 200]
    key = idempotency_key(str(delivery.envelope["id"]), 0)
    assert [r.headers["idempotency-key"] for r in posts] == [key, key]
    [row] = await sim.outbox(juan.wa_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert sim.clock.now() > started  # the backoff passed on the manual clock


async def test_a_429_waits_retry_after_on_the_clock(sim: Simulator, juan: SimUser) -> None:
    sim.fail_next(429, retry_after=30)
    started = sim.clock.now()
    await juan.says("hola")
    assert len(juan.messages) == 1
    assert sim.clock.now() - started >= 30
    [row] = await sim.outbox(juan.wa_id)
    assert (row.status, row.attempts) == ("sent", 1)  # a 429 is pacing, not a failed attempt


async def test_a_permanent_error_is_recorded_and_not_retried(sim: Simulator, juan: SimUser) -> None:
    sim.fail_next(400)
    await juan.says("hola")
    assert juan.messages == []
    [row] = await sim.outbox(juan.wa_id)
    assert row.status == "failed"
    assert row.error is not None and "400" in row.error
    assert len([r for r in sim.fake.requests if r.path.endswith("/messages")]) == 1
    assert juan.state == "choosing_service"  # the conversation moved on; the send failed


async def test_a_redelivered_event_changes_nothing(sim: Simulator, juan: SimUser) -> None:
    delivery = await juan.says("hola")
    again = await sim.redeliver(delivery)
    assert again.response == {"accepted": 0, "duplicates": 1}
    assert len(juan.messages) == 1
    assert juan.state == "choosing_service"


async def test_a_tap_answers_the_message_that_offered_it(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    offered = juan.last_message
    delivery = await juan.picks("lab")
    message = delivery.envelope["data"]["message"]  # type: ignore[index,call-overload]
    assert message["context"]["id"] == offered.message_id
    assert message["interactive"]["list_reply"] == {
        "id": "lab",
        "title": "Laboratorio",
        "description": "Análisis de sangre",
    }


async def test_tapping_what_was_never_offered_is_a_simulator_error(juan: SimUser) -> None:
    await juan.says("hola")
    with pytest.raises(SimulatorError, match="no message offered a button 'confirm_yes'"):
        await juan.taps("confirm_yes")
    with pytest.raises(SimulatorError, match="offered: general, lab, specialist"):
        await juan.picks("dentist")


async def test_every_send_carries_the_api_key_and_json(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    [post] = [r for r in sim.fake.requests if r.path.endswith("/messages")]
    assert post.headers["x-api-key"].startswith("gsk_test_")
    assert post.headers["content-type"] == "application/json"
    assert sim.sent[0].to == juan.wa_id


async def test_a_send_not_awaited_is_raised_in_the_step_and_nothing_is_sent() -> None:
    from botkit import Bot, Context, Conversation, State, Text, on
    from botkit.exceptions import BotkitError

    class Forgetful(Conversation):
        idle = State(initial=True)

        @on.text()
        async def greet(self, ctx: Context) -> None:
            ctx.send(Text("hola"))  # the mistake under test: no await

    async with Simulator(Bot(Forgetful)) as sim:
        ana = sim.user("5491140000001")
        with pytest.raises(
            BotkitError, match=r"Forgetful\.greet called ctx\.send\(\.\.\.\) without await"
        ):
            await ana.says("hola")
        assert ana.messages == []
