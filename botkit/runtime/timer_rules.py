"""The rules of a user's timers within a turn (pure, like turn.py): which timers a turn sets
or cancels, and whether a fired timer still applies when its event's turn comes.

- An inactivity timeout (`on.timeout`) is set, `after` from now, when a turn ends in one of
  its states and the user wrote in it or the state changed; a turn that leaves its states
  cancels it. Fired, it runs only if the user is still in the state it was set in and has
  not written since (the lane position of their latest message is unchanged).
- A window-closing timer (`on.window_closing`) is set `before` the user's window ends when a
  turn ends in one of its states, with the window open, and the user wrote or the state
  changed; leaving cancels it.
  Fired, it runs only if the window it was computed from is still the user's, and open.
- A reminder (`ctx.schedule`) is set or cancelled as the handler said; fired, it runs the
  `on.timer` handler of the user's state then (none: the event is ignored, with the reason).
"""

from __future__ import annotations

import hashlib

from botkit.conversation.context import Scheduled
from botkit.conversation.dsl import ConversationSpec
from botkit.store.timers import TimerWrite
from botkit.types import JSON
from botkit.wire.timer import TIMEOUT, WINDOW_CLOSING, TimerEvent, stored_name, timer_payload
from botkit.wire.window import Window


def timer_id(cause: str, name: str) -> str:
    """A timer row's id: the same for the same turn event and name (a turn run again after a
    crash sets the same row, which fires as the same event)."""
    return hashlib.sha256(f"{cause}\x1f{name}".encode()).hexdigest()[:32]


def scheduled(cause: str, changes: list[Scheduled]) -> list[TimerWrite]:
    """The writes of the reminders a handler set or cancelled, in order."""
    return [
        TimerWrite(
            change.name,
            change.due_at,
            timer_payload(change.data, {}) if change.due_at is not None else {},
            timer_id(cause, change.name),
        )
        for change in changes
    ]


def automatic(
    spec: ConversationSpec,
    cause: str,
    before: tuple[str, Window],
    after: tuple[str, Window],
    wrote: bool,
    now: float,
) -> list[TimerWrite]:
    """The conversation's own timers after a turn that went from `before` to `after` (state,
    window); `wrote`: the user's messages were among its events."""
    (start, _), (state, window) = before, after
    moved = state != start
    writes: list[TimerWrite] = []
    for route in spec.timed(TIMEOUT):
        name = stored_name(TIMEOUT, route.handler)
        if state in (route.states or spec.states) and (wrote or moved):
            guard: dict[str, JSON] = {"state": state, "inbound_seq": window.inbound_seq}
            due = now + (route.delay or 0.0)
            writes.append(TimerWrite(name, due, timer_payload({}, guard), timer_id(cause, name)))
        elif moved and state not in (route.states or spec.states):
            writes.append(TimerWrite(name, None, {}))
    for route in spec.timed(WINDOW_CLOSING):
        name = stored_name(WINDOW_CLOSING, route.handler)
        closes = window.closes_at
        open_until = closes if window.is_open(now) else None
        if state in (route.states or spec.states) and (wrote or moved) and open_until is not None:
            due = open_until - (route.delay or 0.0)
            payload = timer_payload({}, {"closes_at": open_until})
            writes.append(TimerWrite(name, due, payload, timer_id(cause, name)))
        elif moved and state not in (route.states or spec.states):
            writes.append(TimerWrite(name, None, {}))
    return writes


def stale(event: TimerEvent, state: str, window: Window, now: float) -> str | None:
    """Why a fired timer no longer applies (None: it does)."""
    kind, guard = event.input.kind, event.guard
    if kind == TIMEOUT:
        if guard.get("state") != state:
            return f"timeout: the user left state {guard.get('state')!r} (now {state!r})"
        if guard.get("inbound_seq") != window.inbound_seq:
            return "timeout: the user wrote since it was set"
    elif kind == WINDOW_CLOSING:
        if guard.get("closes_at") != window.closes_at:
            return "window_closing: the user wrote since; their window ends later"
        if not window.is_open(now):
            return "window_closing: the window is already closed"
    return None


__all__ = ["automatic", "scheduled", "stale", "timer_id"]
