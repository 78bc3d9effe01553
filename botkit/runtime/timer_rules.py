"""The rules of a user's timers within a turn (pure, like turn.py): which timers a turn sets
or cancels, and whether a fired timer still applies when its event's turn comes.

- An inactivity timeout (`on.timeout`) is set, `after` from now, when a turn ends in one of
  its states and the user wrote or entered a state in it; a turn that leaves its states
  cancels it. Fired, it runs only if the user is still in the state it was set in, has not
  written since (the lane position of their latest message is unchanged) and has not entered
  a state since (see `Marks.entered`).
- A window-closing timer (`on.window_closing`) is set `before` the user's window ends when a
  turn ends in one of its states, with the window open, and the user wrote or entered a state
  in it; leaving cancels it. Fired, it runs only if the window it was computed from is still
  the user's, and open, and the user has not entered a state since.
- A reminder (`ctx.schedule`) is set or cancelled as the handler said; fired, it runs the
  `on.timer` handler of the user's state then (none: the event is ignored, with the reason),
  unless a handler set it again or cancelled it since (see `Marks.reminders`).

Entering a state means a turn's event took the user to another state, or the people (or a
handoff's timeout) handed the conversation back to the bot, even in the state it was in: the
user's timers are set as if they had just come in.

Why a fired timer needs more than its row: a timer leaves its table when it fires, so a turn
that sets it again or cancels it after that finds nothing to replace, and the fired event
still waits in the inbox. It runs only if it is still the latest one set under its name, which
the session tells (under `MARKS_KEY` in its data, out of the handlers' sight, committed with
the turn that set the timer):

- for the conversation's own timers, the lane position of the event at which the user entered
  their state (`entered`, kept in each such timer's guard): those timers are set again exactly
  when the user writes (the guard's `inbound_seq` tells) or enters a state (`entered` tells),
  so a fired one whose `entered` is not the session's was set again or cancelled since;
- for reminders, the `timer_id` of the latest write of each name (None: cancelled), which
  only a handler that succeeded changes.

Within a turn, the writes of its earlier events count too (a reminder a handler of this turn
set or cancelled; a state entered earlier in it). A timer set before botkit kept these (no
`entered` in its guard, a reminder name the session has no record of) is checked as before.

A deploy that renames a state (`migrations`) moves its users before the turn: a timeout whose
guard names the old state is taken as set in the state it migrated to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from botkit.conversation.context import Scheduled
from botkit.conversation.dsl import ConversationSpec
from botkit.conversation.migration import Migration
from botkit.store.timers import TimerWrite
from botkit.types import JSON, JSONObject
from botkit.wire.timer import (
    SCHEDULED,
    TIMEOUT,
    WINDOW_CLOSING,
    TimerEvent,
    split_name,
    stored_name,
    timer_payload,
)
from botkit.wire.window import Window


@dataclass(frozen=True, slots=True)
class Marks:
    """What a session remembers of its timers (see the module docstring): the lane position of
    the event at which the user entered their state (None: not since botkit kept it), and the
    `timer_id` of each reminder's latest write (None: cancelled)."""

    entered: int | None = None
    reminders: Mapping[str, str | None] = field(default_factory=dict)

    def to_json(self) -> JSONObject:
        """The marks as the session's data keeps them."""
        kept: JSONObject = {}
        if self.entered is not None:
            kept["entered"] = self.entered
        if self.reminders:
            reminders: dict[str, JSON] = dict(self.reminders)
            kept["reminders"] = reminders
        return kept

    @classmethod
    def from_json(cls, value: JSON) -> Marks:
        """The marks kept in a session's data (none: empty)."""
        if not isinstance(value, dict):
            return cls()
        entered, reminders = value.get("entered"), value.get("reminders")
        kept: dict[str, str | None] = {}
        if isinstance(reminders, dict):
            kept = {k: v for k, v in reminders.items() if v is None or isinstance(v, str)}
        seq = entered if isinstance(entered, int) and not isinstance(entered, bool) else None
        return cls(seq, kept)


def saved(spec: ConversationSpec, marks: Marks, writes: Sequence[TimerWrite]) -> JSONObject | None:
    """The marks to keep under `MARKS_KEY` after a turn that wrote `writes` (its reminders'
    ids), the entered position only in a conversation with timers of its own, and only the
    reminders the code declares; None: nothing to keep."""
    declared = {route.keys[0] for route in spec.timed(SCHEDULED)}  # a name a deploy removed
    reminders = {k: v for k, v in _latest(marks, writes).items() if k in declared}
    own = bool(spec.timed(TIMEOUT) or spec.timed(WINDOW_CLOSING))
    return Marks(marks.entered if own else None, reminders).to_json() or None


def _latest(marks: Marks, writes: Sequence[TimerWrite]) -> dict[str, str | None]:
    """Each reminder's latest timer_id (None: cancelled): the marks', then the writes'."""
    latest = dict(marks.reminders)
    for write in writes:
        if split_name(write.name)[0] == SCHEDULED:
            latest[write.name] = write.timer_id if write.due_at is not None else None
    return latest


def entering(marks: Marks, before: str | None, after: str, lane_seq: int) -> Marks:
    """The marks after the event at lane position `lane_seq` took the user from state `before`
    to `after` (None: they entered `after` whatever it was, as a resume does)."""
    if before == after:
        return marks
    return replace(marks, entered=lane_seq)


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
    entered: tuple[int | None, int | None],
    after: tuple[str, Window],
    wrote: bool,
    now: float,
) -> list[TimerWrite]:
    """The conversation's own timers after a turn that leaves the user in `after` (state,
    window); `entered`: where the user had entered their state as the turn found them and as
    it leaves them (they differ: the turn took them into a state); `wrote`: the user's
    messages were among its events."""
    state, window = after
    moved = entered[0] != entered[1]
    writes: list[TimerWrite] = []
    for route in spec.timed(TIMEOUT):
        name = stored_name(TIMEOUT, route.handler)
        if state in (route.states or spec.states) and (wrote or moved):
            guard: dict[str, JSON] = {
                "state": state,
                "inbound_seq": window.inbound_seq,
                "entered": entered[1],
            }
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
            payload = timer_payload({}, {"closes_at": open_until, "entered": entered[1]})
            writes.append(TimerWrite(name, due, payload, timer_id(cause, name)))
        elif moved and state not in (route.states or spec.states):
            writes.append(TimerWrite(name, None, {}))
    return writes


def cancelled(spec: ConversationSpec) -> list[TimerWrite]:
    """Cancels the conversation's own timers (timeouts and last calls), as a handoff starts."""
    kinds = (TIMEOUT, WINDOW_CLOSING)
    return [
        TimerWrite(stored_name(kind, route.handler), None, {})
        for kind in kinds
        for route in spec.timed(kind)
    ]


def stale(
    event: TimerEvent,
    state: str,
    window: Window,
    now: float,
    migrations: Mapping[str, Migration],
    marks: Marks,
    written: Sequence[TimerWrite],
) -> str | None:
    """Why a fired timer no longer applies (None: it does). `marks`: the session's, as the
    turn's earlier events left them; `written`: the timers those events set or cancelled."""
    kind, guard = event.input.kind, event.guard
    if kind == TIMEOUT:
        was = guard.get("state")
        # a renamed state counts only with the `entered` mark, which proves the user has not
        # come to the new state some other way since (a timer older than the marks does not)
        if not _same_state(was, state, migrations if "entered" in guard else {}):
            return f"timeout: the user left state {was!r} (now {state!r})"
        if guard.get("inbound_seq") != window.inbound_seq:
            return "timeout: the user wrote since it was set"
        if "entered" in guard and guard["entered"] != marks.entered:
            return f"timeout: the user entered state {state!r} again since it was set"
    elif kind == WINDOW_CLOSING:
        if guard.get("closes_at") != window.closes_at:
            return "window_closing: the user wrote since; their window ends later"
        if not window.is_open(now):
            return "window_closing: the window is already closed"
        if "entered" in guard and guard["entered"] != marks.entered:
            return "window_closing: the user entered a state since it was set"
    elif kind == SCHEDULED:
        name, latest = event.input.name, _latest(marks, written)
        if name in latest:  # else set before botkit kept the marks: it runs
            if latest[name] is None:
                return f"timer {name!r}: cancelled since it was set"
            if latest[name] != event.timer_id:
                return f"timer {name!r}: set again since (the later one runs)"
    return None


def _same_state(was: JSON, state: str, migrations: Mapping[str, Migration]) -> bool:
    """Whether a timer set in state `was` is one of `state`'s: the same, or a state a deploy
    renamed to it (`migrations`)."""
    if was == state:
        return True
    migration = migrations.get(was) if isinstance(was, str) else None
    return migration is not None and migration.to == state


__all__ = [
    "Marks",
    "automatic",
    "cancelled",
    "entering",
    "saved",
    "scheduled",
    "stale",
    "timer_id",
]
