"""Repairs: what an operator reads and changes by hand (failed work, one user's conversation).

Every backend implements `Repair` (tests/store/contract.py checks it), each operation one
transaction that keeps off a turn in flight:

- **A turn in flight.** A worker that claimed a user's events holds the lane's claim until it
  completes; a completion writes only if its token still holds the lane. `reset` and `forget`
  take the lane row under the store's write lock (SQLite's one writer; PostgreSQL's row lock,
  which a claim and a completion take too) and, if a live claim holds it, change nothing and
  raise `LaneBusyError` (the turn takes milliseconds: try again). A claim whose lease ran out
  is taken away (its worker is gone or stuck), so that its late completion writes nothing.
  `forget` does the same with the claim on the user's sends (a send being delivered).
- **Retrying an event.** A failed event is finished: its user's later events did not wait for
  it and may have run since. A retry therefore queues a copy of it (same kind, user and
  envelope) at the end of the user's lane, under the id `<event id>~retry<n>`, and marks the
  original `retried`: the copy runs after every event already stored for that user, from the
  state the conversation is in then. Its replies get idempotency keys of their own (derived
  from the copy's id); the failed original stored none.
- **Retrying a send.** A failed send goes back to pending under a new idempotency key
  (`<key>-r<n>`: the provider answers a key it saw in the last 24 hours with its first
  answer, here the failure). It keeps its place in its user's order: it leaves before that
  user's sends still pending, after those already sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from botkit.store.base import Session
from botkit.types import JSON, JSONObject
from botkit.wire.window import Window

RETRIED = "retried"  # a failed event whose copy was queued again (see the module docstring)

_RETRY_SUFFIX = re.compile(r"~retry(\d+)$")
_KEY_SUFFIX = re.compile(r"-r(\d+)$")


def retry_event_id(event_id: str) -> str:
    """The id of the copy a retry of `event_id` queues: `<first id>~retry<n+1>`."""
    found = _RETRY_SUFFIX.search(event_id)
    if found is None:
        return f"{event_id}~retry1"
    return f"{event_id[: found.start()]}~retry{int(found[1]) + 1}"


def retry_key(idempotency_key: str) -> str:
    """The idempotency key a retried send goes out under: `<first key>-r<n+1>`."""
    found = _KEY_SUFFIX.search(idempotency_key)
    if found is None:
        return f"{idempotency_key}-r1"
    return f"{idempotency_key[: found.start()]}-r{int(found[1]) + 1}"


TURN = "a turn of theirs is running"  # what a live claim on a user's events means
SENDING = "a send to them is being delivered"  # ... and on their sends


def busy_message(wa_id: str, what: str) -> str:
    """The message of a LaneBusyError: `what` holds the user's lane (TURN or SENDING)."""
    return f"user {wa_id}: {what}; nothing was changed: try again in a moment"


def pending_refusal(wa_id: str, pending: int) -> str:
    """The message of a forget refused because events of the user are not finished."""
    events = "1 event" if pending == 1 else f"{pending} events"
    return (
        f"user {wa_id} has {events} not processed yet (pending or running): nothing was "
        "deleted; wait until the workers have processed them (botkit conversations show) and "
        "forget again"
    )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An inbox event as an operator sees it.

    `attempts`: the claims it took (of a failed or ignored event, when it ended; of a pending
    event at the head of its lane, so far; None where the store keeps no count: a done event).
    `processed_at`: when it failed or was ignored (the store's clock; None otherwise).
    """

    seq: int
    event_id: str
    kind: str
    phone_number_id: str
    wa_id: str
    status: str
    error: str | None
    attempts: int | None
    received_at: float
    processed_at: float | None
    envelope: JSONObject


@dataclass(frozen=True, slots=True)
class SendRecord:
    """An outbox row as an operator sees it, with its latest delivery status.

    `finished_at`: when it was sent or failed (None while pending or held)."""

    seq: int
    phone_number_id: str
    wa_id: str
    idempotency_key: str
    type: str
    payload: JSON
    status: str
    attempts: int
    provider_message_id: str | None
    error: str | None
    delivery_status: str | None
    created_at: float
    finished_at: float | None
    cause: str
    instead_of: str | None = None


@dataclass(frozen=True, slots=True)
class UserLane:
    """One user on one business number: session, window, and work not finished.

    `pending_events`: events stored and not finished; `in_flight`: a worker holds a live
    claim on the user's events (a turn is running) or sends (one is being delivered)."""

    phone_number_id: str
    wa_id: str
    session: Session | None
    window: Window
    pending_events: int
    pending_sends: int
    in_flight: bool


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `forget` deleted, per kind of row."""

    sessions: int = 0
    events: int = 0  # inbox rows (with their envelopes)
    results: int = 0  # outcomes of failed or ignored events
    sends: int = 0  # outbox rows (with their bodies), pending or held ones included
    statuses: int = 0  # delivery statuses of the user's sends
    lanes: int = 0  # per-number bookkeeping: progress, claims, the 24-hour window

    @property
    def total(self) -> int:
        """Rows deleted in all."""
        return self.sessions + self.events + self.results + self.sends + self.statuses + self.lanes


class Repair(Protocol):
    """Operators' reads and repairs (see the module docstring for how they keep off a turn in
    flight). An operation on what does not exist raises RepairError with status 404 (a user
    the store knows nothing of has no lanes: `lanes` returns [] and `reset` 0); one the
    store refuses as things stand, RepairError with status 409, or LaneBusyError."""

    async def events(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Inbox events, newest first: those with `status` (any), of `wa_id` (anyone's)."""
        ...

    async def event(self, event_id: str) -> EventRecord | None:
        """One inbox event, if it exists."""
        ...

    async def retry_event(self, event_id: str) -> EventRecord:
        """Queues a copy of a failed event at the end of its user's lane (the original becomes
        RETRIED); returns the copy. Refused for an event that did not fail."""
        ...

    async def sends(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[SendRecord]:
        """Outbox rows, newest first: those with `status` (any), to `wa_id` (anyone)."""
        ...

    async def send(self, seq: int) -> SendRecord | None:
        """One outbox row, if it exists."""
        ...

    async def retry_send(self, seq: int) -> SendRecord:
        """Puts a failed send back to pending, due now, under a new idempotency key; returns
        it. Refused for a send that did not fail."""
        ...

    async def lanes(self, wa_id: str) -> list[UserLane]:
        """The user's lanes (one per business number they wrote to), by number."""
        ...

    async def reset(self, wa_id: str) -> int:
        """Deletes the user's sessions (every number's) and timers, so that their next event
        starts at the conversation's initial state with empty data; how many sessions there
        were. Their window, events and sends stay. LaneBusyError while a turn of theirs runs."""
        ...

    async def forget(self, wa_id: str) -> Forgotten:
        """Deletes everything stored about the user: sessions, timers, events with their
        results, sends (pending and held ones too) with their delivery statuses, lanes with
        their windows (timers are not counted in the record). Refused (RepairError 409, naming the count) while events of theirs are
        pending; LaneBusyError while a send of theirs is being delivered.

        Media ids are kept: they belong to the business number, not to a user. A provider
        redelivery of one of the user's events after this is taken as new (its id is gone).
        """
        ...
