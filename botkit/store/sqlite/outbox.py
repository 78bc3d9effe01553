"""The SQLite outbox's transactions, run in the connection's thread: claim and record, and
what changes outbox rows when the window closed (fall back, hold, a refusal from a status),
which the inbox's completions use too.

A lane's first pending send decides when the lane is due (`lanes.send_due`): a send waiting
for a retry holds back the sends after it, so that a user's replies leave in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

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
from botkit.store.sqlite.sql import many
from botkit.wire.window import WINDOW_SECONDS, Window

# A closed window at delivery: the row becomes its fallback template, in place (so it keeps its
# turn in the user's order), under a key derived from the refused one (the provider answers 409
# to a key reused with another body). The fallback has no fallback: never a loop.
FALL_BACK_SQL = (
    "UPDATE main.outbox SET instead_of = type, type = json_extract(fallback, '$.type'),"
    " payload = json_extract(fallback, '$.payload'), idempotency_key = idempotency_key || '-fb',"
    " when_closed = 'fail', fallback = NULL, status = 'pending', attempts = 0,"
    " next_attempt_at = ?, provider_message_id = NULL, error = ?, sent_at = NULL WHERE {where}"
)
# ... or waits, held, for the user to write again; a new key, since the provider keeps its
# answer to the old one.
HOLD_SQL = (
    "UPDATE main.outbox SET status = 'held', idempotency_key = idempotency_key || '-held',"
    " provider_message_id = NULL, error = ?, sent_at = NULL WHERE {where}"
)
# The first pending send of a lane (its head): when the lane is due (NULL: nothing pending).
HEAD_DUE = (
    "SELECT o.next_attempt_at FROM main.outbox o WHERE o.phone_number_id = lanes.phone_number_id"
    " AND o.wa_id = lanes.wa_id AND o.status = 'pending' ORDER BY o.seq LIMIT 1"
)
REFRESH_SEND_DUE = (
    f"WITH v (p, w) AS (VALUES {{values}}) UPDATE main.lanes SET send_due = ({HEAD_DUE})"
    " FROM v WHERE lanes.phone_number_id = v.p AND lanes.wa_id = v.w"
)
_REFUSED_ERROR = "the provider reported the 24-hour window closed (131047)"
_LANE = " RETURNING phone_number_id, wa_id"
# A refusal of a message with no send recorded is kept this long (its send may be recorded
# late; one that never is was sent by something else on the same number).
REFUSALS_KEPT = 7 * 24 * 60 * 60.0

_CLAIM = (
    "UPDATE main.lanes SET send_token = ?, send_until = ? WHERE rowid IN (SELECT rowid"
    " FROM main.lanes WHERE send_due IS NOT NULL AND send_due <= ? AND (send_until IS NULL"
    " OR send_until <= ?) ORDER BY send_due, phone_number_id, wa_id LIMIT ?)"
    " RETURNING phone_number_id, wa_id, last_inbound_at, inbound_seq, closed_seq, send_due"
)
_SENDS = (
    "WITH v (p, w) AS (VALUES {values}) SELECT o.phone_number_id, o.wa_id, o.seq,"
    " o.idempotency_key, o.type, o.payload, o.attempts, o.when_closed, o.fallback, o.media_id,"
    " o.cause, o.traceparent"
    " FROM v"
    " JOIN main.outbox o ON o.seq IN (SELECT x.seq FROM main.outbox x"
    " WHERE x.phone_number_id = v.p AND x.wa_id = v.w AND x.status = 'pending'"
    f" ORDER BY x.seq LIMIT {LANE_ITEMS}) ORDER BY o.seq"
)


def claim(
    token: str, limit: int, lease: float, now: float, db: sqlite3.Connection
) -> tuple[list[Any], list[Any]]:
    """Claims the lanes whose first pending send is due; their rows, their sends' rows and
    the position of the latest event stored (decoded by `lanes_of`, in the caller's thread)."""
    lanes = db.execute(_CLAIM, (token, now + lease, now, now, limit)).fetchall()
    if not lanes:
        return [], []
    # the latest seq the inbox numbered: its row may be pruned, its position stays
    (position,) = db.execute(
        "SELECT coalesce(max(seq), 0) FROM incoming.sqlite_sequence WHERE name = 'inbox'"
    ).fetchone()
    return [(*row, position) for row in lanes], many(
        _SENDS, [(row[0], row[1]) for row in lanes], db
    )


def lanes_of(token: str, lanes: list[Any], rows: list[Any]) -> list[OutboxLane]:
    """The claimed lanes, earliest due first, each with its sends in order and its window."""
    sends: dict[LaneKey, list[OutboxItem]] = {}
    for row in rows:
        pnid, wa_id, seq, key, kind, payload, attempts, when_closed, fallback, media = row[:10]
        cause, trace = row[10:]
        item = OutboxItem(
            seq, key, kind, codec.loads(payload), attempts, when_closed,
            None if fallback is None else codec.loads(fallback), media, cause, trace,
        )  # fmt: skip
        sends.setdefault((pnid, wa_id), []).append(item)
    lanes.sort(key=lambda row: (row[5], row[0], row[1]))
    return [
        OutboxLane(pnid, wa_id, token, tuple(sends.get((pnid, wa_id), ())),
                   Window(last_in, inbound_seq, closed_seq), position)
        for pnid, wa_id, last_in, inbound_seq, closed_seq, _, position in lanes
    ]  # fmt: skip


def next_due(now: float, db: sqlite3.Connection) -> float | None:
    """Seconds until a lane's first send can be claimed (its claim over and its time come)."""
    (due,) = db.execute(
        "SELECT min(max(send_due, coalesce(send_until, 0))) FROM main.lanes"
        " WHERE send_due IS NOT NULL"
    ).fetchone()
    return None if due is None else max(0.0, due - now)


# The results of lanes the token still holds (a lane another worker took is left alone).
_FINISH_SEND = (
    "WITH v (seq, status, attempts, provider_message_id, error, retry_in, sent_at, media_id, p,"
    " w, token) AS (VALUES {values}) UPDATE main.outbox SET status = v.status,"
    " attempts = v.attempts, provider_message_id = v.provider_message_id, error = v.error,"
    " next_attempt_at = CASE WHEN v.retry_in IS NULL THEN outbox.next_attempt_at"
    " ELSE ? + v.retry_in END, sent_at = v.sent_at, media_id = v.media_id FROM v"
    " JOIN main.lanes l ON l.phone_number_id = v.p AND l.wa_id = v.w AND l.send_token = v.token"
    " WHERE outbox.seq = v.seq AND outbox.phone_number_id = v.p AND outbox.wa_id = v.w"
)
_OWNED_ROW = (
    "seq = ? AND phone_number_id = ? AND wa_id = ? AND EXISTS (SELECT 1 FROM main.lanes l"
    " WHERE l.phone_number_id = outbox.phone_number_id AND l.wa_id = outbox.wa_id"
    " AND l.send_token = ?)"
)
# One write of the lane row: the claim freed, when its (new) first pending send is due, and
# after a 403 the window closed as of the claim's position (any message the user sends after
# that is numbered after it, and reopens it: see botkit.wire.window).
_RELEASE = (
    "WITH v (p, w, token, closed) AS (VALUES {values}) UPDATE main.lanes SET send_token = NULL,"
    f" send_until = NULL, send_due = ({HEAD_DUE}),"
    " closed_seq = CASE WHEN v.closed IS NULL THEN closed_seq"
    " ELSE max(coalesce(closed_seq, 0), v.closed) END"
    " FROM v WHERE lanes.phone_number_id = v.p AND lanes.wa_id = v.w"
    " AND lanes.send_token = v.token RETURNING lanes.phone_number_id, lanes.wa_id"
)
# Held sends of lanes whose window is open now go out (held on a window read at claim time,
# the user may have written since: their message released what was held then, not these).
_RELEASE_IF_OPEN = (  # INDEXED BY: see inbox._RELEASE_HELD
    "WITH v (p, w) AS (VALUES {values}) UPDATE main.outbox INDEXED BY outbox_held"
    " SET status = 'pending',"
    " next_attempt_at = ? FROM v JOIN main.lanes l ON l.phone_number_id = v.p AND l.wa_id = v.w"
    " WHERE outbox.status = 'held' AND outbox.phone_number_id = v.p AND outbox.wa_id = v.w"
    f" AND l.last_inbound_at + {WINDOW_SECONDS} > ?"
    " AND (l.closed_seq IS NULL OR l.closed_seq < l.inbound_seq)"
    " RETURNING outbox.phone_number_id, outbox.wa_id"
)


def record(outcomes: Sequence[SendLaneOutcome], now: float, db: sqlite3.Connection) -> list[bool]:
    """Writes each lane's attempts whose token still holds it and frees the lane; per
    outcome, True, or False when the claim was lost (nothing written)."""
    plain = [
        (r.seq, r.status, r.attempts, r.provider_message_id, r.error, r.retry_in,
         now if r.status in (SENT, FAILED) else None, r.media_id, *o.key, o.token)
        for o in outcomes
        for r in o.results
        if r.fall_back is None
    ]  # fmt: skip
    if plain:
        many(_FINISH_SEND, plain, db, now)
    for o in outcomes:
        for r in o.results:
            if r.fall_back == FALL_BACK:
                row = (r.seq, *o.key, o.token)
                db.execute(FALL_BACK_SQL.format(where=_OWNED_ROW), (now, r.error, *row))
            elif r.fall_back is not None:
                db.execute(HOLD_SQL.format(where=_OWNED_ROW), (r.error, r.seq, *o.key, o.token))
    closed = [
        (*o.key, o.token, o.position if any(r.window_closed for r in o.results) else None)
        for o in outcomes
    ]
    owned = {(row[0], row[1]) for row in many(_RELEASE, closed, db)}
    mine = [o for o in outcomes if o.key in owned]
    moved = _refused_before(mine, now, db)
    held = sorted(moved | {o.key for o in mine if any(r.fall_back == HOLD for r in o.results)})
    if held:
        moved.update((row[0], row[1]) for row in many(_RELEASE_IF_OPEN, held, db, now, now))
    if moved:
        many(REFRESH_SEND_DUE, sorted(moved), db)
    return [o.key in owned for o in outcomes]


def _refused_before(
    mine: Sequence[SendLaneOutcome], now: float, db: sqlite3.Connection
) -> set[LaneKey]:
    """Sends whose refusal (131047) was stored before their result: applied now."""
    sent = [r.provider_message_id for o in mine for r in o.results if r.provider_message_id]
    if not sent:
        return set()
    # one statement finds and forgets them
    forgotten = "DELETE FROM main.refusals WHERE message_id IN ({values}) RETURNING message_id"
    found = [row[0] for row in many(forgotten, [(m,) for m in sent], db)]
    if not found:
        return set()
    return refuse(found, now, db, remember=False)


def refuse(
    message_ids: Sequence[str], now: float, db: sqlite3.Connection, *, remember: bool
) -> set[LaneKey]:
    """Sends the provider refused with a failed status (131047) fall back, or wait held; the
    lanes whose sends changed. With `remember`, a refusal of a message no send has yet (its
    send's result is not recorded yet: the status came first) is kept for `record` to apply."""
    moved: set[LaneKey] = set()
    kept = False
    for message_id in message_ids:
        where = "provider_message_id = ? AND when_closed = '{}'"
        rows = db.execute(
            FALL_BACK_SQL.format(where=where.format("fallback")) + _LANE,
            (now, _REFUSED_ERROR, message_id),
        ).fetchall()
        rows += db.execute(
            HOLD_SQL.format(where=where.format("hold")) + _LANE, (_REFUSED_ERROR, message_id)
        ).fetchall()
        moved.update((row[0], row[1]) for row in rows)
        if remember and not rows and not _known(message_id, db):
            kept = True
            db.execute(
                "INSERT OR IGNORE INTO main.refusals (message_id, refused_at) VALUES (?, ?)",
                (message_id, now),
            )
    if kept:
        db.execute("DELETE FROM main.refusals WHERE refused_at < ?", (now - REFUSALS_KEPT,))
    return moved


def _known(message_id: str, db: sqlite3.Connection) -> bool:
    found = db.execute("SELECT 1 FROM main.outbox WHERE provider_message_id = ?", (message_id,))
    return found.fetchone() is not None
