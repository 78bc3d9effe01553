"""Bursts in a turn: a user's consecutive texts gathered into one input (pure functions, used
by botkit.runtime.turn; docs/guide/bursts.md).

In a conversation with `coalesce` (an interval), a text the user sends is not handled at
once: it is added to the user's burst, kept in the session's data under
`botkit.wire.burst.BURST_KEY` and committed with its event (which ends `done`), and the timer
`burst:texts` is set to the interval after it. The burst ends, and a text handler runs once
with its texts joined by newlines (`ctx.text`; `ctx.texts` has them one by one):

- when that timer fires (the interval passed with no other text): the timer's event carries
  the turn, and its outcome is the handler's;
- before anything else of the user's that runs a handler (a tap, media, a trigger, a timer, a
  handoff): so the user's inputs are still handled in the order they came, and a tap never
  overtakes the texts before it;
- before a text that came more than the interval after the previous one (by the provider's
  timestamps, when a backlog is claimed at once);
- at `MAX_PARTS` texts, or `MAX_SPAN` intervals after its first text, so that a user who
  never stops typing is still answered.

Exactly once holds as for any event: the texts and the timer are written with the turns that
gather them, the sends of the handler with the turn that ends the burst, under idempotency keys
derived from the burst's last text. A timer that fired for a burst that has since grown or
ended is recognised by its guard (the burst's last event id) and ignored. A burst's handler
that fails loses the burst like a failed text's handler loses its text: the error is logged
and reported; when the timer carried the turn, its event keeps the error (botkit events).

Statuses do not end a burst (they are not the user's), and a handed-off user's texts go to
the people one by one as they come.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from botkit.runtime.timer_rules import timer_id
from botkit.store.timers import TimerWrite
from botkit.types import JSON, JSONObject
from botkit.wire.burst import BURST, BURST_TIMER
from botkit.wire.events import InboundMessage, StatusUpdate, TextInput, parse_envelope
from botkit.wire.timer import TimerEvent, timer_payload

MAX_PARTS = 20  # texts one burst gathers at most
MAX_SPAN = 5  # intervals after its first text a burst ends at the latest
HANDLER = "(burst)"  # the handler named in the log line of a text kept for its burst
KIND = "burst"  # the kind in the log line of a burst's turn carried by another event


@dataclass(frozen=True, slots=True)
class Part:
    """One text of a burst: its event, the provider's timestamp, and when the turn saw it."""

    event_id: str
    text: str
    timestamp: int
    seen: float


@dataclass(frozen=True, slots=True)
class Burst:
    """The texts gathered so far, and the last one's envelope (its message, as it came)."""

    parts: tuple[Part, ...]
    envelope: JSONObject

    @property
    def last(self) -> str:
        """The event id of the latest text: names the burst (its timer's guard, its sends' keys)."""
        return self.parts[-1].event_id

    def to_json(self) -> JSONObject:
        parts: list[JSON] = [dataclasses.asdict(part) for part in self.parts]
        return {"parts": parts, "envelope": self.envelope}

    @classmethod
    def from_json(cls, raw: JSON) -> Burst | None:
        """The burst a session keeps (None: none, or a shape botkit no longer reads)."""
        if not isinstance(raw, dict):
            return None
        parts, envelope = raw.get("parts"), raw.get("envelope")
        if not isinstance(parts, list) or not parts or not isinstance(envelope, dict):
            return None
        read: list[Part] = []
        for part in parts:
            if not isinstance(part, dict):
                return None
            event_id, text = part.get("event_id"), part.get("text")
            timestamp, seen = part.get("timestamp"), part.get("seen")
            if not (isinstance(event_id, str) and isinstance(text, str)):
                return None
            if not (isinstance(timestamp, int) and isinstance(seen, int | float)):
                return None
            read.append(Part(event_id, text, timestamp, float(seen)))
        return cls(tuple(read), envelope)


def takes(event: object) -> bool:
    """Whether an event is a text a coalescing conversation gathers."""
    return isinstance(event, InboundMessage) and isinstance(event.input, TextInput)


def ends(burst: Burst, event: object, interval: float | None) -> bool:
    """Whether `burst` runs before `event`: anything that runs a handler but a status (not the
    user's) or a text that joins it. A text ends it when it came more than `interval` after the
    burst's last (by the provider's timestamps, whole seconds), or when the running code no
    longer coalesces (`interval` None: a deploy turned it off)."""
    if isinstance(event, StatusUpdate):
        return False
    if not takes(event):
        return True
    assert isinstance(event, InboundMessage)
    return interval is None or event.timestamp - burst.parts[-1].timestamp > interval


def added(burst: Burst | None, event: InboundMessage, now: float) -> Burst:
    """The burst with one more text (a new burst when there is none)."""
    assert isinstance(event.input, TextInput)
    part = Part(event.event_id, event.input.body, event.timestamp, now)
    parts = (part,) if burst is None else (*burst.parts, part)
    return Burst(parts, event.envelope)


def full(burst: Burst) -> bool:
    """Whether the burst ends now, without waiting for its timer."""
    return len(burst.parts) >= MAX_PARTS


def message(burst: Burst) -> InboundMessage:
    """The burst as one message: the last text's, with every text in its input."""
    last = parse_envelope(burst.envelope)
    assert isinstance(last, InboundMessage)
    texts = tuple(part.text for part in burst.parts)
    return dataclasses.replace(last, input=TextInput("\n".join(texts), texts))


def report_id(last: str) -> str:
    """The id a burst's log line and trace go under when another event ended it (the last
    text's own line says it was gathered)."""
    return f"{last}/burst"


def is_timer(event: object) -> bool:
    """Whether an event is a burst's timer."""
    return isinstance(event, TimerEvent) and event.input.kind == BURST


def stale(event: TimerEvent, burst: Burst | None) -> str | None:
    """Why a fired burst timer no longer applies (None: it ends the burst it was set for)."""
    if burst is None:
        return "burst: its texts were already handled"
    if event.guard.get("last") != burst.last:
        return "burst: another text came since"
    return None


def timer(burst: Burst | None, gathered: bool, ended: bool, interval: float) -> list[TimerWrite]:
    """The burst timer's write as a turn leaves the user: set for a burst that gathered a text
    (the interval after it, at most `MAX_SPAN` intervals after its first), cancelled when the
    burst ended and no new one began."""
    if burst is not None and gathered:
        due = min(burst.parts[-1].seen + interval, burst.parts[0].seen + MAX_SPAN * interval)
        payload = timer_payload({}, {"last": burst.last})
        return [TimerWrite(BURST_TIMER, due, payload, timer_id(burst.last, BURST_TIMER))]
    if burst is None and ended:
        return [TimerWrite(BURST_TIMER, None, {})]
    return []


__all__ = [
    "HANDLER",
    "KIND",
    "MAX_PARTS",
    "MAX_SPAN",
    "Burst",
    "Part",
    "added",
    "ends",
    "full",
    "is_timer",
    "message",
    "report_id",
    "stale",
    "takes",
    "timer",
]
