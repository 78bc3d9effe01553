"""The PostgreSQL outbox's statements: claim and record, and what changes outbox rows when the
window closed (fall back, hold, a refusal from a status), which completions use too.

A lane's first pending send decides when the lane is due (`send_lanes.send_due`): a send
waiting for a retry holds back the sends after it, so that a user's replies leave in order.
Claims take `send_lanes` rows with `FOR UPDATE SKIP LOCKED` (see inbox.py for why that hands
a lane to one claimer). A lane's due time is computed only while its `send_lanes` row is
locked, by a statement that starts after the lock was taken, so it sees every change
committed to the lane's sends before it (a statement's snapshot is taken when it starts).

Lock order, everywhere: `lanes`, then `send_lanes`, then `outbox` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from botkit import codec
from botkit.store.base import (
    FAILED,
    FALL_BACK,
    HOLD,
    LANE_ITEMS,
    SENT,
    LaneKey,
    OutboxItem,
    OutboxLane,
    SendLaneOutcome,
)
from botkit.wire.window import WINDOW_SECONDS, Window

OUTBOX_CHANNEL = "botkit_outbox"

# A closed window at delivery: the row becomes its fallback template, in place (so it keeps its
# turn in the user's order), under a key derived from the refused one (the provider answers 409
# to a key reused with another body). The fallback has no fallback: never a loop.
_FALL_BACK = """
UPDATE outbox AS o SET instead_of = o.type, type = o.fallback::json ->> 'type',
    payload = (o.fallback::json -> 'payload')::text, idempotency_key = o.idempotency_key || '-fb',
    when_closed = 'fail', fallback = NULL, status = 'pending', attempts = 0,
    next_attempt_at = $1, provider_message_id = NULL, error = $2, sent_at = NULL
"""
# ... or waits, held, for the user to write again; a new key, since the provider keeps its
# answer to the old one.
_HOLD = """
UPDATE outbox AS o SET status = 'held', idempotency_key = o.idempotency_key || '-held',
    provider_message_id = NULL, error = $1, sent_at = NULL
"""
_HEAD_DUE = """(SELECT o.next_attempt_at FROM outbox o WHERE o.phone_number_id = {p}
    AND o.wa_id = {w} AND o.status = 'pending' ORDER BY o.seq LIMIT 1)"""
_REFUSED_ERROR = "the provider reported the 24-hour window closed (131047)"
# A refusal of a message with no send recorded is kept this long (its send may be recorded
# late; one that never is was sent by something else on the same number).
REFUSALS_KEPT = 7 * 24 * 60 * 60.0


def _keys(lanes: Iterable[LaneKey]) -> tuple[list[str], list[str]]:
    ordered = sorted(lanes)
    return [k[0] for k in ordered], [k[1] for k in ordered]


async def refuse(
    db: asyncpg.Connection, message_ids: Sequence[str], now: float, *, remember: bool
) -> set[LaneKey]:
    """Sends the provider refused with a failed status (131047) fall back, or wait held; the
    lanes whose sends changed. With `remember`, a refusal of a message no send has yet is kept
    for `record` to apply."""
    if not message_ids:
        return set()
    ids = list(message_ids)
    where = " WHERE o.provider_message_id = ANY($3::text[]) AND o.when_closed = '{}'"
    rows = await db.fetch(
        _FALL_BACK + where.format("fallback") + " RETURNING o.phone_number_id, o.wa_id",
        now, _REFUSED_ERROR, ids,
    )  # fmt: skip
    rows += await db.fetch(
        _HOLD + " WHERE o.provider_message_id = ANY($2::text[]) AND o.when_closed = 'hold'"
        " RETURNING o.phone_number_id, o.wa_id",
        _REFUSED_ERROR,
        ids,
    )
    if remember:
        kept = await db.execute(
            "INSERT INTO refusals (message_id, refused_at) SELECT m, $2 FROM unnest($1::text[])"
            " AS m(m) WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.provider_message_id = m)"
            " ON CONFLICT (message_id) DO NOTHING",
            ids,
            now,
        )
        if kept != "INSERT 0 0":
            await db.execute("DELETE FROM refusals WHERE refused_at < $1", now - REFUSALS_KEPT)
    return {(row[0], row[1]) for row in rows}


async def mark_due(db: asyncpg.Connection, key: LaneKey, now: float) -> None:
    """A lane that got new pending sends is due now, unless its first send waits already."""
    await db.execute(
        "INSERT INTO send_lanes AS s (phone_number_id, wa_id, send_due) VALUES ($1, $2, $3)"
        " ON CONFLICT (phone_number_id, wa_id) DO UPDATE"
        " SET send_due = coalesce(s.send_due, excluded.send_due)",
        *key,
        now,
    )


async def refresh_due(db: asyncpg.Connection, lanes: Iterable[LaneKey]) -> None:
    """Sets when each lane's first pending send is due, after locking their rows (in order)."""
    pnids, wa_ids = _keys(lanes)
    if not pnids:
        return
    await db.execute(
        "INSERT INTO send_lanes (phone_number_id, wa_id) SELECT * FROM"
        " unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        pnids,
        wa_ids,
    )
    await db.execute(
        "SELECT 1 FROM send_lanes WHERE (phone_number_id, wa_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))"
        " ORDER BY phone_number_id, wa_id FOR UPDATE",
        pnids,
        wa_ids,
    )
    head = _HEAD_DUE.format(p="s.phone_number_id", w="s.wa_id")
    await db.execute(
        f"UPDATE send_lanes AS s SET send_due = {head} WHERE (s.phone_number_id, s.wa_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))",
        pnids,
        wa_ids,
    )


# -- claim ----------------------------------------------------------------------------------------

_CLAIM = """
WITH c AS (
    SELECT phone_number_id, wa_id FROM send_lanes
    WHERE send_due IS NOT NULL AND send_due <= $3 AND (send_until IS NULL OR send_until <= $3)
    ORDER BY send_due, phone_number_id, wa_id LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE send_lanes AS s SET send_token = $1, send_until = $2
FROM c WHERE s.phone_number_id = c.phone_number_id AND s.wa_id = c.wa_id
RETURNING s.phone_number_id, s.wa_id, s.send_due
"""
_SENDS = f"""
SELECT v.p, v.w, l.last_inbound_at, coalesce(l.inbound_seq, 0), l.closed_seq,
    coalesce(l.last_seq, 0), o.seq, o.idempotency_key, o.type, o.payload, o.attempts,
    o.when_closed, o.fallback, o.media_id
FROM unnest($1::text[], $2::text[]) AS v(p, w)
LEFT JOIN lanes l ON l.phone_number_id = v.p AND l.wa_id = v.w
LEFT JOIN LATERAL (
    SELECT * FROM outbox x WHERE x.phone_number_id = v.p AND x.wa_id = v.w
    AND x.status = 'pending' ORDER BY x.seq LIMIT {LANE_ITEMS}
) AS o ON true
ORDER BY o.seq
"""


async def claim(
    db: asyncpg.Connection, token: str, limit: int, lease: float, now: float
) -> list[OutboxLane]:
    """Claims the lanes whose first pending send is due, earliest first, with their sends in
    order, the user's window and the lane's position."""
    lanes = await db.fetch(_CLAIM, token, now + lease, now, limit)
    if not lanes:
        return []
    lanes = sorted(lanes, key=lambda row: (row[2], row[0], row[1]))
    rows = await db.fetch(_SENDS, [row[0] for row in lanes], [row[1] for row in lanes])
    sends: dict[LaneKey, list[OutboxItem]] = {}
    windows: dict[LaneKey, tuple[Window, int]] = {}
    for pnid, wa_id, last_in, inbound_seq, closed_seq, position, seq, *send in rows:
        key = (pnid, wa_id)
        windows[key] = (Window(last_in, inbound_seq, closed_seq), position)
        if seq is None:
            continue
        idempotency_key, kind, payload, attempts, when_closed, fallback, media = send
        sends.setdefault(key, []).append(
            OutboxItem(
                seq, idempotency_key, kind, codec.loads(payload), attempts, when_closed,
                None if fallback is None else codec.loads(fallback), media,
            )
        )  # fmt: skip
    return [
        OutboxLane(pnid, wa_id, token, tuple(sends.get((pnid, wa_id), ())),
                   *windows.get((pnid, wa_id), (Window(), 0)))
        for pnid, wa_id, _ in lanes
    ]  # fmt: skip


async def next_due(db: asyncpg.Connection, now: float) -> float | None:
    """Seconds until a lane's first send can be claimed (its claim over and its time come)."""
    due = await db.fetchval(
        "SELECT min(greatest(send_due, coalesce(send_until, 0))) FROM send_lanes"
        " WHERE send_due IS NOT NULL"
    )
    return None if due is None else max(0.0, float(due) - now)


# -- record ---------------------------------------------------------------------------------------

_FINISH = """
UPDATE outbox AS o SET status = v.status, attempts = v.attempts,
    provider_message_id = v.provider_message_id, error = v.error,
    next_attempt_at = CASE WHEN v.retry_in IS NULL THEN o.next_attempt_at ELSE $9 + v.retry_in END,
    sent_at = v.sent_at, media_id = v.media_id
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::float8[],
    $7::float8[], $8::text[]) AS v(seq, status, attempts, provider_message_id, error, retry_in,
    sent_at, media_id)
WHERE o.seq = v.seq AND o.phone_number_id = $10 AND o.wa_id = $11
"""
_ROW = " WHERE o.seq = $3 AND o.phone_number_id = $4 AND o.wa_id = $5"
# Held sends of the lane go out if its window is open now (held on a window read at claim
# time, the user may have written since).
_RELEASE_IF_OPEN = f"""
UPDATE outbox AS o SET status = 'pending', next_attempt_at = $3 FROM lanes l
WHERE o.status = 'held' AND o.phone_number_id = $1 AND o.wa_id = $2
    AND l.phone_number_id = $1 AND l.wa_id = $2
    AND l.last_inbound_at + {WINDOW_SECONDS} > $3
    AND (l.closed_seq IS NULL OR l.closed_seq < l.inbound_seq)
"""


class _Lost(Exception):
    """The claim was lost: undo what the transaction wrote."""


async def record(db: asyncpg.Connection, outcome: SendLaneOutcome, now: float) -> bool:
    """Writes the lane's attempts if its token still holds it, and frees the lane (one
    transaction); False when the claim was lost (nothing written)."""
    key = outcome.key
    try:
        async with db.transaction():
            if any(r.window_closed for r in outcome.results):  # lanes first: the lock order
                await db.execute(
                    "UPDATE lanes SET closed_seq = greatest(closed_seq, $3)"
                    " WHERE phone_number_id = $1 AND wa_id = $2",
                    *key,
                    outcome.position,
                )
            held = await db.fetchval(
                "SELECT 1 FROM send_lanes WHERE phone_number_id = $1 AND wa_id = $2"
                " AND send_token = $3 FOR UPDATE",
                *key,
                outcome.token,
            )
            if held is None:
                raise _Lost
            moved = await _write(db, outcome, now)
            head = _HEAD_DUE.format(p="$1", w="$2")
            await db.execute(
                f"UPDATE send_lanes SET send_token = NULL, send_until = NULL, send_due = {head}"
                " WHERE phone_number_id = $1 AND wa_id = $2",
                *key,
            )
            moved.discard(key)
            await refresh_due(db, moved)
            await db.execute(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
    except _Lost:
        return False
    return True


async def _write(db: asyncpg.Connection, outcome: SendLaneOutcome, now: float) -> set[LaneKey]:
    """The attempts' results; the other lanes whose sends moved."""
    key = outcome.key
    plain = [r for r in outcome.results if r.fall_back is None]
    if plain:
        await db.execute(
            _FINISH,
            [r.seq for r in plain],
            [r.status for r in plain],
            [r.attempts for r in plain],
            [r.provider_message_id for r in plain],
            [r.error for r in plain],
            [r.retry_in for r in plain],
            [now if r.status in (SENT, FAILED) else None for r in plain],
            [r.media_id for r in plain],
            now,
            *key,
        )
    for r in outcome.results:
        if r.fall_back == FALL_BACK:
            await db.execute(_FALL_BACK + _ROW, now, r.error, r.seq, *key)
        elif r.fall_back is not None:
            await db.execute(
                _HOLD + " WHERE o.seq = $2 AND o.phone_number_id = $3 AND o.wa_id = $4",
                r.error, r.seq, *key,
            )  # fmt: skip
    sent = [r.provider_message_id for r in outcome.results if r.provider_message_id]
    moved: set[LaneKey] = set()
    if sent:  # refusals stored before their send's result: applied now
        found = await db.fetch(
            "DELETE FROM refusals WHERE message_id = ANY($1::text[]) RETURNING message_id", sent
        )
        moved = await refuse(db, [row[0] for row in found], now, remember=False)
    if moved or any(r.fall_back == HOLD for r in outcome.results):
        for lane in sorted(moved | {key}):
            await db.execute(_RELEASE_IF_OPEN, *lane, now)
    return moved
