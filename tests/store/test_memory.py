"""MemoryStore: the Store contract, in memory (the store the runtime's fast tests use)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botkit.exceptions import StoreError
from botkit.store import MemoryStore
from botkit.store.base import FAILED, FALL_BACK, PENDING, SendOutcome, StatusRecord, Store
from botkit.types import ManualClock

from .contract import (
    BEN,
    KEEP,
    LEASE,
    TEMPLATE,
    StoreContract,
    StoreFactory,
    done,
    event,
    prune_old,
    record,
    run_lane,
    send,
    send_all,
)
from .prompt_contract import PromptContract
from .repair_contract import RepairContract
from .trace_contract import TraceContract


class TestMemoryStore(StoreContract, RepairContract, TraceContract, PromptContract):
    """The contract, in memory: the data lives in the object, so `make_store` gives it again."""

    @pytest.fixture
    def make_store(self, clock: ManualClock) -> StoreFactory:
        shared = MemoryStore(clock=clock)
        return lambda: shared

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> AsyncIterator[Store]:
        store = make_store()
        await store.open()
        yield store
        await store.aclose()


@pytest.mark.anyio
async def test_a_memory_store_that_is_not_open_refuses_work() -> None:
    with pytest.raises(StoreError, match="not open"):
        await MemoryStore().inbox.add([event("a1")])


@pytest.mark.anyio
async def test_pruning_forgets_every_trace_of_what_it_deletes(clock: ManualClock) -> None:
    """Not only the rows counted: the dedupe keys, the lanes' indexes and results, the sends'
    keys (the key a send was queued under, though a fallback renamed it) go too."""
    async with MemoryStore(clock=clock) as store:
        await store.inbox.add([event("a1", message_id="wamid.a1")])
        fallback = {"when_closed": FALL_BACK, "fallback": TEMPLATE}
        statuses = (StatusRecord("wamid.x", "read", 1),)
        await run_lane(store, sends=(send("k1", **fallback),), statuses=statuses)
        [out] = await store.outbox.claim("O", 10, LEASE)
        closed = SendOutcome(out.sends[0].seq, PENDING, 1, error="closed", fall_back=FALL_BACK)
        assert await record(store, out, closed)
        await send_all(store)  # k1-fb
        await store.inbox.add([event("b1", BEN)])
        [lane] = await store.inbox.claim("B", 1, LEASE)
        assert await store.inbox.complete([done(lane, FAILED)]) == [True]
        clock.advance(KEEP + 1)

        assert await prune_old(store, clock, limit=1) == 2 + 1 + 1
    kept = [store._events, store._event_ids, store._message_ids, store._by_lane, store._results,
            store._sends, store._send_keys, store._statuses]  # fmt: skip
    assert [len(part) for part in kept] == [0] * len(kept)
