"""A handoff that resumes by itself: the durable timer of a handoff with a timeout (pure
functions, used by botkit.runtime.turn).

The timeout counts from the last message either way: the handoff itself, then each message of
the user's (forwarded to people) and each person's reply moves the mark's `active` time and
sets the user's timer `handoff:resume` again, `timeout` after it. When it fires, it resumes
the conversation in the mark's `resume_to` (else the state the user was handed off in) only
if the mark is still the one it was set for and nothing passed since (`active` unchanged): a
message that arrived just before it fired wins. A resume by people, or a reset, cancels it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from botkit.runtime.timer_rules import timer_id
from botkit.store.timers import TimerWrite
from botkit.types import JSONObject
from botkit.wire.handoff import HandoffMark
from botkit.wire.timer import TimerEvent, stored_name, timer_payload

KIND = "handoff"  # the timer kind (its stored name is `handoff:resume`)
NAME = stored_name(KIND, "resume")


def touched(mark: HandoffMark | None, now: float) -> HandoffMark | None:
    """The mark after a message passed (either way) at `now`: its timeout starts again."""
    if mark is None or mark.timeout is None:
        return mark
    return dataclasses.replace(mark, active=now)


def writes(before: HandoffMark | None, after: HandoffMark | None, cause: str) -> list[TimerWrite]:
    """The timer writes of a turn that took the mark from `before` to `after`: set again when
    a message passed (a new `active`), cancelled when a handoff with a timeout ended."""
    due = None if after is None else after.resumes_at
    if after is not None and due is not None:
        if before is not None and (before.since, before.active) == (after.since, after.active):
            return []
        guard: JSONObject = {"since": after.since, "active": after.active}
        return [TimerWrite(NAME, due, timer_payload({}, guard), timer_id(cause, NAME))]
    if before is not None and before.timeout is not None:
        return [TimerWrite(NAME, None, {})]
    return []


def is_resume(event: TimerEvent) -> bool:
    """Whether a fired timer is a handoff's timeout."""
    return event.input.kind == KIND


def stale(event: TimerEvent, mark: HandoffMark | None) -> str | None:
    """Why a fired handoff timeout no longer applies (None: the bot resumes now)."""
    if mark is None:
        return "handoff timeout: the conversation is no longer handed off"
    if event.guard.get("since") != mark.since:
        return "handoff timeout: set for an earlier handoff"
    if event.guard.get("active") != mark.active:
        return "handoff timeout: a message passed since it was set"
    return None


def target(mark: HandoffMark, states: Collection[str], initial: str) -> str:
    """The state the bot resumes in: `resume_to`, else the state the user was handed off in
    (a state a deploy removed since falls back to the initial one)."""
    for state in (mark.resume_to, mark.state):
        if state is not None and state in states:
            return state
    return initial


__all__ = ["KIND", "NAME", "is_resume", "stale", "target", "touched", "writes"]
