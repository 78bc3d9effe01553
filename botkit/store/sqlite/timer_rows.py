"""The SQLite timers table (main file), and its writes in a lane's completion (inbox.py):
set or cancelled in the completion's transaction (timers.py fires)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from botkit import codec
from botkit.store.base import LaneKey
from botkit.store.timers import TimerWrite

TIMERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS main.timers (
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    name TEXT NOT NULL,
    due_at REAL NOT NULL,
    payload TEXT NOT NULL,
    timer_id TEXT NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id, name)
);
CREATE INDEX IF NOT EXISTS main.timers_due ON timers (due_at);
"""

COLUMNS = "phone_number_id, wa_id, name, due_at, payload, timer_id"
_SET = (
    f"INSERT INTO main.timers ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (phone_number_id, wa_id, name) DO UPDATE SET due_at = excluded.due_at,"
    " payload = excluded.payload, timer_id = excluded.timer_id"
)
_CANCEL = "DELETE FROM main.timers WHERE phone_number_id = ? AND wa_id = ? AND name = ?"


def encode(writes: Sequence[TimerWrite]) -> None:
    """Checks the writes can be stored (TypeError, ValueError if not), before the transaction:
    a value that cannot be fails its own lane only."""
    for each in writes:
        codec.dumps_str([each.name, each.payload, each.timer_id])


def write(lanes: Sequence[tuple[LaneKey, Sequence[TimerWrite]]], db: sqlite3.Connection) -> bool:
    """Applies committed turns' timer writes, in order (in the completion's transaction);
    True when one set a timer (the timer loop is woken)."""
    set_any = False
    for key, writes in lanes:
        for each in writes:
            if each.due_at is None:
                db.execute(_CANCEL, (*key, each.name))
                continue
            payload = codec.dumps_str(each.payload)
            db.execute(_SET, (*key, each.name, each.due_at, payload, each.timer_id))
            set_any = True
    return set_any


__all__ = ["COLUMNS", "TIMERS_SCHEMA", "encode", "write"]
