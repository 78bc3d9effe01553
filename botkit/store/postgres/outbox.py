"""The PostgreSQL outbox's calls: claim, next_due and record.

A lane's first pending send decides when the lane is due (`send_lanes.send_due`): a send
waiting for a retry holds back the sends after it, so that a user's replies leave in order.
Claims take `send_lanes` rows with `FOR UPDATE SKIP LOCKED` (see inbox.py for why that hands
a lane to one claimer), and never wait for an acknowledgement or a claim of events. A lane's
due time is computed only while its `send_lanes` row is locked, by a statement that starts
after the lock was taken, so it sees every change committed to the lane's sends before it (a
statement's snapshot is taken when it starts). A record locks its users' `lanes` rows first:
a completion of the same user (a status refusing a send being recorded, a message releasing
a send being held) then runs wholly before or after it. What changes outbox rows when the
window closed (fall back, hold, a refusal from a status) is in functions.py, with the claim
and the record, each one round trip.

Lock order, everywhere: `lanes`, then `send_lanes`, then `outbox` rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from botkit import codec
from botkit.store.base import (
    LaneKey,
    OutboxItem,
    OutboxLane,
    SendLaneOutcome,
)
from botkit.store.postgres import traces
from botkit.store.postgres.inbox import columns
from botkit.wire.window import Window


async def claim(
    db: asyncpg.Connection, token: str, limit: int, lease: float, now: float
) -> list[OutboxLane]:
    """Claims the lanes whose first pending send is due, earliest first, with their sends in
    order, the user's window and the lane's position."""
    rows = await db.fetch(
        f"SELECT * FROM {traces.CLAIM_SENDS}($1, $2, $3, $4)", token, now + lease, now, limit
    )
    lanes: dict[LaneKey, tuple[Window, int, list[OutboxItem]]] = {}  # in claim order
    for pnid, wa_id, last_in, inbound_seq, closed_seq, position, seq, *send in rows:
        key = (pnid, wa_id)
        if key not in lanes:
            lanes[key] = (Window(last_in, inbound_seq, closed_seq), position, [])
        if seq is None:  # a lane with nothing pending any more
            continue
        idempotency_key, kind, payload, attempts, when_closed, fallback, media, cause, trace = send
        lanes[key][2].append(
            OutboxItem(
                seq, idempotency_key, kind, codec.loads(payload), attempts, when_closed,
                None if fallback is None else codec.loads(fallback), media, cause, trace,
            )
        )  # fmt: skip
    return [
        OutboxLane(key[0], key[1], token, tuple(sends), window, position)
        for key, (window, position, sends) in lanes.items()
    ]


async def next_due(db: asyncpg.Connection, now: float) -> float | None:
    """Seconds until a lane's first send can be claimed (its claim over and its time come)."""
    # the earliest due free lane (index send_lanes_free), or the earliest end of a claim
    # (index send_lanes_claimed, its first entry: a claimed lane's sends are due when its claim
    # ends at the latest, and a lane released earlier wakes the workers itself)
    due = await db.fetchval(
        "SELECT least((SELECT send_due FROM send_lanes WHERE send_due IS NOT NULL"
        " AND send_token IS NULL ORDER BY send_due LIMIT 1), (SELECT send_until FROM send_lanes"
        " WHERE send_token IS NOT NULL ORDER BY send_until LIMIT 1))"
    )
    return None if due is None else max(0.0, float(due) - now)


_RECORD = "SELECT * FROM botkit_record_v1(" + ", ".join(f"${n}" for n in range(1, 16)) + ")"


async def record(
    db: asyncpg.Connection, outcomes: Sequence[SendLaneOutcome], now: float
) -> list[bool]:
    """Writes each lane's attempts whose token still holds it, and frees those lanes (one
    statement for the group); per outcome, False when the claim was lost (nothing written)."""
    lanes = [
        (*o.key, o.token, o.position, any(r.window_closed for r in o.results)) for o in outcomes
    ]
    results = [
        (k, r.seq, r.status, r.attempts, r.provider_message_id, r.error, r.retry_in,
         r.media_id, r.fall_back)
        for k, o in enumerate(outcomes, start=1)
        for r in o.results
    ]  # fmt: skip
    rows = await db.fetch(_RECORD, *columns(lanes, 5), now, *columns(results, 9))
    written = {row[0] for row in rows}
    return [k in written for k in range(1, len(outcomes) + 1)]


__all__ = ["claim", "next_due", "record"]
