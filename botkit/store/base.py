"""The Store interface: what every backend keeps (inbox, sessions, outbox, statuses) and the records it speaks in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from botkit.types import JSON, JSONObject

SCHEMA_VERSION = 3

# inbox row states
PENDING = "pending"
DONE = "done"
FAILED = "failed"
IGNORED = "ignored"

# outbox row states (besides PENDING and FAILED)
SENT = "sent"
HELD = "held"  # waits for the user to write again (a closed window, fallback=HOLD)

# what a free-form send does when the window turns out closed at delivery
FAIL = "fail"
FALL_BACK = "fallback"
HOLD = "hold"

# delivery statuses, in the order they can only move forward
STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}


def lane_of(phone_number_id: str, wa_id: str) -> str:
    """The ordering key: one user, on one business number."""
    return f"{phone_number_id}:{wa_id}"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to add to the inbox; `message_id` is the inbound wamid, the second dedupe key."""

    event_id: str
    message_id: str | None
    kind: str
    phone_number_id: str
    wa_id: str
    envelope: JSONObject


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A claimed inbox row."""

    seq: int
    event_id: str
    kind: str
    phone_number_id: str
    wa_id: str
    envelope: JSONObject
    attempts: int

    @property
    def lane(self) -> str:
        """The user this event belongs to."""
        return lane_of(self.phone_number_id, self.wa_id)


@dataclass(frozen=True, slots=True)
class Session:
    """One user's conversation state, as persisted."""

    phone_number_id: str
    wa_id: str
    conversation: str
    state: str
    data: JSONObject
    version: str
    last_inbound_at: float | None = None
    window_closed_at: float | None = None


@dataclass(frozen=True, slots=True)
class NewSend:
    """A message a handler sent, to be delivered by the outbox.

    `when_closed` says what to do if the window is closed at delivery: FAIL, FALL_BACK to
    `fallback` (a template's (type, payload)), or HOLD until the user writes. `held` sends
    start held; `instead_of` is the free-form type a template replaced at send time.
    """

    phone_number_id: str
    wa_id: str
    idempotency_key: str
    type: str
    payload: JSON
    cause: str
    when_closed: str = "fail"
    fallback: JSON = None
    held: bool = False
    instead_of: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed outbox row, with the user's window as the store knows it."""

    seq: int
    phone_number_id: str
    wa_id: str
    idempotency_key: str
    type: str
    payload: JSON
    attempts: int
    when_closed: str = "fail"
    fallback: JSON = None
    last_inbound_at: float | None = None
    window_closed_at: float | None = None

    @property
    def lane(self) -> str:
        """The user this message goes to."""
        return lane_of(self.phone_number_id, self.wa_id)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An outbox row as it stands, for inspection and tests."""

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
    instead_of: str | None = None


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """A delivery status reported for an outbound message."""

    message_id: str
    status: str
    timestamp: int
    errors: str | None = None


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What processing one inbox event produced, committed together with the others of a batch."""

    seq: int
    status: str
    error: str | None = None
    session: Session | None = None
    sends: tuple[NewSend, ...] = ()
    delivery: StatusRecord | None = None
    release_held: bool = False  # the user wrote: held sends of the lane go out, in order
    window_closed: bool = False  # the provider said the window is closed (131047)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What happened to one outbox delivery attempt."""

    seq: int
    status: str
    attempts: int
    provider_message_id: str | None = None
    error: str | None = None
    next_attempt_at: float | None = None
    fall_back: str | None = None  # send the row's fallback template instead, with this key
    window_closed: bool = False  # the provider refused a free-form send (403)


class Store(Protocol):
    """Durable state of a bot. Every backend passes tests/store/contract.py.

    Ordering guarantee: `claim_events` and `claim_outbox` never hand out a row while an
    earlier unfinished row of the same lane is claimed by anyone (this or another worker)
    or, for the outbox, not yet due; rows of one lane come back in order.
    """

    async def open(self) -> None:
        """Connects, and creates or migrates the schema."""
        ...

    async def aclose(self) -> None:
        """Flushes what is pending and closes."""
        ...

    async def add_events(self, events: Sequence[NewEvent], now: float) -> list[bool]:
        """Adds events durably; per event, True if new, False if a duplicate (same event or message id)."""
        ...

    async def claim_events(
        self, owner: str, limit: int, lease: float, now: float
    ) -> list[InboxItem]:
        """Claims the next pending events, in per-lane order, for `lease` seconds."""
        ...

    async def renew_claims(self, owner: str, seqs: Sequence[int], lease: float, now: float) -> int:
        """Extends `owner`'s claims on the pending events `seqs` to `now + lease`; returns how many.

        A worker renews what its rounds in flight hold, so a round longer than the lease is not
        claimed again; the claims of a round that failed are left to expire.
        """
        ...

    async def load_sessions(self, lanes: Sequence[tuple[str, str]]) -> dict[str, Session]:
        """The sessions of the given (phone_number_id, wa_id) pairs that exist, by lane."""
        ...

    async def complete_events(
        self, owner: str, outcomes: Sequence[EventOutcome], now: float
    ) -> None:
        """In one transaction: marks events, saves sessions, queues sends, records statuses."""
        ...

    async def claim_outbox(
        self, owner: str, limit: int, lease: float, now: float
    ) -> list[OutboxItem]:
        """Claims the next due sends, in per-lane order, for `lease` seconds."""
        ...

    async def record_sends(self, owner: str, outcomes: Sequence[SendOutcome], now: float) -> None:
        """Records the results of delivery attempts and releases the rows."""
        ...

    async def start_worker(self) -> None:
        """Prepares this process to run workers.

        A single-node store refuses (StoreError) when another process already runs workers
        on it, then frees the claims that a process that died left behind.
        """
        ...

    async def media_id(self, phone_number_id: str, sha256: str) -> str | None:
        """The media id of uploaded content on a business number, if it was uploaded."""
        ...

    async def save_media_id(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Remembers the media id of uploaded content."""
        ...

    async def release_claims(self, owner: str | None) -> None:
        """Gives back every row `owner` holds; None: every claim (a single-node store at start-up)."""
        ...

    async def next_send_due(self) -> float | None:
        """When the earliest pending send is due, or None when nothing waits."""
        ...

    async def backlog(self) -> tuple[int, int]:
        """Pending inbox events and pending sends."""
        ...

    async def get_session(self, phone_number_id: str, wa_id: str) -> Session | None:
        """One user's session, if it exists."""
        ...

    async def outbox(self, wa_id: str | None = None) -> list[OutboxRecord]:
        """Outbox rows in order, optionally for one user."""
        ...

    async def event_status(self, event_id: str) -> tuple[str, str | None] | None:
        """An inbox event's status and error, if the event exists."""
        ...
