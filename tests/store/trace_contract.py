"""The trace context a store keeps (botkit.tracing): every backend keeps an event's traceparent
from `add` to its claim, and a send's from the completion that queued it to each claim of it,
through retries and fallbacks; None stays None."""

from __future__ import annotations

from dataclasses import replace

import pytest

from botkit.store.base import FALL_BACK, PENDING, SendOutcome, Store

from .contract import LEASE, TEMPLATE, event, record, run_lane, send

WEBHOOK = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TURN = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


@pytest.mark.anyio
class TraceContract:
    """Every Store backend passes these tests."""

    async def test_an_event_is_claimed_with_the_trace_context_it_was_stored_with(
        self, store: Store
    ) -> None:
        traced = replace(event("e1", message_id="wamid.e1"), trace=WEBHOOK)
        await store.inbox.add([traced, event("e2")])

        [lane] = await store.inbox.claim("W", 10, LEASE)

        assert [(item.event_id, item.trace) for item in lane.events] == [
            ("e1", WEBHOOK),
            ("e2", None),
        ]

    async def test_a_duplicate_keeps_the_first_copys_trace_context(self, store: Store) -> None:
        await store.inbox.add([replace(event("e1"), trace=WEBHOOK)])
        assert await store.inbox.add([replace(event("e1"), trace=OTHER)]) == [False]

        [lane] = await store.inbox.claim("W", 10, LEASE)

        assert [item.trace for item in lane.events] == [WEBHOOK]

    async def test_a_send_is_claimed_with_its_turns_trace_context_on_every_attempt(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("e1")])
        sends = (replace(send("k1"), trace=TURN), send("k2"))
        await run_lane(store, sends=sends)

        [lane] = await store.outbox.claim("O", 10, LEASE)
        assert [(item.idempotency_key, item.trace) for item in lane.sends] == [
            ("k1", TURN),
            ("k2", None),
        ]
        retry = SendOutcome(lane.sends[0].seq, PENDING, 1, error="503", retry_in=0.0)
        assert await record(store, lane, retry)

        [again] = await store.outbox.claim("O", 10, LEASE)
        assert [item.trace for item in again.sends] == [TURN, None]

    async def test_a_fallback_keeps_the_trace_context_of_the_send_it_replaces(
        self, store: Store
    ) -> None:
        await store.inbox.add([event("e1")])
        fallback = replace(send("k1", when_closed=FALL_BACK, fallback=TEMPLATE), trace=TURN)
        await run_lane(store, sends=(fallback,))
        [lane] = await store.outbox.claim("O", 10, LEASE)
        closed = SendOutcome(lane.sends[0].seq, PENDING, 1, error="closed", fall_back=FALL_BACK)
        assert await record(store, lane, closed)

        [again] = await store.outbox.claim("O", 10, LEASE)

        assert [(item.idempotency_key, item.type, item.trace) for item in again.sends] == [
            ("k1-fb", "template", TURN)
        ]
