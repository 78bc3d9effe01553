"""Stores: where a bot keeps its inbox, sessions and outbox; `open_store` picks one from a URL."""

from __future__ import annotations

from botkit.exceptions import StoreError
from botkit.store.base import Store
from botkit.store.sqlite import SqliteStore, sqlite_path


def open_store(url: str) -> Store:
    """The store named by a BOTKIT_DATABASE value (not yet opened).

    A plain path, ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` give SQLite.
    """
    if url.startswith(("postgres://", "postgresql://")):
        raise StoreError(
            "PostgreSQL is not supported by this botkit version yet; use a SQLite path for "
            f"BOTKIT_DATABASE instead of {url!r}"
        )
    if "://" in url and not url.startswith("sqlite://"):
        raise StoreError(f"BOTKIT_DATABASE {url!r}: unknown scheme (use a file path or sqlite:///)")
    return SqliteStore(sqlite_path(url))


__all__ = ["SqliteStore", "Store", "StoreError", "open_store"]
