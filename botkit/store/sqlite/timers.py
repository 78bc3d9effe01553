"""The SQLite store's timers: a table of the main file, written with each lane's completion.

Firing is two writes, each the usual one of its file: the due timers' events are added to the
inbox file (its group commit, deduplicated by event id), then the rows are deleted from the
main file, each only if it is still the same timer (same `timer_id`: a turn may have set it
again meanwhile). A crash between the two leaves the row, which fires again into the same
event id: the inbox keeps the first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from botkit import codec
from botkit.store.base import LaneKey
from botkit.store.signal import Signal
from botkit.store.sqlite.connection import MAIN
from botkit.store.timers import FIRE_BATCH, TimerRecord, TimerWrite, fired_event

if TYPE_CHECKING:
    from botkit.store.sqlite import SqliteStore

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

_COLUMNS = "phone_number_id, wa_id, name, due_at, payload, timer_id"
_SET = (
    f"INSERT INTO main.timers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (phone_number_id, wa_id, name) DO UPDATE SET due_at = excluded.due_at,"
    " payload = excluded.payload, timer_id = excluded.timer_id"
)
_CANCEL = "DELETE FROM main.timers WHERE phone_number_id = ? AND wa_id = ? AND name = ?"


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


def _due(now: float, limit: int, db: sqlite3.Connection) -> list[Any]:
    return db.execute(
        f"SELECT {_COLUMNS} FROM main.timers WHERE due_at <= ? ORDER BY due_at, name LIMIT ?",
        (now, limit),
    ).fetchall()


def _delete(rows: Sequence[TimerRecord], db: sqlite3.Connection) -> None:
    db.executemany(
        "DELETE FROM main.timers WHERE phone_number_id = ? AND wa_id = ? AND name = ?"
        " AND timer_id = ?",
        [(r.phone_number_id, r.wa_id, r.name, r.timer_id) for r in rows],
    )


def _record(row: Sequence[Any]) -> TimerRecord:
    return TimerRecord(row[0], row[1], row[2], float(row[3]), codec.loads(row[4]), row[5])


class SqliteTimers(Signal):
    """Timers in the main file; fired into the inbox file."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__()
        self.store = store

    async def fire(self, limit: int = FIRE_BATCH) -> int:
        """Moves due timers into the inbox, soonest first."""
        now = self.store.clock.now()
        rows = await self.store.run(partial(_due, now, limit))
        if not rows:
            return 0
        records = [_record(row) for row in rows]
        flags = await self.store.inbox.add([fired_event(record) for record in records])
        await self.store.run(partial(_delete, records), lock=MAIN)
        return sum(flags)  # those another firing had stored already are not counted

    async def next_due(self) -> float | None:
        """Seconds until the soonest timer is due."""
        (soonest,) = await self.store.run(
            lambda db: db.execute("SELECT min(due_at) FROM main.timers").fetchone()
        )
        return None if soonest is None else max(0.0, float(soonest) - self.store.clock.now())

    async def records(self, wa_id: str | None) -> list[TimerRecord]:
        """The timers waiting, soonest first (optionally one user's)."""
        where, args = ("WHERE wa_id = ?", (wa_id,)) if wa_id is not None else ("", ())
        rows = await self.store.run(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM main.timers {where}"
                " ORDER BY due_at, phone_number_id, wa_id, name",
                args,
            ).fetchall()
        )
        return [_record(row) for row in rows]


__all__ = ["TIMERS_SCHEMA", "SqliteTimers", "write"]
