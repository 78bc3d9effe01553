"""The PostgreSQL store: one database shared by any number of botkit processes, on any number
of machines, with the guarantees one process has.

`PostgresStore(url)` opens a bounded pool of connections (`pool_size`) and, in a process that
runs workers (`listen`), one more that listens: acknowledgements notify (LISTEN/NOTIFY, after
they commit: notices.py) every process's workers, which otherwise poll. What a worker's own
commits make claimable wakes its own loops only. Every operation is one
transaction, correct when any number of processes run it at once (inbox.py and outbox.py say
why); one that loses a deadlock or a serialization conflict is run again.

Durability as in the SQLite store: acknowledgements commit synchronously, and adds made at
once share one transaction (a group commit: one flush to disk for all of them, where each
would cost one); the workers' claims, completions and records commit asynchronously
(synchronous_commit off: no wait for the flush), since one lost in a crash of the database
server is redone, under the same idempotency keys.

A database that is down, restarting or unreachable gives StoreError (the webhook answers 503
and the provider delivers again; the workers pause and claim again); the pool reconnects when
it is back. The store's clock decides when leases end: the machines' clocks must agree (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from botkit import codec
from botkit.config import DEFAULT_DATABASE_POOL
from botkit.exceptions import StoreError
from botkit.store.base import (
    PENDING,
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
    Session,
    UserRecord,
    envelope_json,
)
from botkit.store.batch import GroupCommit
from botkit.store.postgres import functions
from botkit.store.postgres import inbox as inbox_sql
from botkit.store.postgres import outbox as outbox_sql
from botkit.store.postgres.notices import Notices
from botkit.store.postgres.repair import PostgresRepair
from botkit.store.postgres.schema import migrate
from botkit.store.postgres.timers import PostgresTimers
from botkit.store.signal import Signal
from botkit.store.timers import TimerRecord
from botkit.types import Clock, SystemClock
from botkit.wire.window import Window

log = logging.getLogger(__name__)

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - an item of a group commit
R = TypeVar("R")
Work = Callable[[asyncpg.Connection], Awaitable[T]]


CONNECT_TIMEOUT = 5.0  # seconds to open a connection
ACQUIRE_TIMEOUT = 10.0  # seconds to wait for a free connection of the pool
RETRIES = 5  # of a transaction that lost a deadlock or a serialization conflict
LISTEN_RETRY = 1.0  # seconds between attempts to listen again after losing the connection
LISTEN_CHECK = 30.0  # seconds between checks that the listening connection still answers
COMMAND_TIMEOUT = 30.0  # seconds a statement may take

# Errors that say the database cannot be reached now (down, restarting, network), as opposed
# to a statement it refused.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
_CONFLICTS: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


def redacted(url: str) -> str:
    """`url` without its password (for messages and logs), whatever else is wrong with it."""
    parts = urlsplit(url)
    credentials, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def is_postgres_url(url: str) -> bool:
    """Whether a BOTKIT_DATABASE value names a PostgreSQL database."""
    return url.startswith(("postgres://", "postgresql://"))


class PostgresStore:
    """A Store in a PostgreSQL database, for any number of processes and machines."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        pool_size: int = DEFAULT_DATABASE_POOL,
        listen: bool = True,
    ) -> None:
        if pool_size < 1:
            raise StoreError(f"a PostgreSQL pool needs at least 1 connection, not {pool_size}")
        self.url = url
        self.clock = clock or SystemClock()
        self.pool_size = pool_size
        self.listen = listen
        self._pool: asyncpg.Pool | None = None
        self.schema_found: int | None = None  # the schema version open() found (0: none)
        self._listener: asyncio.Task[None] | None = None
        # An add waits for the disk (a few ms a commit): when webhooks come often and only a
        # few wait, 2 ms more gathers a larger group (three replicas on this machine: groups
        # of one or two events, 1,560 acknowledged/s; lingering, 2,150-2,350/s). At most 256:
        # each event's lane takes an advisory lock, from a table the server sizes at
        # max_locks_per_transaction x max_connections (6,400 by default).
        self._adds = GroupCommit(
            "botkit-pg-inbox-writer", self._write_adds, batch=256, linger=0.002, company=8
        )
        # the workers' commits, a statement per group (not latency-bound: they linger 2 ms)
        self._completions = GroupCommit(
            "botkit-pg-completions", self._write_completions, batch=256, linger=0.002, company=8
        )
        self._records = GroupCommit(
            "botkit-pg-records", self._write_records, batch=256, linger=0.002, company=8
        )
        self._writers = (self._adds, self._completions, self._records)
        self.notices = Notices(self.run, functions.INBOX_CHANNEL)
        self.inbox = _Inbox(self)
        self.outbox = _Outbox(self)
        self.sessions = _Sessions(self)
        self.media = _Media(self)
        self.inspect = _Inspection(self)
        self.pacing = _Pacing(self)
        self.retention = _Retention(self)
        self.repair = PostgresRepair(self)
        self.timers = PostgresTimers(self)

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connects (a clear StoreError if it cannot), creates or migrates the schema (one
        process at a time), and starts listening for other processes' wake-ups."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                timeout=CONNECT_TIMEOUT,
                max_inactive_connection_lifetime=60.0,
                # a statement that takes longer (a connection half-open after a failover: no
                # reset ever comes) fails as unavailable instead of holding its writer
                command_timeout=COMMAND_TIMEOUT,
                server_settings={
                    # the workers' transactions; an acknowledgement turns it on for its own
                    "synchronous_commit": "off",
                    # Every statement of this store finds rows by key or through an index. A
                    # plan cached while a table was small (a new deployment's first minute)
                    # would scan it whole at every call as it grows (bench/webhook.py, pg3:
                    # most of the server's time): never choose a table scan where an index
                    # serves.
                    "enable_seqscan": "off",
                    # ... and a table scan left (no index) costs so much to the planner that
                    # it would compile the statement (JIT, 100 ms): never worth it here
                    "jit": "off",
                },
                reset=_reset,
            )
        except Exception as exc:
            raise StoreError(_cannot_connect(self.url, exc)) from exc
        try:
            self.schema_found = await self.run(migrate, retry=False)
        except StoreError as exc:
            await self.aclose()
            denied = (asyncpg.InsufficientPrivilegeError, asyncpg.InvalidSchemaNameError)
            if isinstance(exc.__cause__, denied):
                raise StoreError(
                    f"PostgreSQL at {redacted(self.url)}: {_reason(exc.__cause__)}; botkit "
                    "creates its tables at start-up: give the user the schema (GRANT USAGE, "
                    "CREATE ON SCHEMA public TO the user), or start it once as the owner"
                ) from exc
            raise
        except BaseException:
            await self.aclose()
            raise
        for writer in self._writers:
            writer.start()
        self.notices.start()
        if self.listen:
            ready = asyncio.get_running_loop().create_future()
            self._listener = asyncio.create_task(self._listen(ready), name="botkit-pg-listen")
            await ready

    async def aclose(self) -> None:
        """Writes the adds queued, stops listening, then closes the pool (waiting for what
        runs); twice is harmless."""
        for writer in self._writers:
            await writer.aclose()
        await self.notices.aclose()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10.0)
            except Exception:  # closing takes too long or fails: cut the connections
                pool.terminate()

    async def run(self, work: Work[T], *, retry: bool = True) -> T:
        """Runs `work(connection)` on a pooled connection; StoreError when the database is
        unavailable or refuses it; again (a few times) after a deadlock or a conflict."""
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open: use `async with store` or .open()")
        for attempt in range(RETRIES):
            try:
                async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as db:
                    return await work(cast(asyncpg.Connection, db))  # a proxy of one
            except _CONFLICTS:
                if not retry or attempt == RETRIES - 1:
                    raise StoreError(
                        "could not store it: gave up after repeated conflicts"
                    ) from None
                await asyncio.sleep(0.005 * 2**attempt)
            except StoreError:
                raise
            except _UNAVAILABLE as exc:
                raise StoreError(
                    f"the database at {redacted(self.url)} is unavailable: {_reason(exc)}"
                ) from exc
            except asyncpg.PostgresError as exc:
                raise StoreError(f"could not store it: {_reason(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write_adds(self, arrivals: Sequence[_Arrival]) -> list[list[bool] | BaseException]:
        """Adds of several callers in one transaction; if the database refuses it, each
        caller's in a transaction of its own (so that one that cannot be stored fails alone)."""
        events = [event for arrival in arrivals for event in arrival.events]
        envelopes = [envelope for arrival in arrivals for envelope in arrival.envelopes]
        now = self.clock.now()
        try:
            flags = await self.run(lambda db: inbox_sql.add(db, events, envelopes, now))
        except StoreError as exc:
            if len(arrivals) == 1 or isinstance(exc.__cause__, _UNAVAILABLE):
                return [exc] * len(arrivals)
            return [await self._write_apart(arrival, now) for arrival in arrivals]
        results: list[list[bool] | BaseException] = []
        start = 0
        for arrival in arrivals:
            results.append(flags[start : start + len(arrival.events)])
            start += len(arrival.events)
        return results

    async def _write_completions(
        self, completions: Sequence[inbox_sql.Completion]
    ) -> list[inbox_sql.Completed | BaseException]:
        now = self.clock.now()
        return await self._grouped(
            completions, lambda items: lambda db: inbox_sql.complete(db, items, now)
        )

    async def _write_records(
        self, outcomes: Sequence[SendLaneOutcome]
    ) -> list[bool | BaseException]:
        now = self.clock.now()
        return await self._grouped(
            outcomes, lambda items: lambda db: outbox_sql.record(db, items, now)
        )

    async def _grouped(
        self, items: Sequence[I], work: Callable[[Sequence[I]], Work[list[R]]]
    ) -> list[R | BaseException]:
        """`work` for the whole group, in one statement; if the database refuses it, each item
        apart, so that one it cannot take fails alone."""
        try:
            return list(await self.run(work(items)))
        except StoreError as exc:
            if len(items) == 1 or isinstance(exc.__cause__, _UNAVAILABLE):
                return [exc] * len(items)
        results: list[R | BaseException] = []
        for item in items:
            try:
                results += await self.run(work([item]))
            except StoreError as exc:
                results.append(exc)
        return results

    async def _write_apart(self, arrival: _Arrival, now: float) -> list[bool] | BaseException:
        try:
            return await self.run(
                lambda db: inbox_sql.add(db, arrival.events, arrival.envelopes, now)
            )
        except StoreError as exc:
            return exc

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """Holds a connection that LISTENs for wake-ups; connects again when it is lost."""
        channels = {
            functions.INBOX_CHANNEL: self.inbox.notify,
        }
        while True:
            lost = asyncio.Event()
            db: asyncpg.Connection | None = None
            try:
                db = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
                db.add_termination_listener(_waker(lost.set))
                for channel, wake in channels.items():
                    await db.add_listener(channel, _waker(wake))
                if ready.done():  # wake-ups may have been missed while not listening
                    for wake in channels.values():
                        wake()
                else:
                    ready.set_result(None)
                while not lost.is_set():  # a connection gone silent is never "lost" by itself
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=LISTEN_CHECK)
                    except TimeoutError:
                        await db.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT)
                log.warning("lost the connection that listens for wake-ups; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not ready.done():  # the first time: workers poll until it works
                    ready.set_result(None)
                log.warning("cannot listen for wake-ups (%s); polling meanwhile", _reason(exc))
            finally:
                if db is not None and not db.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(db.close(), timeout=1.0)
            await asyncio.sleep(LISTEN_RETRY)


async def _reset(db: asyncpg.Connection) -> None:
    """A connection given back to the pool: only a transaction left open is undone (asyncpg's
    default reset costs a round trip per use, for session state this store never leaves)."""
    if db.is_in_transaction():
        await db.execute("ROLLBACK")


def _waker(wake: Callable[[], None]) -> Callable[..., None]:
    def on_notify(*_: Any) -> None:
        wake()

    return on_notify


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _cannot_connect(url: str, exc: BaseException) -> str:
    where = redacted(url)
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        check = "check the user name and password in BOTKIT_DATABASE, and pg_hba.conf"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        check = "the database does not exist: create it (createdb) or fix its name in the URL"
    elif isinstance(exc, asyncpg.InsufficientPrivilegeError):
        check = "the user may not connect to it: GRANT CONNECT, CREATE on the database"
    elif isinstance(exc, _UNAVAILABLE):
        check = "check that PostgreSQL runs there and accepts TCP connections (host, port)"
    else:
        check = "check BOTKIT_DATABASE"
    return f"cannot connect to PostgreSQL at {where}: {_reason(exc)}; {check}"


@dataclass(frozen=True, slots=True)
class _Arrival:
    """One caller's events, encoded, for the group commit."""

    events: Sequence[NewEvent]
    envelopes: list[str]


class _Queue(Signal):
    # a claim is a round trip and a transaction on the server every worker shares: at most 20
    # a second per busy loop (bench/webhook.py pg3: a claim every 5 ms, mostly of one lane,
    # cost the server a third of its time; every 20 ms, claims of ~6 events and pg3/pg1
    # 0.66-0.78 in four runs; every 50 ms, ~20 events and 0.62-0.99 in five). An idle loop
    # still claims at once when woken.
    claim_interval = 0.05

    def __init__(self, store: PostgresStore) -> None:
        super().__init__()
        self.store = store

    def _now(self) -> float:
        return self.store.clock.now()


class _Inbox(_Queue):
    async def add(self, events: Sequence[NewEvent]) -> list[bool]:
        """Stores events durably (one transaction); True per new event."""
        try:
            envelopes = [envelope_json(event) for event in events]
        except (TypeError, ValueError) as exc:
            raise StoreError(f"an event cannot be stored: {exc}") from exc
        flags: list[bool] = await self.store._adds.submit(_Arrival(events, envelopes))
        if any(flags):
            self.store.notices.request()  # other processes' workers
            self.notify()  # this process's
        return flags

    async def claim(self, token: str, limit: int, lease: float) -> list[InboxLane]:
        """Claims the lanes whose next events wait longest."""
        now = self._now()
        return await self.store.run(lambda db: inbox_sql.claim(db, token, limit, lease, now))

    async def renew(self, token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
        """Extends the claims `token` still holds."""
        until = self._now() + lease
        return await self.store.run(
            lambda db: inbox_sql.renew(db, "lanes", "event", token, keys, until)
        )

    async def release(
        self, token: str, keys: Sequence[LaneKey] | None = None, *, refund: bool = False
    ) -> None:
        """Frees the lanes `token` holds."""
        await self.store.run(
            lambda db: inbox_sql.release(db, "lanes", "event", token, keys, refund)
        )
        self.notify()

    async def next_due(self) -> float | None:
        """0 when a lane can be claimed now; else until the first lease ends."""
        now = self._now()
        return await self.store.run(lambda db: inbox_sql.next_due(db, now))

    async def complete(self, outcomes: Sequence[LaneOutcome]) -> list[bool]:
        """Commits each outcome (group commit); False where the claim was lost."""
        writer = self.store._completions
        done: list[inbox_sql.Completed] = list(
            await asyncio.gather(
                *(writer.submit(inbox_sql.Completion.of(outcome)) for outcome in outcomes)
            )
        )
        if any(c.waiting for c in done):
            self.notify()
        if any(outcome.timers for outcome in outcomes):
            self.store.timers.notify()  # a timer may be due sooner than the loop waits
        if any(c.sends_due for c in done):
            self.store.outbox.notify()
        return [c.written for c in done]


class _Outbox(_Queue):
    async def claim(self, token: str, limit: int, lease: float) -> list[OutboxLane]:
        """Claims the lanes whose first pending send is due."""
        now = self._now()
        return await self.store.run(lambda db: outbox_sql.claim(db, token, limit, lease, now))

    async def renew(self, token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
        """Extends the claims `token` still holds."""
        until = self._now() + lease
        return await self.store.run(
            lambda db: inbox_sql.renew(db, "send_lanes", "send", token, keys, until)
        )

    async def release(
        self, token: str, keys: Sequence[LaneKey] | None = None, *, refund: bool = False
    ) -> None:
        """Frees the lanes `token` holds (an outbox claim counts no attempt)."""
        await self.store.run(
            lambda db: inbox_sql.release(db, "send_lanes", "send", token, keys, False)
        )
        self.notify()

    async def next_due(self) -> float | None:
        """Seconds until the earliest lane's first send can be claimed."""
        now = self._now()
        return await self.store.run(lambda db: outbox_sql.next_due(db, now))

    async def record(self, outcomes: Sequence[SendLaneOutcome]) -> list[bool]:
        """Records each lane's attempts (group commit); False where the claim was lost."""
        writer = self.store._records
        written = list(await asyncio.gather(*(writer.submit(outcome) for outcome in outcomes)))
        self.notify()
        return written


class _Sessions:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def get(self, phone_number_id: str, wa_id: str) -> UserRecord:
        """One user's session and window."""
        row = await self.store.run(
            lambda db: db.fetchrow(
                "SELECT s.conversation, s.state, s.data, s.version, l.last_inbound_at,"
                " l.inbound_seq, l.closed_seq FROM (SELECT $1::text AS p, $2::text AS w) v"
                " LEFT JOIN sessions s ON s.phone_number_id = v.p AND s.wa_id = v.w"
                " LEFT JOIN lanes l ON l.phone_number_id = v.p AND l.wa_id = v.w",
                phone_number_id,
                wa_id,
            )
        )
        assert row is not None  # one row, from the VALUES
        conversation, state, data, version, last_in, inbound_seq, closed_seq = row
        session = None
        if conversation is not None:
            session = Session(
                phone_number_id, wa_id, conversation, state, codec.loads(data), version
            )
        window = Window() if inbound_seq is None else Window(last_in, inbound_seq, closed_seq)
        return UserRecord(session, window)


class _Media:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def get(self, phone_number_id: str, sha256: str, max_age: float) -> str | None:
        """The id of content uploaded from this number less than `max_age` seconds ago."""
        since = self.store.clock.now() - max_age
        found: str | None = await self.store.run(
            lambda db: db.fetchval(
                "SELECT media_id FROM media WHERE phone_number_id = $1 AND sha256 = $2"
                " AND uploaded_at > $3",
                phone_number_id,
                sha256,
                since,
            )
        )
        return found

    async def put(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Remembers an upload, as of now."""
        now = self.store.clock.now()
        await self.store.run(
            lambda db: db.execute(
                "INSERT INTO media (phone_number_id, sha256, media_id, uploaded_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (phone_number_id, sha256) DO UPDATE"
                " SET media_id = excluded.media_id, uploaded_at = excluded.uploaded_at",
                phone_number_id,
                sha256,
                media_id,
                now,
            )
        )

    async def forget(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Forgets `media_id`, unless another upload replaced it."""
        await self.store.run(
            lambda db: db.execute(
                "DELETE FROM media WHERE phone_number_id = $1 AND sha256 = $2 AND media_id = $3",
                phone_number_id,
                sha256,
                media_id,
            )
        )


# GCRA in one statement: the bucket's next slot moves `interval` on, from now if it had passed.
# Times are the store's clock (the machines' clocks, kept in step by NTP, as for leases): the
# caller sleeps until its slot by the same clock, whatever the round trip took (timed by the
# database's clock, a slow answer made every wait late by its own delay, and slots of several
# processes bunched up at the provider).
_RESERVE = """
INSERT INTO rate_buckets AS b (key, next_at) VALUES ($1::text, $3::float8 + $2::float8)
ON CONFLICT (key) DO UPDATE SET next_at = greatest(b.next_at, $3::float8) + $2::float8
RETURNING next_at - $2::float8
"""


class _Pacing:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def reserve(self, bucket: str, interval: float) -> float:
        """Takes the bucket's next slot; seconds until it."""
        now = self.store.clock.now()
        slot: float = await self.store.run(lambda db: db.fetchval(_RESERVE, bucket, interval, now))
        return max(0.0, float(slot) - self.store.clock.now())


# Each kind oldest first, through an index, a short transaction of its own; rows another
# process is deleting are skipped, so that replicas pruning at once never wait for each other.
_PRUNE_EVENTS = """
WITH gone AS (
    DELETE FROM inbox WHERE seq IN (
        SELECT i.seq FROM inbox i JOIN lanes l
            ON l.phone_number_id = i.phone_number_id AND l.wa_id = i.wa_id
        WHERE i.received_at < $1 AND i.seq <= l.done_seq
        ORDER BY i.received_at LIMIT $2 FOR UPDATE OF i SKIP LOCKED
    ) RETURNING seq
), results AS (
    DELETE FROM event_results r USING gone WHERE r.seq = gone.seq
)
SELECT count(*) FROM gone
"""
_PRUNE_SENDS = """
WITH gone AS (
    DELETE FROM outbox WHERE seq IN (
        SELECT seq FROM outbox WHERE status IN ('sent', 'failed') AND sent_at < $1
        ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ) RETURNING 1
) SELECT count(*) FROM gone
"""
_PRUNE_STATUSES = """
WITH gone AS (
    DELETE FROM message_status WHERE message_id IN (
        SELECT message_id FROM message_status WHERE updated_at < $1
        ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ) RETURNING 1
) SELECT count(*) FROM gone
"""


class _Retention:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def prune(self, before: float, limit: int) -> int:
        """Deletes up to `limit` finished events, sends and statuses older than `before`."""
        if limit < 1:
            raise ValueError(f"prune needs a limit of at least 1, not {limit}")
        deleted = 0
        for statement in (_PRUNE_EVENTS, _PRUNE_SENDS, _PRUNE_STATUSES):
            deleted += await self._delete(statement, before, limit)
        return deleted

    async def _delete(self, statement: str, before: float, limit: int) -> int:
        found = await self.store.run(lambda db: db.fetchval(statement, before, limit))
        return int(found)


class _Inspection:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def backlog(self) -> Backlog:
        """Events not completed, sends pending."""
        row = await self.store.run(
            lambda db: db.fetchrow(
                # lanes with events, free or claimed, through their indexes: as many as wait
                "SELECT (SELECT coalesce(sum(pending), 0) FROM lanes WHERE next_seq IS NOT NULL"
                " AND event_token IS NULL) + (SELECT coalesce(sum(pending), 0) FROM lanes"
                " WHERE event_token IS NOT NULL AND next_seq IS NOT NULL),"
                " (SELECT count(*) FROM outbox WHERE status = 'pending')"
            )
        )
        assert row is not None
        return Backlog(int(row[0]), int(row[1]))

    async def outbox(self, wa_id: str | None = None) -> list[OutboxRecord]:
        """Outbox rows with their latest delivery status, in order."""
        rows = await self.store.run(
            lambda db: db.fetch(
                "SELECT o.seq, o.phone_number_id, o.wa_id, o.idempotency_key, o.type, o.payload,"
                " o.status, o.attempts, o.provider_message_id, o.error, s.status, o.instead_of"
                " FROM outbox o LEFT JOIN message_status s ON s.message_id = o.provider_message_id"
                " WHERE $1::text IS NULL OR o.wa_id = $1 ORDER BY o.seq",
                wa_id,
            )
        )
        return [OutboxRecord(r[0], r[1], r[2], r[3], r[4], codec.loads(r[5]), *r[6:]) for r in rows]

    async def counts(self) -> Counts:
        """Events, sends and delivery statuses kept (counted: a scan of each table)."""
        row = await self.store.run(
            lambda db: db.fetchrow(
                "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM outbox),"
                " (SELECT count(*) FROM message_status)"
            )
        )
        assert row is not None
        return Counts(int(row[0]), int(row[1]), int(row[2]))

    async def pending(self) -> Pending:
        """Work waiting, and how long the oldest event and send have waited."""
        backlog = await self.backlog()
        row = await self.store.run(
            lambda db: db.fetchrow(
                # the lanes' next events, free and claimed apart (through their indexes)
                "SELECT (SELECT received_at FROM inbox WHERE seq = least("
                " (SELECT min(next_seq) FROM lanes WHERE next_seq IS NOT NULL"
                " AND event_token IS NULL), (SELECT min(next_seq) FROM lanes"
                " WHERE event_token IS NOT NULL AND next_seq IS NOT NULL))),"
                " (SELECT min(created_at) FROM outbox WHERE status = 'pending'),"
                " (SELECT count(*) FROM outbox WHERE status = 'held')"
            )
        )
        assert row is not None
        now = self.store.clock.now()
        received, created = row[0], row[1]
        return Pending(
            backlog.events,
            backlog.sends,
            int(row[2]),
            None if received is None else now - received,
            None if created is None else now - created,
        )

    async def timers(self, wa_id: str | None = None) -> list[TimerRecord]:
        """Timers not yet fired, soonest first."""
        return await self.store.timers.records(wa_id)

    async def event_status(self, event_id: str) -> tuple[str, str | None] | None:
        """An inbox event's status and error."""
        row = await self.store.run(
            lambda db: db.fetchrow(
                "SELECT CASE WHEN r.status IS NOT NULL THEN r.status"
                f" WHEN l.done_seq >= i.seq THEN 'done' ELSE '{PENDING}' END, r.error"
                " FROM inbox i LEFT JOIN event_results r ON r.seq = i.seq"
                " LEFT JOIN lanes l ON l.phone_number_id = i.phone_number_id"
                " AND l.wa_id = i.wa_id WHERE i.event_id = $1",
                event_id,
            )
        )
        return None if row is None else (row[0], row[1])


__all__ = ["PostgresStore", "is_postgres_url", "redacted"]
