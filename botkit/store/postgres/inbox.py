"""The PostgreSQL inbox's statements: add, claim, renew, release and complete, each correct
with any number of processes running them at once.

**Numbering.** An event's `seq` comes from an identity column, which hands numbers out in the
order inserts run, not the order they commit. So `add` first takes a transaction-scoped
advisory lock on each lane it writes to (in one order, so two adds never deadlock), and only
then inserts: two adds to one lane run one after the other, and a lane's events commit in
`seq` order. An event can therefore never appear below its lane's `done_seq` after the
lane has moved past it, and `seq` is its position in the lane.

**Claiming.** A claim picks lanes with `SELECT ... FOR UPDATE SKIP LOCKED`: a lane row is
handed to one claimer only, because a claimer must hold the row's lock to write its token,
and PostgreSQL re-checks the condition (no live claim) against the row's latest version
after taking the lock; a row another transaction holds is skipped, not waited for, so
claimers never queue behind each other nor behind an acknowledgement. Only a lane's next
events (seq above `done_seq`) are handed out, all in one claim, under the lane's token:
no other claimer can take a later event of that lane while the claim lives, and a lane
whose claim expired is claimed again from the first event not done. The events and the
session are read by a second statement, with a snapshot taken after the claim committed, so
they include the last completion of the lane.

**Completing.** A completion writes only if its token still holds the lane (checked under
the row's lock), so a worker whose lease ran out writes nothing. The next event is found by
a subquery whose snapshot can be older than the lane row it updates (PostgreSQL re-reads
the row, not the subquery, after waiting for a lock): the row's own `last_seq` is the
fallback, so a lane with events never looks empty.

Statements that lock several lane rows lock them in key order (no deadlocks between them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from botkit import codec
from botkit.store.base import (
    DONE,
    HELD,
    LANE_ITEMS,
    PENDING,
    STATUS_RANK,
    InboxItem,
    InboxLane,
    LaneKey,
    LaneOutcome,
    NewEvent,
    Session,
    failed_outcome,
)
from botkit.store.postgres import outbox as outbox_sql
from botkit.wire.window import Window

INBOX_CHANNEL = "botkit_inbox"
OUTBOX_CHANNEL = "botkit_outbox"


def lane_lock(key: LaneKey) -> int:
    """The advisory lock key of a lane: a stable signed 64-bit hash of it."""
    digest = hashlib.blake2b(f"{key[0]}\x00{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# -- add ----------------------------------------------------------------------------------------

# unnest keeps the array's order: the caller sorts the keys
_LOCK_LANES = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k(k)"
_ADD = f"""
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
        WITH ORDINALITY AS v(event_id, message_id, kind, phone_number_id, wa_id, envelope, n)
), ins AS (
    INSERT INTO inbox (event_id, message_id, kind, phone_number_id, wa_id, envelope, received_at)
    SELECT event_id, message_id, kind, phone_number_id, wa_id, envelope, $7 FROM v ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING seq, event_id, phone_number_id, wa_id
), lanes_up AS (
    INSERT INTO lanes AS l (phone_number_id, wa_id, last_seq, next_seq, pending)
    SELECT phone_number_id, wa_id, max(seq), min(seq), count(*) FROM ins
    GROUP BY phone_number_id, wa_id ORDER BY phone_number_id, wa_id
    ON CONFLICT (phone_number_id, wa_id) DO UPDATE
    SET last_seq = greatest(l.last_seq, excluded.last_seq),
        next_seq = coalesce(l.next_seq, excluded.next_seq),
        pending = l.pending + excluded.pending
)
SELECT ins.event_id FROM ins, (SELECT pg_notify('{INBOX_CHANNEL}', '')) AS wake
"""


async def add(
    db: asyncpg.Connection, events: Sequence[NewEvent], envelopes: Sequence[str], now: float
) -> list[bool]:
    """Stores events (one transaction); per event, True if new."""
    locks = sorted({lane_lock((e.phone_number_id, e.wa_id)) for e in events})
    columns = (
        [e.event_id for e in events],
        [e.message_id for e in events],
        [e.kind for e in events],
        [e.phone_number_id for e in events],
        [e.wa_id for e in events],
        list(envelopes),
    )
    async with db.transaction():
        await db.execute(_LOCK_LANES, locks)
        rows = await db.fetch(_ADD, *columns, now)
    inserted = {row[0] for row in rows}
    flags = []
    for e in events:
        flags.append(e.event_id in inserted)
        inserted.discard(e.event_id)  # a second copy in the same call is a duplicate
    return flags


# -- claim --------------------------------------------------------------------------------------

# After a claim that never completed (attempts > 0: the worker died or its lease ran out), the
# events that claim could have held are suspects: they run one at a time, so that an event
# that kills the worker is charged the attempts alone.
_CLAIM = f"""
WITH c AS (
    SELECT phone_number_id, wa_id FROM lanes
    WHERE next_seq IS NOT NULL AND (event_until IS NULL OR event_until <= $3)
    ORDER BY next_seq LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE lanes AS l SET event_token = $1, event_until = $2, attempts = l.attempts + 1,
    suspect_until = CASE WHEN l.attempts > 0 AND l.done_seq >= coalesce(l.suspect_until, 0)
        THEN coalesce((SELECT i.seq FROM inbox i WHERE i.phone_number_id = l.phone_number_id
            AND i.wa_id = l.wa_id AND i.seq > l.done_seq ORDER BY i.seq
            OFFSET {LANE_ITEMS - 1} LIMIT 1), l.last_seq)
        ELSE l.suspect_until END
FROM c WHERE l.phone_number_id = c.phone_number_id AND l.wa_id = c.wa_id
RETURNING l.phone_number_id, l.wa_id, l.done_seq, l.next_seq, l.attempts, l.last_inbound_at,
    l.inbound_seq, l.closed_seq, l.suspect_until
"""
# The claimed lanes' next events (a few, from the first not done), each with its user's session.
_EVENTS = """
SELECT i.seq, i.event_id, i.kind, v.p, v.w, i.envelope,
    s.conversation, s.state, s.data, s.version
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[]) AS v(p, w, done, n)
CROSS JOIN LATERAL (
    SELECT x.seq, x.event_id, x.kind, x.envelope FROM inbox x
    WHERE x.phone_number_id = v.p AND x.wa_id = v.w AND x.seq > v.done
    ORDER BY x.seq LIMIT v.n
) AS i
LEFT JOIN sessions s ON s.phone_number_id = v.p AND s.wa_id = v.w
ORDER BY i.seq
"""


async def claim(
    db: asyncpg.Connection, token: str, limit: int, lease: float, now: float
) -> list[InboxLane]:
    """Claims the lanes whose next event waits longest, each with its next events in order."""
    lanes = await db.fetch(_CLAIM, token, now + lease, now, limit)
    if not lanes:
        return []
    lanes = sorted(lanes, key=lambda row: row["next_seq"])
    # suspects run one at a time (see _CLAIM)
    counts = [
        1 if row["suspect_until"] is not None and row["done_seq"] < row["suspect_until"]
        else LANE_ITEMS
        for row in lanes
    ]  # fmt: skip
    rows = await db.fetch(
        _EVENTS,
        [row["phone_number_id"] for row in lanes],
        [row["wa_id"] for row in lanes],
        [row["done_seq"] for row in lanes],
        counts,
    )
    events: dict[LaneKey, list[InboxItem]] = {}
    sessions: dict[LaneKey, Session] = {}
    for seq, event_id, kind, pnid, wa_id, envelope, *session in rows:
        key = (pnid, wa_id)
        events.setdefault(key, []).append(
            InboxItem(seq, seq, event_id, kind, pnid, wa_id, codec.loads(envelope))
        )
        if session[0] is not None and key not in sessions:
            conversation, state, data, version = session
            sessions[key] = Session(pnid, wa_id, conversation, state, codec.loads(data), version)
    return [
        InboxLane(
            row["phone_number_id"], row["wa_id"], token, tuple(events[key]), sessions.get(key),
            Window(row["last_inbound_at"], row["inbound_seq"], row["closed_seq"]),
            row["attempts"],
        )
        for row in lanes
        for key in [(row["phone_number_id"], row["wa_id"])]
        if key in events  # a claimed lane has its next event stored; never run one empty
    ]  # fmt: skip


# -- renew, release, next_due: shared with the outbox (table send_lanes, prefix send) ---------------


def _owned(table: str, prefix: str, keys: bool) -> str:
    """The rows of `table` that token $1 holds (those named by $2, $3 with `keys`), locked in
    key order."""
    chosen = (
        " AND (phone_number_id, wa_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
        if keys
        else ""
    )
    return (
        f"(phone_number_id, wa_id) IN (SELECT phone_number_id, wa_id FROM {table}"
        f" WHERE {prefix}_token = $1{chosen} ORDER BY phone_number_id, wa_id FOR UPDATE)"
    )


async def renew(
    db: asyncpg.Connection,
    table: str,
    prefix: str,
    token: str,
    keys: Sequence[LaneKey],
    until: float,
) -> list[LaneKey]:
    """Extends `token`'s claims on `keys`; returns those extended."""
    if not keys:
        return []
    rows = await db.fetch(
        f"UPDATE {table} SET {prefix}_until = $4 WHERE {_owned(table, prefix, True)}"
        " RETURNING phone_number_id, wa_id",
        token,
        [k[0] for k in keys],
        [k[1] for k in keys],
        until,
    )
    renewed = {(row[0], row[1]) for row in rows}
    return [key for key in keys if key in renewed]


async def release(
    db: asyncpg.Connection,
    table: str,
    prefix: str,
    token: str,
    keys: Sequence[LaneKey] | None,
    refund: bool,
) -> None:
    """Frees `token`'s claims (all, or those on `keys`); `refund` uncounts an event attempt."""
    attempts = ", attempts = greatest(attempts - 1, 0)" if refund and table == "lanes" else ""
    update = f"UPDATE {table} SET {prefix}_token = NULL, {prefix}_until = NULL{attempts} WHERE "
    channel = INBOX_CHANNEL if table == "lanes" else OUTBOX_CHANNEL
    async with db.transaction():
        if keys is None:
            await db.execute(update + _owned(table, prefix, False), token)
        elif keys:
            await db.execute(
                update + _owned(table, prefix, True),
                token,
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
        await db.execute("SELECT pg_notify($1, '')", channel)


async def next_due(db: asyncpg.Connection, now: float) -> float | None:
    """Seconds until a lane with events can be claimed: 0 now, None when no event waits."""
    free_at = await db.fetchval(
        "SELECT min(coalesce(event_until, 0)) FROM lanes WHERE next_seq IS NOT NULL"
    )
    return None if free_at is None else max(0.0, float(free_at) - now)


# -- complete -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Completion:
    """A lane outcome as rows, encoded before the transaction (so a value that cannot be
    stored fails its own lane only)."""

    outcome: LaneOutcome
    session: tuple[Any, ...] | None
    sends: list[tuple[Any, ...]]
    statuses: list[tuple[Any, ...]]

    @classmethod
    def of(cls, outcome: LaneOutcome, now: float) -> Completion:
        """Encodes `outcome`; one that cannot be encoded is stored as its events' failure."""
        try:
            return cls._encode(outcome, now)
        except (TypeError, ValueError) as exc:
            failed = failed_outcome(outcome, f"the outcome could not be stored: {exc}")
            return cls._encode(failed, now)

    @classmethod
    def _encode(cls, outcome: LaneOutcome, now: float) -> Completion:
        session = outcome.session
        row = None
        if session is not None:
            row = (session.conversation, session.state, codec.dumps_str(session.data),
                   session.version)  # fmt: skip
        sends = [
            (send.phone_number_id, send.wa_id, send.idempotency_key, send.type,
             codec.dumps_str(send.payload), send.cause, HELD if send.held else PENDING,
             send.when_closed, None if send.fallback is None else codec.dumps_str(send.fallback),
             send.instead_of)
            for send in outcome.sends
        ]  # fmt: skip
        for send_row in sends:  # text columns: no NUL (PostgreSQL refuses it)
            for value in send_row:
                if isinstance(value, str) and "\x00" in value:
                    raise ValueError("a NUL character cannot be stored")
        # applied in order, a status replaces only a lower rank: the first of the highest wins
        latest: dict[str, tuple[Any, ...]] = {}
        for s in outcome.statuses:
            rank = STATUS_RANK.get(s.status, 0)
            if s.message_id not in latest or rank > latest[s.message_id][2]:
                latest[s.message_id] = (s.message_id, s.status, rank, s.timestamp, s.errors)
        return cls(outcome, row, sends, list(latest.values()))


# One write of the lane row: done_seq, the claim freed, the next event, the window merged (each
# field's maximum: greatest() ignores NULL).
_OWNED = """
UPDATE lanes AS l SET done_seq = greatest(l.done_seq, $4), pending = l.pending - $5,
    attempts = 0, event_token = NULL, event_until = NULL,
    next_seq = CASE WHEN l.last_seq > greatest(l.done_seq, $4) THEN coalesce(
        (SELECT min(i.seq) FROM inbox i WHERE i.phone_number_id = l.phone_number_id
         AND i.wa_id = l.wa_id AND i.seq > greatest(l.done_seq, $4)), l.last_seq) END,
    last_inbound_at = greatest(l.last_inbound_at, $6),
    inbound_seq = greatest(l.inbound_seq, $7),
    closed_seq = greatest(l.closed_seq, $8)
WHERE l.phone_number_id = $1 AND l.wa_id = $2 AND l.event_token = $3
RETURNING l.next_seq IS NOT NULL
"""
_EVENT_RESULTS = """
INSERT INTO event_results (seq, status, error, attempts, processed_at)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::float8[])
ON CONFLICT (seq) DO UPDATE SET status = excluded.status, error = excluded.error,
    attempts = excluded.attempts, processed_at = excluded.processed_at
"""
_UPSERT_SESSION = """
INSERT INTO sessions (phone_number_id, wa_id, conversation, state, data, version, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET conversation = excluded.conversation,
    state = excluded.state, data = excluded.data, version = excluded.version,
    updated_at = excluded.updated_at
"""
_INSERT_SENDS = """
INSERT INTO outbox (phone_number_id, wa_id, idempotency_key, type, payload, cause, status,
    when_closed, fallback, instead_of, next_attempt_at, created_at)
SELECT p, w, k, t, payload, cause, status, when_closed, fallback, instead_of, $11, $11
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY
    AS v(p, w, k, t, payload, cause, status, when_closed, fallback, instead_of, n)
ORDER BY n
ON CONFLICT (idempotency_key) DO NOTHING
"""
_UPSERT_STATUSES = """
INSERT INTO message_status (message_id, status, rank, timestamp, errors, updated_at)
SELECT m, s, r, t, e, $6 FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[])
    WITH ORDINALITY AS v(m, s, r, t, e, n)
ORDER BY n
ON CONFLICT (message_id) DO UPDATE SET status = excluded.status, rank = excluded.rank,
    timestamp = excluded.timestamp, errors = excluded.errors, updated_at = excluded.updated_at
WHERE excluded.rank > message_status.rank
"""
_RELEASE_HELD = """
UPDATE outbox SET status = 'pending', next_attempt_at = $3
WHERE status = 'held' AND phone_number_id = $1 AND wa_id = $2
"""


@dataclass(slots=True)
class Completed:
    """What a completion did: whether it held its lane, and what it woke."""

    written: bool
    waiting: bool = False  # the lane still has events (they came while it ran)
    sends_due: bool = False  # sends were queued or moved


async def complete(db: asyncpg.Connection, completion: Completion, now: float) -> Completed:
    """Writes `completion` if its token still holds its lane (one transaction)."""
    outcome = completion.outcome
    window = outcome.window or Window()
    done = max((result.lane_seq for result in outcome.results), default=0)
    async with db.transaction():
        waiting = await db.fetchval(
            _OWNED, *outcome.key, outcome.token, done, len(outcome.results),
            window.last_inbound_at, window.inbound_seq, window.closed_seq,
        )  # fmt: skip
        if waiting is None:
            return Completed(False)
        results = [(r.seq, r.status, r.error) for r in outcome.results if r.status != DONE]
        if results:
            await db.execute(
                _EVENT_RESULTS,
                [r[0] for r in results],
                [r[1] for r in results],
                [r[2] for r in results],
                [outcome.attempts] * len(results),
                [now] * len(results),
            )
        if completion.session is not None:
            await db.execute(_UPSERT_SESSION, *outcome.key, *completion.session, now)
        queued = False  # new sends to go out (not held)
        if completion.sends:
            await db.execute(_INSERT_SENDS, *zip(*completion.sends, strict=True), now)
            queued = any(row[6] == PENDING for row in completion.sends)
        if completion.statuses:
            await db.execute(_UPSERT_STATUSES, *zip(*completion.statuses, strict=True), now)
        # refused first: a message of the user's in the same turn releases them
        moved = await outbox_sql.refuse(db, outcome.refused, now, remember=True)
        # the user wrote: sends held for that go out
        released = outcome.release_held and await db.execute(_RELEASE_HELD, *outcome.key, now)
        if released and released != "UPDATE 0":
            moved.add(outcome.key)
        if moved:
            await outbox_sql.refresh_due(db, moved | ({outcome.key} if queued else set()))
        elif queued:
            await outbox_sql.mark_due(db, outcome.key, now)
        if moved or queued:
            await db.execute(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
        if waiting:
            await db.execute(f"SELECT pg_notify('{INBOX_CHANNEL}', '')")
    return Completed(True, bool(waiting), bool(moved) or queued)
