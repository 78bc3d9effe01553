"""The PostgreSQL timers table, and its writes in a lane's completion (inbox.py): set or
cancelled in the completion's transaction, only for the lanes it wrote (timers.py fires)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from botkit import codec
from botkit.store.base import LaneKey
from botkit.store.timers import TimerWrite

# schema step: the timers table (schema.py appends it to STEPS)
TIMERS_TABLE = """
CREATE TABLE IF NOT EXISTS timers (
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    name text NOT NULL,
    due_at double precision NOT NULL,
    payload text NOT NULL,
    timer_id text NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id, name)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);
CREATE INDEX IF NOT EXISTS timers_user ON timers (wa_id);
"""

COLUMNS = "phone_number_id, wa_id, name, due_at, payload, timer_id"
_SET = (
    f"INSERT INTO timers ({COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::float8[], $5::text[], $6::text[]) ON CONFLICT (phone_number_id, wa_id, name)"
    " DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload,"
    " timer_id = excluded.timer_id"
)
_CANCEL = (
    "DELETE FROM timers t USING unnest($1::text[], $2::text[], $3::text[]) AS c(p, w, n)"
    " WHERE t.phone_number_id = c.p AND t.wa_id = c.w AND t.name = c.n"
)


def encode(writes: Sequence[TimerWrite]) -> None:
    """Checks the writes can be stored (ValueError if not: PostgreSQL refuses NUL in text)."""
    for each in writes:
        if "\x00" in codec.dumps_str([each.name, each.payload, each.timer_id]):
            raise ValueError("a NUL character cannot be stored")


async def write(
    db: asyncpg.Connection, lanes: Sequence[tuple[LaneKey, Sequence[TimerWrite]]]
) -> None:
    """Applies committed turns' timer writes (inside the completion's transaction, which holds
    their lanes' rows): a statement for the timers set, one for those cancelled, each name's
    last write winning."""
    latest: dict[tuple[str, str, str], TimerWrite] = {}
    for key, writes in lanes:
        for each in writes:
            latest[(*key, each.name)] = each
    cancels = sorted(name for name, each in latest.items() if each.due_at is None)
    sets = sorted((name, each) for name, each in latest.items() if each.due_at is not None)
    if cancels:
        await db.execute(_CANCEL, *([c[n] for c in cancels] for n in range(3)))
    if sets:
        rows = [(*name, each.due_at, codec.dumps_str(each.payload), each.timer_id)
                for name, each in sets]  # fmt: skip
        await db.execute(_SET, *([row[n] for row in rows] for n in range(6)))


__all__ = ["COLUMNS", "TIMERS_TABLE", "encode", "write"]
