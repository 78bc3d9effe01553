"""An in-memory Store: the contract's semantics in plain Python, for fast tests of the runtime.

Nothing survives the process; everything else behaves as the SQLite store does (values are
copied in and out as JSON, so a value that could not be stored fails here too).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

from botkit import codec
from botkit.exceptions import StoreError
from botkit.store.base import (
    DONE,
    FAILED,
    FALL_BACK,
    HELD,
    HOLD,
    LANE_ITEMS,
    PENDING,
    SENT,
    STATUS_RANK,
    Backlog,
    Counts,
    InboxItem,
    InboxLane,
    LaneKey,
    LaneOutcome,
    NewEvent,
    NewSend,
    OutboxItem,
    OutboxLane,
    OutboxRecord,
    Pending,
    SendLaneOutcome,
    SendOutcome,
    Session,
    StatusRecord,
    UserRecord,
    envelope_json,
    failed_outcome,
)
from botkit.store.memory_repair import MemoryRepair
from botkit.store.memory_timers import MemoryTimers
from botkit.store.memory_timers import encode as encode_timers
from botkit.store.signal import Signal
from botkit.store.timers import TimerRecord
from botkit.types import JSON, Clock, JSONObject, SystemClock
from botkit.wire.prompt import prompt_key
from botkit.wire.window import Window


@dataclass(slots=True)
class _Hold:
    """A claim on one side of a lane (its events, or its sends): whose, and until when."""

    token: str | None = None
    until: float | None = None

    def take(self, token: str, until: float) -> None:
        self.token, self.until = token, until

    def free(self) -> None:
        self.token = self.until = None


@dataclass(slots=True)
class _Lane:
    """One user's bookkeeping: inbox progress and attempts, both claims, window."""

    last_seq: int = 0
    done_seq: int = 0
    attempts: int = 0
    suspect_until: int = 0  # after a claim that never completed: events run one at a time
    events: _Hold = field(default_factory=_Hold)
    sends: _Hold = field(default_factory=_Hold)
    window: Window = field(default_factory=Window)


@dataclass(frozen=True, slots=True)
class _Event:
    """An inbox row: the event, its message id (the second dedupe key), when it came."""

    item: InboxItem
    message_id: str | None
    received_at: float


@dataclass(frozen=True, slots=True)
class _Status:
    """The latest delivery status of a message, and when it last moved forward."""

    status: str
    rank: int
    updated_at: float


@dataclass(slots=True)
class _Send:
    """An outbox row; `queued_key` is the key it was queued under (a fallback or a hold
    changes `idempotency_key`, and a repeat of the queued one is still a duplicate)."""

    seq: int
    key: LaneKey
    queued_key: str
    idempotency_key: str
    type: str
    payload: JSON
    cause: str
    status: str
    when_closed: str
    fallback: JSON
    instead_of: str | None
    next_attempt_at: float
    attempts: int = 0
    provider_message_id: str | None = None
    error: str | None = None
    media_id: str | None = None
    finished_at: float | None = None  # when it was sent or failed
    created_at: float = 0.0  # when its handler queued it
    trace: str | None = None  # the traceparent of the turn that queued it


class MemoryStore:
    """A Store in this process's memory (tests of the runtime; nothing is durable)."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._open = False
        self._last_event = 0  # seqs are never reused, as the SQLite inbox's (AUTOINCREMENT)
        self._last_send = 0
        self._events: dict[int, _Event] = {}  # by seq, in order
        self._event_ids: dict[str, int] = {}
        self._message_ids: set[str] = set()
        self._by_lane: dict[tuple[str, str, int], int] = {}  # (pnid, wa_id, lane_seq) -> seq
        self._results: dict[int, tuple[str, str | None]] = {}
        self._processed: dict[int, tuple[int, float]] = {}  # seq -> (attempts, when) if not done
        self._lanes: dict[LaneKey, _Lane] = {}
        self._sessions: dict[LaneKey, Session] = {}
        self._sends: dict[int, _Send] = {}  # by seq, in order
        self._send_keys: dict[str, int] = {}  # queued idempotency key -> seq
        self._statuses: dict[str, _Status] = {}
        self._refusals: dict[str, float] = {}  # 131047 for sends not recorded yet: id -> when
        self._media: dict[tuple[str, str], tuple[str, float]] = {}
        self.inbox = _Inbox(self)
        self.outbox = _Outbox(self)
        self.sessions = _Sessions(self)
        self.media = _Media(self)
        self.inspect = _Inspection(self)
        self.retention = _Retention(self)
        self.repair = MemoryRepair(self)
        self.timers = MemoryTimers(self)

    async def __aenter__(self) -> MemoryStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Nothing to connect to."""
        self._open = True

    async def aclose(self) -> None:
        """Nothing to flush; the data stays for a store opened again in this process."""
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("the memory store is not open: use `async with store` or `.open()`")

    def _refuse(self, message_ids: Sequence[str], now: float, *, remember: bool) -> None:
        """Sends refused by a failed status (131047) fall back or wait held; with `remember`,
        a refusal of a message no send has yet is kept for its send's result."""
        for message_id in message_ids:
            rows = [s for s in self._sends.values() if s.provider_message_id == message_id]
            for row in rows:
                if row.when_closed == FALL_BACK:
                    _fall_back(row, now, _REFUSED_ERROR)
                elif row.when_closed == HOLD:
                    _hold(row, _REFUSED_ERROR)
                self._wake_outbox(row.key)
            if remember and not rows:
                self._refusals[message_id] = now
        if remember and message_ids:
            for old in [m for m, at in self._refusals.items() if at < now - REFUSALS_KEPT]:
                del self._refusals[old]

    def _release_if_open(self, key: LaneKey, now: float) -> None:
        """Held sends go out if the user's window is open now."""
        lane = self._lanes.get(key)
        if lane is None or not lane.window.is_open(now):
            return
        for row in self._sends.values():
            if row.key == key and row.status == HELD:
                row.status, row.next_attempt_at = PENDING, now

    def _lane(self, key: LaneKey) -> _Lane:
        return self._lanes.setdefault(key, _Lane())

    def _wake_outbox(self, key: LaneKey) -> None:
        """Wakes the outbox when the lane has a pending send (due now or later)."""
        if self._head(key) is not None:
            self.outbox.notify()

    def _head(self, key: LaneKey) -> _Send | None:
        pending = [s for s in self._sends.values() if s.key == key and s.status == PENDING]
        return min(pending, key=lambda s: s.seq) if pending else None


class _Queue(Signal):
    """The claim bookkeeping the inbox and the outbox share."""

    claim_interval = (
        0.005  # a claim is a few dict lookups; 5 ms still gathers a busy worker's claims
    )

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store

    def _now(self) -> float:
        return self.store.clock.now()

    counts_attempts = False  # whether a claim counts an attempt (the inbox's: see release)

    def _hold(self, lane: _Lane) -> _Hold:
        """The claim this queue takes on a lane."""
        raise NotImplementedError

    async def renew(self, token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
        """Extends the claims `token` still holds."""
        until = self._now() + lease
        renewed = []
        for key in keys:
            lane = self.store._lanes.get(key)
            if lane is not None and self._hold(lane).token == token:
                self._hold(lane).until = until
                renewed.append(key)
        return renewed

    async def release(
        self, token: str, keys: Sequence[LaneKey] | None = None, *, refund: bool = False
    ) -> None:
        """Frees the lanes `token` holds; `refund` uncounts an inbox claim's attempt (an
        outbox claim counts none)."""
        for key, lane in self.store._lanes.items():
            if self._hold(lane).token == token and (keys is None or key in keys):
                self._hold(lane).free()
                if refund and self.counts_attempts:
                    lane.attempts = max(0, lane.attempts - 1)
        self.notify()


class _Inbox(_Queue):
    counts_attempts = True

    def _hold(self, lane: _Lane) -> _Hold:
        return lane.events

    def _waiting(self) -> list[tuple[int, LaneKey]]:
        """Lanes with events to run, by the global seq of their next event."""
        found = []
        for key, lane in self.store._lanes.items():
            if lane.last_seq > lane.done_seq:
                seq = self.store._by_lane[(*key, lane.done_seq + 1)]
                found.append((seq, key))
        return sorted(found)

    async def add(self, events: Sequence[NewEvent]) -> list[bool]:
        """Stores events; duplicates (same event or message id) are reported False."""
        self.store._check_open()
        try:
            envelopes = [codec.loads(envelope_json(event)) for event in events]
        except (TypeError, ValueError) as exc:
            raise StoreError(f"an event cannot be stored: {exc}") from exc
        flags = []
        for event, envelope in zip(events, envelopes, strict=True):
            duplicate = event.event_id in self.store._event_ids or (
                event.message_id is not None and event.message_id in self.store._message_ids
            )
            flags.append(not duplicate)
            if not duplicate:
                self._store(event, envelope)
        if any(flags):
            self.notify()
        return flags

    def _store(self, event: NewEvent, envelope: JSONObject) -> None:
        key = (event.phone_number_id, event.wa_id)
        lane = self.store._lane(key)
        lane.last_seq += 1
        self.store._last_event += 1
        seq = self.store._last_event
        item = InboxItem(
            seq, lane.last_seq, event.event_id, event.kind, *key, envelope, event.trace
        )
        self.store._events[seq] = _Event(item, event.message_id, self._now())
        self.store._event_ids[event.event_id] = seq
        if event.message_id is not None:
            self.store._message_ids.add(event.message_id)
        self.store._by_lane[(*key, lane.last_seq)] = seq

    async def claim(self, token: str, limit: int, lease: float) -> list[InboxLane]:
        """Claims the lanes whose next events wait longest."""
        self.store._check_open()
        now = self._now()
        claimed: list[InboxLane] = []
        for _, key in self._waiting():
            if len(claimed) >= limit:
                break
            lane = self.store._lanes[key]
            if lane.events.until is not None and lane.events.until > now:
                continue
            lane.events.take(token, now + lease)
            if lane.attempts > 0 and lane.done_seq >= lane.suspect_until:  # a batch died
                lane.suspect_until = min(lane.last_seq, lane.done_seq + LANE_ITEMS)
            lane.attempts += 1
            count = 1 if lane.done_seq < lane.suspect_until else LANE_ITEMS
            last = min(lane.last_seq, lane.done_seq + count)
            items = tuple(
                replace(item, envelope=_copy(item.envelope))
                for n in range(lane.done_seq + 1, last + 1)
                for item in [self.store._events[self.store._by_lane[(*key, n)]].item]
            )
            session = self.store._sessions.get(key)
            prompt = self._prompt_message_id(session)
            claimed.append(
                InboxLane(*key, token, items, session, lane.window, lane.attempts, prompt)
            )
        return claimed

    def _prompt_message_id(self, session: Session | None) -> str | None:
        """The provider's id of the session's latest prompt (one lookup by its key)."""
        key = None if session is None else prompt_key(session.data)
        if key is None:
            return None
        row = self.store._sends.get(self.store._send_keys.get(key, 0))
        return row.provider_message_id if row is not None and row.idempotency_key == key else None

    async def next_due(self) -> float | None:
        """0 when a lane can be claimed now; else until the first lease ends."""
        now = self._now()
        waits = [
            max(0.0, (lane.events.until or now) - now)
            for _, key in self._waiting()
            for lane in [self.store._lanes[key]]
        ]
        return min(waits) if waits else None

    async def complete(self, outcomes: Sequence[LaneOutcome]) -> list[bool]:
        """Applies each outcome whose token still holds its lane."""
        self.store._check_open()
        return [self._complete(outcome) for outcome in outcomes]

    def _complete(self, outcome: LaneOutcome) -> bool:
        lane = self.store._lanes.get(outcome.key)
        if lane is None or lane.events.token != outcome.token:
            return False
        try:
            parts = _encoded(outcome)
        except (TypeError, ValueError) as exc:
            outcome = failed_outcome(outcome, f"the outcome could not be stored: {exc}")
            parts = _encoded(outcome)
        lane.events.free()
        lane.attempts = 0
        now = self._now()
        for result in outcome.results:
            self.store._results[result.seq] = (result.status, result.error)
            if result.status != DONE:
                self.store._processed[result.seq] = (outcome.attempts, now)
            lane.done_seq = max(lane.done_seq, result.lane_seq)
        if outcome.window is not None:
            lane.window = lane.window.merge(outcome.window)
        if parts.session is not None:
            self.store._sessions[outcome.key] = parts.session
        self.store.timers.write(outcome.key, outcome.timers)
        self._effects(outcome, parts.sends, parts.statuses)
        if lane.last_seq > lane.done_seq:  # events came while it ran: claim them now
            self.notify()
        return True

    def _effects(
        self, outcome: LaneOutcome, sends: Sequence[NewSend], statuses: Sequence[StatusRecord]
    ) -> None:
        now = self._now()
        store = self.store
        for send in sends:
            if send.idempotency_key in store._send_keys:
                continue
            store._last_send += 1
            seq = store._last_send
            store._send_keys[send.idempotency_key] = seq
            status = HELD if send.held else PENDING
            store._sends[seq] = _Send(
                seq,
                (send.phone_number_id, send.wa_id),
                send.idempotency_key,
                send.idempotency_key,
                send.type,
                send.payload,
                send.cause,
                status,
                send.when_closed,
                send.fallback,
                send.instead_of,
                now,
                created_at=now,
                trace=send.trace,
            )
        for status_record in statuses:
            rank = STATUS_RANK.get(status_record.status, 0)
            known = store._statuses.get(status_record.message_id)
            if known is None or rank > known.rank:
                store._statuses[status_record.message_id] = _Status(status_record.status, rank, now)
        # refused first: the user's message releases them
        store._refuse(outcome.refused, now, remember=True)
        if outcome.release_held:
            for row in store._sends.values():
                if row.key == outcome.key and row.status == HELD:
                    row.status, row.next_attempt_at = PENDING, now
        store._wake_outbox(outcome.key)


class _Outbox(_Queue):
    def _hold(self, lane: _Lane) -> _Hold:
        return lane.sends

    def _due(self) -> list[tuple[float, LaneKey]]:
        """Lanes by when their first pending send is due (including their claim's end)."""
        found = []
        for key, lane in self.store._lanes.items():
            head = self.store._head(key)
            if head is not None:
                found.append((max(head.next_attempt_at, lane.sends.until or 0.0), key))
        return sorted(found)

    async def claim(self, token: str, limit: int, lease: float) -> list[OutboxLane]:
        """Claims the lanes whose first pending send is due, earliest first."""
        self.store._check_open()
        now = self._now()
        claimed: list[OutboxLane] = []
        for due, key in self._due():
            if len(claimed) >= limit or due > now:
                break
            lane = self.store._lanes[key]
            lane.sends.take(token, now + lease)
            pending = sorted(
                (s for s in self.store._sends.values() if s.key == key and s.status == PENDING),
                key=lambda s: s.seq,
            )[:LANE_ITEMS]
            items = tuple(
                OutboxItem(
                    s.seq,
                    s.idempotency_key,
                    s.type,
                    _copy(s.payload),
                    s.attempts,
                    s.when_closed,
                    _copy(s.fallback),
                    s.media_id,
                    s.cause,
                    s.trace,
                )
                for s in pending
            )
            claimed.append(OutboxLane(*key, token, items, lane.window, lane.last_seq))
        return claimed

    async def next_due(self) -> float | None:
        """Seconds until the earliest lane's first send can be claimed."""
        due = self._due()
        return max(0.0, due[0][0] - self._now()) if due else None

    async def record(self, outcomes: Sequence[SendLaneOutcome]) -> list[bool]:
        """Applies each lane's results whose token still holds it."""
        self.store._check_open()
        return [self._record(outcome) for outcome in outcomes]

    def _record(self, outcome: SendLaneOutcome) -> bool:
        lane = self.store._lanes.get(outcome.key)
        if lane is None or lane.sends.token != outcome.token:
            return False
        now = self._now()
        lane.sends.free()
        for result in outcome.results:
            send = self.store._sends.get(result.seq)
            if send is None or send.key != outcome.key:
                continue
            _apply(send, result, now)
            if result.window_closed:
                lane.window = lane.window.with_refusal(outcome.position)
        late = [r.provider_message_id for r in outcome.results if r.provider_message_id]
        late = [m for m in late if self.store._refusals.pop(m, None) is not None]
        self.store._refuse(late, now, remember=False)  # refused before recorded
        if late or any(r.fall_back == HOLD for r in outcome.results):
            self.store._release_if_open(outcome.key, now)
        self.store._wake_outbox(outcome.key)
        return True


class _Sessions:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def get(self, phone_number_id: str, wa_id: str) -> UserRecord:
        """One user's session and window."""
        key = (phone_number_id, wa_id)
        lane = self.store._lanes.get(key)
        return UserRecord(self.store._sessions.get(key), lane.window if lane else Window())


class _Media:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def get(self, phone_number_id: str, sha256: str, max_age: float) -> str | None:
        """The id of a recent enough upload."""
        found = self.store._media.get((phone_number_id, sha256))
        if found is None or found[1] <= self.store.clock.now() - max_age:
            return None
        return found[0]

    async def put(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Remembers an upload, as of now."""
        self.store._media[(phone_number_id, sha256)] = (media_id, self.store.clock.now())

    async def forget(self, phone_number_id: str, sha256: str, media_id: str) -> None:
        """Forgets `media_id`, unless another upload replaced it."""
        found = self.store._media.get((phone_number_id, sha256))
        if found is not None and found[0] == media_id:
            del self.store._media[(phone_number_id, sha256)]


class _Inspection:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def backlog(self) -> Backlog:
        """Events not completed, sends pending."""
        events = sum(lane.last_seq - lane.done_seq for lane in self.store._lanes.values())
        sends = sum(send.status == PENDING for send in self.store._sends.values())
        return Backlog(events, sends)

    async def outbox(self, wa_id: str | None = None) -> list[OutboxRecord]:
        """Outbox rows in order."""
        return [
            OutboxRecord(
                s.seq,
                *s.key,
                s.idempotency_key,
                s.type,
                _copy(s.payload),
                s.status,
                s.attempts,
                s.provider_message_id,
                s.error,
                self._delivery_status(s.provider_message_id),
                s.instead_of,
            )
            for s in sorted(self.store._sends.values(), key=lambda s: s.seq)
            if wa_id is None or s.key[1] == wa_id
        ]

    def _delivery_status(self, message_id: str | None) -> str | None:
        found = self.store._statuses.get(message_id or "")
        return None if found is None else found.status

    async def event_status(self, event_id: str) -> tuple[str, str | None] | None:
        """An event's status and error."""
        seq = self.store._event_ids.get(event_id)
        if seq is None:
            return None
        return self.store._results.get(seq, (PENDING, None))

    async def counts(self) -> Counts:
        """Events, sends and delivery statuses kept."""
        store = self.store
        return Counts(len(store._events), len(store._sends), len(store._statuses))

    async def timers(self, wa_id: str | None = None) -> list[TimerRecord]:
        """Timers not yet fired, soonest first."""
        return self.store.timers.records(wa_id)

    async def pending(self) -> Pending:
        """Work waiting, and how long the oldest event and send have waited."""
        store, now = self.store, self.store.clock.now()
        backlog = await self.backlog()
        arrivals = [
            store._events[store._by_lane[(*key, lane.done_seq + 1)]].received_at
            for key, lane in store._lanes.items()
            if lane.last_seq > lane.done_seq
        ]
        queued = [s.created_at for s in store._sends.values() if s.status == PENDING]
        return Pending(
            backlog.events,
            backlog.sends,
            sum(s.status == HELD for s in store._sends.values()),
            now - min(arrivals) if arrivals else None,
            now - min(queued) if queued else None,
        )


class _Retention:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def prune(self, before: float, limit: int) -> int:
        """Deletes up to `limit` finished events, sends and statuses older than `before`."""
        self.store._check_open()
        return (
            self._events(before, limit) + self._sends(before, limit) + self._statuses(before, limit)
        )

    def _events(self, before: float, limit: int) -> int:
        store = self.store
        old = list(islice(self._finished_events(before), limit))
        for stored in old:
            item = stored.item
            del store._events[item.seq]
            del store._event_ids[item.event_id]
            if stored.message_id is not None:
                store._message_ids.discard(stored.message_id)
            del store._by_lane[(item.phone_number_id, item.wa_id, item.lane_seq)]
            store._results.pop(item.seq, None)
            store._processed.pop(item.seq, None)
        return len(old)

    def _finished_events(self, before: float) -> Iterator[_Event]:
        """Events stored before `before` whose lane's done position passed them, by seq."""
        for stored in self.store._events.values():
            item = stored.item
            lane = self.store._lanes[(item.phone_number_id, item.wa_id)]
            if stored.received_at < before and item.lane_seq <= lane.done_seq:
                yield stored

    def _sends(self, before: float, limit: int) -> int:
        store = self.store
        finished = (
            row
            for row in store._sends.values()
            if row.status in (SENT, FAILED)
            and row.finished_at is not None
            and row.finished_at < before
        )
        old = list(islice(finished, limit))
        for row in old:
            del store._sends[row.seq]
            store._send_keys.pop(row.queued_key, None)
        return len(old)

    def _statuses(self, before: float, limit: int) -> int:
        statuses = self.store._statuses
        old = list(islice((m for m, found in statuses.items() if found.updated_at < before), limit))
        for message_id in old:
            del statuses[message_id]
        return len(old)


@dataclass(frozen=True, slots=True)
class _Parts:
    session: Session | None
    sends: tuple[NewSend, ...]
    statuses: tuple[StatusRecord, ...]


def _encoded(outcome: LaneOutcome) -> _Parts:
    """The outcome's values as stored (copied through JSON); TypeError/ValueError if one
    cannot be."""
    session = outcome.session
    if session is not None:
        session = replace(session, data=codec.loads(codec.dumps(session.data)))
    sends = tuple(
        replace(send, payload=_copy(send.payload), fallback=_copy(send.fallback))
        for send in outcome.sends
    )
    for send in sends:
        codec.dumps([send.idempotency_key, send.type, send.cause, send.trace])
    encode_timers(outcome.timers)
    return _Parts(session, sends, outcome.statuses)


def _apply(send: _Send, result: SendOutcome, now: float) -> None:
    if result.fall_back == FALL_BACK:
        _fall_back(send, now, result.error)
        return
    if result.fall_back == HOLD:
        _hold(send, result.error)
        return
    send.status, send.attempts, send.error = result.status, result.attempts, result.error
    send.provider_message_id, send.media_id = result.provider_message_id, result.media_id
    send.finished_at = now if result.status in (SENT, FAILED) else None
    if result.retry_in is not None:
        send.next_attempt_at = now + result.retry_in


def _fall_back(send: _Send, now: float, error: str | None) -> None:
    """The row becomes its fallback template, in place, under a key of its own."""
    fallback: Any = send.fallback
    if not isinstance(fallback, dict):
        return
    send.instead_of, send.type, send.payload = send.type, fallback["type"], fallback["payload"]
    send.idempotency_key += "-fb"
    send.when_closed, send.fallback, send.status, send.attempts = "fail", None, PENDING, 0
    send.next_attempt_at, send.provider_message_id, send.error = now, None, error
    send.finished_at = None


def _hold(send: _Send, error: str | None) -> None:
    """The row waits for the user to write, under a new key."""
    send.status, send.provider_message_id, send.error = HELD, None, error
    send.idempotency_key += "-held"
    send.finished_at = None


_REFUSED_ERROR = "the provider reported the 24-hour window closed (131047)"
REFUSALS_KEPT = 7 * 24 * 60 * 60.0  # as the SQLite store's


def _copy(value: Any) -> Any:
    return None if value is None else codec.loads(codec.dumps(value))
