"""Stores: where a bot keeps its inbox, outbox, sessions and media ids; `open_store` picks one."""

from __future__ import annotations

from botkit.config import DEFAULT_DATABASE_POOL
from botkit.exceptions import StoreError
from botkit.store.base import Store
from botkit.store.memory import MemoryStore
from botkit.store.sqlite import SqliteStore, sqlite_path
from botkit.types import Clock


def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    worker: bool = False,
    pool_size: int = DEFAULT_DATABASE_POOL,
) -> Store:
    """The store named by a BOTKIT_DATABASE value (not yet opened).

    ``postgresql://user@host:5432/db`` gives PostgreSQL (any number of processes, each with a
    pool of `pool_size` connections; it needs the ``botkit[postgres]`` extra). A plain path,
    ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` give SQLite. `clock` decides when
    leases end and retries are due; `worker`: this process will claim work (SQLite allows one
    such process). (`MemoryStore`, for tests, is made directly: a store in one process's
    memory cannot serve a web process and its worker.)
    """
    if url.startswith(("postgres://", "postgresql://")):
        try:
            from botkit.store.postgres import PostgresStore
        except ImportError as exc:  # asyncpg is the optional extra
            raise StoreError(
                f"BOTKIT_DATABASE names PostgreSQL, which needs asyncpg ({exc}): "
                "pip install 'botkit[postgres]'"
            ) from None
        # only a process that claims work listens for other processes' wake-ups
        return PostgresStore(url, clock=clock, pool_size=pool_size, listen=worker)
    if "://" in url and not url.startswith("sqlite://"):
        raise StoreError(
            f"BOTKIT_DATABASE {url!r}: unknown scheme (use a file path, sqlite:/// or postgresql://)"
        )
    return SqliteStore(sqlite_path(url), clock=clock, worker=worker)


__all__ = ["MemoryStore", "SqliteStore", "Store", "StoreError", "open_store"]
