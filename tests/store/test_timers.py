"""The Timers contract on every store: memory, SQLite (a real file) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.store import MemoryStore
from botkit.store.base import Store
from botkit.store.postgres import PostgresStore
from botkit.store.sqlite import SqliteStore
from botkit.types import ManualClock

from .contract import StoreFactory
from .timers_contract import TimersContract


class _Opened:
    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> AsyncIterator[Store]:
        store = make_store()
        await store.open()
        yield store
        await store.aclose()


class TestMemoryTimers(_Opened, TimersContract):
    @pytest.fixture
    def make_store(self, clock: ManualClock) -> StoreFactory:
        shared = MemoryStore(clock=clock)
        return lambda: shared


class TestSqliteTimers(_Opened, TimersContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path, clock: ManualClock) -> StoreFactory:
        # a second store on the file is a web replica's (no worker lock): it may fire too
        stores = iter([True])
        return lambda: SqliteStore(tmp_path / "x.db", clock=clock, worker=next(stores, False))


class TestPostgresTimers(_Opened, TimersContract):
    @pytest.fixture
    def make_store(self, clock: ManualClock, postgres_url: str) -> StoreFactory:
        return lambda: PostgresStore(postgres_url, clock=clock, pool_size=4)
