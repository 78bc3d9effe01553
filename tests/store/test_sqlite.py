"""SqliteStore: the Store contract on a real file, and what only SQLite does."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from botkit.exceptions import StoreError
from botkit.store import open_store
from botkit.store.base import (
    DONE,
    PENDING,
    SCHEMA_VERSION,
    Backlog,
    SendLaneOutcome,
    SendOutcome,
    Session,
    Store,
)
from botkit.store.batch import GroupCommit
from botkit.store.postgres import PostgresStore
from botkit.store.sqlite import SqliteStore, sqlite_path
from botkit.store.sqlite.connection import apart
from botkit.types import ManualClock
from botkit.wire.window import Window

from .contract import (
    ANA,
    BEN,
    LEASE,
    PN,
    StoreContract,
    StoreFactory,
    complete,
    event,
    ids,
    send,
)
from .prompt_contract import PromptContract
from .repair_contract import RepairContract
from .trace_contract import TraceContract

MAIN_OF_MEMORY = "SELECT 1"  # apart()'s lock statement, for a connection of its own


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


class TestSqliteStore(StoreContract, RepairContract, TraceContract, PromptContract):
    """The contract, on SQLite."""

    @pytest.fixture
    def make_store(self, tmp_path: Path, clock: ManualClock) -> StoreFactory:
        return lambda: SqliteStore(tmp_path / "x.db", clock=clock, worker=True)

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
async def sqlite_store(db_path: Path, clock: ManualClock) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        yield store


def tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


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
            await store.inbox.add([event("a1")])
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_wal_mode_is_on_for_both_files(sqlite_store: SqliteStore) -> None:
    modes = await sqlite_store.run(
        lambda db: [
            db.execute(f"PRAGMA {f}.journal_mode").fetchone()[0] for f in ("main", "incoming")
        ]
    )
    assert modes == ["wal", "wal"]


@pytest.mark.anyio
async def test_only_one_process_runs_workers_on_a_file(db_path: Path) -> None:
    first = SqliteStore(db_path, worker=True)
    await first.open()
    try:
        with pytest.raises(StoreError, match="is in use: another botkit process"):
            await SqliteStore(db_path, worker=True).open()
        async with SqliteStore(db_path) as web:  # a web process only adds: no lock needed
            assert await web.inbox.add([event("a1")]) == [True]
            with pytest.raises(StoreError, match="worker=True"):
                await web.inbox.claim("T", 1, LEASE)
    finally:
        await first.aclose()  # the lock goes with the store
    async with SqliteStore(db_path, worker=True) as again:
        assert ids(await again.inbox.claim("T", 1, LEASE)) == [["a1"]]


@pytest.mark.anyio
async def test_a_worker_frees_the_claims_a_process_that_died_left(
    db_path: Path, clock: ManualClock
) -> None:
    async with SqliteStore(db_path, clock=clock, worker=True) as dead:
        await dead.inbox.add([event("a1")])
        assert ids(await dead.inbox.claim("dead", 1, 10 * LEASE)) == [["a1"]]
        await dead.outbox.claim("dead", 1, LEASE)
    async with SqliteStore(db_path, clock=clock, worker=True) as alive:
        [lane] = await alive.inbox.claim("alive", 1, LEASE)  # at once, not after the lease
    assert ([item.event_id for item in lane.events], lane.attempts) == (["a1"], 2)


@pytest.mark.anyio
async def test_add_on_a_store_that_is_not_open_raises(db_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        await SqliteStore(db_path).inbox.add([event("a1")])


@pytest.mark.anyio
@pytest.mark.parametrize("head_start", [0, 1, 3])
async def test_add_racing_aclose_is_stored_or_refused_never_stranded(
    db_path: Path, head_start: int
) -> None:
    store = SqliteStore(db_path)
    await store.open()
    calls = [asyncio.create_task(store.inbox.add([event(f"e{i}")])) for i in range(3)]
    for _ in range(head_start):  # let some calls reach the queue before aclose starts
        await asyncio.sleep(0)
    await store.aclose()
    try:
        _, stranded = await asyncio.wait(calls, timeout=2)  # a bound for the failure case only
        assert not stranded, "add never returned"
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
            assert await again.inspect.event_status(event_id) == (PENDING, None)
        assert (await again.inspect.backlog()).events == len(stored)


@pytest.mark.anyio
async def test_when_a_writer_task_dies_callers_get_an_error_and_closing_returns(
    db_path: Path,
) -> None:
    store = SqliteStore(db_path)
    await store.open()
    try:
        assert await store.inbox.add([event("a1")]) == [True]
        writer = store._adds._task  # the group commit's task, killed as a bug would
        assert writer is not None
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        with pytest.raises(StoreError, match=r"not open|stopped"):
            await asyncio.wait_for(store.inbox.add([event("a2")]), timeout=5)
    finally:
        await asyncio.wait_for(store.aclose(), timeout=5)
    async with SqliteStore(db_path) as again:
        assert await again.inspect.event_status("a1") == (PENDING, None)
        assert await again.inspect.event_status("a2") is None


@pytest.mark.anyio
async def test_one_poison_event_never_fails_the_others_of_its_group_commit(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        poison = event("bad")
        poison.envelope["data"] = {"text": "\ud800"}
        calls = [store.inbox.add([event(f"ok{i}", wa_id=f"54911400000{i:02d}")]) for i in range(20)]
        calls.insert(10, store.inbox.add([poison]))
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[10], StoreError)
    assert [r for i, r in enumerate(results) if i != 10] == [[True]] * 20


@pytest.mark.anyio
async def test_a_completion_the_store_refuses_fails_alone_in_its_group(
    db_path: Path, clock: ManualClock
) -> None:
    # A write that fails inside the transaction (here: a trigger the test adds) rolls back
    # that lane's outcome only; the others of the group commit are written.
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        await store.inbox.add([event("a1"), event("b1", BEN)])
        lanes = {lane.wa_id: lane for lane in await store.inbox.claim("T", 10, LEASE)}
        await store.run(
            lambda db: db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON sessions WHEN NEW.state = 'refused'"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
        refused = complete(store, lanes[ANA], session=Session(PN, ANA, "C", "refused", {}, "v"))
        fine = complete(store, lanes[BEN], session=Session(PN, BEN, "C", "fine", {}, "v"))
        results = await asyncio.gather(refused, fine, return_exceptions=True)
        assert isinstance(results[0], StoreError) and "refused by the test" in str(results[0])
        assert results[1] is True
        assert await store.inspect.event_status("a1") == (PENDING, None)
        assert await store.inspect.event_status("b1") == (DONE, None)


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
    by_url = open_store(f"sqlite:///{tmp_path / 'y.db'}", worker=True)
    assert isinstance(by_path, SqliteStore) and isinstance(by_url, SqliteStore)
    assert (by_path.path, by_path.worker) == (str(tmp_path / "x.db"), False)
    assert (by_url.path, by_url.worker) == (str(tmp_path / "y.db"), True)


@pytest.mark.parametrize("url", ["postgresql://u@db/botkit", "postgres://u@db/botkit"])
def test_open_store_gives_postgresql_for_its_urls(url: str) -> None:
    store = open_store(url, pool_size=3)
    assert isinstance(store, PostgresStore)
    assert (store.url, store.pool_size) == (url, 3)


def test_open_store_refuses_an_unknown_scheme() -> None:
    with pytest.raises(StoreError, match="unknown scheme"):
        open_store("mysql://u@db/botkit")


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
        flags = await asyncio.wait_for(sqlite_store.inbox.add([event("a1")]), timeout=5)
        assert flags == [True]
        worker.execute("ROLLBACK")
    finally:
        worker.close()
    assert await sqlite_store.inspect.event_status("a1") == (PENDING, None)
    assert sqlite_store.inbox_path == f"{db_path}-inbox"


# -- older files ---------------------------------------------------------------------------------

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

# Schema 3 (botkit before lanes): the inbox in its own file, progress per event, the window
# on the session as times, claims on outbox rows.
_SCHEMA_3_INBOX = """
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, message_id TEXT UNIQUE,
    kind TEXT NOT NULL, phone_number_id TEXT NOT NULL, wa_id TEXT NOT NULL,
    envelope TEXT NOT NULL, received_at REAL NOT NULL
);
"""
_SCHEMA_3_MAIN = """
CREATE TABLE botkit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO botkit_meta VALUES ('inbox_floor', '1'), ('schema', '3');
CREATE TABLE inbox_state (
    seq INTEGER PRIMARY KEY, phone_number_id TEXT NOT NULL, wa_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT, claimed_until REAL, processed_at REAL, error TEXT
);
CREATE TABLE sessions (
    phone_number_id TEXT NOT NULL, wa_id TEXT NOT NULL, conversation TEXT NOT NULL,
    state TEXT NOT NULL, data TEXT NOT NULL, version TEXT NOT NULL, last_inbound_at REAL,
    window_closed_at REAL, updated_at REAL NOT NULL, PRIMARY KEY (phone_number_id, wa_id)
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, phone_number_id TEXT NOT NULL, wa_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE, type TEXT NOT NULL, payload TEXT NOT NULL,
    cause TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    when_closed TEXT NOT NULL DEFAULT 'fail', fallback TEXT, instead_of TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, claimed_by TEXT,
    claimed_until REAL, provider_message_id TEXT, error TEXT, created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE status = 'pending';
CREATE INDEX outbox_held ON outbox (phone_number_id, wa_id) WHERE status = 'held';
CREATE TABLE media (phone_number_id TEXT NOT NULL, sha256 TEXT NOT NULL, media_id TEXT NOT NULL,
    uploaded_at REAL NOT NULL, PRIMARY KEY (phone_number_id, sha256));
CREATE TABLE message_status (message_id TEXT PRIMARY KEY, status TEXT NOT NULL,
    rank INTEGER NOT NULL, timestamp INTEGER NOT NULL, errors TEXT, updated_at REAL NOT NULL);
"""


def write_schema_3(db_path: Path) -> None:
    """A schema-3 pair: Ana's first message done and her second pending (claimed by a worker
    that died), Ben's only message failed; Ana's window closed by a 403 after her first
    message; one reply to Ana pending, claimed."""
    envelope = '{"id": "x"}'
    with contextlib.closing(sqlite3.connect(f"{db_path}-inbox")) as inbox, inbox:
        inbox.executescript(_SCHEMA_3_INBOX)
        inbox.executemany(
            "INSERT INTO inbox (event_id, message_id, kind, phone_number_id, wa_id, envelope,"
            " received_at) VALUES (?, ?, 'message', ?, ?, ?, 1)",
            [
                ("a1", "wamid.a1", PN, ANA, envelope),
                ("b1", "wamid.b1", PN, BEN, envelope),
                ("a2", "wamid.a2", PN, ANA, envelope),
            ],
        )
    with contextlib.closing(sqlite3.connect(db_path)) as main, main:
        main.executescript(_SCHEMA_3_MAIN)
        main.executemany(
            "INSERT INTO inbox_state (seq, phone_number_id, wa_id, status, attempts, claimed_by,"
            " claimed_until, processed_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, PN, ANA, "done", 1, None, None, 5.0, None),
                (2, PN, BEN, "failed", 10, None, None, 6.0, "gave up"),
                (3, PN, ANA, "pending", 2, "dead-worker", 9e9, None, None),
            ],
        )
        main.execute(
            "INSERT INTO sessions VALUES (?, ?, 'Clinic', 'confirming', '{\"s\": 1}', 'v1',"
            " 1000.0, 1500.0, 1)",
            (PN, ANA),
        )
        main.execute(
            "INSERT INTO outbox (phone_number_id, wa_id, idempotency_key, type, payload, cause,"
            " next_attempt_at, claimed_by, claimed_until, created_at) VALUES (?, ?, 'k1', 'text',"
            " '{\"body\": \"hola\"}', 'a1', 0, 'dead-worker', 9e9, 0)",
            (PN, ANA),
        )


@pytest.mark.anyio
async def test_a_schema_3_pair_becomes_lanes_keeping_progress_sessions_windows_and_sends(
    db_path: Path, clock: ManualClock
) -> None:
    write_schema_3(db_path)
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        assert await store.inspect.event_status("a1") == (DONE, None)
        assert await store.inspect.event_status("b1") == ("failed", "gave up")
        assert await store.inspect.event_status("a2") == (PENDING, None)
        assert await store.inspect.backlog() == Backlog(1, 1)
        user = await store.sessions.get(PN, ANA)
        assert user.session is not None and (user.session.state, user.session.data) == (
            "confirming",
            {"s": 1},
        )
        assert user.window == Window(1000.0, 1, 1)  # closed after her latest message
        [lane] = await store.inbox.claim("T", 10, LEASE)
        assert [i.event_id for i in lane.events] == ["a2"]
        assert lane.attempts == 3  # two earlier claims, and this one
        assert complete is not None
        [out] = await store.outbox.claim("T", 10, LEASE)
        assert [item.idempotency_key for item in out.sends] == ["k1"]
        assert await store.inbox.add(
            [event("a1", message_id="x"), event("n", message_id="wamid.b1")]
        ) == [
            False,
            False,
        ]
        await store.inbox.add([event("a3")])
    assert schema_version(db_path) == str(SCHEMA_VERSION)
    assert "inbox_state" not in tables(db_path)


@pytest.mark.anyio
async def test_a_schema_2_file_moves_its_inbox_out_and_keeps_each_events_progress(
    db_path: Path, clock: ManualClock
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
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        assert await store.inspect.event_status("done1") == (DONE, None)
        assert await store.inspect.event_status("failed1") == ("failed", "gave up")
        assert (await store.inspect.backlog()).events == 2
        claimed = await store.inbox.claim("w", 10, LEASE)
        assert [(lane.events[0].event_id, lane.attempts) for lane in claimed] == [
            ("pending1", 3),
            ("pending2", 1),
        ]
        # both dedupe keys came along
        assert await store.inbox.add([event("done1"), event("new", message_id="wamid.3")]) == [
            False,
            False,
        ]
    assert schema_version(db_path) == str(SCHEMA_VERSION)
    assert "inbox" not in tables(db_path)


def lose_the_inbox(db_path: Path) -> None:
    for suffix in ("-inbox", "-inbox-wal", "-inbox-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


@pytest.mark.anyio
async def test_a_missing_inbox_file_is_refused_not_silently_restarted(db_path: Path) -> None:
    async with SqliteStore(db_path, worker=True) as store:
        await store.inbox.add([event("a1"), event("a2", wa_id=BEN)])
        for lane in await store.inbox.claim("w", 10, LEASE):
            assert await complete(store, lane)
    lose_the_inbox(db_path)
    message = await refused_open(db_path)
    assert f"{db_path}-inbox does not go with {db_path}" in message
    assert "read events up to number 2" in message
    assert "copy both files together" in message


@pytest.mark.anyio
async def test_two_stores_opening_a_schema_2_file_at_once_both_open(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as old, old:
        old.executescript(_SCHEMA_2_INBOX)
        old.execute(
            "INSERT INTO inbox (event_id, kind, phone_number_id, wa_id, envelope, received_at)"
            " VALUES ('old1', 'message', 'pn', '111', '{}', 1)"
        )
    first, second = SqliteStore(db_path), SqliteStore(db_path, worker=True)
    try:
        await asyncio.gather(first.open(), second.open())  # the web process and its worker
        assert (await first.inspect.backlog()).events == 1
        assert await second.inspect.event_status("old1") == (PENDING, None)
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.anyio
async def test_submits_racing_the_writers_close_each_get_a_result_or_a_store_error() -> None:
    async def write(items: Sequence[int]) -> list[str]:
        await asyncio.sleep(0.05)
        return [f"ok-{item}" for item in items]

    writer: GroupCommit[int, str] = GroupCommit("t", write, batch=1, queue=1)
    writer.start()
    calls = [asyncio.create_task(writer.submit(n)) for n in range(3)]
    await asyncio.sleep(0.01)  # 0 is being written, 1 is queued, 2 waits for room
    closing = asyncio.create_task(writer.aclose())
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    await asyncio.wait_for(closing, 5)  # bounds: a caller left waiting fails the test
    assert results[0] == "ok-0"
    assert all(r == f"ok-{n}" or isinstance(r, StoreError) for n, r in enumerate(results))


def test_a_failing_file_fails_a_group_at_once_and_a_refused_item_alone() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (x INTEGER CHECK (x >= 0))")
    calls: list[int] = []

    def broken(items: Sequence[int], conn: sqlite3.Connection) -> list[object]:
        calls.append(len(items))
        raise sqlite3.OperationalError("disk I/O error")

    results = apart(db, [1, 2, 3], broken, MAIN_OF_MEMORY)
    assert calls == [3] and [str(r) for r in results] == ["disk I/O error"] * 3

    def insert(items: Sequence[int], conn: sqlite3.Connection) -> list[object]:
        conn.executemany("INSERT INTO t VALUES (?)", [(x,) for x in items])
        return ["ok"] * len(items)

    results = apart(db, [1, -1, 3], insert, MAIN_OF_MEMORY)
    assert results[0] == "ok" and results[2] == "ok"
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert [x for (x,) in db.execute("SELECT x FROM t ORDER BY x")] == [1, 3]


@pytest.mark.anyio
async def test_a_schema_4_file_without_the_later_columns_gets_them(
    db_path: Path, clock: ManualClock
) -> None:
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        await store.inbox.add([event("a1")])
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.execute("ALTER TABLE outbox DROP COLUMN media_id")
        db.execute("ALTER TABLE lanes DROP COLUMN suspect_until")
        db.execute("DROP TABLE refusals")
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        [lane] = await store.inbox.claim("T", 1, LEASE)
        assert await complete(store, lane, sends=(send("k1"),))
        [out] = await store.outbox.claim("O", 1, LEASE)
        retry = SendOutcome(out.sends[0].seq, PENDING, 1, "timeout", retry_in=0, media_id="m1")
        assert await store.outbox.record([SendLaneOutcome(*out.key, "O", (retry,), 0)]) == [True]
        [again] = await store.outbox.claim("O", 1, LEASE)
        assert again.sends[0].media_id == "m1"


@pytest.mark.anyio
async def test_a_schema_2_file_an_older_botkit_left_half_converted_opens(
    db_path: Path, clock: ManualClock
) -> None:
    """Schema 3 created its `inbox_state` table before converting a schema-2 file: a
    conversion that stopped there left the table beside the old inbox."""
    with contextlib.closing(sqlite3.connect(db_path)) as old, old:
        old.executescript(_SCHEMA_2_INBOX)
        old.execute(
            "INSERT INTO inbox (event_id, message_id, kind, phone_number_id, wa_id, envelope,"
            " status, attempts, received_at, error) VALUES ('failed1', 'wamid.1', 'message',"
            " 'pn', '111', '{}', 'failed', 10, 1, 'gave up')"
        )
        old.execute(
            "CREATE TABLE inbox_state (seq INTEGER PRIMARY KEY, phone_number_id TEXT NOT NULL,"
            " wa_id TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT"
            " NULL DEFAULT 0, claimed_by TEXT, claimed_until REAL, processed_at REAL, error TEXT)"
        )
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        assert await store.inspect.event_status("failed1") == ("failed", "gave up")
    assert "inbox_state" not in tables(db_path)
