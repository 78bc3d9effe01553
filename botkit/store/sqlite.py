"""The embedded SQLite store on aiosqlite: WAL, an inbox file and a main file, group-committed inbox writes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from botkit import codec
from botkit.exceptions import StoreError
from botkit.store.base import (
    FAILED,
    FALL_BACK,
    HELD,
    HOLD,
    PENDING,
    SCHEMA_VERSION,
    SENT,
    STATUS_RANK,
    EventOutcome,
    InboxItem,
    NewEvent,
    NewSend,
    OutboxItem,
    OutboxRecord,
    SendOutcome,
    Session,
    lane_of,
)

log = logging.getLogger(__name__)

# Two files, so that the web process and the worker process never wait for each other's write
# lock: the inbox file (`<path>-inbox`), which only acknowledgements write (synchronous=FULL:
# an acknowledged event survives a power loss), and the main file, which only the worker writes
# (synchronous=NORMAL: a lost claim or completion is redone, under the same idempotency keys).
# An event's progress (claims, attempts, outcome) lives in the main file, in the transaction
# that writes its session and replies; the inbox file is append-only.
_INBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS incoming.inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    message_id TEXT UNIQUE,
    kind TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    envelope TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS botkit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO botkit_meta (key, value) VALUES ('inbox_floor', '0');
CREATE TABLE IF NOT EXISTS inbox_state (
    seq INTEGER PRIMARY KEY,
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_until REAL,
    processed_at REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS inbox_state_pending_lane ON inbox_state (phone_number_id, wa_id, seq)
    WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS sessions (
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    version TEXT NOT NULL,
    last_inbound_at REAL,
    window_closed_at REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    cause TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    when_closed TEXT NOT NULL DEFAULT 'fail',
    fallback TEXT,
    instead_of TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    claimed_by TEXT,
    claimed_until REAL,
    provider_message_id TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_pending_lane ON outbox (phone_number_id, wa_id, seq)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_provider_id ON outbox (provider_message_id);
CREATE INDEX IF NOT EXISTS outbox_held ON outbox (phone_number_id, wa_id) WHERE status = 'held';
CREATE TABLE IF NOT EXISTS media (
    phone_number_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    media_id TEXT NOT NULL,
    uploaded_at REAL NOT NULL,
    PRIMARY KEY (phone_number_id, sha256)
);
CREATE TABLE IF NOT EXISTS message_status (
    message_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    rank INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    errors TEXT,
    updated_at REAL NOT NULL
);
"""

# Batches are written with multi-row statements ({values}), not executemany: each statement
# releases the GIL once, where executemany's hundreds of statements each waited to get it back
# from a busy event loop (bench/webhook.py).
_INSERT_EVENT = (
    "INSERT OR IGNORE INTO inbox (event_id, message_id, kind, phone_number_id, wa_id, envelope,"
    " received_at) VALUES {values}"
)
_UPSERT_SESSION = (
    "INSERT INTO sessions (phone_number_id, wa_id, conversation, state, data, version,"
    " last_inbound_at, window_closed_at, updated_at) VALUES {values}"
    " ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET conversation = excluded.conversation,"
    " state = excluded.state, data = excluded.data, version = excluded.version,"
    " last_inbound_at = max(coalesce(sessions.last_inbound_at, excluded.last_inbound_at),"
    " coalesce(excluded.last_inbound_at, sessions.last_inbound_at)),"
    # a writer as up to date on inbound messages brings its view of the window (reopened:
    # NULL); an older one cannot undo a closure
    " window_closed_at = CASE WHEN excluded.last_inbound_at >= coalesce(sessions.last_inbound_at,"
    " 0) THEN excluded.window_closed_at ELSE max(coalesce(sessions.window_closed_at,"
    " excluded.window_closed_at), coalesce(excluded.window_closed_at, sessions.window_closed_at))"
    " END,"
    " updated_at = excluded.updated_at"
)
_INSERT_SEND = (
    "INSERT OR IGNORE INTO outbox (phone_number_id, wa_id, idempotency_key, type, payload, cause,"
    " status, when_closed, fallback, instead_of, next_attempt_at, created_at) VALUES {values}"
)
_UPSERT_STATUS = (
    "INSERT INTO message_status (message_id, status, rank, timestamp, errors, updated_at)"
    " VALUES {values} ON CONFLICT (message_id) DO UPDATE SET status = excluded.status,"
    " rank = excluded.rank, timestamp = excluded.timestamp, errors = excluded.errors,"
    " updated_at = excluded.updated_at WHERE excluded.rank > message_status.rank"
)
_FINISH_EVENT = (
    "WITH v (seq, status, error) AS (VALUES {values})"
    " UPDATE inbox_state SET status = v.status, error = v.error, processed_at = ?,"
    " claimed_by = NULL, claimed_until = NULL FROM v"
    " WHERE inbox_state.seq = v.seq AND inbox_state.claimed_by = ?"
)
# A claim creates the event's progress row, or takes it again once free (its lease expired).
_CLAIM_EVENT = (
    "INSERT INTO inbox_state (seq, phone_number_id, wa_id, attempts, claimed_by, claimed_until)"
    " VALUES {values} ON CONFLICT (seq) DO UPDATE SET attempts = inbox_state.attempts + 1,"
    " claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until"
    " WHERE inbox_state.status = 'pending' AND (inbox_state.claimed_until IS NULL"
    " OR inbox_state.claimed_until <= ?)"
)
_FINISH_SEND = (
    "WITH v (seq, status, attempts, provider_message_id, error, next_attempt_at, sent_at)"
    " AS (VALUES {values}) UPDATE outbox SET status = v.status, attempts = v.attempts,"
    " provider_message_id = v.provider_message_id, error = v.error,"
    " next_attempt_at = coalesce(v.next_attempt_at, outbox.next_attempt_at),"
    " sent_at = v.sent_at, claimed_by = NULL, claimed_until = NULL"
    " FROM v WHERE outbox.seq = v.seq AND outbox.claimed_by = ?"
)
# A closed window at delivery: the row becomes its fallback template, in place (so it keeps its
# turn in the user's order), under a key derived from the refused one (the provider answers 409
# to a key reused with another body). The fallback has no fallback: never a loop.
_FALL_BACK = (
    "UPDATE outbox SET instead_of = type, type = json_extract(fallback, '$.type'),"
    " payload = json_extract(fallback, '$.payload'), idempotency_key = idempotency_key || '-fb',"
    " when_closed = 'fail', fallback = NULL, status = 'pending', attempts = 0,"
    " next_attempt_at = ?, provider_message_id = NULL, error = ?, claimed_by = NULL,"
    " claimed_until = NULL, sent_at = NULL WHERE {where}"
)
# ... or waits, held, for the user to write again; a new key, since the provider keeps its
# answer to the old one.
_HOLD = (
    "UPDATE outbox SET status = 'held', idempotency_key = idempotency_key || '-held',"
    " provider_message_id = NULL, error = ?, claimed_by = NULL, claimed_until = NULL,"
    " sent_at = NULL WHERE {where}"
)
_CLOSE_WINDOW = (
    "UPDATE sessions SET window_closed_at = max(coalesce(window_closed_at, 0), ?)"
    " WHERE (phone_number_id, wa_id) IN (SELECT phone_number_id, wa_id FROM {table}"
    " WHERE seq IN ({seqs}))"
)
_RELEASE_HELD = (
    "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE status = 'held'"
    " AND (phone_number_id, wa_id) IN (SELECT phone_number_id, wa_id FROM inbox"
    " WHERE seq IN ({seqs}))"
)
_ROWS_PER_STATEMENT = 500

# How a transaction takes its write lock. BEGIN IMMEDIATE would lock every attached file, so
# the web process and the worker begin deferred and lock only their own file, with a write
# that changes nothing (SQLite takes a file's write lock at the first statement writing to it).
_MAIN = "DELETE FROM main.botkit_meta WHERE rowid = -1"
_INBOX = "DELETE FROM incoming.inbox WHERE seq = -1"
_BOTH = ""  # BEGIN IMMEDIATE: migrations only

_Pending = tuple[Sequence[NewEvent], float, "asyncio.Future[list[bool]]"]


def sqlite_path(url: str) -> str:
    """The file path named by a BOTKIT_DATABASE value: a path, sqlite:///rel.db or sqlite:////abs.db."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if not rest.startswith("/"):
            raise StoreError(
                f"SQLite URL {url!r} must look like sqlite:///relative.db or sqlite:////abs.db"
            )
        rest = rest[1:]
        return rest or ":memory:"
    return url


_T = TypeVar("_T")
LOCK_WAIT = 10.0  # seconds a transaction waits for another process's write before failing


class SqliteStore:
    """A Store in SQLite files: `path`, and its inbox beside it (`path` + "-inbox"); single-node.

    The web process writes only the inbox file and the worker process only the main file, so
    neither waits for the other's write lock (see _SCHEMA). Every operation is one transaction run as a single call in aiosqlite's connection
    thread: a transaction never spans event-loop iterations, so under load it takes the
    time SQLite needs, not the time the loop takes to come back to it (bench/webhook.py).
    """

    def __init__(self, path: str | Path, *, batch: int = 512) -> None:
        self.path = str(path)
        self._batch = batch
        self._db: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=4096)
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._worker_lock: int | None = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection."""
        if self._db is None:
            raise StoreError("the SQLite store is not open: use `async with store` or `.open()`")
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], _T], *, lock: str = _MAIN) -> _T:
        """Runs `work` as one transaction in the connection's thread (aiosqlite's own queue),
        holding the write lock of one file: `lock` is _MAIN or _INBOX."""
        db = self.db
        # aiosqlite has no public "run this in your thread"; _execute is what its own methods use.
        result: _T = await db._execute(_transaction, db._conn, work, lock)  # type: ignore[no-untyped-call]
        return result

    async def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Runs `work` in the connection's thread outside any write transaction (WAL reads)."""
        db = self.db
        result: _T = await db._execute(work, db._conn)  # type: ignore[no-untyped-call]
        return result

    @property
    def inbox_path(self) -> str:
        """The inbox file, beside the main one."""
        return self.path if self.path == ":memory:" else f"{self.path}-inbox"

    async def open(self) -> None:
        """Opens both files, sets WAL, creates or migrates the schema."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await self._read(partial(_attach, self.inbox_path))
            await self._read(partial(_migrate, self.path, self.inbox_path))
        except BaseException:
            await self._db.close()
            self._db = None
            raise
        self._closing = False
        self._flusher = asyncio.create_task(self._flush_forever(), name="botkit-sqlite-inbox")

    async def aclose(self) -> None:
        """Writes what is queued, then closes the connection."""
        if self._flusher is not None:
            self._closing = True  # add_events now refuses: nothing waits on a flusher that is gone
            await self._queue.join()
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._worker_lock is not None:
            os.close(self._worker_lock)  # closing the descriptor releases the lock
            self._worker_lock = None

    # -- inbox ---------------------------------------------------------------------------

    async def add_events(self, events: Sequence[NewEvent], now: float) -> list[bool]:
        """Queues the events for the next group commit and waits until they are on disk."""
        if self._flusher is None or self._closing:
            raise StoreError("the SQLite store is not open (or is closing)")
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        await self._queue.put((events, now, future))
        return await future

    async def _flush_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self._batch:
                batch.append(self._queue.get_nowait())
            try:
                results = await self._run(partial(_insert_events, batch), lock=_INBOX)
            except Exception as exc:  # every waiter learns of the failure; nothing is acked
                log.exception("inbox write failed")
                failure = StoreError(f"could not store the event: {exc}")
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
            else:
                for (_, _, future), flags in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(flags)
            for _ in batch:
                self._queue.task_done()

    async def claim_events(
        self, owner: str, limit: int, lease: float, now: float
    ) -> list[InboxItem]:
        """Claims up to `limit` pending events whose lanes are free, in order."""
        rows = await self._read(partial(_candidates, _CLAIMABLE_EVENTS, now, limit))
        held = await self._run(partial(_claim_events, rows, owner, now, lease))
        return [
            InboxItem(row[0], row[1], row[2], row[3], row[4], codec.loads(row[5]), row[6] + 1)
            for row in held
        ]

    async def renew_claims(self, owner: str, seqs: Sequence[int], lease: float, now: float) -> int:
        """Extends `owner`'s claims on the pending events `seqs` to `now + lease`; returns how many."""
        if not seqs:
            return 0
        sql = (
            "UPDATE inbox_state SET claimed_until = ? WHERE claimed_by = ? AND status = 'pending'"
            f" AND seq IN ({_marks(len(seqs))})"
        )
        cursor = await self._run(lambda db: db.execute(sql, (now + lease, owner, *seqs)))
        return int(cursor.rowcount)

    async def load_sessions(self, lanes: Sequence[tuple[str, str]]) -> dict[str, Session]:
        """The existing sessions among `lanes`, keyed by lane."""
        if not lanes:
            return {}
        return await self._read(partial(_load_sessions, lanes))

    async def complete_events(
        self, owner: str, outcomes: Sequence[EventOutcome], now: float
    ) -> None:
        """Commits a batch of processed events with their sessions, sends and statuses."""
        finished = [(o.seq, o.status, o.error) for o in outcomes]
        sessions = [_session_row(o.session, now) for o in outcomes if o.session]
        sends = [_send_row(send, now) for o in outcomes for send in o.sends]
        statuses = [_status_row(o, now) for o in outcomes if o.delivery]
        effects = _Effects(
            released=[o.seq for o in outcomes if o.release_held],
            closed=[
                (o.seq, float(o.delivery.timestamp) if o.delivery else now)
                for o in outcomes
                if o.window_closed
            ],
            refused=[o.delivery.message_id for o in outcomes if o.window_closed and o.delivery],
        )
        await self._run(
            partial(_complete_events, owner, now, finished, sessions, sends, statuses, effects)
        )

    # -- outbox --------------------------------------------------------------------------

    async def claim_outbox(
        self, owner: str, limit: int, lease: float, now: float
    ) -> list[OutboxItem]:
        """Claims up to `limit` due sends whose lanes are free, in order."""
        rows = await self._read(partial(_candidates, _CLAIMABLE_SENDS, now, limit))
        held = await self._run(partial(_claim_sends, rows, owner, now, lease))
        return [_outbox_item(row) for row in held]

    async def record_sends(self, owner: str, outcomes: Sequence[SendOutcome], now: float) -> None:
        """Stores the results of delivery attempts and releases their rows.

        A refused free-form send (`fall_back`) becomes its fallback template, or is held, and
        `window_closed` marks the user's window closed.
        """
        plain = [o for o in outcomes if o.fall_back is None]
        rows = [
            (
                o.seq,
                o.status,
                o.attempts,
                o.provider_message_id,
                o.error,
                o.next_attempt_at,
                now if o.status in (SENT, FAILED) else None,
            )
            for o in plain
        ]
        refused = [(o.seq, o.fall_back, o.error) for o in outcomes if o.fall_back is not None]
        closed = [o.seq for o in outcomes if o.window_closed]
        await self._run(partial(_record_sends, owner, now, rows, refused, closed))

    async def start_worker(self) -> None:
        """Takes the file's worker lock (one worker process per SQLite file), frees stale claims."""
        if self.path != ":memory:" and self._worker_lock is None:
            self._worker_lock = _lock_workers(self.path)
        await self.release_claims(None)

    async def media_id(self, phone_number_id: str, sha256: str) -> str | None:
        """The media id of uploaded content on a business number, if it was uploaded."""
        found = await self._one(
            "SELECT media_id FROM media WHERE phone_number_id = ? AND sha256 = ?",
            (phone_number_id, sha256),
        )
        return str(found[0]) if found else None

    async def save_media_id(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Remembers the media id of uploaded content."""
        row = (phone_number_id, sha256, media_id, time.time())
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO media (phone_number_id, sha256, media_id, uploaded_at)"
                " VALUES (?, ?, ?, ?)",
                row,
            )
        )

    async def release_claims(self, owner: str | None) -> None:
        """Releases the claims of `owner`, or every claim when owner is None."""
        await self._run(partial(_release, owner))

    async def next_send_due(self) -> float | None:
        """When the first send becomes claimable: the earliest head of a lane, due and free."""
        found = await self._one(
            "SELECT min(max(next_attempt_at, coalesce(claimed_until, 0))) FROM outbox o"
            " WHERE status = 'pending' AND NOT EXISTS (SELECT 1 FROM outbox e"
            " WHERE e.status = 'pending' AND e.phone_number_id = o.phone_number_id"
            " AND e.wa_id = o.wa_id AND e.seq < o.seq)"
        )
        return float(found[0]) if found and found[0] is not None else None

    async def backlog(self) -> tuple[int, int]:
        """Counts of pending events and pending sends."""
        found = await self._one(
            f"SELECT ({_UNFINISHED.format(what='count(*)')}),"
            " (SELECT count(*) FROM outbox WHERE status = 'pending')"
        )
        return (int(found[0]), int(found[1])) if found else (0, 0)

    # -- inspection ----------------------------------------------------------------------

    async def get_session(self, phone_number_id: str, wa_id: str) -> Session | None:
        """One user's session."""
        found = await self.load_sessions([(phone_number_id, wa_id)])
        return found.get(lane_of(phone_number_id, wa_id))

    async def outbox(self, wa_id: str | None = None) -> list[OutboxRecord]:
        """Outbox rows with their latest delivery status, in order."""
        where, args = ("WHERE o.wa_id = ?", (wa_id,)) if wa_id is not None else ("", ())
        rows = await self.db.execute_fetchall(
            "SELECT o.seq, o.phone_number_id, o.wa_id, o.idempotency_key, o.type, o.payload,"
            " o.status, o.attempts, o.provider_message_id, o.error, s.status, o.instead_of"
            " FROM outbox o"
            " LEFT JOIN message_status s ON s.message_id = o.provider_message_id"
            f" {where} ORDER BY o.seq",
            args,
        )
        return [_outbox_record(row) for row in rows]

    async def event_status(self, event_id: str) -> tuple[str, str | None] | None:
        """An inbox event's status and error."""
        found = await self._one(
            "SELECT coalesce(s.status, 'pending'), s.error FROM inbox i"
            " LEFT JOIN inbox_state s ON s.seq = i.seq WHERE i.event_id = ?",
            (event_id,),
        )
        return (found[0], found[1]) if found else None

    async def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        rows = list(await self.db.execute_fetchall(sql, args))
        return rows[0] if rows else None


# -- transactions, run in the connection's thread ---------------------------------------


def _lock_workers(path: str) -> int:
    """An exclusive lock beside the database, held while this process runs workers."""
    descriptor = os.open(f"{path}.workers.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StoreError(
            f"another process already runs botkit's workers on {path}: a SQLite store is "
            "single-node (stop the other botkit, or give each replica its own database)"
        ) from None
    return descriptor


def _transaction(
    db: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T], lock: str = _MAIN
) -> _T:
    _begin(db, lock)
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _begin(db: sqlite3.Connection, lock: str, within: float = LOCK_WAIT) -> None:
    """Begins a transaction holding `lock`, retried every few hundred microseconds while
    another connection holds it.

    SQLite's own busy handler backs off to 50-100 ms sleeps, which turn a short wait into a
    long acknowledgement tail (bench/webhook.py).
    """
    deadline = time.monotonic() + within
    pause = 0.0001
    while True:
        try:
            if lock == _BOTH:
                db.execute("BEGIN IMMEDIATE")
            else:
                db.execute("BEGIN")
                db.execute(lock)
            return
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # also BUSY_SNAPSHOT...
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.001)


_ADDED_COLUMNS = {  # schema 2: the 24-hour window and fallbacks
    "sessions": {"window_closed_at": "REAL"},
    "outbox": {
        "when_closed": "TEXT NOT NULL DEFAULT 'fail'",
        "fallback": "TEXT",
        "instead_of": "TEXT",
    },
}


def _attach(inbox_path: str, db: sqlite3.Connection) -> None:
    # SQLite's own busy handler while opening: two processes starting on a new file both
    # switch it to WAL. Transactions then use _begin's retries (busy_timeout=0, see _migrate).
    db.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT * 1000)}")
    db.execute("ATTACH DATABASE ? AS incoming", (inbox_path,))
    for pragma in (
        "PRAGMA main.journal_mode=WAL",
        "PRAGMA incoming.journal_mode=WAL",
        "PRAGMA main.synchronous=NORMAL",
        "PRAGMA incoming.synchronous=FULL",
    ):
        db.execute(pragma).fetchall()


def _migrate(path: str, inbox_path: str, db: sqlite3.Connection) -> None:
    """Creates or upgrades both files, each step a transaction that writes one file, so that a
    crash in between leaves something the next start finishes; then checks they belong
    together. Each step decides inside its transaction, so another process opening the same
    files at the same time finds the step done."""
    _transaction(db, partial(_create, path), _BOTH)
    _transaction(db, _move_inbox_out, _BOTH)  # schema 2 kept the inbox in the main file
    _transaction(db, _drop_old_inbox, _BOTH)
    _transaction(db, _stamp_version, _BOTH)
    _transaction(db, partial(_check_pair, path, inbox_path), _BOTH)
    db.execute("PRAGMA busy_timeout=0")  # see _begin


def _create(path: str, db: sqlite3.Connection) -> None:
    if _has_table(db, "main", "botkit_meta"):
        row = db.execute("SELECT value FROM main.botkit_meta WHERE key = 'schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {row[0]}, newer than this botkit's "
                f"{SCHEMA_VERSION}: upgrade botkit"
            )
    for statement in (_INBOX_SCHEMA + _SCHEMA).split(";"):
        if statement.strip():
            db.execute(statement)
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA main.table_info({table})")}
        for name, declaration in columns.items():
            if name not in present:
                db.execute(f"ALTER TABLE main.{table} ADD COLUMN {name} {declaration}")


def _has_table(db: sqlite3.Connection, schema: str, table: str) -> bool:
    sql = f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?"
    return db.execute(sql, (table,)).fetchone() is not None


def _move_inbox_out(db: sqlite3.Connection) -> None:
    if not _has_table(db, "main", "inbox"):
        return
    db.execute(
        "INSERT OR IGNORE INTO incoming.inbox (seq, event_id, message_id, kind, phone_number_id,"
        " wa_id, envelope, received_at) SELECT seq, event_id, message_id, kind, phone_number_id,"
        " wa_id, envelope, received_at FROM main.inbox"
    )


def _drop_old_inbox(db: sqlite3.Connection) -> None:
    if not _has_table(db, "main", "inbox"):
        return
    moved = db.execute(
        "SELECT count(*) FROM main.inbox o WHERE NOT EXISTS"
        " (SELECT 1 FROM incoming.inbox i WHERE i.seq = o.seq)"
    ).fetchone()[0]
    if moved:  # written since the copy (an older botkit still running?): copy them first
        raise StoreError(
            f"{moved} inbox events arrived in the old layout while it was being converted; "
            "stop every older botkit on this file and start again"
        )
    db.execute(
        "INSERT OR IGNORE INTO main.inbox_state (seq, phone_number_id, wa_id, status, attempts,"
        " processed_at, error) SELECT seq, phone_number_id, wa_id, status, attempts,"
        " processed_at, error FROM main.inbox WHERE status != 'pending' OR attempts > 0"
    )
    db.execute("DROP TABLE main.inbox")
    _raise_floor(db)


def _check_pair(path: str, inbox_path: str, db: sqlite3.Connection) -> None:
    """Refuses an inbox file that is not the main file's: missing, replaced or restored older.

    A new, empty inbox would number its events from 1 again, under the main file's floor or
    onto the progress of old events, and they would never be processed.
    """
    (floor,) = db.execute(_FLOOR.removeprefix("(").removesuffix(")")).fetchone()
    (progressed,) = db.execute("SELECT coalesce(max(seq), 0) FROM main.inbox_state").fetchone()
    (last,) = db.execute(
        "SELECT coalesce(max(seq), 0) FROM incoming.sqlite_sequence WHERE name = 'inbox'"
    ).fetchone()
    if max(floor, progressed) > last:
        raise StoreError(
            f"the inbox file {inbox_path} does not go with {path}: {path} has processed events "
            f"up to number {max(floor, progressed)}, the inbox has numbered {last}; restore "
            "the inbox file saved with it (copy both files together), or move both away to "
            "start empty"
        )


def _stamp_version(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT OR REPLACE INTO main.botkit_meta (key, value) VALUES ('schema', ?)",
        (str(SCHEMA_VERSION),),
    )


def _raise_floor(db: sqlite3.Connection) -> None:
    """Moves the inbox floor up to just below the first event not finished."""
    (floor,) = db.execute(_FLOOR.removeprefix("(").removesuffix(")")).fetchone()
    first = db.execute(_UNFINISHED.format(what="i.seq") + " ORDER BY i.seq LIMIT 1").fetchone()
    if first is not None:
        new = first[0] - 1
    else:
        (new,) = db.execute("SELECT coalesce(max(seq), ?) FROM inbox", (floor,)).fetchone()
    if new > floor:
        db.execute("UPDATE botkit_meta SET value = ? WHERE key = 'inbox_floor'", (str(new),))


def _insert_events(batch: Sequence[_Pending], db: sqlite3.Connection) -> list[list[bool]]:
    events = [event for group, _, _ in batch for event in group]
    seen_ids, seen_messages = _existing(db, events)
    rows: list[tuple[Any, ...]] = []
    results: list[list[bool]] = []
    for group, now, _ in batch:
        flags: list[bool] = []
        for event in group:
            duplicate = event.event_id in seen_ids or (
                event.message_id is not None and event.message_id in seen_messages
            )
            flags.append(not duplicate)
            if duplicate:
                continue
            seen_ids.add(event.event_id)
            if event.message_id is not None:
                seen_messages.add(event.message_id)
            rows.append(_event_row(event, now))
        results.append(flags)
    _many(_INSERT_EVENT, rows, (), db)
    return results


def _existing(db: sqlite3.Connection, events: Sequence[NewEvent]) -> tuple[set[str], set[str]]:
    ids = [event.event_id for event in events]
    messages = [event.message_id for event in events if event.message_id is not None]
    found = db.execute(
        f"SELECT event_id, message_id FROM inbox WHERE event_id IN ({_marks(len(ids))})"
        f" OR message_id IN ({_marks(len(messages))})",
        [*ids, *messages],
    ).fetchall()
    return {row[0] for row in found}, {row[1] for row in found if row[1] is not None}


# The inbox rows past the floor (below it, every event is finished) without a finished state.
_FLOOR = "(SELECT CAST(value AS INTEGER) FROM botkit_meta WHERE key = 'inbox_floor')"
_UNFINISHED = (
    "SELECT {what} FROM inbox i LEFT JOIN inbox_state s ON s.seq = i.seq"
    f" WHERE i.seq > {_FLOOR} AND (s.seq IS NULL OR s.status = 'pending')"
)
_CLAIMABLE_EVENTS = (
    _UNFINISHED.format(
        what="i.seq, i.event_id, i.kind, i.phone_number_id, i.wa_id, i.envelope,"
        " coalesce(s.attempts, 0)"
    )
    + " AND (s.claimed_until IS NULL OR s.claimed_until <= :now)"
    " AND NOT EXISTS (SELECT 1 FROM inbox_state e WHERE e.status = 'pending'"
    " AND e.phone_number_id = i.phone_number_id AND e.wa_id = i.wa_id AND e.seq < i.seq"
    " AND e.claimed_until > :now) ORDER BY i.seq LIMIT :limit"
)
_CLAIMABLE_SENDS = (
    "SELECT seq, o.phone_number_id, o.wa_id, idempotency_key, type, payload, attempts,"
    " when_closed, fallback, s.last_inbound_at, s.window_closed_at FROM outbox o"
    " LEFT JOIN sessions s ON s.phone_number_id = o.phone_number_id AND s.wa_id = o.wa_id"
    " WHERE status = 'pending' AND next_attempt_at <= :now"
    " AND (claimed_until IS NULL OR claimed_until <= :now)"
    " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.status = 'pending'"
    " AND e.phone_number_id = o.phone_number_id AND e.wa_id = o.wa_id AND e.seq < o.seq"
    " AND (e.claimed_until > :now OR e.next_attempt_at > :now)) ORDER BY seq LIMIT :limit"
)


def _candidates(sql: str, now: float, limit: int, db: sqlite3.Connection) -> list[Any]:
    """Claimable rows as of a read snapshot; `_claim_events`/`_claim_sends` take them under
    the write lock."""
    return db.execute(sql, {"now": now, "limit": limit}).fetchall()


def _claim_sends(
    rows: Sequence[Any], owner: str, now: float, lease: float, db: sqlite3.Connection
) -> list[Any]:
    """Claims outbox `rows` unless someone took them since they were read; keeps lanes in order.

    The expensive search ran outside the write lock (`_candidates`), so this transaction is
    short. A row another worker claimed in between is dropped with the rest of its lane.
    """
    if not rows:
        return []
    seqs = [row[0] for row in rows]
    marks = _marks(len(seqs))
    cursor = db.execute(
        f"UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE seq IN ({marks})"
        " AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)",
        [owner, now + lease, *seqs, now],
    )
    if cursor.rowcount == len(rows):
        return list(rows)
    return _kept(db, "outbox", (1, 2), rows, owner, now + lease)


def _kept(
    db: sqlite3.Connection,
    table: str,
    lane_at: tuple[int, int],
    rows: Sequence[Any],
    owner: str,
    until: float,
) -> list[Any]:
    """The claimed `rows` left after dropping each lane from its first row not claimed."""
    seqs = [row[0] for row in rows]
    marks = _marks(len(seqs))
    got = {
        seq
        for (seq,) in db.execute(
            f"SELECT seq FROM {table} WHERE claimed_by = ? AND claimed_until = ? AND seq IN ({marks})",
            [owner, until, *seqs],
        )
    }
    kept, broken = [], set()
    for row in rows:
        lane = (row[lane_at[0]], row[lane_at[1]])
        if lane in broken or row[0] not in got:
            broken.add(lane)
        else:
            kept.append(row)
    dropped = [seq for seq in got if seq not in {row[0] for row in kept}]
    if dropped:
        db.execute(
            f"UPDATE {table} SET claimed_by = NULL, claimed_until = NULL"
            f" WHERE seq IN ({_marks(len(dropped))})",
            dropped,
        )
    return kept


def _claim_events(
    rows: Sequence[Any], owner: str, now: float, lease: float, db: sqlite3.Connection
) -> list[Any]:
    """Claims inbox `rows` (creating their progress rows); keeps lanes in order, like _claim_sends."""
    if not rows:
        return []
    values = [(row[0], row[3], row[4], 1, owner, now + lease) for row in rows]
    if _many(_CLAIM_EVENT, values, (now,), db) == len(rows):
        return list(rows)
    return _kept(db, "inbox_state", (3, 4), rows, owner, now + lease)


def _load_sessions(lanes: Sequence[tuple[str, str]], db: sqlite3.Connection) -> dict[str, Session]:
    values = ", ".join("(?, ?)" for _ in lanes)
    # a join, not `(phone_number_id, wa_id) IN (VALUES ...)`, which SQLite runs as a full scan
    rows = db.execute(
        f"WITH v (p, w) AS (VALUES {values}) SELECT s.phone_number_id, s.wa_id, conversation,"
        " state, data, version, last_inbound_at, window_closed_at FROM v"
        " JOIN sessions s ON s.phone_number_id = v.p AND s.wa_id = v.w",
        [part for lane in lanes for part in lane],
    ).fetchall()
    return {lane_of(row[0], row[1]): _session(row) for row in rows}


def _complete_events(
    owner: str,
    now: float,
    finished: Sequence[tuple[Any, ...]],
    sessions: Sequence[tuple[Any, ...]],
    sends: Sequence[tuple[Any, ...]],
    statuses: Sequence[tuple[Any, ...]],
    effects: _Effects,
    db: sqlite3.Connection,
) -> None:
    done = _many(_FINISH_EVENT, finished, (now, owner), db)
    if done != len(finished):
        raise StoreError(
            f"{len(finished) - done} of {len(finished)} events were no longer "
            f"claimed by {owner} (lease expired?); the batch is rolled back"
        )
    _raise_floor(db)
    _many(_UPSERT_SESSION, sessions, (), db)
    _many(_INSERT_SEND, sends, (), db)
    _many(_UPSERT_STATUS, statuses, (), db)
    if effects.released:
        sql = _RELEASE_HELD.format(seqs=_marks(len(effects.released)))
        db.execute(sql, [now, *effects.released])
    for seq, closed_at in effects.closed:  # as of the status's own time: it may come late
        db.execute(_CLOSE_WINDOW.format(table="inbox", seqs="?"), [closed_at, seq])
    for message_id in effects.refused:  # a failed status with code 131047: the window was closed
        error = "the provider reported the 24-hour window closed (131047)"
        where = "provider_message_id = ? AND when_closed = '{}'"
        db.execute(_FALL_BACK.format(where=where.format(FALL_BACK)), [now, error, message_id])
        db.execute(_HOLD.format(where=where.format(HOLD)), [error, message_id])


@dataclass(frozen=True, slots=True)
class _Effects:
    """What a batch of events changes beyond its own rows."""

    released: list[int]
    closed: list[tuple[int, float]]
    refused: list[str]


def _record_sends(
    owner: str,
    now: float,
    rows: Sequence[tuple[Any, ...]],
    refused: Sequence[tuple[int, str, str | None]],
    closed: Sequence[int],
    db: sqlite3.Connection,
) -> None:
    _many(_FINISH_SEND, rows, (owner,), db)
    if closed:
        db.execute(_CLOSE_WINDOW.format(table="outbox", seqs=_marks(len(closed))), [now, *closed])
    for seq, policy, error in refused:
        if policy == FALL_BACK:
            db.execute(
                _FALL_BACK.format(where="seq = ? AND claimed_by = ?"), [now, error, seq, owner]
            )
        else:
            db.execute(_HOLD.format(where="seq = ? AND claimed_by = ?"), [error, seq, owner])


def _release(owner: str | None, db: sqlite3.Connection) -> None:
    where = "claimed_by IS NOT NULL" if owner is None else "claimed_by = ?"
    args = () if owner is None else (owner,)
    for table in ("inbox_state", "outbox"):
        sql = f"UPDATE {table} SET claimed_by = NULL, claimed_until = NULL WHERE {where}"
        db.execute(sql, args)


def _many(
    template: str, rows: Sequence[tuple[Any, ...]], extra: tuple[Any, ...], db: sqlite3.Connection
) -> int:
    """Runs `template` with its {values} filled by `rows`, a few hundred rows a statement."""
    before = db.total_changes  # cursor.rowcount is -1 for a statement that starts with WITH
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        part = rows[start : start + _ROWS_PER_STATEMENT]
        row = f"({_marks(len(part[0]))})"
        sql = template.format(values=", ".join([row] * len(part)))
        db.execute(sql, [value for each in part for value in each] + list(extra))
    return db.total_changes - before


def _marks(count: int) -> str:
    return ", ".join("?" * count) if count else "NULL"


def _event_row(event: NewEvent, now: float) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.message_id,
        event.kind,
        event.phone_number_id,
        event.wa_id,
        codec.dumps_str(event.envelope),
        now,
    )


def _session(row: sqlite3.Row | tuple[Any, ...]) -> Session:
    return Session(row[0], row[1], row[2], row[3], codec.loads(row[4]), row[5], row[6], row[7])


def _outbox_item(row: sqlite3.Row | tuple[Any, ...]) -> OutboxItem:
    fallback = codec.loads(row[8]) if row[8] is not None else None
    payload = codec.loads(row[5])
    return OutboxItem(
        row[0], row[1], row[2], row[3], row[4], payload, row[6], row[7], fallback, row[9], row[10]
    )


def _outbox_record(r: sqlite3.Row | tuple[Any, ...]) -> OutboxRecord:
    payload = codec.loads(r[5])
    return OutboxRecord(r[0], r[1], r[2], r[3], r[4], payload, r[6], r[7], r[8], r[9], r[10], r[11])


def _session_row(session: Session, now: float) -> tuple[Any, ...]:
    return (
        session.phone_number_id,
        session.wa_id,
        session.conversation,
        session.state,
        codec.dumps_str(session.data),
        session.version,
        session.last_inbound_at,
        session.window_closed_at,
        now,
    )


def _send_row(send: NewSend, now: float) -> tuple[Any, ...]:
    return (
        send.phone_number_id,
        send.wa_id,
        send.idempotency_key,
        send.type,
        codec.dumps_str(send.payload),
        send.cause,
        HELD if send.held else PENDING,
        send.when_closed,
        codec.dumps_str(send.fallback) if send.fallback is not None else None,
        send.instead_of,
        now,
        now,
    )


def _status_row(outcome: EventOutcome, now: float) -> tuple[Any, ...]:
    status = outcome.delivery
    if status is None:  # filtered by the caller
        raise StoreError("no status to record")
    rank = STATUS_RANK.get(status.status, 0)
    return (status.message_id, status.status, rank, status.timestamp, status.errors, now)
