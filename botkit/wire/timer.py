"""Durable timers: what a timer is as stored, and the event it becomes in the inbox when due.

A timer belongs to one user on one business number and has a name, unique for that user:

- `timeout:<handler>`: an inactivity timeout (`@on.timeout`), set when the user writes in (or
  enters) one of its states; it carries the state, the lane position of the user's latest
  message and the one at which they entered the state, so that a firing the user has since
  overtaken is recognised and dropped;
- `window_closing:<handler>`: a given time before the user's 24-hour window ends
  (`@on.window_closing`); it carries the `closes_at` it was computed from, and where the user
  entered their state;
- any other name: a reminder a handler scheduled (`ctx.schedule(name, ...)`); the session
  remembers the id of its latest write (botkit.runtime.timer_rules).

When due, a timer leaves its table and enters the inbox as an event of kind "timer" whose id
is derived from the timer row's own id: two processes firing the same row store one event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from botkit.exceptions import PayloadError
from botkit.types import JSON, JSONObject

TIMER_TYPE = "botkit.wire.timer"
TIMER_KIND = "timer"  # the inbox kind of a fired timer
TIMEOUT = "timeout"
WINDOW_CLOSING = "window_closing"
SCHEDULED = "timer"
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # a reminder's name: no ':' (kept for ours)
MARKS_KEY = "botkit.timers"  # where a session's data keeps its timers' marks (runtime/timer_rules)


def stored_name(kind: str, key: str) -> str:
    """The name a timer is stored under: the reminder's own, or `<kind>:<handler>`."""
    return key if kind == SCHEDULED else f"{kind}:{key}"


def split_name(name: str) -> tuple[str, str]:
    """(kind, key) of a stored timer name (see `stored_name`)."""
    kind, sep, key = name.partition(":")
    return (kind, key) if sep else (SCHEDULED, name)


@dataclass(frozen=True, slots=True)
class TimerInput:
    """A timer as a handler sees it (ctx.input): its kind (timeout, window_closing or timer),
    its name (the reminder's name, or the handler's for the others), when it was due, and the
    data it was scheduled with."""

    kind: str
    name: str
    due_at: float
    data: JSONObject


@dataclass(frozen=True, slots=True)
class TimerEvent:
    """A due timer for one user, ordered with that user's messages. `guard` is what must
    still hold for it to run (a timeout's state and message position, a window's end)."""

    event_id: str
    phone_number_id: str
    wa_id: str
    input: TimerInput
    guard: JSONObject
    envelope: JSONObject

    @property
    def timer_id(self) -> str:
        """The id of the timer row this event was fired from."""
        return self.event_id.removeprefix("tmr_")

    @classmethod
    def create(
        cls,
        *,
        timer_id: str,
        phone_number_id: str,
        wa_id: str,
        name: str,
        due_at: float,
        payload: JSONObject,
    ) -> TimerEvent:
        """The event of a fired timer row (its id derived from the row's `timer_id`)."""
        envelope: JSONObject = {
            "id": f"tmr_{timer_id}",
            "type": TIMER_TYPE,
            "phone_number_id": phone_number_id,
            "data": {"wa_id": wa_id, "timer": name, "due_at": due_at, **payload},
        }
        return cls.from_envelope(envelope)

    @classmethod
    def from_envelope(cls, envelope: JSONObject) -> TimerEvent:
        """Reads a fired timer back from the inbox."""
        body = envelope.get("data")
        if not isinstance(body, dict):
            raise PayloadError("a timer envelope needs a data object", path="data")
        wa_id, name, due_at = body.get("wa_id"), body.get("timer"), body.get("due_at")
        data, guard = body.get("data", {}), body.get("guard", {})
        event_id, number = envelope.get("id"), envelope.get("phone_number_id")
        if not (isinstance(wa_id, str) and isinstance(name, str)):
            raise PayloadError("a timer needs wa_id and timer", path="data")
        if not (isinstance(due_at, int | float) and isinstance(data, dict)):
            raise PayloadError("a timer needs due_at and a data object", path="data")
        if not (isinstance(guard, dict) and isinstance(event_id, str) and isinstance(number, str)):
            raise PayloadError("a timer needs id, phone_number_id and a guard object")
        kind, key = split_name(name)
        return cls(
            event_id, number, wa_id, TimerInput(kind, key, float(due_at), data), guard, envelope
        )


def timer_payload(data: JSONObject, guard: JSONObject) -> JSONObject:
    """What a timer row keeps besides its name and due time (the event's data and guard)."""
    payload: dict[str, JSON] = {"data": data, "guard": guard}
    return payload


__all__ = ["MARKS_KEY", "TimerEvent", "TimerInput"]
