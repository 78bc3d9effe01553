"""The Timers part of the store: each user's durable timers, in a table of their own.

A timer is written with its user's turn (`LaneOutcome.timers`, in the same transaction as the
session): set (it replaces the user's timer of the same name, with a new `timer_id`) or
cancelled. It never holds back the user's lane: it is not an event until it is due. Then
`fire` moves it into the inbox as an event of kind "timer" (botkit.wire.timer) whose id comes
from its `timer_id`, and deletes it: the inbox's dedup makes a firing exactly once, even when
two processes fire the same row at once, or a crash comes between the two writes. From there
it runs through the user's lane, in order with their messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from botkit.store.base import NewEvent
from botkit.types import JSONObject
from botkit.wire.timer import TIMER_KIND, TimerEvent

FIRE_BATCH = 200  # timers one `fire` moves at most


@dataclass(frozen=True, slots=True)
class TimerWrite:
    """A change to one of a user's timers: set to fire at `due_at` (the store's clock) with
    `payload` (botkit.wire.timer.timer_payload), or cancelled (`due_at` None)."""

    name: str
    due_at: float | None
    payload: JSONObject
    timer_id: str = ""


@dataclass(frozen=True, slots=True)
class TimerRecord:
    """A timer waiting in the store."""

    phone_number_id: str
    wa_id: str
    name: str
    due_at: float
    payload: JSONObject
    timer_id: str


def fired_event(record: TimerRecord) -> NewEvent:
    """The inbox event a due timer becomes (its id derived from the timer row's id)."""
    event = TimerEvent.create(
        timer_id=record.timer_id,
        phone_number_id=record.phone_number_id,
        wa_id=record.wa_id,
        name=record.name,
        due_at=record.due_at,
        payload=record.payload,
    )
    return NewEvent(
        event.event_id, None, TIMER_KIND, record.phone_number_id, record.wa_id, event.envelope
    )


class Timers(Protocol):
    """Users' timers: fired into the inbox when due (they are written with turns)."""

    async def fire(self, limit: int = FIRE_BATCH) -> int:
        """Moves up to `limit` timers due by the store's clock into the inbox, soonest first;
        returns how many it moved (each stored once, whoever else fires it)."""
        ...

    async def next_due(self) -> float | None:
        """Seconds until the soonest timer is due (0: now), or None when there is none."""
        ...

    async def wait_for_work(self, within: float) -> None:
        """Returns when a timer may have been set sooner (`notify`), or after `within` seconds."""
        ...

    def notify(self) -> None:
        """Wakes this process's timer loop: a timer was set."""
        ...


__all__ = ["FIRE_BATCH", "TimerRecord", "TimerWrite", "Timers", "fired_event"]
