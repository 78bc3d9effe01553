"""The Store contract: what every backend must do, as one suite that backends subclass.

A backend's test module subclasses `StoreContract` and provides two fixtures:

- `make_store`: a factory of new, not yet opened stores that all share one database, so that a
  test can close a store and open the same data again;
- `store`: one of them, opened, and closed after the test (closing twice must be harmless).

Time is never read from a clock: every call takes `now`, so leases and retries are tested by
passing a later `now`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from botkit.exceptions import StoreError
from botkit.store.base import (
    DONE,
    FAILED,
    IGNORED,
    PENDING,
    SENT,
    EventOutcome,
    InboxItem,
    NewEvent,
    NewSend,
    OutboxItem,
    SendOutcome,
    Session,
    StatusRecord,
    Store,
    lane_of,
)
from botkit.types import JSONObject
from botkit.wire.events import InboundMessage, StatusUpdate, parse_body

StoreFactory = Callable[[], Store]

PN = "555123456789"
ANA = "5491140000001"
BEN = "5491140000002"
CAL = "5491140000003"
NOW = 1_000.0
LEASE = 60.0


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


def session(
    wa_id: str = ANA, state: str = "idle", last: float | None = NOW, **data: str
) -> Session:
    """A session of conversation `Clinic`."""
    return Session(PN, wa_id, "Clinic", state, dict(data), "v1", last)


def send(key: str, wa_id: str = ANA, body: str = "hola") -> NewSend:
    """A text message to `wa_id` with idempotency key `key`."""
    return NewSend(PN, wa_id, key, "text", {"body": body, "preview_url": False}, f"cause-{key}")


def ids(items: Sequence[InboxItem]) -> list[str]:
    """The event ids of claimed events, in the order given."""
    return [item.event_id for item in items]


def keys(items: Sequence[OutboxItem]) -> list[str]:
    """The idempotency keys of claimed sends, in the order given."""
    return [item.idempotency_key for item in items]


async def complete_one(
    store: Store,
    event_id: str,
    *,
    session: Session | None = None,
    sends: tuple[NewSend, ...] = (),
    delivery: StatusRecord | None = None,
    now: float = NOW,
) -> None:
    """Claims what is free, completes `event_id` as done with what it produced, releases the rest."""
    claimed = {item.event_id: item for item in await store.claim_events("H", 100, LEASE, now)}
    outcome = EventOutcome(claimed[event_id].seq, DONE, None, session, sends, delivery)
    await store.complete_events("H", [outcome], now)
    await store.release_claims("H")


async def queue_sends(store: Store, *sends: NewSend, now: float = NOW) -> None:
    """Puts sends in the outbox the only way there is: by completing an event that made them."""
    carrier = event(f"carrier-{sends[0].idempotency_key}", wa_id="carrier")
    await store.add_events([carrier], now)
    await complete_one(store, carrier.event_id, sends=sends, now=now)


async def mark_sent(store: Store, key: str, provider_id: str, now: float = NOW) -> None:
    """Claims the send `key`, records it as sent under `provider_id`, releases the rest."""
    claimed = {
        item.idempotency_key: item for item in await store.claim_outbox("O", 100, LEASE, now)
    }
    await store.record_sends("O", [SendOutcome(claimed[key].seq, SENT, 1, provider_id)], now)
    await store.release_claims("O")


async def record_status(store: Store, message_id: str, status: str, at: int) -> None:
    """Stores a status event and completes it with its delivery record, as the dispatcher does."""
    status_event = event(f"status:{message_id}:{status}:{at}", wa_id=f"status-{message_id}")
    await store.add_events([status_event], NOW)
    await complete_one(store, status_event.event_id, delivery=StatusRecord(message_id, status, at))


@pytest.mark.anyio
class StoreContract:
    """Every Store backend passes these tests."""

    # -- add_events: durable, deduplicated ---------------------------------------------------

    async def test_add_events_is_true_for_new_and_false_for_a_repeated_event_id(
        self, store: Store
    ) -> None:
        assert await store.add_events([event("evt_1", message_id="wamid.1")], NOW) == [True]
        assert await store.add_events([event("evt_1", message_id="wamid.1")], NOW) == [False]
        assert await store.add_events([event("evt_1", message_id="wamid.other")], NOW) == [False]
        assert await store.backlog() == (1, 0)

    async def test_add_events_is_false_for_a_repeated_message_id_under_another_event_id(
        self, store: Store
    ) -> None:
        assert await store.add_events([event("evt_1", message_id="wamid.1")], NOW) == [True]
        assert await store.add_events([event("evt_2", message_id="wamid.1")], NOW) == [False]
        assert await store.event_status("evt_2") is None

    async def test_a_meta_native_message_and_an_envelope_with_the_same_wamid_are_one_event(
        self, store: Store
    ) -> None:
        meta = parsed(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "metadata": {"phone_number_id": PN},
                                    "messages": [text_message("wamid.in.7", "Hola")],
                                },
                            }
                        ],
                    }
                ],
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
        assert await store.add_events([meta], NOW) == [True]
        assert await store.add_events([envelope], NOW) == [False]
        assert await store.backlog() == (1, 0)

    async def test_events_without_a_message_id_are_told_apart_by_event_id_only(
        self, store: Store
    ) -> None:
        statuses = [event("status:wamid.out.1:read"), event("status:wamid.out.1:delivered")]
        assert await store.add_events(statuses, NOW) == [True, True]
        assert await store.add_events(statuses[:1], NOW) == [False]

    async def test_duplicates_inside_one_call_are_reported_in_place(self, store: Store) -> None:
        batch = [
            event("evt_1", message_id="wamid.1"),
            event("evt_1", message_id="wamid.1"),
            event("evt_2", message_id="wamid.2"),
            event("evt_3", message_id="wamid.2"),
            event("evt_4"),
        ]
        assert await store.add_events(batch, NOW) == [True, False, True, False, True]
        assert await store.backlog() == (3, 0)

    async def test_concurrent_add_events_store_each_event_once(self, store: Store) -> None:
        calls = [
            store.add_events([event(f"evt_{i % 10}", message_id=f"wamid.{i % 10}")], NOW)
            for i in range(50)
        ]
        results = await asyncio.gather(*calls)
        firsts = [i for i, result in enumerate(results) if result == [True]]
        assert len(firsts) == 10
        assert sorted(i % 10 for i in firsts) == list(range(10))
        assert all(result in ([True], [False]) for result in results)
        assert await store.backlog() == (10, 0)

    async def test_the_envelope_comes_back_as_stored(self, store: Store) -> None:
        added = event("evt_1", message_id="wamid.1")
        await store.add_events([added], NOW)
        [item] = await store.claim_events("A", 10, LEASE, NOW)
        assert (item.event_id, item.kind, item.phone_number_id, item.wa_id) == (
            "evt_1",
            "message",
            PN,
            ANA,
        )
        assert item.envelope == added.envelope
        assert item.lane == lane_of(PN, ANA)

    async def test_events_and_state_survive_closing_and_reopening(
        self, store: Store, make_store: StoreFactory
    ) -> None:
        await store.add_events([event("evt_done", BEN)], NOW)
        await complete_one(
            store, "evt_done", session=session(BEN, "confirming"), sends=(send("k1", BEN),)
        )
        assert await store.add_events([event("evt_1"), event("evt_2", CAL)], NOW) == [True, True]
        await store.aclose()

        again = make_store()
        await again.open()
        try:
            assert await again.backlog() == (2, 1)
            assert await again.event_status("evt_1") == (PENDING, None)
            assert await again.event_status("evt_done") == (DONE, None)
            claimed = await again.claim_events("B", 10, LEASE, NOW + 1)
            assert ids(claimed) == ["evt_1", "evt_2"]
            assert [item.attempts for item in claimed] == [1, 1]
            assert await again.get_session(PN, BEN) == session(BEN, "confirming")
            assert [record.idempotency_key for record in await again.outbox()] == ["k1"]
            assert await again.add_events([event("evt_1")], NOW) == [False]
        finally:
            await again.aclose()

    # -- claim_events: per-lane order and leases -------------------------------------------

    async def test_claim_events_hands_out_events_in_seq_order_with_a_first_attempt(
        self, store: Store
    ) -> None:
        await store.add_events([event("a1"), event("b1", BEN), event("a2"), event("c1", CAL)], NOW)
        claimed = await store.claim_events("A", 10, LEASE, NOW)
        assert ids(claimed) == ["a1", "b1", "a2", "c1"]
        assert [item.seq for item in claimed] == sorted(item.seq for item in claimed)
        assert [item.attempts for item in claimed] == [1, 1, 1, 1]

    async def test_claim_events_respects_the_limit(self, store: Store) -> None:
        await store.add_events([event("a1"), event("b1", BEN), event("c1", CAL)], NOW)
        assert ids(await store.claim_events("A", 2, LEASE, NOW)) == ["a1", "b1"]
        assert ids(await store.claim_events("A", 2, LEASE, NOW)) == ["c1"]
        assert await store.claim_events("A", 2, LEASE, NOW) == []

    async def test_a_lane_held_by_one_owner_is_skipped_for_another(self, store: Store) -> None:
        await store.add_events([event("a1"), event("a2"), event("b1", BEN)], NOW)
        assert ids(await store.claim_events("A", 1, LEASE, NOW)) == ["a1"]
        assert ids(await store.claim_events("B", 10, LEASE, NOW)) == ["b1"]

    async def test_a_held_lane_is_skipped_for_its_own_owner_too(self, store: Store) -> None:
        await store.add_events([event("a1"), event("a2"), event("b1", BEN)], NOW)
        assert ids(await store.claim_events("A", 1, LEASE, NOW)) == ["a1"]
        assert ids(await store.claim_events("A", 10, LEASE, NOW)) == ["b1"]
        assert await store.claim_events("A", 10, LEASE, NOW) == []

    async def test_owners_claiming_at_once_never_share_an_event_or_a_lane(
        self, store: Store
    ) -> None:
        users = [f"54911400001{n:02d}" for n in range(12)]
        await store.add_events([event(f"{u}-{i}", u) for i in range(3) for u in users], NOW)
        owners = [f"W{n}" for n in range(4)]
        claims = await asyncio.gather(*(store.claim_events(o, 20, LEASE, NOW) for o in owners))
        claimed = [item.event_id for items in claims for item in items]
        assert len(claimed) == len(set(claimed)), "an event was handed to two owners"
        lanes = [{item.lane for item in items} for items in claims]
        for n, mine in enumerate(lanes):
            for theirs in lanes[n + 1 :]:
                assert not mine & theirs, "a lane was split between two owners"
        for items in claims:  # each owner holds a prefix of each of its lanes, in order
            for lane in {item.lane for item in items}:
                got = [item.event_id for item in items if item.lane == lane]
                user = got[0].split("-")[0]
                assert got == [f"{user}-{i}" for i in range(len(got))]

    async def test_a_lane_frees_up_when_its_event_completes(self, store: Store) -> None:
        await store.add_events([event("a1"), event("a2")], NOW)
        [first] = await store.claim_events("A", 1, LEASE, NOW)
        assert await store.claim_events("B", 10, LEASE, NOW) == []
        await store.complete_events("A", [EventOutcome(first.seq, DONE)], NOW)
        assert ids(await store.claim_events("B", 10, LEASE, NOW)) == ["a2"]

    async def test_a_lease_blocks_the_lane_until_it_expires(self, store: Store) -> None:
        await store.add_events([event("a1"), event("a2")], NOW)
        assert ids(await store.claim_events("A", 1, LEASE, NOW)) == ["a1"]
        assert await store.claim_events("B", 10, LEASE, NOW + LEASE - 1) == []
        retaken = await store.claim_events("B", 10, LEASE, NOW + LEASE + 1)
        assert ids(retaken) == ["a1", "a2"]
        assert [item.attempts for item in retaken] == [2, 1]

    async def test_a_renewed_lease_keeps_the_claim_past_its_first_expiry(
        self, store: Store
    ) -> None:
        await store.add_events([event("a1"), event("b1", BEN), event("c1", "5491100000003")], NOW)
        held = await store.claim_events("A", 2, LEASE, NOW)
        assert ids(held) == ["a1", "b1"]
        assert ids(await store.claim_events("C", 1, LEASE, NOW)) == ["c1"]
        assert (
            await store.renew_claims("A", [item.seq for item in held], LEASE, NOW + LEASE - 1) == 2
        )
        # past the first lease: C did not renew, A did
        assert ids(await store.claim_events("B", 10, LEASE, NOW + LEASE + 1)) == ["c1"]
        retaken = await store.claim_events("B", 10, LEASE, NOW + 2 * LEASE)
        assert ids(retaken) == ["a1", "b1"]

    async def test_renewing_skips_finished_events_others_claims_and_unnamed_ones(
        self, store: Store
    ) -> None:
        await store.add_events([event("a1"), event("b1", BEN), event("c1", "5491100000003")], NOW)
        [a1] = await store.claim_events("A", 1, LEASE, NOW)
        [b1] = await store.claim_events("B", 1, LEASE, NOW)
        [c1] = await store.claim_events("A", 1, LEASE, NOW)
        await store.complete_events("A", [EventOutcome(a1.seq, DONE)], NOW)
        assert await store.renew_claims("A", [a1.seq, b1.seq], LEASE, NOW + 1) == 0
        assert await store.renew_claims("B", [b1.seq, c1.seq], LEASE, NOW + 1) == 1
        assert await store.renew_claims("A", [], LEASE, NOW + 1) == 0
        # c1 was not named: its claim expires at NOW + LEASE
        assert ids(await store.claim_events("B", 10, LEASE, NOW + LEASE + 0.5)) == ["c1"]

    async def test_every_claim_counts_an_attempt(self, store: Store) -> None:
        await store.add_events([event("a1")], NOW)
        attempts = []
        for round_ in range(3):
            now = NOW + round_ * (LEASE + 1)
            [item] = await store.claim_events("A", 1, LEASE, now)
            attempts.append(item.attempts)
        await store.release_claims("A")
        [item] = await store.claim_events("B", 1, LEASE, NOW + 3 * (LEASE + 1))
        assert [*attempts, item.attempts] == [1, 2, 3, 4]

    async def test_a_busy_lane_does_not_starve_a_free_lane_behind_it(self, store: Store) -> None:
        await store.add_events([event(f"a{i}") for i in range(20)] + [event("b1", BEN)], NOW)
        assert ids(await store.claim_events("A", 1, LEASE, NOW)) == ["a0"]
        assert ids(await store.claim_events("B", 1, LEASE, NOW)) == ["b1"]

    # -- complete_events: one transaction ----------------------------------------------------

    async def test_complete_events_records_each_outcome(self, store: Store) -> None:
        await store.add_events([event("ok"), event("bad", BEN), event("other", CAL)], NOW)
        claimed = {item.event_id: item for item in await store.claim_events("A", 10, LEASE, NOW)}
        outcomes = [
            EventOutcome(claimed["ok"].seq, DONE),
            EventOutcome(claimed["bad"].seq, FAILED, "ValueError: boom"),
            EventOutcome(claimed["other"].seq, IGNORED),
        ]
        await store.complete_events("A", outcomes, NOW)
        assert await store.event_status("ok") == (DONE, None)
        assert await store.event_status("bad") == (FAILED, "ValueError: boom")
        assert await store.event_status("other") == (IGNORED, None)
        assert await store.event_status("never") is None
        assert await store.backlog() == (0, 0)
        assert await store.claim_events("B", 10, LEASE, NOW + 10 * LEASE) == []

    async def test_complete_events_saves_a_session_and_updates_it(self, store: Store) -> None:
        await store.add_events([event("a1"), event("a2")], NOW)
        saved = session(state="choosing", last=NOW)
        await complete_one(store, "a1", session=saved)
        assert await store.get_session(PN, ANA) == saved

        data = {"service": "lab", "n": [1, "é"]}
        updated = Session(PN, ANA, "Clinic2", "confirming", data, "v2", NOW + 5)
        await complete_one(store, "a2", session=updated)
        assert await store.get_session(PN, ANA) == updated
        assert await store.get_session(PN, BEN) is None
        assert await store.get_session("999", ANA) is None

    async def test_load_sessions_returns_the_existing_ones_by_lane(self, store: Store) -> None:
        await store.add_events([event("a1"), event("b1", BEN)], NOW)
        claimed = await store.claim_events("A", 10, LEASE, NOW)
        outcomes = [
            EventOutcome(item.seq, DONE, session=session(item.wa_id, state=f"s-{item.event_id}"))
            for item in claimed
        ]
        await store.complete_events("A", outcomes, NOW)
        found = await store.load_sessions([(PN, ANA), (PN, BEN), (PN, CAL)])
        assert set(found) == {lane_of(PN, ANA), lane_of(PN, BEN)}
        assert found[lane_of(PN, BEN)].state == "s-b1"
        assert await store.load_sessions([]) == {}

    async def test_last_inbound_at_never_moves_back(self, store: Store) -> None:
        await store.add_events([event(f"a{i}") for i in range(3)], NOW)
        seen = []
        for i, last in enumerate([2_000.0, 1_500.0, 2_500.0]):
            await complete_one(store, f"a{i}", session=session(last=last, state=f"s{i}"))
            stored = await store.get_session(PN, ANA)
            assert stored is not None
            assert stored.state == f"s{i}"  # the rest of the session is still saved
            seen.append(stored.last_inbound_at)
        assert seen == [2_000.0, 2_000.0, 2_500.0]

    async def test_sends_are_queued_once_per_idempotency_key(self, store: Store) -> None:
        await store.add_events([event("a1"), event("a2")], NOW)
        await complete_one(store, "a1", sends=(send("k1", body="¿Confirmás?"), send("k2")))
        # a redelivered event, or a retried batch, queues the same keys again
        await complete_one(store, "a2", sends=(send("k1", body="changed"), send("k3")))

        records = await store.outbox()
        assert [record.idempotency_key for record in records] == ["k1", "k2", "k3"]
        assert records[0].payload == {"body": "¿Confirmás?", "preview_url": False}
        assert [(record.status, record.attempts) for record in records] == [(PENDING, 0)] * 3
        assert records[0].provider_message_id is None
        assert records[0].delivery_status is None
        assert await store.backlog() == (0, 3)

    async def test_outbox_can_be_read_for_one_user(self, store: Store) -> None:
        await queue_sends(store, send("k1"), send("k2", BEN), send("k3"))
        assert [record.idempotency_key for record in await store.outbox(ANA)] == ["k1", "k3"]
        assert [record.wa_id for record in await store.outbox(BEN)] == [BEN]
        assert await store.outbox(CAL) == []

    async def test_statuses_show_on_the_outbox_and_never_move_backwards(self, store: Store) -> None:
        await queue_sends(store, send("k1"), send("k2"))
        await mark_sent(store, "k1", "wamid.out.1")
        await mark_sent(store, "k2", "wamid.out.2")
        await record_status(store, "wamid.out.1", "read", 10)
        await record_status(store, "wamid.out.1", "delivered", 11)
        await record_status(store, "wamid.out.1", "sent", 12)
        await record_status(store, "wamid.out.2", "sent", 10)
        await record_status(store, "wamid.out.2", "delivered", 11)
        by_key = {record.idempotency_key: record for record in await store.outbox()}
        assert by_key["k1"].provider_message_id == "wamid.out.1"
        assert by_key["k1"].delivery_status == "read"
        assert by_key["k2"].delivery_status == "delivered"

    async def test_statuses_of_one_batch_apply_in_order(self, store: Store) -> None:
        await queue_sends(store, send("k1"))
        await mark_sent(store, "k1", "wamid.out.1")
        await store.add_events([event("s1", "x"), event("s2", "y"), event("s3", "z")], NOW)
        claimed = await store.claim_events("S", 10, LEASE, NOW)
        outcomes = [
            EventOutcome(item.seq, DONE, delivery=StatusRecord("wamid.out.1", status, i))
            for i, (item, status) in enumerate(
                zip(claimed, ["delivered", "read", "sent"], strict=True)
            )
        ]
        await store.complete_events("S", outcomes, NOW)
        [record] = await store.outbox()
        assert record.delivery_status == "read"

    async def test_a_status_for_an_unknown_message_is_kept_for_when_it_shows_up(
        self, store: Store
    ) -> None:
        await record_status(store, "wamid.out.9", "delivered", 10)
        await queue_sends(store, send("k9"))
        await mark_sent(store, "k9", "wamid.out.9")
        [record] = await store.outbox()
        assert record.delivery_status == "delivered"

    async def test_complete_events_rolls_back_the_batch_when_an_event_was_taken_over(
        self, store: Store
    ) -> None:
        await store.add_events([event("a1"), event("b1", BEN)], NOW)
        mine = {item.event_id: item for item in await store.claim_events("A", 10, LEASE, NOW)}
        later = NOW + LEASE + 1
        assert ids(await store.claim_events("B", 1, LEASE, later)) == ["a1"]  # A's lease ran out
        outcomes = [
            EventOutcome(mine["a1"].seq, DONE, session=session(), sends=(send("k1"),)),
            EventOutcome(
                mine["b1"].seq,
                DONE,
                session=session(BEN),
                sends=(send("k2", BEN),),
                delivery=StatusRecord("wamid.out.1", "read", 10),
            ),
        ]
        with pytest.raises(StoreError, match="A"):
            await store.complete_events("A", outcomes, later)
        assert await store.event_status("a1") == (PENDING, None)
        assert await store.event_status("b1") == (PENDING, None)
        assert await store.get_session(PN, ANA) is None
        assert await store.get_session(PN, BEN) is None
        assert await store.outbox() == []
        assert await store.backlog() == (2, 0)
        # b1 is still A's: completing it alone works
        await store.complete_events("A", [EventOutcome(mine["b1"].seq, DONE)], later)
        assert await store.event_status("b1") == (DONE, None)

    async def test_complete_events_fails_after_the_claims_were_released(self, store: Store) -> None:
        await store.add_events([event("a1")], NOW)
        [item] = await store.claim_events("A", 1, LEASE, NOW)
        await store.release_claims("A")
        with pytest.raises(StoreError):
            await store.complete_events("A", [EventOutcome(item.seq, DONE, session=session())], NOW)
        assert await store.event_status("a1") == (PENDING, None)
        assert await store.get_session(PN, ANA) is None

    # -- the outbox --------------------------------------------------------------------------

    async def test_claim_outbox_hands_out_sends_in_order_and_holds_them(self, store: Store) -> None:
        await queue_sends(store, send("a1"), send("b1", BEN), send("a2"))
        claimed = await store.claim_outbox("A", 10, LEASE, NOW)
        assert keys(claimed) == ["a1", "b1", "a2"]
        assert [item.attempts for item in claimed] == [0, 0, 0]
        assert claimed[0].payload == {"body": "hola", "preview_url": False}
        assert claimed[0].lane == lane_of(PN, ANA)
        assert await store.claim_outbox("B", 10, LEASE, NOW) == []

    async def test_claim_outbox_skips_a_lane_held_by_another_owner(self, store: Store) -> None:
        await queue_sends(store, send("a1"), send("a2"), send("b1", BEN))
        assert keys(await store.claim_outbox("A", 1, LEASE, NOW)) == ["a1"]
        [other] = await store.claim_outbox("B", 10, LEASE, NOW)
        assert other.idempotency_key == "b1"
        await store.record_sends("B", [SendOutcome(other.seq, SENT, 1, "wamid.out.1")], NOW)
        assert await store.claim_outbox("B", 10, LEASE, NOW + LEASE - 1) == []
        assert keys(await store.claim_outbox("B", 10, LEASE, NOW + LEASE + 1)) == ["a1", "a2"]

    async def test_a_retry_time_blocks_the_whole_lane_until_due(self, store: Store) -> None:
        await queue_sends(store, send("a1"), send("a2"), send("b1", BEN))
        [first] = await store.claim_outbox("A", 1, LEASE, NOW)
        retry = SendOutcome(first.seq, PENDING, 1, error="503 busy", next_attempt_at=NOW + 30)
        await store.record_sends("A", [retry], NOW)
        assert keys(await store.claim_outbox("A", 10, LEASE, NOW + 1)) == ["b1"]
        assert await store.claim_outbox("A", 10, LEASE, NOW + 29) == []
        due = await store.claim_outbox("A", 10, LEASE, NOW + 31)
        assert keys(due) == ["a1", "a2"]
        assert [item.attempts for item in due] == [1, 0]
        [record] = [r for r in await store.outbox() if r.idempotency_key == "a1"]
        assert (record.status, record.attempts, record.error) == (PENDING, 1, "503 busy")

    async def test_record_sends_stores_sent_and_failed_results(self, store: Store) -> None:
        await queue_sends(store, send("a1"), send("b1", BEN), send("b2", BEN))
        claimed = {
            item.idempotency_key: item for item in await store.claim_outbox("A", 10, LEASE, NOW)
        }
        assert set(claimed) == {"a1", "b1", "b2"}
        outcomes = [
            SendOutcome(claimed["a1"].seq, SENT, 1, provider_message_id="wamid.out.1"),
            SendOutcome(claimed["b1"].seq, FAILED, 2, error="131047 window closed"),
        ]
        await store.record_sends("A", outcomes, NOW)
        await store.release_claims("A")
        by_key = {record.idempotency_key: record for record in await store.outbox()}
        assert (by_key["a1"].status, by_key["a1"].attempts, by_key["a1"].provider_message_id) == (
            SENT,
            1,
            "wamid.out.1",
        )
        assert (by_key["b1"].status, by_key["b1"].attempts, by_key["b1"].error) == (
            FAILED,
            2,
            "131047 window closed",
        )
        assert by_key["b2"].status == PENDING
        assert await store.backlog() == (0, 1)
        # finished rows are not handed out again, and a failed one does not block its lane
        assert keys(await store.claim_outbox("B", 10, LEASE, NOW)) == ["b2"]

    async def test_a_waiting_lane_does_not_starve_a_due_lane_behind_it(self, store: Store) -> None:
        await queue_sends(store, *(send(f"a{i}") for i in range(20)), send("b1", BEN))
        [first] = await store.claim_outbox("A", 1, LEASE, NOW)
        retry = SendOutcome(first.seq, PENDING, 1, error="503", next_attempt_at=NOW + 30)
        await store.record_sends("A", [retry], NOW)
        assert keys(await store.claim_outbox("B", 1, LEASE, NOW + 1)) == ["b1"]

    async def test_release_claims_gives_back_only_the_owners_rows(self, store: Store) -> None:
        await store.add_events([event("a1"), event("b1", BEN)], NOW)
        await queue_sends(store, send("k1"), send("k2", BEN))
        assert ids(await store.claim_events("A", 1, LEASE, NOW)) == ["a1"]
        assert ids(await store.claim_events("C", 1, LEASE, NOW)) == ["b1"]
        assert keys(await store.claim_outbox("A", 1, LEASE, NOW)) == ["k1"]
        assert keys(await store.claim_outbox("C", 1, LEASE, NOW)) == ["k2"]
        await store.release_claims("A")
        assert ids(await store.claim_events("B", 10, LEASE, NOW)) == ["a1"]
        assert keys(await store.claim_outbox("B", 10, LEASE, NOW)) == ["k1"]

    async def test_next_send_due_is_the_earliest_pending_send(self, store: Store) -> None:
        assert await store.next_send_due() is None
        await queue_sends(store, send("k1"), now=NOW)
        assert await store.next_send_due() == NOW
        [item] = await store.claim_outbox("A", 1, LEASE, NOW)
        retry = SendOutcome(item.seq, PENDING, 1, error="503", next_attempt_at=NOW + 30)
        await store.record_sends("A", [retry], NOW)
        assert await store.next_send_due() == NOW + 30
        await queue_sends(store, send("k2", BEN), now=NOW + 10)
        assert await store.next_send_due() == NOW + 10
        claimed = await store.claim_outbox("A", 10, LEASE, NOW + 40)
        await store.record_sends(
            "A", [SendOutcome(i.seq, SENT, i.attempts + 1) for i in claimed], NOW + 40
        )
        assert await store.next_send_due() is None

    async def test_next_send_due_ignores_sends_queued_behind_a_retry(self, store: Store) -> None:
        await queue_sends(store, send("a1"), send("a2"), now=NOW)
        [first] = await store.claim_outbox("A", 1, LEASE, NOW)
        retry = SendOutcome(first.seq, PENDING, 1, error="503", next_attempt_at=NOW + 30)
        await store.record_sends("A", [retry], NOW)
        assert await store.claim_outbox("A", 10, LEASE, NOW + 1) == []
        assert await store.next_send_due() == NOW + 30

    async def test_backlog_counts_pending_events_and_sends(self, store: Store) -> None:
        assert await store.backlog() == (0, 0)
        await store.add_events([event("a1"), event("b1", BEN), event("c1", CAL)], NOW)
        assert await store.backlog() == (3, 0)
        claimed = await store.claim_events("A", 10, LEASE, NOW)
        assert await store.backlog() == (3, 0)  # claimed is still pending
        done = EventOutcome(claimed[0].seq, DONE, sends=(send("k1"), send("k2")))
        await store.complete_events("A", [done], NOW)
        assert await store.backlog() == (2, 2)
        [first, _] = await store.claim_outbox("A", 10, LEASE, NOW)
        await store.record_sends("A", [SendOutcome(first.seq, SENT, 1, "wamid.out.1")], NOW)
        assert await store.backlog() == (2, 1)

    async def test_closing_twice_is_harmless(self, store: Store) -> None:
        await store.aclose()
        await store.aclose()
