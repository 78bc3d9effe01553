"""Stores: where a bot keeps its inbox, outbox, sessions and media ids; `open_store` picks one."""

from __future__ import annotations

from botkit.exceptions import StoreError
from botkit.store.base import Store
from botkit.store.memory import MemoryStore
from botkit.store.sqlite import SqliteStore, sqlite_path
from botkit.types import Clock


def open_store(url: str, *, clock: Clock | None = None, worker: bool = False) -> Store:
    """The store named by a BOTKIT_DATABASE value (not yet opened).

    A plain path, ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` give SQLite. `clock`
    decides when leases end and retries are due; `worker`: this process will claim work
    (SQLite allows one such process). (`MemoryStore`, for tests, is made directly: a store
    in one process's memory cannot serve a web process and its worker.)
    """
    if url.startswith(("postgres://", "postgresql://")):
        raise StoreError(
            "PostgreSQL is not supported by this botkit version yet; use a SQLite path for "
            f"BOTKIT_DATABASE instead of {url!r}"
        )
    if "://" in url and not url.startswith("sqlite://"):
        raise StoreError(f"BOTKIT_DATABASE {url!r}: unknown scheme (use a file path or sqlite:///)")
    return SqliteStore(sqlite_path(url), clock=clock, worker=worker)


__all__ = ["MemoryStore", "SqliteStore", "Store", "StoreError", "open_store"]
