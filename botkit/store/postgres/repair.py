"""The PostgreSQL store's repairs (see botkit/store/repair.py), each one transaction.

They lock what they change in the store's lock order (a lane's advisory lock, then `lanes`
rows, then `send_lanes` rows, then `outbox` rows; several lanes in key order), so that a
worker's claim (which skips a locked lane), completion or record (which wait for it) runs
wholly before or after them. Under the `lanes` row lock, a live claim refuses `reset` and
`forget` (LaneBusyError) and a lapsed one is taken away: the completion of its worker then
finds another token and writes nothing. `forget` holds the user's lanes' advisory locks too,
which every add of an event takes first: no event of theirs is stored meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botkit import codec
from botkit.exceptions import LaneBusyError, RepairError
from botkit.store.base import FAILED, Session
from botkit.store.postgres.inbox import lane_lock
from botkit.store.repair import (
    RETRIED,
    SENDING,
    TURN,
    EventRecord,
    Forgotten,
    SendRecord,
    UserLane,
    busy_message,
    pending_refusal,
    retry_event_id,
    retry_key,
)
from botkit.wire.window import Window

if TYPE_CHECKING:
    import asyncpg

    from botkit.store.postgres import PostgresStore

_STATUS = (
    "CASE WHEN r.status IS NOT NULL THEN r.status WHEN l.done_seq >= i.seq THEN 'done'"
    " ELSE 'pending' END"
)
_EVENT = (
    f"SELECT i.seq, i.event_id, i.kind, i.phone_number_id, i.wa_id, {_STATUS}, r.error,"
    " CASE WHEN r.status IS NOT NULL THEN r.attempts WHEN l.done_seq >= i.seq THEN NULL"
    " WHEN l.next_seq = i.seq THEN l.attempts ELSE 0 END, i.received_at, r.processed_at,"
    " i.envelope FROM inbox i LEFT JOIN event_results r ON r.seq = i.seq"
    " LEFT JOIN lanes l ON l.phone_number_id = i.phone_number_id AND l.wa_id = i.wa_id"
)
_SEND = (
    "SELECT o.seq, o.phone_number_id, o.wa_id, o.idempotency_key, o.type, o.payload, o.status,"
    " o.attempts, o.provider_message_id, o.error, s.status, o.created_at, o.sent_at, o.cause,"
    " o.instead_of FROM outbox o"
    " LEFT JOIN message_status s ON s.message_id = o.provider_message_id"
)
_LANES = (
    "SELECT l.phone_number_id, s.conversation, s.state, s.data, s.version, l.last_inbound_at,"
    " l.inbound_seq, l.closed_seq, CASE WHEN l.next_seq IS NULL THEN 0 ELSE l.pending END,"
    " (SELECT count(*) FROM outbox o WHERE o.wa_id = l.wa_id"
    " AND o.phone_number_id = l.phone_number_id AND o.status IN ('pending', 'held')),"
    " coalesce(l.event_token IS NOT NULL AND l.event_until > $2, false)"
    " OR coalesce(sl.send_token IS NOT NULL AND sl.send_until > $2, false)"
    " FROM lanes l LEFT JOIN sessions s ON s.phone_number_id = l.phone_number_id"
    " AND s.wa_id = l.wa_id LEFT JOIN send_lanes sl ON sl.phone_number_id = l.phone_number_id"
    " AND sl.wa_id = l.wa_id WHERE l.wa_id = $1 ORDER BY l.phone_number_id"
)


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


async def events(
    db: asyncpg.Connection, status: str | None, wa_id: str | None, limit: int
) -> list[EventRecord]:
    """Inbox events, newest first, of `status` and `wa_id` when given."""
    args: list[Any] = [limit]
    conditions = []
    if wa_id is not None:
        args.append(wa_id)
        n = len(args)
        conditions.append(
            f"i.wa_id = ${n} AND i.phone_number_id IN"
            f" (SELECT phone_number_id FROM lanes WHERE wa_id = ${n})"
        )
    if status is not None:
        args.append(status)
        n = len(args)
        stored = status not in ("pending", "done")
        conditions.append(
            f"i.seq IN (SELECT seq FROM event_results WHERE status = ${n})"
            if stored
            else f"{_STATUS} = ${n}"
        )
    sql = f"{_EVENT}{_where(conditions)} ORDER BY i.seq DESC LIMIT $1"
    return [_event(row) for row in await db.fetch(sql, *args)]


async def event(db: asyncpg.Connection, event_id: str) -> EventRecord | None:
    """One inbox event."""
    row = await db.fetchrow(f"{_EVENT} WHERE i.event_id = $1", event_id)
    return None if row is None else _event(row)


def _event(row: Any) -> EventRecord:
    seq, event_id, kind, pnid, wa_id, status, error, attempts, received_at, processed_at = row[:10]
    return EventRecord(
        seq, event_id, kind, pnid, wa_id, status, error, attempts, received_at, processed_at,
        codec.loads(row[10]),
    )  # fmt: skip


async def retry_event(db: asyncpg.Connection, event_id: str, now: float) -> EventRecord:
    """Queues a copy of a failed event at the end of its lane, as an add stores an event."""
    async with db.transaction():
        original = await event(db, event_id)
        if original is None:
            raise RepairError(f"no event {event_id!r} in the inbox", status=404)
        if original.status != FAILED:
            raise RepairError(
                f"event {event_id!r} is {original.status}: only a failed event can be retried"
            )
        copy_id = retry_event_id(event_id)
        key = (original.phone_number_id, original.wa_id)
        await db.fetch(
            "SELECT * FROM botkit_add_v2($1, $2, $3, $4, $5, $6, $7, $8)",
            [lane_lock(key)], [copy_id], [None], [original.kind], [key[0]], [key[1]],
            [codec.dumps_str(original.envelope)], now,
        )  # fmt: skip
        await db.execute(
            "UPDATE event_results SET status = $2 WHERE seq = $1", original.seq, RETRIED
        )
        copy = await event(db, copy_id)
    assert copy is not None  # stored just above, or by a retry before
    return copy


async def sends(
    db: asyncpg.Connection, status: str | None, wa_id: str | None, limit: int
) -> list[SendRecord]:
    """Outbox rows, newest first, of `status` and `wa_id` when given."""
    args: list[Any] = [limit]
    conditions = []
    if wa_id is not None:
        args.append(wa_id)
        conditions.append(f"o.wa_id = ${len(args)}")
    if status is not None:
        args.append(status)
        conditions.append(f"o.status = ${len(args)}")
    sql = f"{_SEND}{_where(conditions)} ORDER BY o.seq DESC LIMIT $1"
    return [_send(row) for row in await db.fetch(sql, *args)]


async def send(db: asyncpg.Connection, seq: int) -> SendRecord | None:
    """One outbox row."""
    row = await db.fetchrow(f"{_SEND} WHERE o.seq = $1", seq)
    return None if row is None else _send(row)


def _send(row: Any) -> SendRecord:
    seq, pnid, wa_id, key, kind, payload, status, attempts, provider_id, error = row[:10]
    delivery, created_at, finished_at, cause, instead_of = row[10:]
    return SendRecord(
        seq, pnid, wa_id, key, kind, codec.loads(payload), status, attempts, provider_id, error,
        delivery, created_at, finished_at, cause, instead_of,
    )  # fmt: skip


async def retry_send(db: asyncpg.Connection, seq: int, now: float) -> SendRecord:
    """Puts a failed send back to pending, due now, under a new key; its lane's row locked
    first (the lock order), then its due time computed again."""
    found = await send(db, seq)
    if found is None:
        raise RepairError(f"no send {seq} in the outbox", status=404)
    async with db.transaction():
        await db.execute(
            "SELECT 1 FROM lanes WHERE phone_number_id = $1 AND wa_id = $2 FOR UPDATE",
            found.phone_number_id,
            found.wa_id,
        )
        changed = await db.fetchval(
            "UPDATE outbox SET idempotency_key = $2, status = 'pending', attempts = 0,"
            " error = NULL, provider_message_id = NULL, media_id = NULL, sent_at = NULL,"
            " next_attempt_at = $3 WHERE seq = $1 AND status = 'failed' RETURNING seq",
            seq,
            retry_key(found.idempotency_key),
            now,
        )
        if changed is None:
            again = await send(db, seq)
            status = "gone" if again is None else again.status
            raise RepairError(f"send {seq} is {status}: only a failed send can be retried")
        await db.execute(
            "SELECT botkit_refresh_due_v1($1, $2)", [found.phone_number_id], [found.wa_id]
        )
        retried = await send(db, seq)
    assert retried is not None
    return retried


async def lanes(db: asyncpg.Connection, wa_id: str, now: float) -> list[UserLane]:
    """The user's lanes, by number."""
    found = []
    for row in await db.fetch(_LANES, wa_id, now):
        pnid, conversation, state, data, version, last_in, in_seq, closed = row[:8]
        pending, pending_sends, busy = row[8:]
        session = None
        if conversation is not None:
            session = Session(pnid, wa_id, conversation, state, codec.loads(data), version)
        window = Window(last_in, in_seq, closed)
        found.append(UserLane(pnid, wa_id, session, window, pending, pending_sends, busy))
    return found


async def _lock_lanes(db: asyncpg.Connection, wa_id: str) -> list[Any]:
    """The user's lane rows, locked in key order."""
    return list(
        await db.fetch(
            "SELECT phone_number_id, event_token, event_until, next_seq, pending FROM lanes"
            " WHERE wa_id = $1 ORDER BY phone_number_id FOR UPDATE",
            wa_id,
        )
    )


async def reset(db: asyncpg.Connection, wa_id: str, now: float) -> int:
    """Deletes the user's sessions; how many."""
    async with db.transaction():
        rows = await _lock_lanes(db, wa_id)
        if any(r["event_token"] is not None and r["event_until"] > now for r in rows):
            raise LaneBusyError(busy_message(wa_id, TURN))
        await db.execute(
            "UPDATE lanes SET event_token = NULL, event_until = NULL"
            " WHERE wa_id = $1 AND event_token IS NOT NULL",
            wa_id,
        )
        numbers = [r["phone_number_id"] for r in rows]
        await db.execute(
            "DELETE FROM timers WHERE wa_id = $1 AND phone_number_id = ANY($2::text[])",
            wa_id,
            numbers,
        )
        deleted = await db.fetchval(
            "WITH gone AS (DELETE FROM sessions WHERE wa_id = $1"
            " AND phone_number_id = ANY($2::text[]) RETURNING 1) SELECT count(*) FROM gone",
            wa_id,
            numbers,
        )
    return int(deleted)


_FORGET = """
WITH seqs AS (
    SELECT seq FROM inbox WHERE wa_id = $1 AND phone_number_id = ANY($2::text[])
), results AS (
    DELETE FROM event_results r USING seqs WHERE r.seq = seqs.seq RETURNING 1
), events AS (
    DELETE FROM inbox i USING seqs WHERE i.seq = seqs.seq RETURNING 1
), statuses AS (
    DELETE FROM message_status m USING outbox o WHERE o.wa_id = $1
        AND o.phone_number_id = ANY($2::text[]) AND m.message_id = o.provider_message_id
    RETURNING 1
), sends AS (
    DELETE FROM outbox WHERE wa_id = $1 AND phone_number_id = ANY($2::text[]) RETURNING 1
), sessions AS (
    DELETE FROM sessions WHERE wa_id = $1 AND phone_number_id = ANY($2::text[]) RETURNING 1
), timers AS (
    DELETE FROM timers WHERE wa_id = $1 AND phone_number_id = ANY($2::text[])
), send_lanes AS (
    DELETE FROM send_lanes WHERE wa_id = $1 AND phone_number_id = ANY($2::text[])
), lanes AS (
    DELETE FROM lanes WHERE wa_id = $1 AND phone_number_id = ANY($2::text[]) RETURNING 1
)
SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM events),
    (SELECT count(*) FROM results), (SELECT count(*) FROM sends),
    (SELECT count(*) FROM statuses), (SELECT count(*) FROM lanes)
"""


async def forget(db: asyncpg.Connection, wa_id: str, now: float) -> Forgotten:
    """Deletes everything stored about the user, in one statement, once nothing of theirs is
    pending or in flight."""
    async with db.transaction():
        numbers = [
            row[0]
            for row in await db.fetch(
                "SELECT phone_number_id FROM lanes WHERE wa_id = $1 ORDER BY 1", wa_id
            )
        ]
        locks = sorted(lane_lock((number, wa_id)) for number in numbers)
        await db.execute("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k", locks)
        rows = await _lock_lanes(db, wa_id)
        pending = sum(r["pending"] for r in rows if r["next_seq"] is not None)
        if pending:
            raise RepairError(pending_refusal(wa_id, pending))
        busy = await db.fetchval(
            "SELECT count(*) FROM (SELECT send_token, send_until FROM send_lanes"
            " WHERE wa_id = $1 ORDER BY phone_number_id FOR UPDATE) s"
            " WHERE s.send_token IS NOT NULL AND s.send_until > $2",
            wa_id,
            now,
        )
        if busy:
            raise LaneBusyError(busy_message(wa_id, SENDING))
        numbers = [r["phone_number_id"] for r in rows]
        found = await db.fetchrow(_FORGET, wa_id, numbers)
    assert found is not None
    return Forgotten(*(int(count) for count in found))


class PostgresRepair:
    """Repairs of a PostgresStore."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def _now(self) -> float:
        return self.store.clock.now()

    async def events(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Inbox events, newest first."""
        return await self.store.run(lambda db: events(db, status, wa_id, limit))

    async def event(self, event_id: str) -> EventRecord | None:
        """One inbox event."""
        return await self.store.run(lambda db: event(db, event_id))

    async def retry_event(self, event_id: str) -> EventRecord:
        """Queues a copy of a failed event at the end of its user's lane."""
        now = self._now()
        copy = await self.store.run(lambda db: retry_event(db, event_id, now))
        self.store.notices.request()  # other processes' workers
        self.store.inbox.notify()
        return copy

    async def sends(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[SendRecord]:
        """Outbox rows, newest first."""
        return await self.store.run(lambda db: sends(db, status, wa_id, limit))

    async def send(self, seq: int) -> SendRecord | None:
        """One outbox row."""
        return await self.store.run(lambda db: send(db, seq))

    async def retry_send(self, seq: int) -> SendRecord:
        """Puts a failed send back to pending under a new key."""
        now = self._now()
        retried = await self.store.run(lambda db: retry_send(db, seq, now))
        self.store.outbox.notify()
        return retried

    async def lanes(self, wa_id: str) -> list[UserLane]:
        """The user's lanes, by number."""
        now = self._now()
        return await self.store.run(lambda db: lanes(db, wa_id, now))

    async def reset(self, wa_id: str) -> int:
        """Deletes the user's sessions; how many."""
        now = self._now()
        return await self.store.run(lambda db: reset(db, wa_id, now))

    async def forget(self, wa_id: str) -> Forgotten:
        """Deletes everything stored about the user."""
        now = self._now()
        return await self.store.run(lambda db: forget(db, wa_id, now))
