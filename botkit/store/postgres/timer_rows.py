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
    f"INSERT INTO timers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (phone_number_id, wa_id, name) DO UPDATE SET due_at = excluded.due_at,"
    " payload = excluded.payload, timer_id = excluded.timer_id"
)
_CANCEL = "DELETE FROM timers WHERE phone_number_id = $1 AND wa_id = $2 AND name = $3"


def encode(writes: Sequence[TimerWrite]) -> None:
    """Checks the writes can be stored (ValueError if not: PostgreSQL refuses NUL in text)."""
    for each in writes:
        text = codec.dumps_str([each.name, each.payload, each.timer_id])
        if "\x00" in text or "\\u0000" in text:
            raise ValueError("a NUL character cannot be stored")


async def write(
    db: asyncpg.Connection, lanes: Sequence[tuple[LaneKey, Sequence[TimerWrite]]]
) -> bool:
    """Applies committed turns' timer writes in order (inside the completion's transaction);
    True when one set a timer."""
    set_any = False
    for key, writes in lanes:
        for each in writes:
            if each.due_at is None:
                await db.execute(_CANCEL, *key, each.name)
                continue
            payload = codec.dumps_str(each.payload)
            await db.execute(_SET, *key, each.name, each.due_at, payload, each.timer_id)
            set_any = True
    return set_any


__all__ = ["COLUMNS", "TIMERS_TABLE", "encode", "write"]
