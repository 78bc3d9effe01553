"""Timers in a user's turn (pure, as tests/runtime/test_turn.py): which timers a turn writes,
and a fired timer the user overtook is dropped when its event's turn comes."""

from __future__ import annotations

import pytest

from botkit import Context, Conversation, State, on
from botkit.runtime.turn import take_turn
from botkit.store.base import DONE, FAILED, IGNORED, InboxItem
from botkit.store.timers import TimerRecord, fired_event
from botkit.wire.trigger import TriggerEvent
from botkit.wire.window import Window
from tests.runtime.test_turn import ANA, NOW, PN, T0, lane, session_of, text_item
from tests.runtime.timer_bot import LAST_CALL, NUDGE, Timed

pytestmark = pytest.mark.anyio


def timer_item(lane_seq: int, name: str, due_at: float, **payload: object) -> InboxItem:
    """A fired timer of Ana's, as the inbox hands it out."""
    record = TimerRecord(PN, ANA, name, due_at, payload, f"t{lane_seq}")  # type: ignore[arg-type]
    event = fired_event(record)
    envelope = event.envelope
    assert isinstance(envelope, dict)
    return InboxItem(100 + lane_seq, lane_seq, event.event_id, event.kind, PN, ANA, envelope)


def nudge(lane_seq: int, inbound_seq: int, state: str = "asking") -> InboxItem:
    guard = {"state": state, "inbound_seq": inbound_seq}
    return timer_item(lane_seq, "timeout:nudge", NOW, data={}, guard=guard)


def bodies(sends: object) -> list[object]:
    return [send.payload.get("body") for send in sends]  # type: ignore[attr-defined]


async def test_entering_a_state_sets_its_timeout_and_window_closing() -> None:
    turn = await take_turn(Timed(), lane(text_item(1, "hola")), NOW)
    timers = {t.name: t for t in turn.outcome.timers}
    assert sorted(timers) == ["timeout:nudge", "window_closing:last_call"]
    assert timers["timeout:nudge"].due_at == NOW + 1800
    guard = timers["timeout:nudge"].payload["guard"]
    assert guard == {"state": "asking", "inbound_seq": 1, "entered": 1}  # entered at position 1
    assert timers["window_closing:last_call"].due_at == T0 + 23 * 3600


async def test_a_fired_timeout_runs_its_handler_when_the_user_is_still_quiet() -> None:
    claimed = lane(
        nudge(2, inbound_seq=1), session=session_of(Timed, "asking"), window=Window(T0, 1)
    )
    turn = await take_turn(Timed(), claimed, NOW)
    assert [r.status for r in turn.outcome.results] == [DONE]
    assert bodies(turn.outcome.sends) == [NUDGE]
    assert turn.outcome.timers == ()  # not set again by its own firing: once per silence


async def test_a_message_stored_before_the_fired_timeout_wins() -> None:
    # the user wrote (lane position 2), then the timeout set after position 1 was fired
    claimed = lane(
        text_item(2, "mmm"), nudge(3, inbound_seq=1), session=session_of(Timed, "asking")
    )
    turn = await take_turn(Timed(), claimed, NOW)
    results = turn.outcome.results
    assert [r.status for r in results] == [DONE, IGNORED]
    assert results[1].error == "timeout: the user wrote since it was set"
    assert NUDGE not in bodies(turn.outcome.sends)
    [again] = [t for t in turn.outcome.timers if t.name == "timeout:nudge"]
    assert again.due_at == NOW + 1800  # the quiet time starts again from the message


async def test_a_timeout_for_a_state_the_user_left_is_dropped() -> None:
    claimed = lane(nudge(2, inbound_seq=1), session=session_of(Timed, "done"), window=Window(T0, 1))
    turn = await take_turn(Timed(), claimed, NOW)
    [result] = turn.outcome.results
    assert (result.status, result.error) == (
        IGNORED,
        "timeout: the user left state 'asking' (now 'done')",
    )


async def test_a_last_call_for_an_older_window_is_dropped() -> None:
    old = timer_item(3, "window_closing:last_call", NOW, data={}, guard={"closes_at": T0 + 86400.0})
    later = Window(T0 + 600, 2)  # the user wrote again: the window ends later
    claimed = lane(old, session=session_of(Timed, "asking"), window=later)
    turn = await take_turn(Timed(), claimed, NOW)
    [result] = turn.outcome.results
    assert result.status == IGNORED and LAST_CALL not in bodies(turn.outcome.sends)


async def test_a_reminder_with_no_handler_in_the_state_is_ignored_with_the_reason() -> None:
    reminder = timer_item(2, "reminder", NOW, data={"n": 1}, guard={})
    turn = await take_turn(Timed(), lane(reminder, session=session_of(Timed, "asking")), NOW)
    [result] = turn.outcome.results
    assert (result.status, result.error) == (
        IGNORED,
        "timer 'reminder' has no handler in state 'asking'",
    )


class Fragile(Conversation):
    idle = State(initial=True)

    @on.text(states=[idle])
    async def remind(self, ctx: Context) -> None:
        ctx.schedule("later", after=60)
        if ctx.text == "boom":
            raise RuntimeError("the agenda is down")

    @on.timer("later", states=[idle])
    async def later(self, ctx: Context) -> None: ...


async def test_a_failed_handler_schedules_nothing() -> None:
    turn = await take_turn(Fragile(), lane(text_item(1, "boom"), text_item(2, "ok")), NOW)
    assert [r.status for r in turn.outcome.results] == [FAILED, DONE]
    [later] = turn.outcome.timers  # the second event's only
    assert (later.name, later.due_at) == ("later", NOW + 60)
    assert later.timer_id != ""


async def test_entering_the_state_with_a_closed_window_sets_the_timeout_only() -> None:
    class Reentry(Timed):
        @on.trigger("ask", to="asking")
        async def ask(self, ctx: Context) -> None: ...

    trigger = TriggerEvent.create(wa_id=ANA, phone_number_id=PN, name="ask", data={})
    item = InboxItem(101, 1, trigger.event_id, "trigger", PN, ANA, trigger.envelope)
    closed = Window(T0 - 2 * 86400, 1)
    turn = await take_turn(
        Reentry(), lane(item, session=session_of(Reentry, "idle"), window=closed), NOW
    )
    assert [t.name for t in turn.outcome.timers] == ["timeout:nudge"]  # no last call: closed
