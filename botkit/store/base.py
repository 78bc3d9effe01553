"""The Store interface, split by what it keeps, and the records it speaks in.

A bot's durable state is five things, each a Protocol of its own (after aiogram, which keeps
storage apart from event isolation), and a sixth part forgets what is finished:

- `Inbox`: events, acknowledged once stored; claimed and completed by lanes;
- `Outbox`: the messages handlers sent, claimed and recorded by lanes;
- `Sessions`: each user's conversation state and 24-hour window;
- `MediaCache`: the provider's ids of uploaded media;
- `Timers`: each user's durable timers, moved into the inbox when due (timers.py);
- `Inspection`: reads for operators, tests and tools;
- `Retention`: prunes finished events, sends and delivery statuses once they are old;
- `Repair` (repair.py): operators' reads and repairs of failed work and of one user.

**Lanes.** A lane is one user on one business number. Work is ordered within a lane and
independent between lanes. Each event gets a number when it is stored that orders it among
its lane's events (`lane_seq`: SQLite's global one does, having one writer), so that a lane's
events run in the order they were stored even with several writers. Workers
claim lanes, not rows: a claim takes up to a few of a lane's next events (or sends) under a
claim token of the caller's and a lease. The store, with its own clock, decides when a lease
ends; a worker renews what it still runs, releases what it gives up, and completes a lane with
the same token. A completion under a token that no longer holds the lane (the lease ran out
and another worker took it) changes nothing and says so.

Every backend passes tests/store/contract.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from botkit import codec
from botkit.types import JSON, JSONObject
from botkit.wire.window import Window

if TYPE_CHECKING:
    from botkit.store.repair import Repair
    from botkit.store.timers import TimerRecord, Timers, TimerWrite

SCHEMA_VERSION = 4

# inbox event outcomes (an event not yet finished is PENDING)
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

LaneKey = tuple[str, str]  # (phone_number_id, wa_id)

LANE_ITEMS = 32  # events or sends a claim takes from one lane at most


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to add to the inbox; `message_id` is the inbound wamid, the second dedupe key.

    `envelope` is the event's JSON, or that JSON already encoded (a large webhook body's
    events come encoded from the process that decoded it: botkit.web.decoder). `trace` is
    the W3C traceparent of the span that stored it (botkit.tracing), None when not traced."""

    event_id: str
    message_id: str | None
    kind: str
    phone_number_id: str
    wa_id: str
    envelope: JSONObject | str
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A claimed event: `seq` numbers every event, `lane_seq` the events of its lane; `trace`
    the traceparent it was stored with (its turn continues that trace)."""

    seq: int
    lane_seq: int
    event_id: str
    kind: str
    phone_number_id: str
    wa_id: str
    envelope: JSONObject
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """One user's conversation state, as persisted (the window is kept beside it)."""

    phone_number_id: str
    wa_id: str
    conversation: str
    state: str
    data: JSONObject
    version: str


@dataclass(frozen=True, slots=True)
class InboxLane:
    """A claimed lane: its next events in order, the user's session and window.

    `attempts` counts the claims of the lane's first event (1 the first time): more than one
    means a worker took it before and never completed it (a crash, a lost lease). After such
    a claim of several events, the store hands those events out one at a time (each a claim
    of its own), so that one that kills the worker is charged alone.

    `prompt_message_id` is the provider's message id recorded for the latest prompt the
    session remembers (botkit.wire.prompt): None while it is not sent yet, or when the
    session remembers none (the turn tells the two apart by the session).
    """

    phone_number_id: str
    wa_id: str
    token: str
    events: tuple[InboxItem, ...]
    session: Session | None
    window: Window
    attempts: int
    prompt_message_id: str | None = None

    @property
    def key(self) -> LaneKey:
        """(phone_number_id, wa_id)."""
        return (self.phone_number_id, self.wa_id)


@dataclass(frozen=True, slots=True)
class NewSend:
    """A message a handler sent, to be delivered by the outbox.

    `when_closed` says what to do if the window is closed at delivery: FAIL, FALL_BACK to
    `fallback` (a template's {"type", "payload"}), or HOLD until the user writes. `held` sends
    start held; `instead_of` is the free-form type a template replaced at send time; `trace`
    is the traceparent of the turn that queued it (its sends join that trace).
    """

    phone_number_id: str
    wa_id: str
    idempotency_key: str
    type: str
    payload: JSON
    cause: str
    when_closed: str = FAIL
    fallback: JSON = None
    held: bool = False
    instead_of: str | None = None
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """A delivery status reported for an outbound message."""

    message_id: str
    status: str
    timestamp: int
    errors: str | None = None


@dataclass(frozen=True, slots=True)
class EventResult:
    """How one event ended."""

    seq: int
    lane_seq: int
    status: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LaneOutcome:
    """What running a claimed lane's events produced, committed as one unit.

    `results` are for a prefix of the lane's claimed events, in order (the rest stay
    pending). `session` (None: unchanged) and `window` (merged with the stored one) are as of
    the last of them. `release_held`: the user wrote, so held sends go out, in order.
    `refused`: provider message ids whose `failed` status says the window was closed: those
    sends fall back (or are held) as their policy says, in whichever lane they were queued;
    an id no send has yet (the status came before the send's result was recorded) is kept
    and applied when it is. `attempts`: the claim's, kept with events that did not succeed.
    """

    phone_number_id: str
    wa_id: str
    token: str
    results: tuple[EventResult, ...]
    session: Session | None = None
    window: Window | None = None
    sends: tuple[NewSend, ...] = ()
    statuses: tuple[StatusRecord, ...] = ()
    release_held: bool = False
    refused: tuple[str, ...] = ()
    attempts: int = 1
    timers: tuple[TimerWrite, ...] = ()

    @property
    def key(self) -> LaneKey:
        """(phone_number_id, wa_id)."""
        return (self.phone_number_id, self.wa_id)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed send; `media_id` is the uploaded media an earlier attempt sent it with,
    `cause` the event (or trigger) id whose turn queued it (for its log line), `trace` that
    turn's traceparent (each attempt's span continues it)."""

    seq: int
    idempotency_key: str
    type: str
    payload: JSON
    attempts: int
    when_closed: str = FAIL
    fallback: JSON = None
    media_id: str | None = None
    cause: str | None = None
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxLane:
    """A claimed lane of the outbox: its next due sends in order, the user's window, and the
    lane position of the latest event stored when it was claimed (a refusal met while
    delivering is dated there: what the user sends after it reopens the window)."""

    phone_number_id: str
    wa_id: str
    token: str
    sends: tuple[OutboxItem, ...]
    window: Window
    position: int

    @property
    def key(self) -> LaneKey:
        """(phone_number_id, wa_id)."""
        return (self.phone_number_id, self.wa_id)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What happened to one delivery attempt.

    `retry_in`: seconds until a PENDING send is tried again (the store's clock decides when
    that is). `fall_back`: FALL_BACK (the row becomes its fallback template, in place) or HOLD
    (held until the user writes; released at once if they have since the claim).
    `window_closed`: the provider refused a free-form send (403): the window is closed as of
    the lane's claim position. `media_id`: the uploaded media it went with (a retry of an
    attempt whose outcome is unknown must send the same body).
    """

    seq: int
    status: str
    attempts: int
    provider_message_id: str | None = None
    error: str | None = None
    retry_in: float | None = None
    fall_back: str | None = None
    window_closed: bool = False
    media_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendLaneOutcome:
    """The results of a claimed outbox lane's attempts, in order; sends not named stay pending.
    `position` is the claimed lane's (see OutboxLane)."""

    phone_number_id: str
    wa_id: str
    token: str
    results: tuple[SendOutcome, ...]
    position: int

    @property
    def key(self) -> LaneKey:
        """(phone_number_id, wa_id)."""
        return (self.phone_number_id, self.wa_id)


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
class Backlog:
    """Work not finished: events not yet completed, sends pending (not held)."""

    events: int = 0
    sends: int = 0


@dataclass(frozen=True, slots=True)
class Pending:
    """Work waiting, for metrics and readiness: events not completed, sends pending and held,
    and how long the oldest pending event and send have waited (seconds by the store's clock
    since each was stored; None when there is none)."""

    events: int = 0
    sends: int = 0
    held: int = 0
    oldest_event: float | None = None
    oldest_send: float | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    """What the store keeps, of each kind that retention prunes: events (any status), sends
    (any status) and delivery statuses."""

    events: int = 0
    sends: int = 0
    statuses: int = 0


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user as the store knows them: session (None: never stored) and window."""

    session: Session | None
    window: Window = field(default_factory=Window)


def failed_outcome(outcome: LaneOutcome, error: str) -> LaneOutcome:
    """`outcome` as it is stored when its session, sends or statuses cannot be: its events
    failed with `error`, and only what the user's messages did to the window is kept."""
    results = tuple(EventResult(r.seq, r.lane_seq, FAILED, error) for r in outcome.results)
    return LaneOutcome(
        outcome.phone_number_id,
        outcome.wa_id,
        outcome.token,
        results,
        window=outcome.window,
        release_held=outcome.release_held,
        attempts=outcome.attempts,
    )


E = TypeVar("E")


def envelope_json(event: NewEvent) -> str:
    """An event's envelope as the JSON text a store keeps (TypeError, ValueError when it
    cannot be encoded)."""
    envelope = event.envelope
    return envelope if isinstance(envelope, str) else codec.dumps_str(envelope)


def encoded(outcome: LaneOutcome, encode: Callable[[LaneOutcome], E]) -> E:
    """`encode(outcome)` (a backend's rows for it); an outcome with a value that cannot be
    stored (TypeError, ValueError) is encoded as its events' failure instead, so that it fails
    its own lane only."""
    try:
        return encode(outcome)
    except (TypeError, ValueError) as exc:
        return encode(failed_outcome(outcome, f"the outcome could not be stored: {exc}"))


L = TypeVar("L")


class LaneQueue(Protocol[L]):
    """Work kept in lanes, claimed a lane at a time: the part Inbox and Outbox share."""

    @property
    def claim_interval(self) -> float:
        """The least time between two claims of one worker loop, in seconds: what a claim
        costs the store, and the other workers sharing it (claims made while work keeps
        coming are gathered into fewer, larger ones)."""
        ...

    async def claim(self, token: str, limit: int, lease: float) -> list[L]:
        """Claims up to `limit` lanes with work due, oldest first, for `lease` seconds.

        A lane held under another token, not yet expired, is skipped; so is a lane whose
        first item is not due. Each claimed lane carries its next few items, in order.
        """
        ...

    async def renew(self, token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
        """Extends the claims `token` still holds on `keys` to `lease` seconds from now;
        returns those it extended (a lane not returned was lost: do not complete it)."""
        ...

    async def release(
        self, token: str, keys: Sequence[LaneKey] | None = None, *, refund: bool = False
    ) -> None:
        """Gives back the lanes `token` holds (`keys`, or all of them), to be claimed again at
        once. `refund` uncounts the attempt of an inbox claim given back unrun (a failed
        commit, not a failed handler)."""
        ...

    async def next_due(self) -> float | None:
        """Seconds until some lane can be claimed (0: now), or None when nothing waits."""
        ...

    async def wait_for_work(self, within: float) -> None:
        """Returns when there may be new work (this process's or, for backends that can tell,
        another's), or after `within` seconds."""
        ...

    def notify(self) -> None:
        """Wakes this process's waiters: there may be new work (e.g. another process said so)."""
        ...


class Inbox(LaneQueue[InboxLane], Protocol):
    """Events: stored durably before they are acknowledged, then processed lane by lane."""

    async def add(self, events: Sequence[NewEvent]) -> list[bool]:
        """Stores events; per event, True if new, False if a duplicate (same event or message
        id). An event that cannot be stored fails alone: StoreError for the whole call only
        when nothing could be stored."""
        ...

    async def complete(self, outcomes: Sequence[LaneOutcome]) -> list[bool]:
        """Commits each lane's outcome (events, session, window, sends, statuses) and releases
        the lane; per outcome, False when its token no longer held the lane (nothing
        written). One outcome that cannot be stored fails alone. A lane left with events (they
        came while it ran) wakes the inbox's waiters."""
        ...


class Outbox(LaneQueue[OutboxLane], Protocol):
    """Messages to deliver, lane by lane, in order."""

    async def record(self, outcomes: Sequence[SendLaneOutcome]) -> list[bool]:
        """Records each lane's delivery attempts and releases the lane; per outcome, False
        when its token no longer held the lane (nothing written). A send recorded as sent
        whose refusal came first falls back (or is held) now; sends held while the user's
        window is open (as stored now) go out."""
        ...


class Sessions(Protocol):
    """Users' conversation states and windows."""

    async def get(self, phone_number_id: str, wa_id: str) -> UserRecord:
        """One user's session and window."""
        ...


class MediaCache(Protocol):
    """Media ids of uploaded content, per business number."""

    async def get(self, phone_number_id: str, sha256: str, max_age: float) -> str | None:
        """The id of content uploaded from this number less than `max_age` seconds ago."""
        ...

    async def put(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Remembers an upload, as of now."""
        ...

    async def forget(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Forgets `media_id` (the provider no longer has it), unless a newer upload replaced it."""
        ...


class Inspection(Protocol):
    """Reads for operators, tests and tools."""

    async def backlog(self) -> Backlog:
        """Events not yet completed and sends pending."""
        ...

    async def outbox(self, wa_id: str | None = None) -> list[OutboxRecord]:
        """Outbox rows in order, with their latest delivery status, optionally for one user."""
        ...

    async def event_status(self, event_id: str) -> tuple[str, str | None] | None:
        """An inbox event's status and error, if the event exists."""
        ...

    async def counts(self) -> Counts:
        """How many events, sends and delivery statuses the store keeps (it counts them all:
        for tests and operators, not for a hot path)."""
        ...

    async def pending(self) -> Pending:
        """Work waiting and the age of the oldest (for a scrape of the metrics, or readiness:
        a few indexed reads, not for a hot path)."""
        ...

    async def timers(self, wa_id: str | None = None) -> list[TimerRecord]:
        """Timers not yet fired, soonest first, optionally for one user."""
        ...


class Retention(Protocol):
    """Forgets finished work once it is old, so that the store stays bounded under traffic.

    The caller picks `before` (a time of the store's clock): a retention shorter than the
    provider's webhook redeliveries would let a late redelivery in as a new event.
    """

    async def prune(self, before: float, limit: int) -> int:
        """Deletes, oldest first and at most `limit` (1 or more) of each kind:

        - events stored before `before` that are finished (done, failed or ignored: their
          lane's done position passed them), with their results; never a pending one, nor one
          a claim holds (a claim takes events past the done position). Their age counts from
          their arrival, as the provider's redeliveries do (a done event's finishing time is
          not kept): one stored at or after `before` is still a duplicate if it comes again;
          once pruned, its event id and message id are forgotten;
        - sends that were sent or failed before `before` (never a pending or held one);
        - delivery statuses last updated before `before`.

        Lanes, sessions, windows, positions and media ids stay. Each kind's batch is short
        work of its own (a transaction or two), so that workers are never held up for long.
        Returns how many events, sends and statuses it deleted (0: none is left to prune).
        """
        ...


class Pacing(Protocol):
    """Send slots shared by every process of a deployment: the provider's rate limits are per
    sending number and per API key, not per process."""

    async def reserve(self, bucket: str, interval: float) -> float:
        """Takes `bucket`'s next slot, `interval` seconds after the slot before it (or now, if
        that has passed); returns the seconds until it (0: now)."""
        ...


@runtime_checkable
class PacedStore(Protocol):
    """A store shared by several processes, which paces their sends together."""

    @property
    def pacing(self) -> Pacing:
        """The deployment's send slots."""
        ...


class Store(Protocol):
    """Durable state of a bot: its parts, opened and closed together."""

    @property
    def inbox(self) -> Inbox:
        """Events in."""
        ...

    @property
    def outbox(self) -> Outbox:
        """Messages out."""
        ...

    @property
    def sessions(self) -> Sessions:
        """Conversation states and windows."""
        ...

    @property
    def media(self) -> MediaCache:
        """Uploaded media ids."""
        ...

    @property
    def timers(self) -> Timers:
        """Users' durable timers."""
        ...

    @property
    def inspect(self) -> Inspection:
        """Reads for operators and tests."""
        ...

    @property
    def retention(self) -> Retention:
        """Pruning of finished work."""
        ...

    @property
    def repair(self) -> Repair:
        """Operators' reads and repairs."""
        ...

    async def open(self) -> None:
        """Connects, and creates or migrates the schema."""
        ...

    async def aclose(self) -> None:
        """Finishes what is being written, then closes; closing twice is harmless."""
        ...
