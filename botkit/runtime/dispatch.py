"""Feeds inbox events into conversations: one user at a time and in order, many users at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from botkit import codec
from botkit.conversation.context import Context, Event, Hold, Queued, Window
from botkit.conversation.dsl import Conversation
from botkit.store.base import (
    DONE,
    FAIL,
    FAILED,
    FALL_BACK,
    HOLD,
    IGNORED,
    EventOutcome,
    InboxItem,
    NewSend,
    Session,
    StatusRecord,
    Store,
    lane_of,
)
from botkit.types import JSON, Clock, JSONObject
from botkit.wire.events import InboundMessage, OtherEvent, StatusUpdate, parse_envelope
from botkit.wire.idempotency import idempotency_key
from botkit.wire.messages import Message, Template, request_body
from botkit.wire.trigger import TriggerEvent

log = logging.getLogger(__name__)

# Claims count attempts, so a crash charges one to every event of the batch in flight: the
# bound must tolerate a few restarts while still ending a poison event that kills the process.
MAX_ATTEMPTS = 10
WINDOW_CLOSED_CODE = 131047  # Meta: "Re-engagement message", sent outside the 24-hour window


class Dispatcher:
    """The inbox worker: claims a batch of events, runs them (lanes concurrently), commits once."""

    def __init__(
        self,
        store: Store,
        conversation: Conversation,
        clock: Clock,
        *,
        batch: int = 256,
        lease: float = 60.0,
        poll: float = 1.0,
        concurrency: int = 64,
        rounds: int = 2,
        on_commit: Callable[[], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        handler_timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.conversation = conversation
        self.spec = type(conversation).spec
        self.clock = clock
        self.owner = f"dispatch-{uuid.uuid4().hex[:12]}"
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self._slots = asyncio.Semaphore(concurrency)
        self._on_commit = on_commit
        self._on_error = on_error
        self.handler_timeout = handler_timeout
        self.rounds = rounds
        self._claiming = asyncio.Lock()
        self._held: set[int] = set()  # the events the rounds in flight hold
        self._busy = 0
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False

    @property
    def busy(self) -> bool:
        """Whether a round is in flight."""
        return self._busy > 0

    def wake(self) -> None:
        """Tells the loop there may be new events."""
        self._wake.set()

    def stop(self) -> None:
        """Ends the loop after the batch in flight."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def run(self) -> None:
        """Processes events until stopped, `rounds` rounds in flight.

        While one round's handlers run, another's commit and claim run in the store's thread.
        Rounds never share a user: a claimed event holds back its user's later events until it
        is committed, and claims are taken one round at a time.
        """
        async with asyncio.TaskGroup() as group:
            for number in range(self.rounds):
                group.create_task(self._rounds(), name=f"botkit-dispatch-{number}")
            group.create_task(self._renew(), name="botkit-dispatch-leases")

    async def _renew(self) -> None:
        """Renews the claims of the rounds in flight every third of a lease: a round that runs
        longer than the lease (slow handlers, long lanes) must not see its events claimed by
        the other round, or by another worker."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self.lease / 3)
            if self._held and not self._stopping:
                held = sorted(self._held)
                try:
                    await self.store.renew_claims(self.owner, held, self.lease, self.clock.now())
                except Exception:
                    log.exception("could not renew the claims of %s", self.owner)

    async def _rounds(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self._busy += 1
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("dispatch round failed; its events will be claimed again")
                worked = 0
            finally:
                self._busy -= 1
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll)

    async def run_once(self) -> int:
        """One round: claim, process, commit. Returns how many events were claimed."""
        async with self._claiming:  # the next round reads candidates after this one's claim
            now = self.clock.now()
            items = await self.store.claim_events(self.owner, self.batch, self.lease, now)
        if not items:
            return 0
        seqs = {item.seq for item in items}
        self._held |= seqs
        try:
            return await self._round(items)
        finally:  # done, or failed: a failed round's claims expire and its events run again
            self._held -= seqs

    async def _round(self, items: list[InboxItem]) -> int:
        lanes: dict[str, list[InboxItem]] = {}
        for item in items:
            lanes.setdefault(item.lane, []).append(item)
        sessions = await self.store.load_sessions(
            [(lane[0].phone_number_id, lane[0].wa_id) for lane in lanes.values()]
        )
        results = await asyncio.gather(
            *(self._lane(lane, sessions.get(key)) for key, lane in lanes.items())
        )
        await self.store.complete_events(
            self.owner, [outcome for lane in results for outcome in lane], self.clock.now()
        )
        if self._on_commit is not None:
            self._on_commit()
        return len(items)

    async def _lane(
        self, items: Sequence[InboxItem], session: Session | None
    ) -> list[EventOutcome]:
        outcomes: list[EventOutcome] = []
        async with self._slots:
            for item in items:
                try:
                    outcome = await self._process(item, session)
                except asyncio.CancelledError:
                    if _being_cancelled():
                        raise
                    # a handler's own CancelledError must not end the dispatcher
                    log.error("event %s: the handler raised CancelledError", item.event_id)
                    outcome = EventOutcome(item.seq, FAILED, "the handler raised CancelledError")
                except Exception as exc:  # one bad event must not hold up the batch
                    log.exception("event %s could not be processed", item.event_id)
                    outcome = EventOutcome(item.seq, FAILED, f"{type(exc).__name__}: {exc}")
                session = outcome.session or session
                outcomes.append(outcome)
        return outcomes

    async def _process(self, item: InboxItem, session: Session | None) -> EventOutcome:
        if item.attempts > MAX_ATTEMPTS:
            return EventOutcome(item.seq, FAILED, f"gave up after {MAX_ATTEMPTS} attempts")
        try:
            event = _read(item)
        except ValueError as exc:
            return EventOutcome(item.seq, FAILED, f"stored envelope unreadable: {exc}")
        if isinstance(event, OtherEvent):
            return EventOutcome(item.seq, IGNORED)
        return await self._converse(item, event, session)

    async def _converse(
        self, item: InboxItem, event: Event, session: Session | None
    ) -> EventOutcome:
        state, data = self._resume(session)
        delivery, refused = _delivery(event)
        window = _window(event, session, refused, self.clock.now())
        ctx = Context(self.spec, event, state, _copy(data), window)
        inbound = isinstance(event, InboundMessage)

        def outcome(
            status: str, error: str | None, session: Session | None, sends: tuple[NewSend, ...] = ()
        ) -> EventOutcome:
            return EventOutcome(
                item.seq,
                status,
                error,
                session,
                sends,
                delivery,
                release_held=inbound,
                window_closed=refused,
            )

        # What is kept even when the handler fails: the message still opened the window.
        kept = self._session(ctx, state, data, window) if inbound else None
        try:
            async with asyncio.timeout(self.handler_timeout):
                handled = await self.spec.run(self.conversation, ctx)
            changed = self._session(ctx, ctx.state, codec.loads(codec.dumps(ctx.data)), window)
            sends = tuple(
                _send(ctx, queued, idempotency_key(item.event_id, position), item.event_id)
                for position, queued in enumerate(ctx.queued)
            )
        except TimeoutError:
            error = f"the handler took more than {self.handler_timeout:g}s and was cancelled"
            log.error("%s: event %s: %s", self.spec.name, item.event_id, error)
            return outcome(FAILED, error, kept)
        except Exception as exc:  # the handler's bug or refusal: the event fails, state unchanged
            log.exception("%s: handler failed on event %s", self.spec.name, item.event_id)
            if self._on_error is not None:
                self._on_error(item.event_id, exc)
            error = f"{type(exc).__name__}: {exc}"
            return outcome(FAILED, error, kept)
        if not handled:
            reason = None
            if isinstance(event, TriggerEvent):
                reason = f"trigger {event.input.name!r} is not declared for state {state!r}"
            status = IGNORED if reason else DONE
            return outcome(status, reason, kept)
        return outcome(DONE, None, changed, sends)

    def _session(self, ctx: Context, state: str, data: JSONObject, window: Window) -> Session:
        user = ctx.user
        return Session(
            user.phone_number_id,
            user.wa_id,
            self.spec.name,
            state,
            data,
            self.spec.version,
            window.last_inbound_at,
            window.closed_at,
        )

    def _resume(self, session: Session | None) -> tuple[str, JSONObject]:
        """The state and data to resume from; the data is the session's own (not to mutate):
        the handler gets a deep copy, so a failed handler leaves it as it was."""
        if session is None:
            return self.spec.initial, {}
        if session.state not in self.spec.states:
            log.warning(
                "%s: stored state %r no longer exists (version %s -> %s); back to %r",
                self.spec.name,
                session.state,
                session.version,
                self.spec.version,
                self.spec.initial,
            )
            return self.spec.initial, session.data
        return session.state, session.data


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _copy(data: JSONObject) -> dict[str, Any]:
    """A deep copy: a handler that fails must leave nothing of its changes to the next event."""
    copied: dict[str, Any] = codec.loads(codec.dumps(data))
    return copied


def _read(item: InboxItem) -> Event | OtherEvent:
    if item.kind == "trigger":
        return TriggerEvent.from_envelope(item.envelope)
    return parse_envelope(item.envelope)


def _send(ctx: Context, queued: Queued, key: str, cause: str) -> NewSend:
    """The outbox row of a queued message, with its closed-window policy."""
    user = ctx.user
    wire = _wire(queued.message, user.wa_id, user.phone_number_id)
    when_closed, fallback = FAIL, None
    if isinstance(queued.fallback, Template):
        when_closed = FALL_BACK
        fallback = {
            "type": "template",
            "payload": _wire(queued.fallback, user.wa_id, user.phone_number_id),
        }
    elif isinstance(queued.fallback, Hold):
        when_closed = HOLD
    return NewSend(
        user.phone_number_id,
        user.wa_id,
        key,
        queued.message.type,
        wire,
        cause,
        when_closed,
        fallback,
        queued.held,
        queued.instead_of,
    )


def _wire(message: Message, to: str, phone_number_id: str) -> JSON:
    return request_body(message, to=to, phone_number_id=phone_number_id)[message.type]


def _window(event: Event, session: Session | None, refused: bool, now: float) -> Window:
    """The window as the handler must see it, this event included."""
    last = session.last_inbound_at if session else None
    closed = session.window_closed_at if session else None
    if isinstance(event, InboundMessage):
        sent_at = float(event.timestamp)
        if closed is not None and sent_at >= closed:
            closed = None  # the user wrote at or after the closure: the window is open again
        last = max(sent_at, last or 0.0)
    if refused and isinstance(event, StatusUpdate):  # closed as of the failure, not of now
        closed = max(closed or 0.0, float(event.timestamp))
    return Window(last, closed, now)


def _delivery(event: Event) -> tuple[StatusRecord | None, bool]:
    """A status event's record, and whether it says the window was closed (code 131047)."""
    if not isinstance(event, StatusUpdate):
        return None, False
    errors = codec.dumps_str([_error_dict(e) for e in event.errors]) if event.errors else None
    refused = event.status == "failed" and any(e.code == WINDOW_CLOSED_CODE for e in event.errors)
    return StatusRecord(event.message_id, event.status, event.timestamp, errors), refused


def _error_dict(error: Any) -> dict[str, Any]:
    return {"code": error.code, "title": error.title, "message": error.message}


__all__ = ["Dispatcher", "lane_of"]
