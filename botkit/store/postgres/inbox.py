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
The claim and the completion run as server-side functions (functions.py), one round trip each.
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
    PENDING,
    STATUS_RANK,
    InboxItem,
    InboxLane,
    LaneKey,
    LaneOutcome,
    NewEvent,
    Session,
    encoded,
)
from botkit.store.postgres import timer_rows as timers_sql
from botkit.store.postgres import traces
from botkit.wire.prompt import prompt_key
from botkit.wire.window import Window


def lane_lock(key: LaneKey) -> int:
    """The advisory lock key of a lane: a stable signed 64-bit hash of it."""
    digest = hashlib.blake2b(f"{key[0]}\x00{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# -- add ----------------------------------------------------------------------------------------


async def add(
    db: asyncpg.Connection, events: Sequence[NewEvent], envelopes: Sequence[str], now: float
) -> list[bool]:
    """Stores events (botkit_add_v3: one statement, its own transaction, flushed to disk
    before it returns; it notifies no one: see Notices); per event, True if new."""
    rows = await db.fetch(
        f"SELECT * FROM {traces.ADD}($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        sorted({lane_lock((e.phone_number_id, e.wa_id)) for e in events}),
        [e.event_id for e in events],
        [e.message_id for e in events],
        [e.kind for e in events],
        [e.phone_number_id for e in events],
        [e.wa_id for e in events],
        list(envelopes),
        now,
        [e.trace for e in events],
    )
    inserted = {row[0] for row in rows}
    flags = []
    for e in events:
        flags.append(e.event_id in inserted)
        inserted.discard(e.event_id)  # a second copy in the same call is a duplicate
    return flags


# -- claim --------------------------------------------------------------------------------------


async def claim(
    db: asyncpg.Connection, token: str, limit: int, lease: float, now: float
) -> list[InboxLane]:
    """Claims the lanes whose next event waits longest, each with its next events in order
    (botkit_claim_events_v2: the claim, then a read of the claimed lanes' events and sessions;
    after a claim that never completed, its events run one at a time)."""
    rows = await db.fetch(
        f"SELECT * FROM {traces.CLAIM_EVENTS}($1, $2, $3, $4)", token, now + lease, now, limit
    )
    lanes: dict[LaneKey, list[Any]] = {}  # in the order claimed: oldest first
    for row in rows:
        pnid, wa_id, attempts, last_in, inbound_seq, closed_seq, seq, event_id, kind = row[:9]
        envelope, conversation, state, data, version, trace = row[9:]
        key = (pnid, wa_id)
        if key not in lanes:
            session = None
            if conversation is not None:
                session = Session(pnid, wa_id, conversation, state, codec.loads(data), version)
            window = Window(last_in, inbound_seq, closed_seq)
            lanes[key] = [session, window, attempts, []]
        lanes[key][3].append(
            InboxItem(seq, seq, event_id, kind, pnid, wa_id, codec.loads(envelope), trace)
        )
    prompts = await _prompt_message_ids(db, [lane[0] for lane in lanes.values()])
    return [
        InboxLane(
            key[0], key[1], token, tuple(events), session, window, attempts,
            None if session is None else prompts.get(prompt_key(session.data) or ""),
        )
        for key, (session, window, attempts, events) in lanes.items()
    ]  # fmt: skip


async def _prompt_message_ids(
    db: asyncpg.Connection, sessions: Sequence[Session | None]
) -> dict[str, str]:
    """The provider's ids recorded for the sessions' latest prompts, by idempotency key: one
    round trip for the claim (none when no session remembers a prompt), one lookup a lane in
    the outbox's unique index. Read after the claim, which is as fresh or fresher: a lane's
    prompt changes only with its turn, which the claim holds."""
    keys = [key for s in sessions if s is not None for key in [prompt_key(s.data)] if key]
    if not keys:
        return {}
    rows = await db.fetch(
        "SELECT idempotency_key, provider_message_id FROM outbox"
        " WHERE idempotency_key = ANY($1::text[]) AND provider_message_id IS NOT NULL",
        keys,
    )
    return {row[0]: row[1] for row in rows}


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
    if keys is None:
        await db.execute(update + _owned(table, prefix, False), token)
    elif keys:
        await db.execute(
            update + _owned(table, prefix, True), token, [k[0] for k in keys], [k[1] for k in keys]
        )


async def next_due(db: asyncpg.Connection, now: float) -> float | None:
    """Seconds until a lane with events can be claimed: 0 now, None when no event waits."""
    # a free lane with events is found at once (index lanes_free); else the earliest end of a
    # claim (index lanes_claimed, its first entry; a lane released earlier wakes the workers)
    free_at = await db.fetchval(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM lanes WHERE next_seq IS NOT NULL"
        " AND event_token IS NULL) THEN $1"
        " ELSE (SELECT event_until FROM lanes WHERE event_token IS NOT NULL"
        " AND next_seq IS NOT NULL ORDER BY event_until LIMIT 1) END",
        now,
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
    def of(cls, outcome: LaneOutcome) -> Completion:
        """Encodes `outcome`; one that cannot be encoded is stored as its events' failure."""
        return encoded(outcome, cls._encode)

    @classmethod
    def _encode(cls, outcome: LaneOutcome) -> Completion:
        session = outcome.session
        row = None
        if session is not None:
            row = (session.conversation, session.state, codec.dumps_str(session.data),
                   session.version)  # fmt: skip
        for send in outcome.sends:
            if (send.phone_number_id, send.wa_id) != outcome.key:
                raise ValueError("a turn's sends go to its own user's lane")
        sends = [
            (send.idempotency_key, send.type, codec.dumps_str(send.payload), send.cause,
             HELD if send.held else PENDING, send.when_closed,
             None if send.fallback is None else codec.dumps_str(send.fallback), send.instead_of,
             send.trace)
            for send in outcome.sends
        ]  # fmt: skip
        # applied in order, a status replaces only a lower rank: the first of the highest wins
        latest: dict[str, tuple[Any, ...]] = {}
        for s in outcome.statuses:
            rank = STATUS_RANK.get(s.status, 0)
            if s.message_id not in latest or rank > latest[s.message_id][2]:
                latest[s.message_id] = (s.message_id, s.status, rank, s.timestamp, s.errors)
        statuses = list(latest.values())
        for values in (row or (), *sends, *statuses, outcome.refused):
            for value in values:  # text columns: PostgreSQL refuses a NUL character
                if isinstance(value, str) and "\x00" in value:
                    raise ValueError("a NUL character cannot be stored")
        timers_sql.encode(outcome.timers)
        return cls(outcome, row, sends, statuses)


@dataclass(frozen=True, slots=True)
class Completed:
    """What a completion did: whether it held its lane, and what it woke."""

    written: bool
    waiting: bool = False  # the lane still has events (they came while it ran)
    sends_due: bool = False  # sends were queued or moved


async def complete(
    db: asyncpg.Connection, completions: Sequence[Completion], now: float
) -> list[Completed]:
    """Writes each completion whose token still holds its lane (botkit_complete_v2: one
    statement for the whole group; the next event's fallback is the lane row's own `last_seq`,
    since the subquery that finds it may see an older snapshot than the row it updates)."""
    lanes, results, sends, statuses, refused = [], [], [], [], []
    for k, completion in enumerate(completions, start=1):
        outcome = completion.outcome
        window = outcome.window or Window()
        done = max((result.lane_seq for result in outcome.results), default=0)
        session = completion.session or (None, None, None, None)
        lanes.append(
            (*outcome.key, outcome.token, done, len(outcome.results), window.last_inbound_at,
             window.inbound_seq, window.closed_seq, outcome.attempts, outcome.release_held,
             *session)
        )  # fmt: skip
        results += [(k, r.seq, r.status, r.error) for r in outcome.results if r.status != DONE]
        sends += [(k, *send) for send in completion.sends]
        statuses += [(k, *status) for status in completion.statuses]
        refused += [(k, message_id) for message_id in outcome.refused]
    arguments = (
        *columns(lanes, 14),
        *columns(results, 4),
        *columns(sends, 10),
        *columns(statuses, 6),
        *columns(refused, 2),
        now,
    )
    if not any(c.outcome.timers for c in completions):
        rows = await db.fetch(_COMPLETE, *arguments)
    else:  # the timers of the lanes it wrote, in the same transaction
        async with db.transaction():
            rows = await db.fetch(_COMPLETE, *arguments)
            written = {row[0] for row in rows}
            timed = [
                (c.outcome.key, c.outcome.timers)
                for k, c in enumerate(completions, start=1)
                if k in written and c.outcome.timers
            ]
            await timers_sql.write(db, timed)
    flags = {row[0]: row[1] for row in rows}
    return [
        Completed(k in flags, bool(flags.get(k, 0) & 2), bool(flags.get(k, 0) & 4))
        for k in range(1, len(completions) + 1)
    ]


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as `width` columns: the arrays a server-side function takes (a row each index)."""
    return [[row[n] for row in rows] for n in range(width)]


_COMPLETE = f"SELECT * FROM {traces.COMPLETE}(" + ", ".join(f"${n}" for n in range(1, 38)) + ")"
