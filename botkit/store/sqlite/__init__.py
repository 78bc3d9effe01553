"""The embedded SQLite store: two files in WAL mode, one connection thread, group commits.

`SqliteStore(path)` keeps the main file at `path` and the inbox beside it (`path` + "-inbox"):
see schema.py. Every operation is one transaction run as a single call in the connection's
thread (connection.py). Adds, completions and records made at once are written together
(batch.py), each caller getting its own result.

A SQLite file is single-node: one process runs workers on it (`worker=True` takes a lock
beside the file, and frees the claims a process that died left behind).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from botkit import codec
from botkit.exceptions import StoreError
from botkit.store.base import (
    Backlog,
    Counts,
    InboxLane,
    LaneKey,
    LaneOutcome,
    NewEvent,
    OutboxLane,
    OutboxRecord,
    Pending,
    SendLaneOutcome,
    UserRecord,
    envelope_json,
)
from botkit.store.batch import GroupCommit
from botkit.store.signal import Signal
from botkit.store.sqlite import inbox as inbox_sql
from botkit.store.sqlite import outbox as outbox_sql
from botkit.store.sqlite import retention as retention_sql
from botkit.store.sqlite.connection import INBOX, MAIN, Connection, apart, transaction
from botkit.store.sqlite.path import check_path, lock_failed, opening_failed
from botkit.store.sqlite.repair import SqliteRepair
from botkit.store.sqlite.schema import attach, migrate
from botkit.store.sqlite.timers import SqliteTimers
from botkit.store.timers import TimerRecord
from botkit.types import Clock, SystemClock
from botkit.wire.window import Window


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


class SqliteStore:
    """A Store in SQLite files: `path`, and its inbox beside it; single-node."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        worker: bool = False,
        batch: int = 512,
    ) -> None:
        self.path = str(path)
        self.clock = clock or SystemClock()
        self.worker = worker
        self._db = Connection(f"botkit-sqlite:{Path(self.path).name}")
        self._worker_lock: int | None = None
        # Two writers, one a file: acknowledgements write the inbox file; the workers'
        # completions and records share the main file's transactions.
        self._adds = GroupCommit("botkit-inbox-writer", self._write_adds, batch=batch)
        # (A lane's result is not what a user waits on in a webhook: its writer lingers 2 ms.)
        self._results = GroupCommit(
            "botkit-results-writer", self._write_results, batch=batch, linger=0.002
        )
        self.inbox = _Inbox(self)
        self.outbox = _Outbox(self)
        self.sessions = _Sessions(self)
        self.media = _Media(self)
        self.inspect = _Inspection(self)
        self.retention = _Retention(self)
        self.repair = SqliteRepair(self)
        self.timers = SqliteTimers(self)

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def inbox_path(self) -> str:
        """The inbox file, beside the main one."""
        return self.path if self.path == ":memory:" else f"{self.path}-inbox"

    async def open(self) -> None:
        """Opens both files, sets WAL, creates or migrates the schema; with `worker`, takes
        the file's worker lock and frees stale claims."""
        check_path(self.path)  # before anything is created beside it
        if self.worker:  # first: a running worker's file is not migrated under it
            self._take_worker_lock()
        try:
            await self._db.open(partial(sqlite3.connect, self.path, isolation_level=None))
            await self._db.run(partial(attach, self.inbox_path))
            await self._db.run(partial(migrate, self.path, self.inbox_path))
            if self.worker:
                await self._db.run(lambda db: transaction(db, _free_claims))
        except sqlite3.Error as exc:
            await self.aclose()
            raise opening_failed(self.path, exc) from exc
        except BaseException:
            await self.aclose()
            raise
        for writer in (self._adds, self._results):
            writer.start()

    async def aclose(self) -> None:
        """Writes what is queued, then closes the connection and gives up the worker lock."""
        for writer in (self._adds, self._results):
            await writer.aclose()
        await self._db.close()
        if self._worker_lock is not None:
            os.close(self._worker_lock)  # closing the descriptor releases the lock
            self._worker_lock = None

    def _take_worker_lock(self) -> None:
        if self.path == ":memory:" or self._worker_lock is not None:
            return
        try:
            descriptor = os.open(f"{self.path}.workers.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise lock_failed(self.path, exc) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StoreError(
                f"database {self.path} is in use: another botkit process (botkit dev, run or "
                "worker) runs its workers on it; stop that one, or give this one its own file "
                "(BOTKIT_DATABASE, or --database for botkit dev). A SQLite file takes one such "
                "process; several need PostgreSQL (BOTKIT_DATABASE=postgresql://...)"
            ) from None
        self._worker_lock = descriptor

    def _check_worker(self) -> None:
        if not self.worker:
            raise StoreError(
                f"{self.path}: this store was opened without worker=True, so it cannot claim work "
                "(a SQLite file has one worker process)"
            )

    async def run(self, work: Any, *, lock: str | None = None) -> Any:
        """Runs `work(connection)` in the connection's thread; with `lock` (MAIN or INBOX), as
        a transaction holding that file's write lock."""
        if lock is None:
            return await self._db.run(work)
        return await self._db.run(lambda db: transaction(db, work, lock))

    async def _write_adds(self, arrivals: Sequence[inbox_sql.Arrival]) -> Sequence[Any]:
        results = await self._db.run(lambda db: apart(db, arrivals, inbox_sql.add, INBOX))
        return [_error(result) for result in results]

    async def _write_results(self, items: Sequence[_Result]) -> Sequence[Any]:
        now = self.clock.now()
        waiting: list[LaneKey] = []  # lanes whose next events came while they ran
        results = await self._db.run(
            lambda db: apart(db, items, partial(_results, now, waiting), MAIN)
        )
        if waiting:
            self.inbox.notify()
        if any(_moves_sends(item) for item in items):
            self.outbox.notify()
        if any(isinstance(item, inbox_sql.Completion) and item.outcome.timers for item in items):
            self.timers.notify()  # a timer may be due sooner than the loop waits
        return [_error(result) for result in results]


_Result = inbox_sql.Completion | SendLaneOutcome


def _results(
    now: float, waiting: list[LaneKey], items: Sequence[_Result], db: sqlite3.Connection
) -> list[bool]:
    """Completions, then records, in one transaction; each item's own result, in order."""
    completions = [item for item in items if isinstance(item, inbox_sql.Completion)]
    records = [item for item in items if isinstance(item, SendLaneOutcome)]
    written = iter(inbox_sql.complete(completions, now, db, waiting) if completions else [])
    recorded = iter(outbox_sql.record(records, now, db) if records else [])
    return [next(written if isinstance(item, inbox_sql.Completion) else recorded) for item in items]


def _moves_sends(item: _Result) -> bool:
    """Whether the outbox may have something due now after `item`."""
    if isinstance(item, SendLaneOutcome):
        return True  # a fallback, or a lane whose claim it frees
    return bool(item.sends) or item.moves_sends


def _error(result: Any) -> Any:
    """A write's result, with a sqlite3 error turned into the StoreError its caller gets."""
    if isinstance(result, sqlite3.Error):
        return StoreError(f"could not store it: {result}")
    return result


def _free_claims(db: sqlite3.Connection) -> None:
    """Frees every claim: with the worker lock taken, any claim is a dead process's."""
    db.execute(
        "UPDATE main.lanes SET event_token = NULL, event_until = NULL WHERE event_token IS NOT NULL"
    )
    db.execute(
        "UPDATE main.lanes SET send_token = NULL, send_until = NULL WHERE send_token IS NOT NULL"
    )


class _Inbox(Signal):
    claim_interval = 0.005  # a claim is a transaction on the one writer: gathered when busy

    def __init__(self, store: SqliteStore) -> None:
        super().__init__()
        self.store = store

    async def add(self, events: Sequence[NewEvent]) -> list[bool]:
        """Stores events durably (group commit, synchronous=FULL); True per new event."""
        try:
            envelopes = [envelope_json(event) for event in events]
        except (TypeError, ValueError) as exc:
            raise StoreError(f"an event cannot be stored: {exc}") from exc
        arrival = inbox_sql.Arrival(events, envelopes, self.store.clock.now())
        flags: list[bool] = await self.store._adds.submit(arrival)
        if any(flags):
            self.notify()
        return flags

    async def claim(self, token: str, limit: int, lease: float) -> list[InboxLane]:
        """Claims the lanes whose next events wait longest."""
        self.store._check_worker()
        now = self.store.clock.now()
        rows = await self.store.run(partial(inbox_sql.claim, token, limit, lease, now), lock=MAIN)
        return inbox_sql.lanes_of(token, *rows)

    async def renew(self, token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
        """Extends the claims `token` still holds."""
        until = self.store.clock.now() + lease
        renewed: list[LaneKey] = await self.store.run(
            partial(inbox_sql.renew, token, list(keys), until, "event"), lock=MAIN
        )
        return renewed

    async def release(
        self, token: str, keys: Sequence[LaneKey] | None = None, *, refund: bool = False
    ) -> None:
        """Frees the lanes `token` holds."""
        chosen = None if keys is None else list(keys)
        await self.store.run(partial(inbox_sql.release, token, chosen, "event", refund), lock=MAIN)
        self.notify()

    async def next_due(self) -> float | None:
        """0 when a lane can be claimed now; else until the first lease ends."""
        due: float | None = await self.store.run(
            partial(inbox_sql.next_due, self.store.clock.now())
        )
        return due

    async def complete(self, outcomes: Sequence[LaneOutcome]) -> list[bool]:
        """Commits each outcome (group commit); False where the claim was lost."""
        now = self.store.clock.now()
        items = [inbox_sql.Completion.of(outcome, now) for outcome in outcomes]
        return await _submit_each(self.store._results, items)


class _Outbox(Signal):
    claim_interval = 0.005  # a claim is a transaction on the one writer: gathered when busy

    def __init__(self, store: SqliteStore) -> None:
        super().__init__()
        self.store = store

    async def claim(self, token: str, limit: int, lease: float) -> list[OutboxLane]:
        """Claims the lanes whose first pending send is due."""
        self.store._check_worker()
        now = self.store.clock.now()
        rows = await self.store.run(partial(outbox_sql.claim, token, limit, lease, now), lock=MAIN)
        return outbox_sql.lanes_of(token, *rows)

    async def renew(self, token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
        """Extends the claims `token` still holds."""
        until = self.store.clock.now() + lease
        renewed: list[LaneKey] = await self.store.run(
            partial(inbox_sql.renew, token, list(keys), until, "send"), lock=MAIN
        )
        return renewed

    async def release(
        self, token: str, keys: Sequence[LaneKey] | None = None, *, refund: bool = False
    ) -> None:
        """Frees the lanes `token` holds (an outbox claim counts no attempt)."""
        chosen = None if keys is None else list(keys)
        await self.store.run(partial(inbox_sql.release, token, chosen, "send", False), lock=MAIN)
        self.notify()

    async def next_due(self) -> float | None:
        """Seconds until the earliest lane's first send can be claimed."""
        due: float | None = await self.store.run(
            partial(outbox_sql.next_due, self.store.clock.now())
        )
        return due

    async def record(self, outcomes: Sequence[SendLaneOutcome]) -> list[bool]:
        """Records each lane's attempts (group commit); False where the claim was lost."""
        return await _submit_each(self.store._results, outcomes)


async def _submit_each(writer: GroupCommit[_Result, bool], items: Sequence[_Result]) -> list[bool]:
    """Each item through the group commit (a single one without a task of its own)."""
    if len(items) == 1:
        return [await writer.submit(items[0])]
    return list(await asyncio.gather(*(writer.submit(item) for item in items)))


class _Sessions:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def get(self, phone_number_id: str, wa_id: str) -> UserRecord:
        """One user's session and window."""
        found: UserRecord = await self.store.run(partial(_user, phone_number_id, wa_id))
        return found


def _user(phone_number_id: str, wa_id: str, db: sqlite3.Connection) -> UserRecord:
    session = db.execute(
        "SELECT phone_number_id, wa_id, conversation, state, data, version FROM main.sessions"
        " WHERE phone_number_id = ? AND wa_id = ?",
        (phone_number_id, wa_id),
    ).fetchone()
    window = db.execute(
        "SELECT last_inbound_at, inbound_seq, closed_seq FROM main.lanes"
        " WHERE phone_number_id = ? AND wa_id = ?",
        (phone_number_id, wa_id),
    ).fetchone()
    return UserRecord(
        None if session is None else inbox_sql.session_of(session),
        Window(*window) if window is not None else Window(),
    )


def _record(r: Sequence[Any]) -> OutboxRecord:
    payload = codec.loads(r[5])
    return OutboxRecord(r[0], r[1], r[2], r[3], r[4], payload, r[6], r[7], r[8], r[9], r[10], r[11])


class _Media:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def get(self, phone_number_id: str, sha256: str, max_age: float) -> str | None:
        """The id of content uploaded from this number less than `max_age` seconds ago."""
        since = self.store.clock.now() - max_age
        found = await self.store.run(
            lambda db: db.execute(
                "SELECT media_id FROM main.media WHERE phone_number_id = ? AND sha256 = ?"
                " AND uploaded_at > ?",
                (phone_number_id, sha256, since),
            ).fetchone()
        )
        return str(found[0]) if found else None

    async def put(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Remembers an upload, as of now."""
        row = (phone_number_id, sha256, media_id, self.store.clock.now())
        await self.store.run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO main.media (phone_number_id, sha256, media_id,"
                " uploaded_at) VALUES (?, ?, ?, ?)",
                row,
            ),
            lock=MAIN,
        )

    async def forget(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Forgets `media_id`, unless another upload replaced it."""
        await self.store.run(
            lambda db: db.execute(
                "DELETE FROM main.media WHERE phone_number_id = ? AND sha256 = ? AND media_id = ?",
                (phone_number_id, sha256, media_id),
            ),
            lock=MAIN,
        )


class _Inspection:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def backlog(self) -> Backlog:
        """Events not completed, sends pending."""
        events: int = await self.store.run(inbox_sql.backlog)
        found = await self.store.run(
            lambda db: db.execute(
                "SELECT count(*) FROM main.outbox WHERE status = 'pending'"
            ).fetchone()
        )
        return Backlog(events, int(found[0]))

    async def outbox(self, wa_id: str | None = None) -> list[OutboxRecord]:
        """Outbox rows with their latest delivery status, in order."""
        where, args = ("WHERE o.wa_id = ?", (wa_id,)) if wa_id is not None else ("", ())
        rows = await self.store.run(
            lambda db: db.execute(
                "SELECT o.seq, o.phone_number_id, o.wa_id, o.idempotency_key, o.type, o.payload,"
                " o.status, o.attempts, o.provider_message_id, o.error, s.status, o.instead_of"
                " FROM main.outbox o"
                " LEFT JOIN main.message_status s ON s.message_id = o.provider_message_id"
                f" {where} ORDER BY o.seq",
                args,
            ).fetchall()
        )
        return [_record(row) for row in rows]

    async def event_status(self, event_id: str) -> tuple[str, str | None] | None:
        """An inbox event's status and error."""
        found = await self.store.run(
            lambda db: db.execute(
                "SELECT CASE WHEN r.status IS NOT NULL THEN r.status"
                " WHEN l.done_seq >= i.seq THEN 'done' ELSE 'pending' END, r.error"
                " FROM incoming.inbox i LEFT JOIN main.event_results r ON r.seq = i.seq"
                " LEFT JOIN main.lanes l ON l.phone_number_id = i.phone_number_id"
                " AND l.wa_id = i.wa_id WHERE i.event_id = ?",
                (event_id,),
            ).fetchone()
        )
        return (found[0], found[1]) if found else None

    async def counts(self) -> Counts:
        """Events, sends and delivery statuses kept (counted: a scan of each table)."""
        found = await self.store.run(
            lambda db: db.execute(
                "SELECT (SELECT count(*) FROM incoming.inbox), (SELECT count(*) FROM main.outbox),"
                " (SELECT count(*) FROM main.message_status)"
            ).fetchone()
        )
        return Counts(int(found[0]), int(found[1]), int(found[2]))

    async def timers(self, wa_id: str | None = None) -> list[TimerRecord]:
        """Timers not yet fired, soonest first."""
        return await self.store.timers.records(wa_id)

    async def pending(self) -> Pending:
        """Work waiting, and how long the oldest event and send have waited."""
        events, sends, held, received, created = await self.store.run(inbox_sql.pending)
        now = self.store.clock.now()
        return Pending(
            events,
            sends,
            held,
            None if received is None else now - received,
            None if created is None else now - created,
        )


class _Retention:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def prune(self, before: float, limit: int) -> int:
        """Deletes up to `limit` finished events, sends and statuses older than `before`,
        each kind in transactions of its own (other work on the connection runs between)."""
        self.store._check_worker()  # only the worker writes the main file
        deleted = 0
        for kind in (retention_sql.events, retention_sql.sends, retention_sql.statuses):
            deleted += await self.store.run(partial(kind, before, limit))
        return deleted


__all__ = ["SqliteStore", "sqlite_path"]
