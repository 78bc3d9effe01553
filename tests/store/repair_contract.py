"""The Repair part of the Store contract (botkit/store/repair.py): failed events and sends, one
user's lanes, reset and forget, and how they keep off a turn in flight. StoreContract
includes it, so that every backend runs it."""

from __future__ import annotations

import pytest

from botkit.exceptions import LaneBusyError, RepairError
from botkit.store.base import (
    DONE,
    FAILED,
    IGNORED,
    PENDING,
    SENT,
    Backlog,
    Counts,
    EventResult,
    InboxLane,
    LaneOutcome,
    SendOutcome,
    StatusRecord,
    Store,
)
from botkit.store.repair import RETRIED, Forgotten
from botkit.types import ManualClock
from botkit.wire.window import Window

from .contract import (
    ANA,
    BEN,
    LEASE,
    PN,
    T0,
    event,
    queue_sends,
    record,
    run_lane,
    send,
    session,
)


async def fail_events(store: Store, wa_id: str = ANA, error: str = "ValueError: boom") -> None:
    """Claims `wa_id`'s lane and completes every claimed event as failed with `error`."""
    claimed = {lane.wa_id: lane for lane in await store.inbox.claim("F", 100, LEASE)}
    lane = claimed[wa_id]
    results = tuple(EventResult(i.seq, i.lane_seq, FAILED, error) for i in lane.events)
    outcome = LaneOutcome(lane.phone_number_id, wa_id, "F", results, attempts=lane.attempts)
    assert await store.inbox.complete([outcome]) == [True]
    await store.inbox.release("F")


async def claim_one(store: Store, wa_id: str = ANA, token: str = "W") -> InboxLane:
    [lane] = [lane for lane in await store.inbox.claim(token, 100, LEASE) if lane.wa_id == wa_id]
    return lane


@pytest.mark.anyio
class RepairContract:
    """Every Store backend's repairs."""

    # -- events ------------------------------------------------------------------------------

    async def test_failed_events_are_listed_newest_first_with_their_error(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1"), event("a2")])
        await fail_events(store)
        await store.inbox.add([event("a3"), event("b1", wa_id=BEN)])
        await run_lane(store, ANA)
        failed = await store.repair.events(status=FAILED)
        assert [e.event_id for e in failed] == ["a2", "a1"]
        first = failed[1]
        assert (first.status, first.error, first.kind, first.wa_id) == (
            FAILED, "ValueError: boom", "message", ANA,
        )  # fmt: skip
        assert first.attempts == 1 and first.processed_at is not None
        assert first.envelope["data"]["message"]["text"]["body"] == "¿Turno? 👍"  # type: ignore[index,call-overload]
        assert [e.event_id for e in await store.repair.events(status=FAILED, limit=1)] == ["a2"]
        everything = await store.repair.events()
        assert [(e.event_id, e.status) for e in everything] == [
            ("b1", PENDING), ("a3", DONE), ("a2", FAILED), ("a1", FAILED),
        ]  # fmt: skip
        assert [e.event_id for e in await store.repair.events(wa_id=BEN)] == ["b1"]

    async def test_one_event_shows_its_status_and_a_pending_head_its_attempts(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1"), event("a2")])
        await store.inbox.claim("W", 10, LEASE)  # a worker that dies: the lease runs out
        clock.advance(LEASE + 1)
        await store.inbox.claim("W2", 10, LEASE)
        head = await store.repair.event("a1")
        assert head is not None and (head.status, head.attempts) == (PENDING, 2)
        assert head.received_at == pytest.approx(clock.now() - LEASE - 1)
        assert await store.repair.event("nope") is None

    async def test_a_retried_event_runs_again_after_the_events_stored_since(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1", message_id="wamid.1")])
        await fail_events(store)
        await store.inbox.add([event("a2")])
        copy = await store.repair.retry_event("a1")
        assert (copy.event_id, copy.status, copy.kind) == ("a1~retry1", PENDING, "message")
        assert copy.envelope == (await store.repair.event("a1")).envelope  # type: ignore[union-attr]
        original = await store.repair.event("a1")
        assert original is not None and (original.status, original.error) == (
            RETRIED, "ValueError: boom",
        )  # fmt: skip
        assert await store.repair.events(status=FAILED) == []
        assert await store.inspect.backlog() == Backlog(2, 0)
        lane = await claim_one(store)
        assert [item.event_id for item in lane.events] == ["a2", "a1~retry1"]

    async def test_a_retried_copy_that_fails_again_is_retried_under_the_next_number(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        await fail_events(store)
        await store.repair.retry_event("a1")
        await fail_events(store)
        again = await store.repair.retry_event("a1~retry1")
        assert again.event_id == "a1~retry2"

    async def test_only_a_failed_event_can_be_retried(self, store: Store) -> None:
        await store.inbox.add([event("a1")])
        with pytest.raises(RepairError, match="'a1' is pending") as refused:
            await store.repair.retry_event("a1")
        assert refused.value.status == 409
        with pytest.raises(RepairError, match="no event 'zz'") as unknown:
            await store.repair.retry_event("zz")
        assert unknown.value.status == 404
        assert await store.inspect.backlog() == Backlog(1, 0)

    # -- sends -------------------------------------------------------------------------------

    async def test_a_failed_send_is_listed_and_retried_under_a_new_key(self, store: Store) -> None:
        await queue_sends(store, send("k1"), send("k2"), send("k3"))
        [lane] = await store.outbox.claim("O", 10, LEASE)
        s1, s2, s3 = lane.sends
        results = (
            SendOutcome(s1.seq, FAILED, 1, error="400 bad"),
            SendOutcome(s2.seq, SENT, 1, "wamid.k2"),
        )
        assert await record(store, lane, *results)
        [failed] = await store.repair.sends(status=FAILED)
        assert (failed.idempotency_key, failed.error, failed.type) == ("k1", "400 bad", "text")
        assert failed.finished_at is not None and failed.created_at <= failed.finished_at
        assert [s.idempotency_key for s in await store.repair.sends()] == ["k3", "k2", "k1"]
        retried = await store.repair.retry_send(failed.seq)
        assert (retried.status, retried.idempotency_key, retried.attempts) == (PENDING, "k1-r1", 0)
        assert retried.error is None and retried.finished_at is None
        [lane] = await store.outbox.claim("O", 10, LEASE)
        assert [s.idempotency_key for s in lane.sends] == ["k1-r1", "k3"]  # its place kept
        assert await store.repair.send(s2.seq) is not None
        assert await store.repair.send(s3.seq + 1000) is None

    async def test_only_a_failed_send_can_be_retried(self, store: Store) -> None:
        await queue_sends(store, send("k1"))
        [pending] = await store.repair.sends()
        with pytest.raises(RepairError, match="is pending") as refused:
            await store.repair.retry_send(pending.seq)
        assert refused.value.status == 409
        with pytest.raises(RepairError) as unknown:
            await store.repair.retry_send(pending.seq + 1000)
        assert unknown.value.status == 404

    # -- one user ----------------------------------------------------------------------------

    async def test_a_users_lane_shows_session_window_and_work_not_finished(
        self, store: Store
    ) -> None:
        assert await store.repair.lanes(ANA) == []
        await store.inbox.add([event("a1")])
        window = Window(T0, 1)
        await run_lane(store, ANA, session=session(state="asking", name="Ana"), window=window)
        await store.inbox.add([event("a2")])
        await queue_sends(store, send("k1"))  # completes a2 and the carrier too
        await store.inbox.add([event("a3")])
        [lane] = await store.repair.lanes(ANA)
        assert lane.session is not None and lane.session.state == "asking"
        assert lane.session.data == {"name": "Ana"}
        assert lane.window.last_inbound_at == T0
        assert (lane.pending_events, lane.pending_sends, lane.in_flight) == (1, 1, False)
        await claim_one(store)
        [lane] = await store.repair.lanes(ANA)
        assert lane.in_flight

    async def test_reset_deletes_the_session_and_keeps_window_events_and_sends(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, ANA, session=session(state="asking"), window=Window(T0, 1))
        await store.inbox.add([event("b1", wa_id=BEN)])
        await run_lane(store, BEN, session=session(BEN, state="asking"))
        assert await store.repair.reset(ANA) == 1
        assert (await store.sessions.get(PN, ANA)).session is None
        assert (await store.sessions.get(PN, ANA)).window.last_inbound_at == T0
        assert (await store.sessions.get(PN, BEN)).session is not None
        assert await store.repair.reset(ANA) == 0
        assert await store.repair.reset("5491199999999") == 0

    async def test_reset_is_refused_while_a_turn_runs_and_takes_a_lapsed_claim_away(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, ANA, session=session(state="asking"))
        await store.inbox.add([event("a2")])
        lane = await claim_one(store)
        with pytest.raises(LaneBusyError, match="a turn of theirs is running"):
            await store.repair.reset(ANA)
        assert (await store.sessions.get(PN, ANA)).session is not None
        clock.advance(LEASE + 1)  # the worker is stuck: its lease ran out
        assert await store.repair.reset(ANA) == 1
        stale = LaneOutcome(
            PN, ANA, "W", (EventResult(lane.events[0].seq, lane.events[0].lane_seq, DONE),),
            session=session(state="done"),
        )  # fmt: skip
        assert await store.inbox.complete([stale]) == [False]  # its late turn writes nothing
        assert (await store.sessions.get(PN, ANA)).session is None
        again = await claim_one(store, token="W2")
        assert again.session is None and [i.event_id for i in again.events] == ["a2"]

    async def test_forget_deletes_everything_about_the_user_and_says_what(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1", message_id="wamid.a1"), event("b1", wa_id=BEN)])
        await run_lane(store, ANA, session=session(), window=Window(T0, 1))
        await run_lane(store, BEN, session=session(BEN))
        await store.inbox.add([event("a2")])
        await fail_events(store)
        await queue_sends(store, send("k1"), send("k2"))
        [lane] = await store.outbox.claim("O", 10, LEASE)
        assert await record(store, lane, SendOutcome(lane.sends[0].seq, SENT, 1, "wamid.out1"))
        await store.inbox.add([event("s1")])
        await run_lane(store, ANA, statuses=(StatusRecord("wamid.out1", "delivered", 5),))
        await store.inbox.add([event("b2", wa_id=BEN)])
        await queue_sends(store, send("kb", wa_id=BEN))
        before = await store.inspect.counts()
        gone = await store.repair.forget(ANA)
        assert gone == Forgotten(
            sessions=1, events=4, results=1, sends=2, statuses=1, lanes=1
        )  # a1, a2 (failed), the carrier of k1 and k2, s1; k2 was still pending
        assert await store.inspect.counts() == Counts(
            before.events - 4, before.sends - 2, before.statuses - 1
        )
        assert await store.repair.lanes(ANA) == []
        assert await store.repair.events(wa_id=ANA) == []
        assert await store.repair.sends(wa_id=ANA) == []
        assert await store.inspect.event_status("a1") is None
        assert (await store.sessions.get(PN, ANA)).window == Window()
        assert (await store.sessions.get(PN, BEN)).session is not None
        assert await store.inspect.event_status("b2") == (DONE, None)
        # the user may come back: a new conversation from nothing
        assert await store.inbox.add([event("a9", message_id="wamid.a1")]) == [True]
        lane9 = await claim_one(store)
        assert lane9.session is None and [i.event_id for i in lane9.events] == ["a9"]
        assert lane9.window == Window()

    async def test_forget_is_refused_while_the_user_has_events_not_processed(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, ANA, session=session())
        await store.inbox.add([event("a2"), event("a3")])
        with pytest.raises(RepairError, match="has 2 events not processed yet") as refused:
            await store.repair.forget(ANA)
        assert refused.value.status == 409
        await claim_one(store)  # running now: still not processed
        with pytest.raises(RepairError, match="2 events"):
            await store.repair.forget(ANA)
        assert (await store.sessions.get(PN, ANA)).session is not None

    async def test_forget_is_refused_while_a_send_to_the_user_is_being_delivered(
        self, store: Store, clock: ManualClock
    ) -> None:
        await queue_sends(store, send("k1"))
        [lane] = await store.outbox.claim("O", 10, LEASE)
        with pytest.raises(LaneBusyError, match="being delivered"):
            await store.repair.forget(ANA)
        assert len(await store.repair.sends(wa_id=ANA)) == 1
        clock.advance(LEASE + 1)
        assert (await store.repair.forget(ANA)).sends == 1
        assert not await record(store, lane, SendOutcome(lane.sends[0].seq, SENT, 1, "wamid.x"))
        assert await store.repair.sends() == []

    async def test_an_ignored_event_is_kept_apart_from_failed_ones(self, store: Store) -> None:
        await store.inbox.add([event("a1")])
        [lane] = await store.inbox.claim("A", 10, LEASE)
        item = lane.events[0]
        outcome = LaneOutcome(PN, ANA, "A", (EventResult(item.seq, item.lane_seq, IGNORED),))
        assert await store.inbox.complete([outcome]) == [True]
        assert await store.repair.events(status=FAILED) == []
        assert [e.status for e in await store.repair.events(status=IGNORED)] == [IGNORED]
