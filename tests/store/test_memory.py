"""MemoryStore: the Store contract, in memory (the store the runtime's fast tests use)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botkit.exceptions import StoreError
from botkit.store import MemoryStore
from botkit.store.base import Store
from botkit.types import ManualClock

from .contract import StoreContract, StoreFactory, event


class TestMemoryStore(StoreContract):
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
