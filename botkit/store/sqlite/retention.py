"""The SQLite store's pruning, run in the connection's thread: finished events, sends and
delivery statuses older than the retention go, a batch at a time.

Each batch is short transactions of its own, so that claims and completions queued on the
connection run between batches. An event's rows live in both files: its result and its place
in its lane (`lane_events`) in the main file, the event itself in the inbox file, whose write
lock acknowledgements need. A batch deletes the main file's rows first, then the inbox's, each
in a transaction of its own (so the inbox's lock is held only for its own delete). Candidates
are read from the inbox, so a crash between the two leaves inbox rows that the next batch
finds and finishes.

Nothing here moves a position: a lane's `done_seq`, the inbox cursor and the inbox's
AUTOINCREMENT counter (which `_check_pair` and the outbox's claim position read) stay, so
seqs are never reused and an emptied inbox still goes with its main file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from botkit.store.sqlite.connection import INBOX, MAIN, transaction
from botkit.store.sqlite.sql import ROWS_PER_STATEMENT, many

# Finished events (their lane's done position passed them) that arrived before a time, oldest
# first. Only rows under the horizon are read: rows past it are young, and reading them would
# make every round scan the whole retention window.
_FINISHED_EVENTS = (
    "SELECT i.seq, i.phone_number_id, i.wa_id FROM incoming.inbox i JOIN main.lanes l"
    " ON l.phone_number_id = i.phone_number_id AND l.wa_id = i.wa_id"
    " WHERE i.seq < ? AND i.received_at < ? AND i.seq <= l.done_seq ORDER BY i.seq LIMIT ?"
)
_FORGET_RESULTS = "DELETE FROM main.event_results WHERE seq IN ({values})"
# One term a row: SQLite looks each up by the whole key (a row-value IN reads the whole lane).
_LANE_EVENT = "(phone_number_id = ? AND wa_id = ? AND seq = ?)"
_DELETE_EVENTS = "DELETE FROM incoming.inbox WHERE seq IN ({values})"
# Through the partial index outbox_finished, oldest first: never a pending or held row.
_DELETE_SENDS = (
    "DELETE FROM main.outbox WHERE seq IN (SELECT seq FROM main.outbox"
    " WHERE status IN ('sent', 'failed') AND sent_at < ? ORDER BY sent_at LIMIT ?)"
)
# Through the index message_status_updated, oldest first.
_DELETE_STATUSES = (
    "DELETE FROM main.message_status WHERE rowid IN (SELECT rowid FROM main.message_status"
    " WHERE updated_at < ? ORDER BY updated_at LIMIT ?)"
)


def events(before: float, limit: int, db: sqlite3.Connection) -> int:
    """Deletes up to `limit` finished events that arrived before `before`, with their results
    and lane index rows; how many."""
    found: list[Any] = transaction(db, lambda conn: _forget_events(before, limit, conn), MAIN)
    if found:
        transaction(
            db, lambda conn: many(_DELETE_EVENTS, [(row[0],) for row in found], conn), INBOX
        )
    return len(found)


def _forget_events(before: float, limit: int, db: sqlite3.Connection) -> list[Any]:
    """The main file's part: finds the events (in the inbox), deletes their results and lane
    index rows; returns them."""
    found = db.execute(_FINISHED_EVENTS, (_horizon(before, db), before, limit)).fetchall()
    if found:
        many(_FORGET_RESULTS, [(row[0],) for row in found], db)
        _forget_lane_events([(row[1], row[2], row[0]) for row in found], db)
    return found


def _forget_lane_events(keys: Sequence[tuple[Any, ...]], db: sqlite3.Connection) -> None:
    """Deletes the `lane_events` rows of `keys` (phone_number_id, wa_id, seq)."""
    for start in range(0, len(keys), ROWS_PER_STATEMENT):
        part = keys[start : start + ROWS_PER_STATEMENT]
        where = " OR ".join([_LANE_EVENT] * len(part))
        db.execute(f"DELETE FROM main.lane_events WHERE {where}", [v for key in part for v in key])


def _horizon(before: float, db: sqlite3.Connection) -> int:
    """The first inbox seq that arrived at or after `before` (one past the last when none did).

    A binary search over seq, a few dozen lookups by key: the inbox is numbered in commit
    order, each row stamped as it arrives, so arrival times grow with seq. Should the clock
    step back, rows above the horizon are only pruned later, never too early (each row's own
    time is checked too).
    """
    # apart: each alone is one step down the primary key; together SQLite scanned an index
    # of the whole inbox (a second at a million users: bench/users.py --explain)
    (low,) = db.execute("SELECT min(seq) FROM incoming.inbox").fetchone()
    (high,) = db.execute("SELECT max(seq) FROM incoming.inbox").fetchone()
    if low is None:
        return 0
    first_young = high + 1
    while low <= high:
        middle = (low + high) // 2
        seq, received_at = db.execute(
            "SELECT seq, received_at FROM incoming.inbox WHERE seq >= ? ORDER BY seq LIMIT 1",
            (middle,),
        ).fetchone()
        if received_at < before:  # it and every row before it are old
            low = seq + 1
        else:
            first_young, high = seq, middle - 1
    return int(first_young)


def sends(before: float, limit: int, db: sqlite3.Connection) -> int:
    """Deletes up to `limit` sends sent or failed before `before`; how many."""
    return transaction(db, lambda conn: conn.execute(_DELETE_SENDS, (before, limit)).rowcount)


def statuses(before: float, limit: int, db: sqlite3.Connection) -> int:
    """Deletes up to `limit` delivery statuses last updated before `before`; how many."""
    return transaction(db, lambda conn: conn.execute(_DELETE_STATUSES, (before, limit)).rowcount)
