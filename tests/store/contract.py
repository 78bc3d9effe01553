"""The Store contract: what every backend must do, as one suite that backends subclass.

A backend's test module subclasses `StoreContract` and provides two fixtures:

- `make_store`: a factory of stores not yet opened that all share one database and the
  `clock` fixture (the store's clock: it decides when leases end and retries are due), so
  that a test can close a store and open the same data again;
- `store`: one of them, opened, and closed after the test (closing twice must be harmless).

Time moves only with `clock.advance`: leases and retries are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import astuple

import pytest

from botkit.exceptions import StoreError
from botkit.store.base import (
    DONE,
    FAIL,
    FAILED,
    FALL_BACK,
    HELD,
    HOLD,
    IGNORED,
    LANE_ITEMS,
    PENDING,
    SENT,
    Backlog,
    Counts,
    EventResult,
    InboxLane,
    LaneOutcome,
    NewEvent,
    NewSend,
    OutboxLane,
    Pending,
    SendLaneOutcome,
    SendOutcome,
    Session,
    StatusRecord,
    Store,
)
from botkit.types import JSONObject, ManualClock
from botkit.wire.events import InboundMessage, StatusUpdate, parse_body
from botkit.wire.window import Window

StoreFactory = Callable[[], Store]

PN = "555123456789"
ANA = "5491140000001"
BEN = "5491140000002"
CAL = "5491140000003"
LEASE = 60.0
T0 = 1_779_199_200.0  # a user's message timestamp (provider clock)
HOUR = 3600.0
KEEP = 6 * HOUR  # the shortest retention botkit allows (botkit.config.MIN_RETENTION)


def event(event_id: str, wa_id: str = ANA, message_id: str | None = None) -> NewEvent:
    """An inbound text event of `wa_id`; its envelope has non-ASCII text to round-trip."""
    envelope: JSONObject = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": PN,
        "data": {"message": {"from": wa_id, "id": message_id, "text": {"body": "¿Turno? 👍"}}},
    }
    return NewEvent(event_id, message_id, "message", PN, wa_id, envelope)


def parsed(body: JSONObject) -> NewEvent:
    """The inbox event for the one message or status of a webhook body."""
    [found] = parse_body(body)
    if isinstance(found, InboundMessage):
        return NewEvent(
            found.event_id, found.message_id, "message", PN, found.wa_id, found.envelope
        )
    if isinstance(found, StatusUpdate):
        return NewEvent(found.event_id, None, "status", PN, found.wa_id, found.envelope)
    raise AssertionError(f"unexpected event {found!r}")


def text_message(wamid: str, body: str) -> JSONObject:
    """A Meta `messages[]` item."""
    return {
        "from": ANA,
        "id": wamid,
        "timestamp": "1779199200",
        "type": "text",
        "text": {"body": body},
    }


def session(wa_id: str = ANA, state: str = "idle", **data: str) -> Session:
    """A session of conversation `Clinic`."""
    return Session(PN, wa_id, "Clinic", state, dict(data), "v1")


def send(key: str, wa_id: str = ANA, body: str = "hola", **policy: object) -> NewSend:
    """A text message to `wa_id` with idempotency key `key`."""
    payload = {"body": body, "preview_url": False}
    return NewSend(PN, wa_id, key, "text", payload, f"cause-{key}", **policy)  # type: ignore[arg-type]


TEMPLATE = {"type": "template", "payload": {"name": "reminder", "language": {"code": "es"}}}


def ids(lanes: Sequence[InboxLane]) -> list[list[str]]:
    """The event ids of claimed lanes, lane by lane."""
    return [[item.event_id for item in lane.events] for lane in lanes]


def keys(lanes: Sequence[OutboxLane]) -> list[list[str]]:
    """The idempotency keys of claimed outbox lanes, lane by lane."""
    return [[item.idempotency_key for item in lane.sends] for lane in lanes]


def done(lane: InboxLane, status: str = DONE, **parts: object) -> LaneOutcome:
    """Every claimed event of `lane` ended with `status`, with what `parts` says it produced."""
    results = tuple(EventResult(item.seq, item.lane_seq, status) for item in lane.events)
    return LaneOutcome(lane.phone_number_id, lane.wa_id, lane.token, results, **parts)  # type: ignore[arg-type]


GIVE_UP = 10  # attempts after which a runtime fails an event (botkit.runtime.turn's bound)


async def complete(store: Store, lane: InboxLane, **parts: object) -> bool:
    """Completes `lane` as done with `parts`; True if it was still the lane's claim."""
    [written] = await store.inbox.complete([done(lane, **parts)])
    return written


async def run_lane(store: Store, wa_id: str = ANA, **parts: object) -> InboxLane:
    """Claims what is free, completes `wa_id`'s lane with `parts`, releases the rest."""
    claimed = {lane.wa_id: lane for lane in await store.inbox.claim("H", 100, LEASE)}
    lane = claimed[wa_id]
    assert await complete(store, lane, **parts)
    await store.inbox.release("H")
    return lane


async def queue_sends(store: Store, *sends: NewSend) -> None:
    """Puts sends in the outbox the only way there is: by completing an event that made them."""
    wa_id = sends[0].wa_id
    await store.inbox.add([event(f"carrier-{sends[0].idempotency_key}", wa_id=wa_id)])
    await run_lane(store, wa_id, sends=sends)


async def record(store: Store, lane: OutboxLane, *results: SendOutcome) -> bool:
    """Records `results` for the claimed outbox `lane`."""
    outcome = SendLaneOutcome(lane.phone_number_id, lane.wa_id, lane.token, results, lane.position)
    [written] = await store.outbox.record([outcome])
    return written


async def mark_sent(store: Store, key: str, provider_id: str) -> None:
    """Claims the send `key`, records it as sent under `provider_id`, releases the rest."""
    for lane in await store.outbox.claim("O", 100, LEASE):
        found = [item for item in lane.sends if item.idempotency_key == key]
        results = [SendOutcome(found[0].seq, SENT, 1, provider_id)] if found else []
        await record(store, lane, *results)


async def record_status(
    store: Store, message_id: str, status: str, at: int, wa_id: str = ANA
) -> None:
    """Stores a status event and completes it with its delivery record, as the dispatcher does."""
    await store.inbox.add([event(f"status:{message_id}:{status}:{at}", wa_id=wa_id)])
    await run_lane(store, wa_id, statuses=(StatusRecord(message_id, status, at),))


async def by_key(store: Store) -> dict[str, object]:
    return {record.idempotency_key: record for record in await store.inspect.outbox()}


async def send_all(store: Store) -> None:
    """Claims every due send and records it sent, as `wamid.<its key>`."""
    for lane in await store.outbox.claim("O", 100, LEASE):
        results = [SendOutcome(s.seq, SENT, 1, f"wamid.{s.idempotency_key}") for s in lane.sends]
        assert await record(store, lane, *results)


async def prune_old(store: Store, clock: ManualClock, limit: int = 100) -> int:
    """Prunes what finished more than KEEP ago, batch after batch until one deletes nothing,
    as the janitor does; how many went."""
    pruned = 0
    while deleted := await store.retention.prune(clock.now() - KEEP, limit):
        pruned += deleted
    return pruned


@pytest.mark.anyio
class StoreContract:
    """Every Store backend passes these tests."""

    # -- inbox.add: durable, deduplicated, numbered per lane ---------------------------------

    async def test_add_is_true_for_new_and_false_for_a_repeated_event_id(
        self, store: Store
    ) -> None:
        assert await store.inbox.add([event("evt_1", message_id="wamid.1")]) == [True]
        assert await store.inbox.add([event("evt_1", message_id="wamid.1")]) == [False]
        assert await store.inbox.add([event("evt_1", message_id="wamid.other")]) == [False]
        assert await store.inspect.backlog() == Backlog(1, 0)

    async def test_add_is_false_for_a_repeated_message_id_under_another_event_id(
        self, store: Store
    ) -> None:
        assert await store.inbox.add([event("evt_1", message_id="wamid.1")]) == [True]
        assert await store.inbox.add([event("evt_2", message_id="wamid.1")]) == [False]
        assert await store.inspect.event_status("evt_2") is None

    async def test_a_meta_native_message_and_an_envelope_with_the_same_wamid_are_one_event(
        self, store: Store
    ) -> None:
        value = {
            "metadata": {"phone_number_id": PN},
            "messages": [text_message("wamid.in.7", "Hola")],
        }
        meta = parsed(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
            }
        )
        envelope = parsed(
            {
                "id": "evt_0007",
                "type": "whatsapp.message.received",
                "phone_number_id": PN,
                "data": {"message": text_message("wamid.in.7", "Hola")},
            }
        )
        assert meta.event_id != envelope.event_id  # only the wamid ties them together
        assert await store.inbox.add([meta]) == [True]
        assert await store.inbox.add([envelope]) == [False]
        assert await store.inspect.backlog() == Backlog(1, 0)

    async def test_events_without_a_message_id_are_told_apart_by_event_id_only(
        self, store: Store
    ) -> None:
        statuses = [event("status:wamid.out.1:read"), event("status:wamid.out.1:delivered")]
        assert await store.inbox.add(statuses) == [True, True]
        assert await store.inbox.add(statuses[:1]) == [False]

    async def test_duplicates_inside_one_call_are_reported_in_place(self, store: Store) -> None:
        batch = [
            event("evt_1", message_id="wamid.1"),
            event("evt_1", message_id="wamid.1"),
            event("evt_2", message_id="wamid.2"),
            event("evt_3", message_id="wamid.2"),
            event("evt_4"),
        ]
        assert await store.inbox.add(batch) == [True, False, True, False, True]
        assert await store.inspect.backlog() == Backlog(3, 0)

    async def test_concurrent_adds_store_each_event_once(self, store: Store) -> None:
        calls = [
            store.inbox.add([event(f"evt_{i % 10}", message_id=f"wamid.{i % 10}")])
            for i in range(50)
        ]
        results = await asyncio.gather(*calls)
        firsts = [i for i, result in enumerate(results) if result == [True]]
        assert sorted(i % 10 for i in firsts) == list(range(10))
        assert all(result in ([True], [False]) for result in results)
        assert await store.inspect.backlog() == Backlog(10, 0)

    async def test_each_lanes_events_are_numbered_in_the_order_they_were_stored(
        self, store: Store
    ) -> None:
        # A lane position only grows, in the order of storing; a backend may number lanes
        # apart (1, 2, 3 per user) or share one count, as long as each lane's order is kept.
        await store.inbox.add([event("a1"), event("b1", BEN)])
        await store.inbox.add([event("a2")])
        await store.inbox.add([event("b2", BEN), event("a3")])
        lanes = {lane.wa_id: lane for lane in await store.inbox.claim("A", 10, LEASE)}
        for lane, expected in ((lanes[ANA], ["a1", "a2", "a3"]), (lanes[BEN], ["b1", "b2"])):
            assert [item.event_id for item in lane.events] == expected
            positions = [item.lane_seq for item in lane.events]
            assert positions == sorted(set(positions))
            assert [item.seq for item in lane.events] == sorted(item.seq for item in lane.events)

    async def test_an_event_that_cannot_be_stored_fails_its_call_alone(self, store: Store) -> None:
        poison = event("evt_bad")
        poison.envelope["data"] = {"text": "bad \ud800"}  # a lone surrogate: not UTF-8
        results = await asyncio.gather(
            store.inbox.add([event("evt_1"), poison]),
            store.inbox.add([event("evt_2", BEN)]),
            return_exceptions=True,
        )
        assert isinstance(results[0], StoreError)
        assert results[1] == [True]
        assert await store.inspect.event_status("evt_1") is None  # nothing of that call
        assert await store.inspect.event_status("evt_2") == (PENDING, None)

    async def test_an_envelope_given_encoded_comes_back_decoded(self, store: Store) -> None:
        plain = event("evt_1", message_id="wamid.1")
        encoded = NewEvent(
            "evt_2", "wamid.2", "message", PN, ANA, json.dumps(event("evt_2").envelope)
        )
        assert await store.inbox.add([plain, encoded]) == [True, True]
        [lane] = await store.inbox.claim("A", 10, LEASE)
        assert [item.envelope for item in lane.events] == [
            plain.envelope,
            event("evt_2").envelope,
        ]

    async def test_the_envelope_comes_back_as_stored(self, store: Store) -> None:
        added = event("evt_1", message_id="wamid.1")
        await store.inbox.add([added])
        [lane] = await store.inbox.claim("A", 10, LEASE)
        [item] = lane.events
        assert (item.event_id, item.kind, item.phone_number_id, item.wa_id) == (
            "evt_1",
            "message",
            PN,
            ANA,
        )
        assert item.envelope == added.envelope
        assert (lane.key, lane.token, lane.attempts, lane.session) == ((PN, ANA), "A", 1, None)
        assert lane.window == Window()

    async def test_events_and_state_survive_closing_and_reopening(
        self, store: Store, make_store: StoreFactory
    ) -> None:
        await store.inbox.add([event("evt_done", BEN)])
        await run_lane(store, BEN, session=session(BEN, "confirming"), sends=(send("k1", BEN),))
        assert await store.inbox.add([event("evt_1"), event("evt_2", CAL)]) == [True, True]
        await store.aclose()

        again = make_store()
        await again.open()
        try:
            assert await again.inspect.backlog() == Backlog(2, 1)
            assert await again.inspect.event_status("evt_1") == (PENDING, None)
            assert await again.inspect.event_status("evt_done") == (DONE, None)
            assert ids(await again.inbox.claim("B", 10, LEASE)) == [["evt_1"], ["evt_2"]]
            assert (await again.sessions.get(PN, BEN)).session == session(BEN, "confirming")
            assert [r.idempotency_key for r in await again.inspect.outbox()] == ["k1"]
            assert await again.inbox.add([event("evt_1")]) == [False]
        finally:
            await again.aclose()

    # -- inbox.claim: lanes, in order, under a token and a lease -------------------------------

    async def test_claim_hands_out_lanes_oldest_first_each_with_its_events_in_order(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("b1", BEN), event("a1"), event("b2", BEN), event("c1", CAL)])
        await store.inbox.add([event("a2")])
        lanes = await store.inbox.claim("A", 10, LEASE)
        assert [lane.wa_id for lane in lanes] == [BEN, ANA, CAL]
        assert ids(lanes) == [["b1", "b2"], ["a1", "a2"], ["c1"]]
        assert [lane.attempts for lane in lanes] == [1, 1, 1]

    async def test_the_limit_counts_lanes(self, store: Store) -> None:
        await store.inbox.add([event("a1"), event("a2"), event("b1", BEN), event("c1", CAL)])
        assert ids(await store.inbox.claim("A", 2, LEASE)) == [["a1", "a2"], ["b1"]]
        assert ids(await store.inbox.claim("A", 2, LEASE)) == [["c1"]]
        assert await store.inbox.claim("A", 2, LEASE) == []

    async def test_a_claim_takes_a_bounded_number_of_a_lanes_events(self, store: Store) -> None:
        await store.inbox.add([event(f"a{i}") for i in range(LANE_ITEMS + 5)])
        [first] = await store.inbox.claim("A", 1, LEASE)
        assert len(first.events) == LANE_ITEMS
        assert await complete(store, first)
        [rest] = await store.inbox.claim("A", 1, LEASE)
        assert [item.event_id for item in rest.events] == [
            f"a{i}" for i in range(LANE_ITEMS, LANE_ITEMS + 5)
        ]

    async def test_a_claimed_lane_is_skipped_for_every_token(self, store: Store) -> None:
        await store.inbox.add([event("a1"), event("b1", BEN)])
        assert ids(await store.inbox.claim("A", 1, LEASE)) == [["a1"]]
        await store.inbox.add([event("a2")])
        assert ids(await store.inbox.claim("B", 10, LEASE)) == [["b1"]]
        assert await store.inbox.claim("A", 10, LEASE) == []

    async def test_tokens_claiming_at_once_never_share_a_lane(self, store: Store) -> None:
        users = [f"54911400001{n:02d}" for n in range(12)]
        await store.inbox.add([event(f"{u}-{i}", u) for i in range(3) for u in users])
        claims = await asyncio.gather(*(store.inbox.claim(f"W{n}", 5, LEASE) for n in range(4)))
        claimed = [lane.wa_id for lanes in claims for lane in lanes]
        assert sorted(claimed) == sorted(set(claimed)), "a lane was handed to two tokens"
        assert sorted(claimed) == users
        for lanes in claims:
            for lane in lanes:
                assert [item.event_id for item in lane.events] == [
                    f"{lane.wa_id}-{i}" for i in range(3)
                ]

    async def test_a_lane_frees_up_when_it_completes_and_its_later_events_follow(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        await store.inbox.add([event("a2")])
        assert await store.inbox.claim("B", 10, LEASE) == []
        assert await complete(store, lane)
        assert ids(await store.inbox.claim("B", 10, LEASE)) == [["a2"]]

    async def test_the_store_clock_ends_a_lease_and_a_retaken_lane_runs_one_event(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1"), event("a2"), event("a3")])
        assert ids(await store.inbox.claim("A", 1, LEASE)) == [["a1", "a2", "a3"]]
        clock.advance(LEASE - 1)
        assert await store.inbox.claim("B", 10, LEASE) == []
        clock.advance(2)
        [retaken] = await store.inbox.claim("B", 10, LEASE)
        assert ([item.event_id for item in retaken.events], retaken.attempts) == (["a1"], 2)
        assert await complete(store, retaken)
        # the events the lost claim held stay suspects: each runs alone, a fresh attempt
        [after] = await store.inbox.claim("B", 10, LEASE)
        assert ([item.event_id for item in after.events], after.attempts) == (["a2"], 1)
        assert await complete(store, after)
        await store.inbox.add([event("a4"), event("a5")])
        [last] = await store.inbox.claim("B", 10, LEASE)
        assert ([item.event_id for item in last.events], last.attempts) == (["a3"], 1)
        assert await complete(store, last)
        assert ids(await store.inbox.claim("B", 10, LEASE)) == [["a4", "a5"]]  # past them

    async def test_an_event_that_kills_the_worker_is_charged_alone(
        self, store: Store, clock: ManualClock
    ) -> None:
        """A poison event in the middle of a backlog: the worker dies each time it runs it.
        One crash of the whole claim, then the events before it each run once, alone, and it
        alone is charged the attempts; the events after it are not failed with it."""
        await store.inbox.add([event(f"a{n}") for n in range(1, 11)])
        crashes = 0
        outcomes: dict[str, str] = {}
        for _ in range(5 * GIVE_UP):  # a bound: a store that never gives up fails, not hangs
            if not (await store.inspect.backlog()).events:
                break
            [lane] = await store.inbox.claim(f"T{crashes}-{len(outcomes)}", 10, LEASE)
            names = [item.event_id for item in lane.events]
            if "a6" in names and lane.attempts <= GIVE_UP:
                crashes += 1
                clock.advance(LEASE + 1)  # the worker died: its claim runs out
                continue
            status = FAILED if lane.attempts > GIVE_UP else DONE  # as the runtime gives up
            outcomes.update((name, status) for name in names)
            [written] = await store.inbox.complete([done(lane, status)])
            assert written
        assert crashes == 1 + GIVE_UP  # the first claim's, then its own
        assert outcomes == {f"a{n}": FAILED if n == 6 else DONE for n in range(1, 11)}

    async def test_every_claim_of_an_unfinished_event_counts_an_attempt(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1")])
        attempts = []
        for _ in range(3):
            [lane] = await store.inbox.claim("A", 1, LEASE)
            attempts.append(lane.attempts)
            clock.advance(LEASE + 1)
        assert attempts == [1, 2, 3]

    async def test_a_completion_under_a_lost_claim_writes_nothing(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1"), event("b1", BEN)])
        mine = {lane.wa_id: lane for lane in await store.inbox.claim("A", 10, LEASE)}
        clock.advance(LEASE + 1)
        [theirs] = await store.inbox.claim("B", 1, LEASE)  # A's lease ran out; B took ANA
        assert theirs.wa_id == ANA
        outcomes = [
            done(mine[ANA], session=session(), sends=(send("k1"),)),
            done(
                mine[BEN], session=session(BEN), statuses=(StatusRecord("wamid.out.1", "read", 10),)
            ),
        ]
        assert await store.inbox.complete(outcomes) == [False, True]  # BEN was still A's
        assert await store.inspect.event_status("a1") == (PENDING, None)
        assert (await store.sessions.get(PN, ANA)).session is None
        assert [r.idempotency_key for r in await store.inspect.outbox()] == []
        assert await store.inspect.event_status("b1") == (DONE, None)
        assert (await store.sessions.get(PN, BEN)).session == session(BEN)

    async def test_a_renewed_lease_keeps_the_claim_past_its_first_end(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1"), event("b1", BEN), event("c1", CAL)])
        held = await store.inbox.claim("A", 2, LEASE)
        assert ids(await store.inbox.claim("C", 1, LEASE)) == [["c1"]]
        clock.advance(LEASE - 1)
        assert await store.inbox.renew("A", [lane.key for lane in held], LEASE) == [
            lane.key for lane in held
        ]
        clock.advance(2)  # past the first lease: C did not renew, A did
        assert ids(await store.inbox.claim("B", 10, LEASE)) == [["c1"]]
        clock.advance(LEASE - 1)  # past A's renewed lease, not B's
        assert sorted(lane.wa_id for lane in await store.inbox.claim("B", 10, LEASE)) == [ANA, BEN]

    async def test_renew_names_only_the_lanes_the_token_still_holds(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1"), event("b1", BEN), event("c1", CAL)])
        [a] = await store.inbox.claim("A", 1, LEASE)
        [b] = await store.inbox.claim("B", 1, LEASE)
        assert await complete(store, a)
        assert await store.inbox.renew("A", [a.key, b.key], LEASE) == []
        assert await store.inbox.renew("B", [b.key], LEASE) == [b.key]
        assert await store.inbox.renew("B", [], LEASE) == []
        clock.advance(LEASE + 1)
        [c] = await store.inbox.claim("C", 1, LEASE)
        assert c.wa_id == BEN  # B's lease ran out: renewing now finds it gone
        assert await store.inbox.renew("B", [b.key], LEASE) == []

    async def test_release_frees_lanes_at_once_and_refund_uncounts_the_attempt(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1"), event("b1", BEN), event("b2", BEN), event("c1", CAL)])
        lanes = await store.inbox.claim("A", 3, LEASE)
        await store.inbox.release("A", [lanes[0].key], refund=True)
        await store.inbox.release("A", [lanes[1].key])
        again = {lane.wa_id: lane for lane in await store.inbox.claim("B", 10, LEASE)}
        assert set(again) == {ANA, BEN}  # CAL is still A's
        assert (again[ANA].attempts, again[BEN].attempts) == (1, 2)
        assert len(again[BEN].events) == 1  # taken again after an unfinished claim
        await store.inbox.release("A")
        assert [lane.wa_id for lane in await store.inbox.claim("C", 10, LEASE)] == [CAL]

    async def test_a_busy_lane_does_not_starve_a_free_lane_behind_it(self, store: Store) -> None:
        await store.inbox.add([event(f"a{i}") for i in range(20)] + [event("b1", BEN)])
        assert [lane.wa_id for lane in await store.inbox.claim("A", 1, LEASE)] == [ANA]
        assert [lane.wa_id for lane in await store.inbox.claim("B", 1, LEASE)] == [BEN]

    async def test_next_due_says_when_an_event_can_be_claimed(
        self, store: Store, clock: ManualClock
    ) -> None:
        assert await store.inbox.next_due() is None
        await store.inbox.add([event("a1")])
        assert await store.inbox.next_due() == 0
        [lane] = await store.inbox.claim("A", 1, LEASE)
        assert await store.inbox.next_due() == pytest.approx(LEASE)
        clock.advance(10)
        assert await store.inbox.next_due() == pytest.approx(LEASE - 10)
        assert await complete(store, lane)
        assert await store.inbox.next_due() is None

    # -- inbox.complete: one lane, one unit ----------------------------------------------------

    async def test_complete_records_each_events_result(self, store: Store) -> None:
        await store.inbox.add([event("ok"), event("bad"), event("other")])
        [lane] = await store.inbox.claim("A", 10, LEASE)
        ok, bad, other = lane.events
        results = (
            EventResult(ok.seq, ok.lane_seq, DONE),
            EventResult(bad.seq, bad.lane_seq, FAILED, "ValueError: boom"),
            EventResult(other.seq, other.lane_seq, IGNORED),
        )
        outcome = LaneOutcome(PN, ANA, "A", results)
        assert await store.inbox.complete([outcome]) == [True]
        assert await store.inspect.event_status("ok") == (DONE, None)
        assert await store.inspect.event_status("bad") == (FAILED, "ValueError: boom")
        assert await store.inspect.event_status("other") == (IGNORED, None)
        assert await store.inspect.event_status("never") is None
        assert await store.inspect.backlog() == Backlog(0, 0)
        assert await store.inbox.next_due() is None

    async def test_results_for_a_prefix_leave_the_rest_pending(self, store: Store) -> None:
        await store.inbox.add([event("a1"), event("a2"), event("a3")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        first = lane.events[0]
        outcome = LaneOutcome(PN, ANA, "A", (EventResult(first.seq, first.lane_seq, DONE),))
        assert await store.inbox.complete([outcome]) == [True]
        assert await store.inspect.backlog() == Backlog(2, 0)
        assert ids(await store.inbox.claim("B", 1, LEASE)) == [["a2", "a3"]]

    async def test_complete_saves_a_session_and_replaces_it(self, store: Store) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, session=session(state="choosing"))
        assert (await store.sessions.get(PN, ANA)).session == session(state="choosing")
        await store.inbox.add([event("a2")])
        data = {"service": "lab", "n": [1, "é"]}
        updated = Session(PN, ANA, "Clinic2", "confirming", data, "v2")
        [lane] = await store.inbox.claim("A", 1, LEASE)
        assert lane.session == session(state="choosing")  # a claim carries the session
        assert await complete(store, lane, session=updated)
        assert (await store.sessions.get(PN, ANA)).session == updated
        assert (await store.sessions.get(PN, BEN)).session is None
        assert (await store.sessions.get("999", ANA)).window == Window()

    async def test_a_window_only_grows_whatever_order_completions_commit_in(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, window=Window(T0 + 100, 2, None))
        await store.inbox.add([event("a2")])
        await run_lane(store, window=Window(T0, 1, 1))  # an older view, with a refusal
        assert (await store.sessions.get(PN, ANA)).window == Window(T0 + 100, 2, 1)
        await store.inbox.add([event("a3")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        assert lane.window == Window(T0 + 100, 2, 1)

    async def test_an_outcome_that_cannot_be_stored_fails_its_own_events_only(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1"), event("b1", BEN)])
        await store.inbox.add([event("a0", CAL)])
        lanes = {lane.wa_id: lane for lane in await store.inbox.claim("A", 10, LEASE)}
        poison = done(
            lanes[ANA],
            session=session(state="bad", text="bad \ud800"),
            sends=(send("k-bad", body="bad \ud800"),),
            window=Window(T0, 1, None),
        )
        fine = done(lanes[BEN], session=session(BEN, "fine"), sends=(send("k-ben", BEN),))
        results = await asyncio.gather(store.inbox.complete([poison]), store.inbox.complete([fine]))
        assert results == [[True], [True]]
        status, error = await store.inspect.event_status("a1") or ("", "")
        assert status == FAILED and "could not be stored" in (error or "")
        user = await store.sessions.get(PN, ANA)
        assert user.session is None  # the session as it was
        assert user.window == Window(T0, 1, None)  # what the user's message did is kept
        assert [r.idempotency_key for r in await store.inspect.outbox()] == ["k-ben"]
        assert (await store.sessions.get(PN, BEN)).session == session(BEN, "fine")
        assert await store.inspect.event_status("b1") == (DONE, None)

    async def test_sends_are_queued_once_per_idempotency_key(self, store: Store) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, sends=(send("k1", body="¿Confirmás?"), send("k2")))
        await store.inbox.add([event("a2")])  # a redelivery queues the same keys again
        await run_lane(store, sends=(send("k1", body="changed"), send("k3")))
        records = await store.inspect.outbox()
        assert [record.idempotency_key for record in records] == ["k1", "k2", "k3"]
        assert records[0].payload == {"body": "¿Confirmás?", "preview_url": False}
        assert [(record.status, record.attempts) for record in records] == [(PENDING, 0)] * 3
        assert (records[0].provider_message_id, records[0].delivery_status) == (None, None)
        assert await store.inspect.backlog() == Backlog(0, 3)

    async def test_the_outbox_can_be_read_for_one_user(self, store: Store) -> None:
        await queue_sends(store, send("k1"), send("k3"))
        await queue_sends(store, send("k2", BEN))
        assert [r.idempotency_key for r in await store.inspect.outbox(ANA)] == ["k1", "k3"]
        assert [r.wa_id for r in await store.inspect.outbox(BEN)] == [BEN]
        assert await store.inspect.outbox(CAL) == []

    async def test_statuses_show_on_the_outbox_and_never_move_backwards(self, store: Store) -> None:
        await queue_sends(store, send("k1"), send("k2"))
        await mark_sent(store, "k1", "wamid.out.1")
        await mark_sent(store, "k2", "wamid.out.2")
        await record_status(store, "wamid.out.1", "read", 10)
        await record_status(store, "wamid.out.1", "delivered", 11)
        await record_status(store, "wamid.out.1", "sent", 12)
        await record_status(store, "wamid.out.2", "sent", 10)
        await record_status(store, "wamid.out.2", "delivered", 11)
        found = {r.idempotency_key: r for r in await store.inspect.outbox()}
        assert found["k1"].provider_message_id == "wamid.out.1"
        assert found["k1"].delivery_status == "read"
        assert found["k2"].delivery_status == "delivered"

    async def test_statuses_of_one_outcome_apply_in_order(self, store: Store) -> None:
        await queue_sends(store, send("k1"))
        await mark_sent(store, "k1", "wamid.out.1")
        statuses = tuple(
            StatusRecord("wamid.out.1", status, i)
            for i, status in enumerate(["delivered", "read", "sent"])
        )
        await store.inbox.add([event("s1")])
        await run_lane(store, statuses=statuses)
        [found] = await store.inspect.outbox()
        assert found.delivery_status == "read"

    async def test_a_status_for_an_unknown_message_is_kept_for_when_it_shows_up(
        self, store: Store
    ) -> None:
        await record_status(store, "wamid.out.9", "delivered", 10)
        await queue_sends(store, send("k9"))
        await mark_sent(store, "k9", "wamid.out.9")
        [found] = await store.inspect.outbox()
        assert found.delivery_status == "delivered"

    async def test_a_refused_status_turns_sent_messages_into_their_fallback_or_holds_them(
        self, store: Store
    ) -> None:
        await queue_sends(
            store,
            send("k-fb", when_closed=FALL_BACK, fallback=TEMPLATE),
            send("k-hold", when_closed=HOLD),
            send("k-fail"),
        )
        for key in ("k-fb", "k-hold", "k-fail"):
            await mark_sent(store, key, f"wamid.{key}")
        await store.inbox.add([event("s1")])
        refused = ("wamid.k-fb", "wamid.k-hold", "wamid.k-fail")
        await run_lane(store, refused=refused)
        found = {r.idempotency_key: r for r in await store.inspect.outbox()}
        fallback = found["k-fb-fb"]
        assert (fallback.type, fallback.instead_of, fallback.status) == (
            "template",
            "text",
            PENDING,
        )
        assert fallback.payload == TEMPLATE["payload"]
        assert found["k-hold-held"].status == HELD
        assert found["k-fail"].status == SENT
        assert keys(await store.outbox.claim("O", 10, LEASE)) == [["k-fb-fb"]]

    async def test_a_refusal_and_the_users_message_in_one_outcome_release_the_held_send(
        self, store: Store
    ) -> None:
        await queue_sends(store, send("k-hold", when_closed=HOLD))
        await mark_sent(store, "k-hold", "wamid.k-hold")
        await store.inbox.add([event("status-then-message")])
        await run_lane(store, refused=("wamid.k-hold",), release_held=True)
        [record] = await store.inspect.outbox()
        assert (record.idempotency_key, record.status) == ("k-hold-held", PENDING)
        assert keys(await store.outbox.claim("O", 10, LEASE)) == [["k-hold-held"]]

    # -- the outbox ---------------------------------------------------------------------------

    async def test_outbox_claims_lanes_with_their_sends_in_order_and_window(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, sends=(send("a1"), send("a2")), window=Window(T0, 1, None))
        await queue_sends(store, send("b1", BEN))
        lanes = await store.outbox.claim("A", 10, LEASE)
        assert keys(lanes) == [["a1", "a2"], ["b1"]]
        assert lanes[0].window == Window(T0, 1, None)
        assert lanes[0].sends[0].payload == {"body": "hola", "preview_url": False}
        assert [item.attempts for item in lanes[0].sends] == [0, 0]
        assert (lanes[0].sends[0].when_closed, lanes[0].sends[0].fallback) == (FAIL, None)
        # the event that queued each send, for its log line
        assert [item.cause for item in lanes[0].sends] == ["cause-a1", "cause-a2"]
        assert await store.outbox.claim("B", 10, LEASE) == []

    async def test_a_claimed_outbox_lane_waits_for_its_lease_or_its_record(
        self, store: Store, clock: ManualClock
    ) -> None:
        await queue_sends(store, send("a1"), send("a2"))
        await queue_sends(store, send("b1", BEN))
        [a] = await store.outbox.claim("A", 1, LEASE)
        [b] = await store.outbox.claim("B", 10, LEASE)
        assert await record(store, b, SendOutcome(b.sends[0].seq, SENT, 1, "wamid.out.1"))
        clock.advance(LEASE - 1)
        assert await store.outbox.claim("C", 10, LEASE) == []
        clock.advance(2)
        [again] = await store.outbox.claim("C", 10, LEASE)
        assert [item.idempotency_key for item in again.sends] == ["a1", "a2"]
        assert not await record(store, a, SendOutcome(a.sends[0].seq, SENT, 1, "wamid.x"))
        assert (await by_key(store))["a1"].status == PENDING  # type: ignore[attr-defined]

    async def test_a_retry_holds_back_its_whole_lane_until_due(
        self, store: Store, clock: ManualClock
    ) -> None:
        await queue_sends(store, send("a1"), send("a2"))
        await queue_sends(store, send("b1", BEN))
        [a, _] = await store.outbox.claim("A", 10, LEASE)
        retry = SendOutcome(a.sends[0].seq, PENDING, 1, error="503 busy", retry_in=30)
        assert await record(store, a, retry)
        await store.outbox.release("A")
        clock.advance(29)
        assert keys(await store.outbox.claim("A", 10, LEASE)) == [["b1"]]
        assert await store.outbox.next_due() == pytest.approx(1)
        clock.advance(2)
        [due] = await store.outbox.claim("B", 10, LEASE)
        assert [(item.idempotency_key, item.attempts) for item in due.sends] == [
            ("a1", 1),
            ("a2", 0),
        ]
        found = (await by_key(store))["a1"]
        assert (found.status, found.attempts, found.error) == (PENDING, 1, "503 busy")  # type: ignore[attr-defined]

    async def test_record_stores_sent_and_failed_and_a_failure_does_not_block_the_lane(
        self, store: Store
    ) -> None:
        await queue_sends(store, send("a1"), send("a2"), send("a3"))
        [lane] = await store.outbox.claim("A", 10, LEASE)
        first, second, _ = lane.sends
        assert await record(
            store,
            lane,
            SendOutcome(first.seq, SENT, 1, provider_message_id="wamid.out.1"),
            SendOutcome(second.seq, FAILED, 2, error="400 bad"),
        )
        found = await by_key(store)
        assert (found["a1"].status, found["a1"].provider_message_id) == (SENT, "wamid.out.1")  # type: ignore[attr-defined]
        assert (found["a2"].status, found["a2"].error) == (FAILED, "400 bad")  # type: ignore[attr-defined]
        assert await store.inspect.backlog() == Backlog(0, 1)
        assert keys(await store.outbox.claim("B", 10, LEASE)) == [["a3"]]

    async def test_a_refused_send_falls_back_in_place_or_is_held_until_the_user_writes(
        self, store: Store
    ) -> None:
        await queue_sends(
            store,
            send("a1", when_closed=FALL_BACK, fallback=TEMPLATE),
            send("a2", when_closed=HOLD),
            send("a3"),
        )
        [lane] = await store.outbox.claim("A", 10, LEASE)
        a1, a2, _ = lane.sends
        assert (a1.when_closed, a1.fallback) == (FALL_BACK, TEMPLATE)
        assert await record(
            store,
            lane,
            SendOutcome(a1.seq, PENDING, 1, error="closed", fall_back=FALL_BACK),
            SendOutcome(a2.seq, HELD, 1, error="closed", fall_back=HOLD),
        )
        [again] = await store.outbox.claim("A", 10, LEASE)
        assert [item.idempotency_key for item in again.sends] == ["a1-fb", "a3"]
        assert (again.sends[0].type, again.sends[0].fallback) == ("template", None)
        await store.outbox.release("A")
        await store.inbox.add([event("a-wrote")])
        await run_lane(store, release_held=True)
        [released] = await store.outbox.claim("B", 10, LEASE)
        assert [item.idempotency_key for item in released.sends] == ["a1-fb", "a2-held", "a3"]

    async def test_a_403_closes_the_window_until_a_later_message_of_the_user(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        opened = Window(T0, lane.events[0].lane_seq, None)
        assert await complete(store, lane, window=opened, sends=(send("k1"),))
        [out] = await store.outbox.claim("O", 10, LEASE)
        refused = SendOutcome(out.sends[0].seq, FAILED, 1, error="403", window_closed=True)
        assert await record(store, out, refused)
        closed = (await store.sessions.get(PN, ANA)).window
        assert closed.refused and not closed.is_open(T0 + 60)
        # the user writes again, in the same second as far as the provider's clock tells
        await store.inbox.add([event("a2")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        wrote = lane.window.with_inbound(lane.events[0].lane_seq, T0)
        assert await complete(store, lane, window=wrote)
        assert (await store.sessions.get(PN, ANA)).window.is_open(T0 + 60)

    async def test_a_closure_recorded_while_a_lane_runs_survives_its_completion(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1")])
        await run_lane(store, window=Window(T0, 1, None), sends=(send("k1"),))
        await store.inbox.add([event("trigger")])
        [running] = await store.inbox.claim("A", 1, LEASE)  # a trigger's handler runs...
        [out] = await store.outbox.claim("O", 10, LEASE)  # ...while the outbox gets a 403
        refused = SendOutcome(out.sends[0].seq, FAILED, 1, error="403", window_closed=True)
        assert await record(store, out, refused)
        assert await complete(store, running, window=running.window)  # its view predates it
        assert (await store.sessions.get(PN, ANA)).window.refused

    async def test_a_403_closes_the_window_as_of_the_claim_not_of_its_record(
        self, store: Store
    ) -> None:
        """The user's next message arrives (and is processed) while a send is in flight; the
        provider refused that send before it: the user's message still reopens the window."""
        await store.inbox.add([event("a1")])
        await run_lane(store, window=Window(T0, 1, None), sends=(send("k1"),))
        [out] = await store.outbox.claim("O", 10, LEASE)
        await store.inbox.add([event("a2")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        wrote = lane.window.with_inbound(lane.events[0].lane_seq, T0 + 90_000)
        assert await complete(store, lane, window=wrote, release_held=True)
        refused = SendOutcome(out.sends[0].seq, FAILED, 1, error="403", window_closed=True)
        assert await record(store, out, refused)
        window = (await store.sessions.get(PN, ANA)).window
        assert not window.refused and window.closed_seq == out.position

    async def test_a_refusal_stored_before_its_send_is_recorded_falls_back_when_it_is(
        self, store: Store
    ) -> None:
        """The failed status (131047) of a message can be processed before the outbox records
        that it sent it: the refusal waits for the send, and the fallback goes out."""
        await store.inbox.add([event("a1")])
        policy = {"when_closed": FALL_BACK, "fallback": TEMPLATE}
        await run_lane(store, window=Window(T0, 1, None), sends=(send("k1", **policy),))
        [out] = await store.outbox.claim("O", 10, LEASE)
        await store.inbox.add([event("st1")])
        await run_lane(store, refused=("wamid.k1",), window=Window(T0, 1, 2))
        assert await record(store, out, SendOutcome(out.sends[0].seq, SENT, 1, "wamid.k1"))
        [row] = await store.inspect.outbox()
        assert (row.idempotency_key, row.type, row.status) == ("k1-fb", "template", PENDING)
        assert keys(await store.outbox.claim("O2", 10, LEASE)) == [["k1-fb"]]

    async def test_a_refusal_of_an_unknown_message_moves_no_later_send(self, store: Store) -> None:
        await store.inbox.add([event("st1")])
        await run_lane(store, refused=("wamid.other-system",))
        await queue_sends(store, send("k1", when_closed=HOLD))
        [out] = await store.outbox.claim("O", 10, LEASE)
        assert await record(store, out, SendOutcome(out.sends[0].seq, SENT, 1, "wamid.k1"))
        assert (await by_key(store))["k1"].status == SENT  # type: ignore[attr-defined]

    async def test_a_send_held_on_a_stale_window_goes_out_if_the_user_has_written(
        self, store: Store, clock: ManualClock
    ) -> None:
        """The outbox holds a send on the window it read at its claim (closed by time); the
        user wrote meanwhile, and their message released what was held then, not this."""
        long_ago = clock.now() - 90_000
        await store.inbox.add([event("a1")])
        held = send("k1", when_closed=HOLD)
        await run_lane(store, window=Window(long_ago, 1, None), sends=(held,))
        [out] = await store.outbox.claim("O", 10, LEASE)
        await store.inbox.add([event("a2")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        wrote = lane.window.with_inbound(lane.events[0].lane_seq, clock.now() - 5)
        assert await complete(store, lane, window=wrote, release_held=True)
        hold = SendOutcome(out.sends[0].seq, HELD, 0, error="closed", fall_back=HOLD)
        assert await record(store, out, hold)
        assert keys(await store.outbox.claim("O2", 10, LEASE)) == [["k1-held"]]

    async def test_a_send_held_on_a_closed_window_stays_held(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1")])
        held = send("k1", when_closed=HOLD)
        await run_lane(store, window=Window(clock.now() - 90_000, 1, None), sends=(held,))
        [out] = await store.outbox.claim("O", 10, LEASE)
        hold = SendOutcome(out.sends[0].seq, HELD, 0, error="closed", fall_back=HOLD)
        assert await record(store, out, hold)
        assert (await by_key(store))["k1-held"].status == HELD  # type: ignore[attr-defined]
        assert await store.outbox.claim("O2", 10, LEASE) == []

    async def test_a_refusal_falls_back_a_send_queued_in_another_lane_and_makes_it_due(
        self, store: Store
    ) -> None:
        """A status arrives in its recipient's lane, which need not be the lane the send was
        queued in (a trigger's E.164 number and the wa_id WhatsApp reports can differ)."""
        policy = {"when_closed": FALL_BACK, "fallback": TEMPLATE}
        await queue_sends(store, send("k1", **policy))
        await mark_sent(store, "k1", "wamid.k1")
        await store.inbox.add([event("st1", wa_id=BEN)])
        await run_lane(store, BEN, refused=("wamid.k1",))
        assert keys(await store.outbox.claim("O", 10, LEASE)) == [["k1-fb"]]

    async def test_a_retried_send_keeps_the_media_its_first_attempt_went_with(
        self, store: Store
    ) -> None:
        await queue_sends(store, send("k1"))
        [out] = await store.outbox.claim("O", 10, LEASE)
        assert out.sends[0].media_id is None
        retry = SendOutcome(out.sends[0].seq, PENDING, 1, "timeout", retry_in=0, media_id="m1")
        assert await record(store, out, retry)
        [again] = await store.outbox.claim("O", 10, LEASE)
        assert (again.sends[0].attempts, again.sends[0].media_id) == (1, "m1")

    async def test_an_outcome_with_no_results_frees_its_lane_and_fails_nothing_else(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("a1"), event("b1", BEN)])
        lanes = {lane.wa_id: lane for lane in await store.inbox.claim("T", 10, LEASE)}
        empty = LaneOutcome(PN, ANA, "T", ())
        assert await store.inbox.complete([empty, done(lanes[BEN])]) == [True, True]
        assert ids(await store.inbox.claim("T2", 10, LEASE)) == [["a1"]]  # still to run

    async def test_a_result_for_another_lanes_send_is_not_written(self, store: Store) -> None:
        await queue_sends(store, send("a1"))
        await queue_sends(store, send("b1", BEN))
        lanes = {lane.wa_id: lane for lane in await store.outbox.claim("O", 10, LEASE)}
        ana, ben = lanes[ANA], lanes[BEN]
        stray = SendOutcome(ben.sends[0].seq, SENT, 1, "wamid.stray")  # Ben's row, Ana's lane
        assert await record(store, ana, stray)
        assert (await by_key(store))["b1"].status == PENDING  # type: ignore[attr-defined]

    async def test_a_lost_outbox_claim_records_nothing(
        self, store: Store, clock: ManualClock
    ) -> None:
        await queue_sends(store, send("a1"))
        [mine] = await store.outbox.claim("A", 10, LEASE)
        clock.advance(LEASE + 1)
        [theirs] = await store.outbox.claim("B", 10, LEASE)
        assert await store.outbox.renew("A", [mine.key], LEASE) == []
        assert not await record(store, mine, SendOutcome(mine.sends[0].seq, SENT, 1, "wamid.a"))
        assert await record(store, theirs, SendOutcome(theirs.sends[0].seq, SENT, 1, "wamid.b"))
        assert (await by_key(store))["a1"].provider_message_id == "wamid.b"  # type: ignore[attr-defined]

    async def test_a_waiting_lane_does_not_starve_a_due_lane_behind_it(self, store: Store) -> None:
        await queue_sends(store, *(send(f"a{i}") for i in range(20)))
        await queue_sends(store, send("b1", BEN))
        [a] = await store.outbox.claim("A", 1, LEASE)
        assert await record(store, a, SendOutcome(a.sends[0].seq, PENDING, 1, "x", retry_in=30))
        assert keys(await store.outbox.claim("B", 1, LEASE)) == [["b1"]]

    async def test_outbox_next_due_is_when_the_earliest_lane_can_go(
        self, store: Store, clock: ManualClock
    ) -> None:
        assert await store.outbox.next_due() is None
        await queue_sends(store, send("k1"))
        assert await store.outbox.next_due() == 0
        [lane] = await store.outbox.claim("A", 1, LEASE)
        assert await store.outbox.next_due() == pytest.approx(LEASE)  # claimed until then
        assert await record(
            store, lane, SendOutcome(lane.sends[0].seq, PENDING, 1, "x", retry_in=30)
        )
        assert await store.outbox.next_due() == pytest.approx(30)
        clock.advance(40)
        [lane] = await store.outbox.claim("A", 1, LEASE)
        assert await record(store, lane, SendOutcome(lane.sends[0].seq, SENT, 2))
        assert await store.outbox.next_due() is None

    async def test_backlog_counts_unfinished_events_and_pending_sends(self, store: Store) -> None:
        assert await store.inspect.backlog() == Backlog(0, 0)
        await store.inbox.add([event("a1"), event("b1", BEN), event("c1", CAL)])
        assert await store.inspect.backlog() == Backlog(3, 0)
        lanes = await store.inbox.claim("A", 10, LEASE)
        assert await store.inspect.backlog() == Backlog(3, 0)  # claimed is still unfinished
        assert await complete(store, lanes[0], sends=(send("k1"), send("k2")))
        assert await store.inspect.backlog() == Backlog(2, 2)
        [out] = await store.outbox.claim("O", 10, LEASE)
        assert await record(store, out, SendOutcome(out.sends[0].seq, SENT, 1, "wamid.out.1"))
        assert await store.inspect.backlog() == Backlog(2, 1)

    # -- waking workers -----------------------------------------------------------------------

    async def test_adding_wakes_the_inbox_and_new_sends_wake_the_outbox(self, store: Store) -> None:
        inbox = asyncio.create_task(store.inbox.wait_for_work(30))
        outbox = asyncio.create_task(store.outbox.wait_for_work(30))
        await asyncio.sleep(0)
        await store.inbox.add([event("a1")])
        await asyncio.wait_for(inbox, 5)
        assert not outbox.done()
        await run_lane(store, sends=(send("k1"),))
        await asyncio.wait_for(outbox, 5)

    async def test_waiting_ends_after_the_time_given(self, store: Store) -> None:
        await asyncio.wait_for(store.inbox.wait_for_work(0.01), 5)
        store.outbox.notify()
        await asyncio.wait_for(store.outbox.wait_for_work(30), 5)

    async def test_a_completion_leaving_its_lane_events_wakes_the_workers(
        self, store: Store
    ) -> None:
        """A user's next message that came while their lane ran is claimed when the lane
        commits, not at the next poll."""
        await store.inbox.add([event("a1")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        await store.inbox.add([event("a2")])  # the worker's claim finds the lane held...
        await store.inbox.wait_for_work(0.01)  # ...and has used up the notice of the add
        assert await complete(store, lane)
        await asyncio.wait_for(store.inbox.wait_for_work(30), 5)  # woken by the completion
        assert ids(await store.inbox.claim("A", 1, LEASE)) == [["a2"]]

    # -- retention ----------------------------------------------------------------------------

    async def test_pruning_forgets_finished_work_older_than_before_and_keeps_the_young(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1", message_id="wamid.a1")])
        await run_lane(store, session=session(ANA, "confirming"), sends=(send("k1"),))
        await send_all(store)
        await record_status(store, "wamid.k1", "delivered", 1)
        await store.inbox.add([event("b1", BEN)])
        [failing] = await store.inbox.claim("B", 1, LEASE)
        assert await store.inbox.complete([done(failing, FAILED)]) == [True]
        clock.advance(KEEP + 1)
        await store.inbox.add([event("c1", CAL)])
        await run_lane(store, CAL, sends=(send("k2", CAL),))
        await send_all(store)
        await record_status(store, "wamid.k2", "read", 2, CAL)
        assert await store.inspect.counts() == Counts(events=5, sends=2, statuses=2)

        # a1, b1 and k1's status event; k1; k1's status
        assert await store.retention.prune(clock.now() - KEEP, 100) == 3 + 1 + 1
        assert await store.retention.prune(clock.now() - KEEP, 100) == 0
        assert await store.inspect.counts() == Counts(events=2, sends=1, statuses=1)
        assert await store.inspect.event_status("a1") is None
        assert await store.inspect.event_status("b1") is None
        assert await store.inspect.event_status("c1") == (DONE, None)
        [kept] = await store.inspect.outbox()
        assert (kept.idempotency_key, kept.delivery_status) == ("k2", "read")
        # lanes, sessions and numbering go on as before: nothing pruned is numbered again
        await store.inbox.add([event("a2"), event("a3")])
        [lane] = await store.inbox.claim("A", 10, LEASE)
        assert [item.event_id for item in lane.events] == ["a2", "a3"]
        assert lane.session == session(ANA, "confirming")
        assert await complete(store, lane, sends=(send("k3"),))
        assert await store.inspect.event_status("c1") == (DONE, None)
        assert [r.idempotency_key for r in await store.inspect.outbox()] == ["k2", "k3"]

    async def test_pruning_keeps_pending_held_and_claimed_work_however_old(
        self, store: Store, clock: ManualClock
    ) -> None:
        await queue_sends(store, send("h1", CAL, when_closed=HOLD))
        [out] = await store.outbox.claim("O", 10, LEASE)
        hold = SendOutcome(out.sends[0].seq, HELD, 0, error="closed", fall_back=HOLD)
        assert await record(store, out, hold)
        await queue_sends(store, send("p1", BEN))  # never claimed: pending
        await store.inbox.add([event("a1")])
        await run_lane(store)
        await store.inbox.add([event("a2"), event("b1", BEN), event("c1", CAL)])
        running = {lane.wa_id: lane for lane in await store.inbox.claim("R", 10, 100 * KEEP)}
        await store.inbox.release("R", [(PN, ANA), (PN, CAL)])
        clock.advance(KEEP + 1)

        assert await prune_old(store, clock, limit=2) == 3  # a1 and both carriers only
        assert await store.inspect.event_status("a1") is None
        for pending in ("a2", "b1", "c1"):
            assert await store.inspect.event_status(pending) == (PENDING, None)
        assert {r.idempotency_key: r.status for r in await store.inspect.outbox()} == {
            "h1-held": HELD,
            "p1": PENDING,
        }
        assert await complete(store, running[BEN])  # its claim still holds its events
        assert ids(await store.inbox.claim("S", 10, LEASE)) == [["a2"], ["c1"]]
        assert await store.inspect.backlog() == Backlog(2, 1)

    async def test_pruning_takes_at_most_limit_of_each_kind_oldest_first(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event(f"a{n}") for n in range(1, 6)])
        statuses = tuple(StatusRecord(f"wamid.x{n}", "read", n) for n in range(3))
        await run_lane(store, sends=(send("k1"), send("k2"), send("k3")), statuses=statuses)
        await send_all(store)
        clock.advance(KEEP + 1)
        before = clock.now() - KEEP
        assert await store.retention.prune(before, 2) == 2 + 2 + 2
        assert [await store.inspect.event_status(f"a{n}") for n in range(1, 6)] == [
            None,
            None,
            *[(DONE, None)] * 3,
        ]
        assert await store.inspect.counts() == Counts(events=3, sends=1, statuses=1)
        assert await store.retention.prune(before, 2) == 2 + 1 + 1
        assert await store.retention.prune(before, 2) == 1
        assert await store.retention.prune(before, 2) == 0
        assert await store.inspect.counts() == Counts()

    async def test_a_redelivery_younger_than_the_retention_is_still_a_duplicate(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a1", message_id="wamid.a1")])
        await run_lane(store)
        clock.advance(KEEP - 1)
        assert await prune_old(store, clock) == 0
        assert await store.inbox.add([event("a1", message_id="wamid.a1")]) == [False]
        assert await store.inbox.add([event("a1-meta", message_id="wamid.a1")]) == [False]
        clock.advance(2)
        assert await prune_old(store, clock) == 1
        # older than the retention, both keys are forgotten: the provider stopped retrying
        again = [event("a1"), event("a1-meta", message_id="wamid.a1")]
        assert await store.inbox.add(again) == [True, True]

    async def test_pruning_never_moves_a_lanes_position_back(
        self, store: Store, clock: ManualClock
    ) -> None:
        """A 403 closes the window as of the latest event stored, even once that event has
        been pruned: the user's message before it must not reopen the window."""
        await store.inbox.add([event("a1")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        opened = Window(T0, lane.events[0].lane_seq, None)
        assert await complete(store, lane, window=opened, sends=(send("k1"),))
        clock.advance(KEEP + 1)  # the send waited (the outbox was down) while a1 got old
        assert await prune_old(store, clock) == 1
        [out] = await store.outbox.claim("O", 10, LEASE)
        assert out.position >= lane.events[0].lane_seq
        refused = SendOutcome(out.sends[0].seq, FAILED, 1, error="403", window_closed=True)
        assert await record(store, out, refused)
        assert (await store.sessions.get(PN, ANA)).window.refused

    async def test_pruning_under_steady_traffic_keeps_the_store_bounded(
        self, store: Store, clock: ManualClock
    ) -> None:
        """Every hour each user writes, gets a reply and its delivery status; after each hour
        the store prunes in small batches. It keeps the last KEEP of work, and no more."""
        users = (ANA, BEN, CAL)
        largest = Counts()
        for hour in range(48):
            await store.inbox.add([event(f"{u}-{hour}", u, f"wamid.{u}.{hour}") for u in users])
            for lane in await store.inbox.claim("W", 10, LEASE):
                assert await complete(
                    store, lane, sends=(send(f"r{hour}-{lane.wa_id}", lane.wa_id),)
                )
            await send_all(store)
            for u in users:
                await record_status(store, f"wamid.r{hour}-{u}", "delivered", hour, u)
            clock.advance(HOUR)
            await prune_old(store, clock, limit=4)
            counts = await store.inspect.counts()
            largest = Counts(*map(max, astuple(largest), astuple(counts)))
        kept_hours = int(KEEP / HOUR)  # those younger than KEEP: hours h-5 to h
        per_hour = Counts(events=2 * len(users), sends=len(users), statuses=len(users))
        bound = Counts(*(kept_hours * n for n in astuple(per_hour)))
        assert largest == bound  # 48 hours of traffic, 6 hours kept
        assert await store.inspect.counts() == bound
        assert await store.inspect.backlog() == Backlog(0, 0)

    # -- media ids ----------------------------------------------------------------------------

    async def test_media_ids_are_kept_per_number_and_content_until_too_old(
        self, store: Store, clock: ManualClock
    ) -> None:
        day = 24 * 3600.0
        assert await store.media.get(PN, "abc", 29 * day) is None
        await store.media.put(PN, "abc", "media-1")
        assert await store.media.get(PN, "abc", 29 * day) == "media-1"
        assert await store.media.get("other", "abc", 29 * day) is None
        clock.advance(29 * day + 1)
        assert await store.media.get(PN, "abc", 29 * day) is None
        assert await store.media.get(PN, "abc", 30 * day) == "media-1"

    async def test_forgetting_a_media_id_keeps_a_newer_one(self, store: Store) -> None:
        await store.media.put(PN, "abc", "media-1")
        await store.media.put(PN, "abc", "media-2")
        await store.media.forget(PN, "abc", "media-1")
        assert await store.media.get(PN, "abc", 60) == "media-2"
        await store.media.forget(PN, "abc", "media-2")
        assert await store.media.get(PN, "abc", 60) is None

    async def test_closing_twice_is_harmless(self, store: Store) -> None:
        await store.aclose()
        await store.aclose()

    # -- inspect.pending: what a scrape of the metrics and readiness read --------------------

    async def test_pending_counts_the_work_waiting_and_how_long_the_oldest_waited(
        self, store: Store, clock: ManualClock
    ) -> None:
        assert await store.inspect.pending() == Pending()
        await store.inbox.add([event("a1")])
        clock.advance(10)
        await store.inbox.add([event("b1", BEN), event("a2")])
        clock.advance(5)
        found = await store.inspect.pending()
        assert (found.events, found.oldest_event) == (3, pytest.approx(15))
        lanes = {lane.wa_id: lane for lane in await store.inbox.claim("A", 10, LEASE)}
        found = await store.inspect.pending()  # claimed is still pending
        assert (found.events, found.oldest_event) == (3, pytest.approx(15))
        first = lanes[ANA].events[0]
        outcome = LaneOutcome(PN, ANA, "A", (EventResult(first.seq, first.lane_seq, DONE),))
        assert await store.inbox.complete([outcome]) == [True]
        clock.advance(1)
        found = await store.inspect.pending()
        assert (found.events, found.oldest_event) == (2, pytest.approx(6))
        await store.inbox.release("A")
        while lanes := await store.inbox.claim("A", 10, LEASE):
            for lane in lanes:
                assert await complete(store, lane)
        assert await store.inspect.pending() == Pending()

    async def test_pending_tells_the_oldest_pending_send_and_the_held_ones(
        self, store: Store, clock: ManualClock
    ) -> None:
        await queue_sends(store, send("k1"), send("k2", when_closed=HOLD, held=True))
        clock.advance(7)
        await queue_sends(store, send("k3", BEN))
        clock.advance(2)
        found = await store.inspect.pending()
        assert (found.sends, found.held, found.oldest_send) == (2, 1, pytest.approx(9))
        assert found.events == 0 and found.oldest_event is None
        await mark_sent(store, "k1", "wamid.out.1")
        found = await store.inspect.pending()
        assert (found.sends, found.held, found.oldest_send) == (1, 1, pytest.approx(2))
