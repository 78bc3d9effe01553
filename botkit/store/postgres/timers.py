"""The PostgreSQL store's timers: a table of their own, written in each lane's completion.

**Firing** is one transaction, taking its locks in the store's order (repair.py): the due
timers' lanes' advisory locks (which every add of an event takes first), then their `lanes`
rows (which a completion holds while it writes the lane's timers), then the timer rows, which
are deleted only if still due (a completion that set one again committed first) and their
events added to the inbox (botkit_add_v2, deduplicated by event id, derived from the row's
`timer_id`). Two processes firing the same lane's timers run one after the other: the second
finds them gone. **Setting** happens in the completion's transaction (timer_rows.py), only
for lanes the completion wrote, so a worker whose claim ran out sets nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from botkit import codec
from botkit.store.base import envelope_json
from botkit.store.postgres import inbox as inbox_sql
from botkit.store.postgres.inbox import lane_lock
from botkit.store.postgres.timer_rows import COLUMNS
from botkit.store.signal import Signal
from botkit.store.timers import FIRE_BATCH, TimerRecord, fired_event

if TYPE_CHECKING:
    from botkit.store.postgres import PostgresStore

_DUE = (
    "SELECT phone_number_id, wa_id, name FROM timers WHERE due_at <= $1"
    " ORDER BY due_at, name LIMIT $2"
)
_LOCK_LANES = (
    "SELECT 1 FROM lanes l JOIN unnest($1::text[], $2::text[]) AS v(p, w)"
    " ON l.phone_number_id = v.p AND l.wa_id = v.w"
    " ORDER BY l.phone_number_id, l.wa_id FOR UPDATE OF l"
)
_FIRE = (
    "DELETE FROM timers t USING unnest($1::text[], $2::text[], $3::text[]) AS d(p, w, n)"
    " WHERE t.phone_number_id = d.p AND t.wa_id = d.w AND t.name = d.n AND t.due_at <= $4"
    f" RETURNING {', '.join('t.' + c for c in COLUMNS.split(', '))}"
)


def _record(row: Any) -> TimerRecord:
    return TimerRecord(row[0], row[1], row[2], float(row[3]), codec.loads(row[4]), row[5])


class PostgresTimers(Signal):
    """Timers in the database, fired by whichever process gets to them first."""

    def __init__(self, store: PostgresStore) -> None:
        super().__init__()
        self.store = store

    async def fire(self, limit: int = FIRE_BATCH) -> int:
        """Moves due timers into the inbox, soonest first (one transaction)."""
        now = self.store.clock.now()

        async def move(db: asyncpg.Connection) -> int:
            due = await db.fetch(_DUE, now, limit)
            if not due:
                return 0
            lanes = sorted({(row[0], row[1]) for row in due})
            async with db.transaction():
                locks = sorted({lane_lock(lane) for lane in lanes})
                await db.execute(
                    "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) k", locks
                )
                await db.execute(_LOCK_LANES, [p for p, _ in lanes], [w for _, w in lanes])
                names = [[row[n] for row in due] for n in range(3)]
                rows = await db.fetch(_FIRE, *names, now)
                if not rows:
                    return 0
                records = sorted(map(_record, rows), key=lambda r: (r.due_at, r.name))
                events = [fired_event(record) for record in records]  # in the order they came due
                flags = await inbox_sql.add(db, events, [envelope_json(e) for e in events], now)
                return sum(flags)

        moved = await self.store.run(move)
        if moved:
            self.store.notices.request()  # other processes' workers
            self.store.inbox.notify()
        return moved

    async def next_due(self) -> float | None:
        """Seconds until the soonest timer is due."""
        soonest = await self.store.run(lambda db: db.fetchval("SELECT min(due_at) FROM timers"))
        return None if soonest is None else max(0.0, float(soonest) - self.store.clock.now())

    async def records(self, wa_id: str | None) -> list[TimerRecord]:
        """The timers waiting, soonest first (optionally one user's)."""
        rows = await self.store.run(
            lambda db: db.fetch(
                f"SELECT {COLUMNS} FROM timers WHERE $1::text IS NULL OR wa_id = $1"
                " ORDER BY due_at, phone_number_id, wa_id, name",
                wa_id,
            )
        )
        return [_record(row) for row in rows]


__all__ = ["PostgresTimers"]
