"""The SQLite store's timers: a table of the main file, written with each lane's completion.

Firing is one transaction holding both files' write locks (taken only when something is
due, and held for a delete and an insert): the due rows are deleted from the main file and
their events inserted into the inbox file (deduplicated by event id, as any add). SQLite in
WAL mode commits two files one after the other, not as one: a crash between the two commits
can leave the events stored and the rows too, which then fire again into the same event ids,
and the inbox keeps the first. A turn that sets a timer again commits before or after the
firing, never in between: a replaced timer never fires with its old value.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from botkit import codec
from botkit.store.base import envelope_json
from botkit.store.signal import Signal
from botkit.store.sqlite.connection import BOTH
from botkit.store.sqlite.inbox import Arrival
from botkit.store.sqlite.inbox import add as add_events
from botkit.store.sqlite.timer_rows import COLUMNS
from botkit.store.timers import FIRE_BATCH, TimerRecord, fired_event

if TYPE_CHECKING:
    from botkit.store.sqlite import SqliteStore


def _fire(now: float, limit: int, db: sqlite3.Connection) -> int:
    """Deletes up to `limit` due timers and stores their events (run under BOTH); how many
    events were new."""
    rows = db.execute(
        "DELETE FROM main.timers WHERE rowid IN (SELECT rowid FROM main.timers WHERE due_at <= ?"
        f" ORDER BY due_at, name LIMIT ?) RETURNING {COLUMNS}",
        (now, limit),
    ).fetchall()
    if not rows:
        return 0
    records = sorted(map(_record, rows), key=lambda r: (r.due_at, r.name))
    events = [fired_event(record) for record in records]  # in the order they came due
    [flags] = add_events([Arrival(events, [envelope_json(e) for e in events], now)], db)
    return sum(flags)


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
        due = await self.next_due()
        if due is None or due > 0:  # the locks of both files are taken only for work
            return 0
        moved: int = await self.store.run(partial(_fire, now, limit), lock=BOTH)
        if moved:
            self.store.inbox.notify()
        return moved

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
                f"SELECT {COLUMNS} FROM main.timers {where}"
                " ORDER BY due_at, phone_number_id, wa_id, name",
                args,
            ).fetchall()
        )
        return [_record(row) for row in rows]


__all__ = ["SqliteTimers"]
