"""A user's turn: claimed events in, one LaneOutcome out, with no store in between.

Each test builds the claimed lane (its events, session and window) by hand and checks what
`take_turn` says to commit: results, session, sends, window and delivery statuses.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from botkit import Context, Conversation, State, Text, on
from botkit.runtime.turn import take_turn
from botkit.store.base import (
    DONE,
    FAIL,
    FAILED,
    IGNORED,
    EventResult,
    InboxItem,
    InboxLane,
    Session,
    StatusRecord,
)
from botkit.types import JSONObject
from botkit.wire.idempotency import idempotency_key
from botkit.wire.trigger import TriggerEvent
from botkit.wire.window import WINDOW_CLOSED_CODE, Window

pytestmark = pytest.mark.anyio

PN = "555123456789"
ANA = "5491140000001"
T0 = 1_779_199_200  # a user's message timestamp (provider clock)
NOW = float(T0 + 60)  # this machine's clock when the turn is taken
OUT = "wamid.OUTBOUND1"  # a message the bot sent earlier


class Notebook(Conversation):
    """Notes every text, in order, with the state it arrived in; some texts misbehave."""

    idle = State(initial=True)
    taking = State()

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    @on.text()
    async def note(self, ctx: Context) -> None:
        self.ran.append(ctx.text or "")
        seen = list(ctx.data.get("seen", []))  # type: ignore[arg-type]
        ctx.data["seen"] = [*seen, f"{ctx.state}:{ctx.text}"]
        ctx.goto(Notebook.taking)
        await ctx.send(Text(f"noted {len(seen) + 1}"))
        if ctx.text == "boom":
            raise ValueError("the handler broke")
        if ctx.text == "bad send":
            await ctx.send(Text("bad \ud800"))  # a lone surrogate: not encodable as JSON
        if ctx.text == "bad data":
            ctx.data["tags"] = {"not", "json"}  # type: ignore[assignment]
        if ctx.text == "slow":
            self.started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if ctx.text == "twice":
            await ctx.send(Text("and again"))
        if ctx.text == "client timeout":
            raise TimeoutError("the database did not answer")


class Reminders(Conversation):
    """A trigger declared for one state only, and a handler of delivery statuses."""

    idle = State(initial=True)
    booked = State()

    @on.text(states=[idle], to=booked)
    async def book(self, ctx: Context) -> None:
        ctx.data["booked"] = True

    @on.trigger("remind", states=[booked])
    async def remind(self, ctx: Context) -> None:
        ctx.data["reminded"] = ctx.trigger_data.get("when")
        await ctx.send(Text("see you soon"))

    @on.status("failed")
    async def failed(self, ctx: Context) -> None:
        ctx.data["failures"] = int(ctx.data.get("failures", 0)) + 1  # type: ignore[call-overload]


def text_item(
    lane_seq: int, body: str, *, timestamp: int = T0, seq: int | None = None
) -> InboxItem:
    """Ana's text message, as the inbox hands it out at lane position `lane_seq`."""
    event_id = f"evt_{lane_seq}"
    envelope: JSONObject = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": PN,
        "data": {
            "contact": {"wa_id": ANA, "profile": {"name": "Ana"}},
            "message": {
                "from": ANA,
                "id": f"wamid.IN{lane_seq}",
                "timestamp": str(timestamp),
                "type": "text",
                "text": {"body": body},
            },
        },
    }
    return InboxItem(seq or 100 + lane_seq, lane_seq, event_id, "message", PN, ANA, envelope)


def failed_status_item(
    lane_seq: int, *, timestamp: int, code: int = WINDOW_CLOSED_CODE
) -> InboxItem:
    """A `failed` status of the bot's message OUT, with Meta's error `code`."""
    event_id = f"evt_{lane_seq}"
    status: JSONObject = {
        "id": OUT,
        "status": "failed",
        "timestamp": str(timestamp),
        "recipient_id": ANA,
        "errors": [{"code": code, "title": "Re-engagement message"}],
    }
    envelope: JSONObject = {
        "id": event_id,
        "type": "whatsapp.message.failed",
        "phone_number_id": PN,
        "data": {"status": status},
    }
    return InboxItem(100 + lane_seq, lane_seq, event_id, "status", PN, ANA, envelope)


def trigger_item(lane_seq: int, name: str, **data: str) -> InboxItem:
    """A trigger for Ana, as the inbox hands it out."""
    trigger = TriggerEvent.create(wa_id=ANA, phone_number_id=PN, name=name, data=dict(data))
    return InboxItem(
        100 + lane_seq, lane_seq, trigger.event_id, "trigger", PN, ANA, trigger.envelope
    )


def lane(
    *events: InboxItem,
    session: Session | None = None,
    window: Window | None = None,
    attempts: int = 1,
) -> InboxLane:
    """Ana's claimed lane."""
    return InboxLane(PN, ANA, "claim-1", events, session, window or Window(), attempts)


def session_of(conversation: type[Conversation], state: str, **data: object) -> Session:
    """A stored session of `conversation`."""
    spec = conversation.spec
    return Session(PN, ANA, spec.name, state, dict(data), spec.version)  # type: ignore[arg-type]


def statuses(results: tuple[EventResult, ...]) -> list[str]:
    return [result.status for result in results]


# --- running handlers -------------------------------------------------------------------------


async def test_a_text_runs_its_handler_and_says_what_to_commit() -> None:
    item = text_item(5, "hola", timestamp=T0)
    before = Window(last_inbound_at=T0 - 3600, inbound_seq=4)
    turn = await take_turn(Notebook(), lane(item, window=before), NOW)

    outcome = turn.outcome
    assert (outcome.phone_number_id, outcome.wa_id, outcome.token) == (PN, ANA, "claim-1")
    assert outcome.results == (EventResult(item.seq, 5, DONE),)
    assert outcome.session == session_of(Notebook, "taking", seen=["idle:hola"])
    [send] = outcome.sends
    assert send.idempotency_key == idempotency_key("evt_5", 0)
    assert (send.type, send.payload, send.cause) == (
        "text",
        {"body": "noted 1", "preview_url": False},
        "evt_5",
    )
    assert (send.phone_number_id, send.wa_id, send.when_closed, send.held) == (
        PN,
        ANA,
        FAIL,
        False,
    )
    assert outcome.release_held is True
    assert outcome.window == Window(last_inbound_at=float(T0), inbound_seq=5, closed_seq=None)
    assert outcome.attempts == 1
    assert turn.errors == {}


async def test_the_sends_of_one_event_are_keyed_by_their_position() -> None:
    turn = await take_turn(Notebook(), lane(text_item(1, "twice")), NOW)

    assert [s.idempotency_key for s in turn.outcome.sends] == [
        idempotency_key("evt_1", 0),
        idempotency_key("evt_1", 1),
    ]
    assert [s.payload for s in turn.outcome.sends] == [
        {"body": "noted 1", "preview_url": False},
        {"body": "and again", "preview_url": False},
    ]


async def test_taking_the_same_turn_again_gives_the_same_idempotency_keys() -> None:
    claimed = lane(text_item(1, "a"), text_item(2, "twice"))
    first = await take_turn(Notebook(), claimed, NOW)
    again = await take_turn(Notebook(), claimed, NOW + 3600)

    keys = [s.idempotency_key for s in first.outcome.sends]
    assert keys == [s.idempotency_key for s in again.outcome.sends]
    assert len(set(keys)) == 3


async def test_a_lanes_events_run_in_order_each_from_the_state_the_last_left() -> None:
    stored = session_of(Notebook, "idle", seen=["idle:before"])
    claimed = lane(text_item(1, "a"), text_item(2, "b"), text_item(3, "c"), session=stored)
    turn = await take_turn(Notebook(), claimed, NOW)

    assert statuses(turn.outcome.results) == [DONE, DONE, DONE]
    assert [r.lane_seq for r in turn.outcome.results] == [1, 2, 3]
    assert turn.outcome.session == session_of(
        Notebook, "taking", seen=["idle:before", "idle:a", "taking:b", "taking:c"]
    )
    assert [s.payload["body"] for s in turn.outcome.sends] == [  # type: ignore[index,call-overload]
        "noted 2",
        "noted 3",
        "noted 4",
    ]
    assert [s.cause for s in turn.outcome.sends] == ["evt_1", "evt_2", "evt_3"]
    assert turn.outcome.window == Window(last_inbound_at=float(T0), inbound_seq=3)


async def test_a_session_in_a_state_that_no_longer_exists_resumes_from_the_initial_state() -> None:
    stored = session_of(Notebook, "removed_state", seen=["gone:x"])
    turn = await take_turn(Notebook(), lane(text_item(1, "a"), session=stored), NOW)

    assert turn.outcome.session == session_of(Notebook, "taking", seen=["gone:x", "idle:a"])


async def test_a_session_of_another_conversation_starts_fresh_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # another bot's user on the same database: its state may exist here, its data does not fit
    stored = dataclasses.replace(
        session_of(Notebook, "taking", seen=["clinic:x"]), conversation="clinic"
    )
    turn = await take_turn(Notebook(), lane(text_item(1, "a"), session=stored), NOW)

    assert turn.outcome.session == session_of(Notebook, "taking", seen=["idle:a"])
    assert "belongs to conversation 'clinic'" in caplog.text


# --- a handler that fails fails its own event only ----------------------------------------------


async def test_a_handler_that_raises_fails_its_event_and_the_next_starts_from_before_it() -> None:
    conversation = Notebook()
    claimed = lane(text_item(1, "a"), text_item(2, "boom"), text_item(3, "c"))
    turn = await take_turn(conversation, claimed, NOW)

    results = turn.outcome.results
    assert statuses(results) == [DONE, FAILED, DONE]
    assert results[1].error == "ValueError: the handler broke"
    assert results[0].error is None and results[2].error is None
    assert conversation.ran == ["a", "boom", "c"]
    # "boom" changed the data and sent a message before raising: none of it is kept
    assert turn.outcome.session == session_of(Notebook, "taking", seen=["idle:a", "taking:c"])
    assert [s.cause for s in turn.outcome.sends] == ["evt_1", "evt_3"]
    assert [s.payload["body"] for s in turn.outcome.sends] == ["noted 1", "noted 2"]  # type: ignore[index,call-overload]
    assert list(turn.errors) == ["evt_2"]
    assert isinstance(turn.errors["evt_2"], ValueError)
    assert str(turn.errors["evt_2"]) == "the handler broke"
    assert turn.failed_handlers == ("note",)  # for botkit_handler_errors_total


async def test_a_failed_events_message_still_opens_the_window_and_releases_held_sends() -> None:
    turn = await take_turn(Notebook(), lane(text_item(7, "boom", timestamp=T0 + 5)), NOW)

    assert statuses(turn.outcome.results) == [FAILED]
    assert turn.outcome.session is None  # unchanged
    assert turn.outcome.sends == ()
    assert turn.outcome.window == Window(last_inbound_at=float(T0 + 5), inbound_seq=7)
    assert turn.outcome.release_held is True


async def test_a_message_that_cannot_be_stored_fails_only_its_own_event() -> None:
    stored = session_of(Notebook, "idle", seen=["idle:before"])
    claimed = lane(text_item(1, "bad send"), text_item(2, "b"), session=stored)
    turn = await take_turn(Notebook(), claimed, NOW)

    results = turn.outcome.results
    assert statuses(results) == [FAILED, DONE]
    assert results[0].error is not None
    assert isinstance(turn.errors["evt_1"], TypeError | ValueError)
    # the session "b" starts from is the stored one: "bad send" left nothing
    assert turn.outcome.session == session_of(Notebook, "taking", seen=["idle:before", "idle:b"])
    assert [s.cause for s in turn.outcome.sends] == ["evt_2"]


async def test_data_that_is_not_json_fails_only_its_own_event() -> None:
    stored = session_of(Notebook, "idle", seen=["idle:before"])
    claimed = lane(text_item(1, "bad data"), text_item(2, "b"), session=stored)
    turn = await take_turn(Notebook(), claimed, NOW)

    assert statuses(turn.outcome.results) == [FAILED, DONE]
    assert turn.outcome.results[0].error is not None
    assert "evt_1" in turn.errors
    assert turn.outcome.session == session_of(Notebook, "taking", seen=["idle:before", "idle:b"])
    assert [s.cause for s in turn.outcome.sends] == ["evt_2"]


async def test_a_lane_whose_only_event_fails_leaves_the_session_unchanged() -> None:
    stored = session_of(Notebook, "idle", seen=["idle:before"])
    for body in ("boom", "bad send", "bad data"):
        turn = await take_turn(Notebook(), lane(text_item(1, body), session=stored), NOW)
        assert statuses(turn.outcome.results) == [FAILED], body
        assert turn.failed_handlers == ("note",), body
        assert turn.outcome.session is None, body
        assert turn.outcome.sends == (), body


async def test_a_handler_slower_than_the_timeout_is_cancelled_and_fails_its_event() -> None:
    conversation = Notebook()
    claimed = lane(text_item(1, "slow"), text_item(2, "b"))
    turn = await take_turn(conversation, claimed, NOW, handler_timeout=0.01)

    results = turn.outcome.results
    assert statuses(results) == [FAILED, DONE]
    assert results[0].error is not None and "took more than 0.01s" in results[0].error
    assert conversation.started.is_set() and conversation.cancelled.is_set()
    assert turn.outcome.session == session_of(Notebook, "taking", seen=["idle:b"])
    assert turn.failed_handlers == ("note",)


async def test_a_turn_that_is_cancelled_is_not_mistaken_for_a_failing_handler() -> None:
    conversation = Notebook()
    task = asyncio.create_task(take_turn(conversation, lane(text_item(1, "slow")), NOW))
    await conversation.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conversation.cancelled.is_set()


async def test_a_lane_claimed_too_often_gives_up_without_running_the_handler() -> None:
    conversation = Notebook()
    claimed = lane(text_item(1, "a"), attempts=4)
    turn = await take_turn(conversation, claimed, NOW, max_attempts=3)

    [result] = turn.outcome.results
    assert result.status == FAILED
    assert result.error == "gave up after 3 attempts"
    assert conversation.ran == []
    assert turn.outcome.session is None
    assert turn.outcome.sends == ()
    assert turn.outcome.attempts == 4


async def test_a_lane_at_its_last_allowed_attempt_still_runs() -> None:
    conversation = Notebook()
    turn = await take_turn(conversation, lane(text_item(1, "a"), attempts=3), NOW, max_attempts=3)

    assert statuses(turn.outcome.results) == [DONE]
    assert conversation.ran == ["a"]
    assert turn.outcome.attempts == 3


# --- statuses and the window ----------------------------------------------------------------


async def test_a_window_closed_failure_refuses_the_message_and_closes_the_window() -> None:
    before = Window(last_inbound_at=float(T0), inbound_seq=3)
    item = failed_status_item(4, timestamp=T0 + 100)
    turn = await take_turn(Reminders(), lane(item, window=before), NOW)

    outcome = turn.outcome
    assert statuses(outcome.results) == [DONE]
    assert outcome.refused == (OUT,)
    assert outcome.window == Window(last_inbound_at=float(T0), inbound_seq=3, closed_seq=4)
    assert outcome.window.refused
    assert not outcome.window.is_open(NOW)
    [record] = outcome.statuses
    assert (record.message_id, record.status, record.timestamp) == (OUT, "failed", T0 + 100)
    assert record.errors is not None and str(WINDOW_CLOSED_CODE) in record.errors
    assert outcome.release_held is False  # a status is not the user writing
    assert outcome.session == session_of(Reminders, "idle", failures=1)  # its handler ran


async def test_a_failure_older_than_the_users_latest_message_leaves_the_window_open() -> None:
    before = Window(last_inbound_at=float(T0 + 200), inbound_seq=3)
    turn = await take_turn(
        Reminders(), lane(failed_status_item(4, timestamp=T0 + 100), window=before), NOW
    )

    assert turn.outcome.window == before
    assert not turn.outcome.window.refused
    assert turn.outcome.window.is_open(NOW)
    assert [r.message_id for r in turn.outcome.statuses] == [OUT]


async def test_a_failure_in_the_same_second_as_the_users_message_closes_the_window() -> None:
    before = Window(last_inbound_at=float(T0 + 100), inbound_seq=3)
    turn = await take_turn(
        Reminders(), lane(failed_status_item(4, timestamp=T0 + 100), window=before), NOW
    )

    assert turn.outcome.window == Window(float(T0 + 100), 3, closed_seq=4)
    assert turn.outcome.window.refused


async def test_a_message_after_the_failure_in_the_same_turn_reopens_the_window() -> None:
    before = Window(last_inbound_at=float(T0), inbound_seq=3)
    claimed = lane(
        failed_status_item(4, timestamp=T0 + 100),
        text_item(5, "hola", timestamp=T0 + 150),
        window=before,
    )
    turn = await take_turn(Reminders(), claimed, NOW)

    assert turn.outcome.window == Window(float(T0 + 150), inbound_seq=5, closed_seq=4)
    assert not turn.outcome.window.refused
    assert turn.outcome.refused == (OUT,)
    assert turn.outcome.release_held is True


async def test_a_failure_for_another_reason_is_recorded_but_does_not_close_the_window() -> None:
    before = Window(last_inbound_at=float(T0), inbound_seq=3)
    item = failed_status_item(4, timestamp=T0 + 100, code=131026)
    turn = await take_turn(Reminders(), lane(item, window=before), NOW)

    assert turn.outcome.refused == ()
    assert turn.outcome.window == before
    [record] = turn.outcome.statuses
    assert record == StatusRecord(OUT, "failed", T0 + 100, record.errors)
    assert record.errors is not None and "131026" in record.errors


# --- events nobody handles --------------------------------------------------------------------


async def test_an_event_of_an_unknown_type_is_ignored() -> None:
    envelope: JSONObject = {
        "id": "evt_x",
        "type": "something.else",
        "phone_number_id": PN,
        "data": {},
    }
    item = InboxItem(101, 1, "evt_x", "message", PN, ANA, envelope)
    before = Window(last_inbound_at=float(T0), inbound_seq=0)
    conversation = Notebook()
    turn = await take_turn(conversation, lane(item, window=before), NOW)

    assert turn.outcome.results == (EventResult(101, 1, IGNORED),)
    assert conversation.ran == []
    assert turn.outcome.session is None
    assert turn.outcome.window == before
    assert turn.outcome.release_held is False


async def test_a_trigger_not_declared_for_the_current_state_is_ignored_with_a_reason() -> None:
    turn = await take_turn(Reminders(), lane(trigger_item(1, "remind", when="tomorrow")), NOW)

    [result] = turn.outcome.results
    assert result.status == IGNORED
    assert result.error is not None
    assert "'remind'" in result.error and "'idle'" in result.error
    assert turn.outcome.session is None
    assert turn.outcome.sends == ()


async def test_a_trigger_runs_once_the_state_declares_it() -> None:
    remind = trigger_item(2, "remind", when="tomorrow")
    turn = await take_turn(Reminders(), lane(text_item(1, "hola"), remind), NOW)

    assert statuses(turn.outcome.results) == [DONE, DONE]
    assert turn.outcome.session == session_of(Reminders, "booked", booked=True, reminded="tomorrow")
    [send] = turn.outcome.sends
    assert send.cause == remind.event_id
    assert send.idempotency_key == idempotency_key(remind.event_id, 0)


async def test_a_stored_envelope_that_cannot_be_read_fails_its_event() -> None:
    envelope: JSONObject = {"id": "evt_t", "type": "botkit.wire.trigger", "data": {}}
    item = InboxItem(101, 1, "evt_t", "trigger", PN, ANA, envelope)
    turn = await take_turn(Reminders(), lane(item, text_item(2, "hola")), NOW)

    results = turn.outcome.results
    assert statuses(results) == [FAILED, DONE]
    assert results[0].error is not None and results[0].error.startswith(
        "stored envelope unreadable"
    )


# --- found in review: the handler's own TimeoutError, given-up events, late refusals -------------


async def test_a_handlers_own_timeout_error_is_its_error_not_the_turns_timeout() -> None:
    notebook = Notebook()
    turn = await take_turn(notebook, lane(text_item(1, "client timeout")), NOW)
    [result] = turn.outcome.results
    assert (result.status, result.error) == (FAILED, "TimeoutError: the database did not answer")
    assert isinstance(turn.errors["evt_1"], TimeoutError)  # reported, like any handler error


async def test_an_event_given_up_still_opens_the_window_and_releases_held_sends() -> None:
    notebook = Notebook()
    turn = await take_turn(notebook, lane(text_item(7, "hola"), attempts=11), NOW, max_attempts=10)
    assert notebook.ran == []
    assert turn.outcome.window == Window(float(T0), 7)
    assert turn.outcome.release_held


async def test_a_refusal_the_user_has_since_answered_reopens_nothing_and_resends_at_once() -> None:
    """The message was not delivered, whatever happened since: it falls back (or is held);
    the user wrote after the failure, so the window stays open and what is held goes out."""
    wrote = Window(float(T0 + 30), 1)  # Ana wrote after the failure: the window is open
    turn = await take_turn(
        Reminders(), lane(failed_status_item(2, timestamp=T0), window=wrote), NOW
    )
    assert turn.outcome.refused == ("wamid.OUTBOUND1",)
    assert turn.outcome.window == wrote
    assert turn.outcome.release_held


async def test_a_refusal_of_a_closed_window_holds_until_the_user_writes() -> None:
    wrote = Window(float(T0 - 30), 1)  # Ana's last message came before the failure
    turn = await take_turn(
        Reminders(), lane(failed_status_item(2, timestamp=T0), window=wrote), NOW
    )
    assert turn.outcome.refused == ("wamid.OUTBOUND1",)
    assert turn.outcome.window == Window(float(T0 - 30), 1, 2)
    assert not turn.outcome.release_held
