"""SqliteStore: the Store contract on a real file, and what only SQLite does."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.exceptions import StoreError
from botkit.store import open_store
from botkit.store.base import DONE, SCHEMA_VERSION, EventOutcome, Store
from botkit.store.sqlite import SqliteStore, sqlite_path

from .contract import LEASE, NOW, StoreContract, StoreFactory, event, ids


def schema_version(path: Path) -> str:
    """The schema version written in the file, read without botkit."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        [(value,)] = db.execute("SELECT value FROM botkit_meta WHERE key = 'schema'").fetchall()
    return str(value)


def set_schema_version(path: Path, version: int) -> None:
    """Pretends that a newer botkit wrote the file."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE botkit_meta SET value = ? WHERE key = 'schema'", (str(version),))


async def refused_open(db_path: Path) -> str:
    """The StoreError that opening the file raises (the store is closed again)."""
    store = SqliteStore(db_path)
    try:
        with pytest.raises(StoreError) as caught:
            await store.open()
    finally:
        await store.aclose()
    return str(caught.value)


class TestSqliteStore(StoreContract):
    """The contract, on SQLite."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: SqliteStore(tmp_path / "x.db")

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> AsyncIterator[Store]:
        store = make_store()
        await store.open()
        yield store
        await store.aclose()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(db_path) as store:
        yield store


@pytest.mark.anyio
async def test_the_schema_version_is_stored_in_the_file(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    assert schema_version(db_path) == str(SCHEMA_VERSION)


@pytest.mark.anyio
async def test_a_file_from_a_newer_botkit_is_refused_naming_both_versions(db_path: Path) -> None:
    async with SqliteStore(db_path):
        pass
    newer = SCHEMA_VERSION + 1
    set_schema_version(db_path, newer)
    message = await refused_open(db_path)
    assert f"schema version {newer}" in message
    assert f"botkit's {SCHEMA_VERSION}" in message
    assert schema_version(db_path) == str(newer)  # not overwritten


@pytest.mark.anyio
async def test_a_refused_file_leaves_the_store_closed(db_path: Path) -> None:
    async with SqliteStore(db_path):
        pass
    set_schema_version(db_path, SCHEMA_VERSION + 1)
    store = SqliteStore(db_path)
    try:
        with pytest.raises(StoreError):
            await store.open()
        with pytest.raises(StoreError, match="not open"):
            _ = store.db
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_wal_mode_is_on(sqlite_store: SqliteStore) -> None:
    [(mode,)] = await sqlite_store.db.execute_fetchall("PRAGMA journal_mode")
    assert mode == "wal"


@pytest.mark.anyio
async def test_releasing_every_claim_frees_those_of_a_process_that_died(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    # What a Runtime that runs workers does at start-up (SQLite is single-node).
    await sqlite_store.add_events([event("a1")], NOW)
    assert ids(await sqlite_store.claim_events("dead", 1, 10 * LEASE, NOW)) == ["a1"]
    await sqlite_store.aclose()
    async with SqliteStore(db_path) as again:
        assert await again.claim_events("alive", 1, LEASE, NOW) == []  # reopening alone keeps it
        await again.release_claims(None)
        [item] = await again.claim_events("alive", 1, LEASE, NOW)
    assert (item.event_id, item.attempts) == ("a1", 2)


@pytest.mark.anyio
async def test_add_events_on_a_store_that_is_not_open_raises(db_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        await SqliteStore(db_path).add_events([event("a1")], NOW)


@pytest.mark.anyio
@pytest.mark.parametrize("head_start", [0, 1, 3])
async def test_add_events_racing_aclose_is_stored_or_refused_never_stranded(
    db_path: Path, head_start: int
) -> None:
    store = SqliteStore(db_path)
    await store.open()
    calls = [asyncio.create_task(store.add_events([event(f"e{i}")], NOW)) for i in range(3)]
    for _ in range(head_start):  # let some calls reach the queue before aclose starts
        await asyncio.sleep(0)
    await store.aclose()
    try:
        _, stranded = await asyncio.wait(calls, timeout=2)  # a bound for the failure case only
        assert not stranded, "add_events never returned"
    finally:
        for call in calls:
            call.cancel()
    stored = []
    for i, call in enumerate(calls):
        error = call.exception()
        assert error is None or isinstance(error, StoreError)
        if error is None:
            assert call.result() == [True]
            stored.append(f"e{i}")
    async with SqliteStore(db_path) as again:
        for event_id in stored:
            assert await again.event_status(event_id) == ("pending", None)
        assert (await again.backlog())[0] == len(stored)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("x.db", "x.db"),
        ("data/bot.db", "data/bot.db"),
        ("/abs/x.db", "/abs/x.db"),
        ("sqlite:///rel.db", "rel.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite:///", ":memory:"),
    ],
)
def test_sqlite_path_reads_paths_and_sqlite_urls(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite://"])
def test_sqlite_path_refuses_a_url_with_a_host(url: str) -> None:
    with pytest.raises(StoreError, match=re.escape("must look like sqlite:///relative.db")):
        sqlite_path(url)


def test_open_store_gives_a_sqlite_store_for_a_path_or_sqlite_url(tmp_path: Path) -> None:
    by_path = open_store(str(tmp_path / "x.db"))
    by_url = open_store(f"sqlite:///{tmp_path / 'y.db'}")
    assert isinstance(by_path, SqliteStore)
    assert isinstance(by_url, SqliteStore)
    assert by_path.path == str(tmp_path / "x.db")
    assert by_url.path == str(tmp_path / "y.db")


@pytest.mark.parametrize("url", ["postgresql://u@db/botkit", "postgres://u@db/botkit"])
def test_open_store_refuses_postgresql_for_now(url: str) -> None:
    with pytest.raises(StoreError, match="PostgreSQL"):
        open_store(url)


def test_open_store_refuses_an_unknown_scheme() -> None:
    with pytest.raises(StoreError, match="unknown scheme"):
        open_store("mysql://u@db/botkit")


@pytest.mark.anyio
async def test_only_one_process_runs_workers_on_a_file(db_path: Path) -> None:
    async with SqliteStore(db_path) as first, SqliteStore(db_path) as second:
        await first.start_worker()
        with pytest.raises(StoreError, match="single-node"):
            await second.start_worker()
        await first.aclose()  # the lock goes with the store
        await second.start_worker()


@pytest.mark.anyio
async def test_the_inbox_is_written_while_the_worker_holds_the_main_files_write_lock(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    # The web process and the worker process write different files: an acknowledgement never
    # waits for a worker's transaction (bench/webhook.py measured those waits as the p99).
    worker = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    try:
        worker.execute("BEGIN")
        worker.execute("UPDATE botkit_meta SET value = value")  # the main file's write lock
        flags = await asyncio.wait_for(sqlite_store.add_events([event("a1")], NOW), timeout=5)
        assert flags == [True]
        worker.execute("ROLLBACK")
    finally:
        worker.close()
    assert await sqlite_store.event_status("a1") == ("pending", None)
    assert sqlite_store.inbox_path == f"{db_path}-inbox"


_SCHEMA_2_INBOX = """
CREATE TABLE botkit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO botkit_meta VALUES ('schema', '2');
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, message_id TEXT UNIQUE,
    kind TEXT NOT NULL, phone_number_id TEXT NOT NULL, wa_id TEXT NOT NULL,
    envelope TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, claimed_by TEXT, claimed_until REAL,
    received_at REAL NOT NULL, processed_at REAL, error TEXT
);
"""


@pytest.mark.anyio
async def test_a_schema_2_file_moves_its_inbox_out_and_keeps_each_events_progress(
    db_path: Path,
) -> None:
    envelope = '{"id": "x"}'
    with contextlib.closing(sqlite3.connect(db_path)) as old, old:
        old.executescript(_SCHEMA_2_INBOX)
        old.executemany(
            "INSERT INTO inbox (event_id, message_id, kind, phone_number_id, wa_id, envelope,"
            " status, attempts, received_at, error) VALUES (?, ?, 'message', 'pn', ?, ?, ?, ?,"
            " 1, ?)",
            [
                ("done1", "wamid.1", "111", envelope, "done", 1, None),
                ("failed1", "wamid.2", "111", envelope, "failed", 10, "gave up"),
                ("pending1", "wamid.3", "222", envelope, "pending", 2, None),
                ("pending2", None, "111", envelope, "pending", 0, None),
            ],
        )
    async with SqliteStore(db_path) as store:
        assert await store.event_status("done1") == ("done", None)
        assert await store.event_status("failed1") == ("failed", "gave up")
        assert await store.backlog() == (2, 0)
        claimed = await store.claim_events("w", 10, LEASE, NOW)
        assert [(item.event_id, item.attempts) for item in claimed] == [
            ("pending1", 3),
            ("pending2", 1),
        ]
        # both dedupe keys came along
        assert await store.add_events(
            [event("done1"), event("new", message_id="wamid.3")], NOW
        ) == [
            False,
            False,
        ]
    assert schema_version(db_path) == str(SCHEMA_VERSION)
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "inbox" not in tables


def lose_the_inbox(db_path: Path) -> None:
    for suffix in ("-inbox", "-inbox-wal", "-inbox-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


@pytest.mark.anyio
async def test_a_missing_inbox_file_is_refused_not_silently_restarted(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        await store.add_events([event("a1"), event("a2", wa_id="5491100000002")], NOW)
        claimed = await store.claim_events("w", 10, LEASE, NOW)
        await store.complete_events("w", [EventOutcome(item.seq, DONE) for item in claimed], NOW)
    lose_the_inbox(db_path)
    message = await refused_open(db_path)
    assert f"{db_path}-inbox does not go with {db_path}" in message
    assert "processed events up to number 2" in message
    assert "copy both files together" in message


@pytest.mark.anyio
async def test_two_stores_opening_a_schema_2_file_at_once_both_open(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as old, old:
        old.executescript(_SCHEMA_2_INBOX)
        old.execute(
            "INSERT INTO inbox (event_id, kind, phone_number_id, wa_id, envelope, received_at)"
            " VALUES ('old1', 'message', 'pn', '111', '{}', 1)"
        )
    first, second = SqliteStore(db_path), SqliteStore(db_path)
    try:
        await asyncio.gather(first.open(), second.open())  # the web process and its worker
        assert await first.backlog() == (1, 0)
        assert await second.event_status("old1") == ("pending", None)
    finally:
        await first.aclose()
        await second.aclose()
