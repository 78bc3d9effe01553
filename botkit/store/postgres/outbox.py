"""The PostgreSQL outbox's calls: claim, next_due and record.

A lane's first pending send decides when the lane is due (`send_lanes.send_due`): a send
waiting for a retry holds back the sends after it, so that a user's replies leave in order.
Claims take `send_lanes` rows with `FOR UPDATE SKIP LOCKED` (see inbox.py for why that hands
a lane to one claimer). A lane's due time is computed only while its `send_lanes` row is
locked, by a statement that starts after the lock was taken, so it sees every change
committed to the lane's sends before it (a statement's snapshot is taken when it starts).
What changes outbox rows when the window closed (fall back, hold, a refusal from a status)
is in functions.py, with the claim and the record, each one round trip.

Lock order, everywhere: `lanes`, then `send_lanes`, then `outbox` rows.
"""

from __future__ import annotations

import asyncpg

from botkit import codec
from botkit.store.base import (
    LaneKey,
    OutboxItem,
    OutboxLane,
    SendLaneOutcome,
)
from botkit.wire.window import Window


async def claim(
    db: asyncpg.Connection, token: str, limit: int, lease: float, now: float
) -> list[OutboxLane]:
    """Claims the lanes whose first pending send is due, earliest first, with their sends in
    order, the user's window and the lane's position."""
    rows = await db.fetch(
        "SELECT * FROM botkit_claim_sends_v1($1, $2, $3, $4)", token, now + lease, now, limit
    )
    lanes: dict[LaneKey, tuple[Window, int, list[OutboxItem]]] = {}  # in claim order
    for pnid, wa_id, last_in, inbound_seq, closed_seq, position, seq, *send in rows:
        key = (pnid, wa_id)
        if key not in lanes:
            lanes[key] = (Window(last_in, inbound_seq, closed_seq), position, [])
        if seq is None:  # a lane with nothing pending any more
            continue
        idempotency_key, kind, payload, attempts, when_closed, fallback, media = send
        lanes[key][2].append(
            OutboxItem(
                seq, idempotency_key, kind, codec.loads(payload), attempts, when_closed,
                None if fallback is None else codec.loads(fallback), media,
            )
        )  # fmt: skip
    return [
        OutboxLane(key[0], key[1], token, tuple(sends), window, position)
        for key, (window, position, sends) in lanes.items()
    ]


async def next_due(db: asyncpg.Connection, now: float) -> float | None:
    """Seconds until a lane's first send can be claimed (its claim over and its time come)."""
    # a lane due and free now is found through the index on send_due; only when none is
    # are the claimed and the later ones looked at
    due = await db.fetchval(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM send_lanes WHERE send_due <= $1"
        " AND (send_until IS NULL OR send_until <= $1)) THEN $1"
        " ELSE (SELECT min(greatest(send_due, coalesce(send_until, 0))) FROM send_lanes"
        " WHERE send_due IS NOT NULL) END",
        now,
    )
    return None if due is None else max(0.0, float(due) - now)


_RECORD = "SELECT botkit_record_v1(" + ", ".join(f"${n}" for n in range(1, 15)) + ")"


async def record(db: asyncpg.Connection, outcome: SendLaneOutcome, now: float) -> bool:
    """Writes the lane's attempts if its token still holds it, and frees the lane (one
    statement); False when the claim was lost (nothing written)."""
    results = outcome.results
    written = await db.fetchval(
        _RECORD,
        *outcome.key, outcome.token, outcome.position,
        any(r.window_closed for r in results), now,
        [r.seq for r in results], [r.status for r in results], [r.attempts for r in results],
        [r.provider_message_id for r in results], [r.error for r in results],
        [r.retry_in for r in results], [r.media_id for r in results],
        [r.fall_back for r in results],
    )  # fmt: skip
    return bool(written)


__all__ = ["claim", "next_due", "record"]
