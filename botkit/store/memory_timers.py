"""The memory store's timers: a dict by (phone_number_id, wa_id, name), fired into its inbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botkit import codec
from botkit.store.base import LaneKey
from botkit.store.signal import Signal
from botkit.store.timers import FIRE_BATCH, TimerRecord, TimerWrite, fired_event

if TYPE_CHECKING:
    from botkit.store.memory import MemoryStore

TimerKey = tuple[str, str, str]  # (phone_number_id, wa_id, name)


class MemoryTimers(Signal):
    """Timers kept in this process's memory."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store
        self.rows: dict[TimerKey, TimerRecord] = {}

    def write(self, key: LaneKey, writes: Sequence[TimerWrite]) -> None:
        """Applies a committed turn's timer writes, in order (checked by `encode` before)."""
        for write in writes:
            name = (*key, write.name)
            if write.due_at is None:
                self.rows.pop(name, None)
                continue
            payload = codec.loads(codec.dumps(write.payload))
            self.rows[name] = TimerRecord(*name, write.due_at, payload, write.timer_id)
        if any(write.due_at is not None for write in writes):
            self.notify()

    async def fire(self, limit: int = FIRE_BATCH) -> int:
        """Moves due timers into the inbox, soonest first."""
        self.store._check_open()
        now = self.store.clock.now()
        due = sorted((r for r in self.rows.values() if r.due_at <= now), key=_soonest)[:limit]
        flags = await self.store.inbox.add([fired_event(r) for r in due]) if due else []
        for record in due:
            key = (record.phone_number_id, record.wa_id, record.name)
            if self.rows.get(key) == record:
                del self.rows[key]
        return sum(flags)

    async def next_due(self) -> float | None:
        """Seconds until the soonest timer is due."""
        if not self.rows:
            return None
        return max(0.0, min(r.due_at for r in self.rows.values()) - self.store.clock.now())

    def drop(self, keys: Sequence[LaneKey]) -> None:
        """Deletes the timers of these lanes (a repair's reset or forget)."""
        for name in [name for name in self.rows if (name[0], name[1]) in keys]:
            del self.rows[name]

    def records(self, wa_id: str | None) -> list[TimerRecord]:
        """The timers waiting, soonest first (optionally one user's)."""
        rows = [r for r in self.rows.values() if wa_id is None or r.wa_id == wa_id]
        return sorted(rows, key=_soonest)


def _soonest(record: TimerRecord) -> tuple[float, str, str, str]:
    return (record.due_at, record.phone_number_id, record.wa_id, record.name)


def encode(writes: Sequence[TimerWrite]) -> None:
    """Checks the writes can be stored (TypeError, ValueError if not)."""
    for write in writes:
        codec.dumps([write.name, write.payload, write.timer_id])


__all__ = ["MemoryTimers"]
