"""A user's turn: their claimed events, run through the conversation, to one LaneOutcome.

`take_turn(conversation, lane, now)` is a function of the claimed lane (its events, the user's
session and window) and the time: it reads nothing and writes nothing, so it is tested
without a store (tests/runtime/test_turn.py). The dispatcher commits what it returns.

Each event runs its handler with the state and data the previous one left. A handler that
raises, runs too long, or leaves something that cannot be stored (data or a message that is
not JSON) fails its own event: its changes are dropped and the next event starts from the
state before it. What an event says about the 24-hour window is kept even then.

In a conversation with `stale_taps`, a reply-button or list tap on an older message than the
latest prompt runs `on.stale` (or the conversation's notice) instead of a handler of the current
state; the turn remembers the latest prompt's key with the session (botkit.runtime.stale).

Each event also leaves an `EventReport` (states, handler, what it sent, how long it took,
how it ended) for its log line, which the dispatcher writes once the turn is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botkit import codec
from botkit.conversation.context import HOLD as HOLD_SEND
from botkit.conversation.context import Context, Event, Hold, Queued, WindowView
from botkit.conversation.dsl import Conversation, ConversationSpec
from botkit.exceptions import WindowClosedError
from botkit.logsafe import cut
from botkit.runtime import burst as burst_rules
from botkit.runtime import handoff, handoff_timer, stale, timer_rules
from botkit.store.base import (
    DONE,
    FAIL,
    FAILED,
    FALL_BACK,
    HOLD,
    IGNORED,
    EventResult,
    InboxItem,
    InboxLane,
    LaneOutcome,
    NewSend,
    Session,
    StatusRecord,
)
from botkit.store.timers import TimerWrite
from botkit.types import JSON, JSONObject
from botkit.wire import session_data
from botkit.wire.burst import BURST_KEY
from botkit.wire.events import InboundMessage, OtherEvent, StatusUpdate, parse_envelope
from botkit.wire.handoff import KIND as HANDOFF_KIND
from botkit.wire.handoff import MARK_KEY, RESUME, START, HandoffEvent, HandoffMark
from botkit.wire.idempotency import idempotency_key
from botkit.wire.messages import Message, Template, request_body
from botkit.wire.prompt import PROMPT_KEY, prompt_key
from botkit.wire.timer import MARKS_KEY, TIMER_KIND, TimerEvent
from botkit.wire.trigger import TriggerEvent, TriggerInput
from botkit.wire.window import WINDOW_CLOSED_CODE, Window

log = logging.getLogger(__name__)

# Claims count attempts, so a crash charges one to the event in flight: the bound must
# tolerate a few restarts while still ending a poison event that kills the process.
MAX_ATTEMPTS = 10
HANDLER_TIMEOUT = 30.0
ERROR_KEPT = 2000  # characters of a failed event's error kept in the store
PROMPT = "(prompt)"  # the handler of an input no handler takes: the state's prompt again


@dataclass(frozen=True, slots=True)
class EventReport:
    """What one event of a turn did, for its log line: `sent` are the types of the messages
    it queued and `keys` their idempotency keys; `message_id` is an inbound message's wamid
    or the outbound message a status is about, `delivery` that status; `duration` seconds."""

    event_id: str
    kind: str
    state_before: str
    state_after: str
    handler: str | None
    sent: tuple[str, ...]
    keys: tuple[str, ...]
    duration: float
    outcome: str
    error: str | None = None
    message_id: str | None = None
    delivery: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """What a turn produced: the outcome to commit, the handlers' exceptions by event id
    (to report once it is committed: the simulator raises them in the test's step), and a
    report of each event it ended, in order."""

    outcome: LaneOutcome
    errors: dict[str, BaseException] = field(default_factory=dict)
    reports: tuple[EventReport, ...] = ()
    failed_handlers: tuple[str, ...] = ()  # the handler of each event a handler failed


@dataclass(slots=True)
class _Progress:
    """The user as the turn goes: state, data, window, and what the events produced."""

    state: str
    data: JSONObject
    window: Window
    changed: bool = False
    results: list[EventResult] = field(default_factory=list)
    sends: list[NewSend] = field(default_factory=list)
    statuses: list[StatusRecord] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    inbound: bool = False
    errors: dict[str, BaseException] = field(default_factory=dict)
    announce: Message | None = None  # a migration's message, sent before the next handler
    reports: list[EventReport] = field(default_factory=list)
    # of the event running: the handler that ran, and the message id and status it is about
    handler: str | None = None
    message_id: str | None = None
    delivery: str | None = None
    failed_handlers: list[str] = field(default_factory=list)
    handoff: HandoffMark | None = None  # handed off to people: no handler runs
    timers: list[TimerWrite] = field(default_factory=list)
    # where the user entered their state, and the reminders' latest ids (botkit.runtime.timer_rules)
    marks: timer_rules.Marks = field(default_factory=timer_rules.Marks)
    # the latest prompt's idempotency key, and the provider's id recorded for it (None while
    # it is not sent: always so for one queued in this turn); see botkit.runtime.stale
    prompt: str | None = None
    prompt_sent: str | None = None
    # texts gathered for one turn (conversations with `coalesce`; botkit.runtime.burst), and
    # whether this turn gathered one or ended one (for the burst's timer)
    burst: burst_rules.Burst | None = None
    gathered: bool = False
    burst_ended: bool = False
    # where the report of the event running starts, when a burst ran first (its own report)
    report_from: tuple[str, int, float] | None = None  # (state, sends queued, started)
    monotonic: Callable[[], float] = time.perf_counter


async def take_turn(
    conversation: Conversation,
    lane: InboxLane,
    now: float,
    *,
    handler_timeout: float = HANDLER_TIMEOUT,
    max_attempts: int = MAX_ATTEMPTS,
    monotonic: Callable[[], float] = time.perf_counter,
) -> Turn:
    """Runs `lane`'s events in order and returns what to commit (and what to log of it)."""
    spec = type(conversation).spec
    state, stored, announce = _resume(spec, lane.session)
    data, own = session_data.split(stored)  # what botkit keeps in it, out of handlers' sight
    marks = timer_rules.Marks.from_json(own.get(MARKS_KEY))
    mark = HandoffMark.from_json(own.get(MARK_KEY))
    prompt = prompt_key(own)
    gathering = burst_rules.Burst.from_json(own.get(BURST_KEY))
    progress = _Progress(
        state, data, lane.window, announce=announce, handoff=mark, marks=marks, burst=gathering,
        monotonic=monotonic,
    )  # fmt: skip
    if spec.stale_taps:  # else none is remembered (and a key left from before is dropped)
        progress.prompt, progress.prompt_sent = prompt, lane.prompt_message_id
    gave_up = max_attempts if lane.attempts > max_attempts else None
    for item in lane.events:
        # the state the event starts from (timers' marks), and its report's (after a burst
        # that ran first, the state that burst left: see report_from)
        entered_from = before = progress.state
        queued = len(progress.sends)
        progress.handler = progress.message_id = progress.delivery = None
        progress.report_from = None
        started = monotonic()
        await _run_event(conversation, item, progress, now, handler_timeout, gave_up)
        if progress.report_from is not None:  # a burst ran first, reported on its own
            before, queued, started = progress.report_from
        _report(item, progress, before, queued, monotonic() - started)
        progress.marks = timer_rules.entering(
            progress.marks, entered_from, progress.state, item.lane_seq
        )
    session = None
    if progress.changed:
        kept: dict[str, JSON] = {  # botkit's keys, out of the handlers' sight (session_data)
            MARK_KEY: progress.handoff.to_json() if progress.handoff else None,
            PROMPT_KEY: progress.prompt,
            BURST_KEY: progress.burst.to_json() if progress.burst else None,
            MARKS_KEY: timer_rules.saved(spec, progress.marks, progress.timers),
        }
        session = Session(
            lane.phone_number_id, lane.wa_id, spec.name, progress.state,
            session_data.joined(progress.data, kept), spec.version,
        )  # fmt: skip
    # the user wrote, or sends just held find the window open (the user wrote after them)
    release_held = progress.inbound or (bool(progress.refused) and progress.window.is_open(now))
    progress.timers += handoff_timer.writes(mark, progress.handoff, _last(lane))
    if spec.coalesce is not None:
        progress.timers += burst_rules.timer(
            progress.burst, progress.gathered, progress.burst_ended, spec.coalesce
        )
    if lane.events and progress.handoff is None:  # the conversation's own timers, as the turn
        # leaves the user (none while people answer: its handlers would not run)
        progress.timers += timer_rules.automatic(
            spec,
            lane.events[-1].event_id,
            (marks.entered, progress.marks.entered),
            (progress.state, progress.window),
            progress.inbound,
            now,
        )
    elif mark is None and progress.handoff is not None:  # people take over: the state's own
        # timers are cancelled (they would not run), and a resume sets them again
        progress.timers += timer_rules.cancelled(spec)
    outcome = LaneOutcome(
        lane.phone_number_id,
        lane.wa_id,
        lane.token,
        tuple(progress.results),
        session,
        progress.window,
        tuple(progress.sends),
        tuple(progress.statuses),
        release_held=release_held,
        refused=tuple(progress.refused),
        attempts=lane.attempts,
        timers=tuple(progress.timers),
    )
    return Turn(outcome, progress.errors, tuple(progress.reports), tuple(progress.failed_handlers))


def _report(
    item: InboxItem, progress: _Progress, before: str, queued: int, duration: float
) -> None:
    """The report of the event just run (its result is the last one)."""
    result = progress.results[-1]
    sends = progress.sends[queued:]
    progress.reports.append(
        EventReport(
            item.event_id, item.kind, before, progress.state, progress.handler,
            tuple(send.type for send in sends), tuple(send.idempotency_key for send in sends),
            duration, result.status, result.error, progress.message_id, progress.delivery,
        )
    )  # fmt: skip


async def _run_event(
    conversation: Conversation,
    item: InboxItem,
    progress: _Progress,
    now: float,
    limit: float,
    gave_up: int | None,
) -> None:
    def result(status: str, error: str | None = None) -> None:
        progress.results.append(EventResult(item.seq, item.lane_seq, status, error))

    try:
        event = _read(item)
    except ValueError as exc:
        return result(FAILED, cut(f"stored envelope unreadable: {exc}", ERROR_KEPT))
    if isinstance(event, OtherEvent):
        return result(IGNORED)
    if isinstance(event, InboundMessage):
        progress.message_id = event.message_id
    elif isinstance(event, StatusUpdate):
        progress.message_id, progress.delivery = event.message_id, event.status
    try:
        _learn(event, item, progress)
    except Exception as exc:  # a value the store cannot keep: this event fails, not the lane
        return result(FAILED, cut(f"cannot be recorded: {type(exc).__name__}: {exc}", ERROR_KEPT))
    spec = type(conversation).spec
    if gave_up is not None:  # claimed too often without finishing: it may kill the worker
        dropped = _drop_burst(spec, progress, event)
        return result(FAILED, f"gave up after {gave_up} attempts{dropped}")
    if burst_rules.is_timer(event):  # the interval passed: the burst's texts, as one turn
        assert isinstance(event, TimerEvent)
        why = burst_rules.stale(event, progress.burst)
        if why is not None:
            return result(IGNORED, why)
        return result(*await _end_burst(conversation, spec, progress, item, now, limit))
    if progress.burst and burst_rules.ends(progress.burst, event, spec.coalesce):  # texts first
        before = progress.state
        await _end_burst(conversation, spec, progress, None, now, limit)
        progress.marks = timer_rules.entering(progress.marks, before, progress.state, item.lane_seq)
    if isinstance(event, TimerEvent):  # checked after a burst before it ran (it may cancel it)
        why = timer_rules.stale(
            event, progress.state, progress.window, now,
            spec.migrations, progress.marks, progress.timers,
        )  # fmt: skip
        if why is not None:  # overtaken by the user (or the state) since it was set
            return result(IGNORED, why)
    if isinstance(event, HandoffEvent):
        return await _handoff_event(spec, event, item, progress, now, result)
    if isinstance(event, TimerEvent) and handoff_timer.is_resume(event):
        return await _timed_out(spec, event, item, progress, now, result)
    if progress.handoff is not None:  # people answer: the user's message goes to them
        progress.handler = handoff.HANDLER
        if isinstance(event, InboundMessage):
            progress.sends.append(handoff.forward(event, progress.handoff, item.event_id))
            _touch(progress, now)
            return result(DONE)
        if isinstance(event, TriggerEvent | TimerEvent):
            return result(IGNORED, "the conversation is handed off to people")
        return result(DONE)
    if spec.coalesce is not None and burst_rules.takes(event) and progress.announce is None:
        assert isinstance(event, InboundMessage)  # (a migration's message goes with a text now)
        return await _gather(conversation, spec, event, progress, now, limit, result)
    return result(*await _handle(conversation, spec, event, item.event_id, progress, now, limit))


async def _handle(
    conversation: Conversation,
    spec: ConversationSpec,
    event: Event,
    cause: str,
    progress: _Progress,
    now: float,
    limit: float,
    reported_as: str | None = None,
) -> tuple[str, str | None]:
    """Runs the handler of an event (`cause`: the event id its sends' keys derive from) with
    the user's state and data; returns how the event ended. A handler that fails leaves
    nothing of its changes; its exception is kept under `reported_as` (default `cause`), the
    id of the report it belongs to."""
    reported_as = reported_as or cause
    ctx = Context(
        spec, event, progress.state, _copy(progress.data), WindowView(progress.window, now)
    )
    tapped_old = (
        spec.stale_taps
        and isinstance(event, InboundMessage)
        and stale.is_stale(event, progress.prompt, progress.prompt_sent)
    )
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            if progress.announce is not None:  # held when closed: the user hears it on writing
                await ctx.send(progress.announce, fallback=HOLD_SEND)
            try:
                if tapped_old:  # never a handler of the current state by accident
                    handled = await spec.run_stale(conversation, ctx)
                else:
                    handled = await spec.run(conversation, ctx)
            finally:
                progress.handler = ctx.handler
        data = _copy(ctx.data)  # data that is not JSON fails here, in its own event
        sends = [_send(ctx, queued, cause, n) for n, queued in enumerate(ctx.queued)]
        timers = timer_rules.scheduled(cause, ctx.scheduled)
        _copy({"timers": [t.payload for t in timers]})  # reminders' data must be JSON too
    except TimeoutError as exc:
        progress.failed_handlers.append(ctx.handler or PROMPT)  # botkit_handler_errors_total
        if not deadline.expired():  # the handler's own TimeoutError (a client of its): its bug
            return _failed(reported_as, progress, exc)
        return FAILED, f"the handler took more than {limit:g}s and was cancelled"
    except asyncio.CancelledError:
        if _being_cancelled():
            raise
        progress.failed_handlers.append(ctx.handler or PROMPT)
        return FAILED, "the handler raised CancelledError"
    except Exception as exc:  # the handler's bug or refusal: the event fails, state unchanged
        progress.failed_handlers.append(ctx.handler or PROMPT)
        return _failed(reported_as, progress, exc)
    if not handled:
        reason = None
        if isinstance(event, TriggerEvent):
            reason = f"trigger {event.input.name!r} is not declared for state {progress.state!r}"
        elif isinstance(event, TimerEvent):
            what = f"{event.input.kind} {event.input.name!r}"
            reason = f"{what} has no handler in state {progress.state!r}"
        return (IGNORED, reason) if reason else (DONE, None)
    progress.state, progress.data, progress.changed = ctx.state, data, True
    progress.sends += sends
    _remember_prompt(spec, progress, sends)
    progress.timers += timers
    progress.announce = None
    if ctx.handoff_reason is not None:  # from the next event on, people answer
        timeout, resume_to = ctx.handoff_timeout
        progress.handoff = HandoffMark(now, ctx.handoff_reason, ctx.state, timeout, resume_to, now)
    return DONE, None


async def _gather(
    conversation: Conversation,
    spec: ConversationSpec,
    event: InboundMessage,
    progress: _Progress,
    now: float,
    limit: float,
    result: Callable[..., None],
) -> None:
    """Adds a text to the user's burst (and ends the burst if it is full); its event is done:
    the burst's handler runs later."""
    progress.burst = burst_rules.added(progress.burst, event, now)
    progress.gathered = progress.changed = True
    progress.handler = burst_rules.HANDLER
    result(DONE)
    if burst_rules.full(progress.burst):
        await _end_burst(conversation, spec, progress, None, now, limit)


async def _end_burst(
    conversation: Conversation,
    spec: ConversationSpec,
    progress: _Progress,
    carrier: InboxItem | None,
    now: float,
    limit: float,
) -> tuple[str, str | None]:
    """Runs the text handler once for the burst's texts and empties it. `carrier`: the burst's
    timer, the event of this run (its report is the burst's); None: the run gets a report of
    its own (`burst_rules.report_id`), before the event that ended it."""
    gathered = _take_burst(progress)
    event = burst_rules.message(gathered)
    if carrier is not None:
        return await _handle(
            conversation, spec, event, gathered.last, progress, now, limit, carrier.event_id
        )
    report_id = burst_rules.report_id(gathered.last)
    before, queued, handler = progress.state, len(progress.sends), progress.handler
    progress.handler = None
    started = progress.monotonic()
    status, error = await _handle(
        conversation, spec, event, gathered.last, progress, now, limit, report_id
    )
    sends = progress.sends[queued:]
    progress.reports.append(
        EventReport(
            report_id, burst_rules.KIND, before, progress.state, progress.handler,
            tuple(send.type for send in sends), tuple(send.idempotency_key for send in sends),
            progress.monotonic() - started, status, error, event.message_id,
        )
    )  # fmt: skip
    progress.handler = handler
    progress.report_from = (progress.state, len(progress.sends), progress.monotonic())
    return status, error


def _take_burst(progress: _Progress) -> burst_rules.Burst:
    """The user's burst, which ends now (its timer is cancelled unless a new one begins)."""
    gathered = progress.burst
    assert gathered is not None
    progress.burst, progress.burst_ended, progress.changed = None, True, True
    progress.gathered = False
    return gathered


def _drop_burst(spec: ConversationSpec, progress: _Progress, event: object) -> str:
    """A claim given up on may have been killed by the burst's handler: a burst this event
    would have run is dropped (else every later event would run it again); what to add to the
    event's error."""
    burst = progress.burst
    if burst is None:
        return ""
    if not (burst_rules.is_timer(event) or burst_rules.ends(burst, event, spec.coalesce)):
        return ""
    return f"; the burst of {len(_take_burst(progress).parts)} texts it ended was dropped"


async def _handoff_event(
    spec: ConversationSpec,
    event: HandoffEvent,
    item: InboxItem,
    progress: _Progress,
    now: float,
    result: Callable[..., None],
) -> None:
    """The people's side: a handoff starts, a person's reply is queued, a resume hands the
    conversation back in the state asked for (sending its prompt when the window allows)."""
    progress.handler = handoff.HANDLER
    if event.action == START:
        if progress.handoff is None:
            progress.handoff = HandoffMark(
                now, event.reason, progress.state, event.timeout, event.resume_to, now
            )
            progress.changed = True
        return result(DONE)
    if event.action != RESUME:
        try:
            progress.sends.append(handoff.reply(event))
        except ValueError as exc:  # checked by the API; a message botkit can no longer build
            return result(FAILED, cut(f"reply: {exc}", ERROR_KEPT))
        _touch(progress, now)  # a person wrote: a handoff's timeout starts again
        return result(DONE)
    if progress.handoff is None:
        return result(IGNORED, "the conversation is not handed off")
    if event.state not in spec.states:  # checked by the API; gone since (a deploy)
        declared = ", ".join(spec.states)
        return result(FAILED, f"resume: no state {event.state!r} (declared: {declared})")
    return await _resumed(spec, event, event.state, item, progress, now, result)


async def _timed_out(
    spec: ConversationSpec,
    event: TimerEvent,
    item: InboxItem,
    progress: _Progress,
    now: float,
    result: Callable[..., None],
) -> None:
    """A handoff's timeout fired: unless a message passed since, or the people resumed, the
    bot resumes the conversation by itself (botkit.runtime.handoff_timer)."""
    progress.handler = handoff.HANDLER
    why = handoff_timer.stale(event, progress.handoff)
    if why is not None or progress.handoff is None:
        return result(IGNORED, why)
    state = handoff_timer.target(progress.handoff, spec.states, spec.initial)
    return await _resumed(spec, event, state, item, progress, now, result)


async def _resumed(
    spec: ConversationSpec,
    event: HandoffEvent | TimerEvent,
    state: str,
    item: InboxItem,
    progress: _Progress,
    now: float,
    result: Callable[..., None],
) -> None:
    """Hands the conversation back to the bot in `state`, sending its prompt when the window
    allows."""
    carrier = TriggerEvent(
        event.event_id, event.phone_number_id, event.wa_id, TriggerInput("botkit.resume", {}),
        item.envelope,
    )  # fmt: skip
    ctx = Context(spec, carrier, state, _copy(progress.data), WindowView(progress.window, now))
    try:
        await ctx.send_prompt(state)
        sends = [_send(ctx, queued, item.event_id, n) for n, queued in enumerate(ctx.queued)]
    except WindowClosedError:  # no prompt into a closed window without a fallback
        sends = []
    progress.sends += sends
    _remember_prompt(spec, progress, sends)
    progress.state, progress.handoff, progress.changed = state, None, True
    # entering the state, even the one it was in: its timers are set as for a user coming in
    progress.marks = timer_rules.entering(progress.marks, None, state, item.lane_seq)
    return result(DONE)


def _remember_prompt(spec: ConversationSpec, progress: _Progress, sends: list[NewSend]) -> None:
    """The last prompt among an event's sends becomes the latest one (not sent yet), in a
    conversation that tells stale taps apart."""
    key = stale.latest(sends)
    if key is not None and spec.stale_taps:
        progress.prompt, progress.prompt_sent = key, None


def _failed(cause: str, progress: _Progress, exc: Exception) -> tuple[str, str | None]:
    """The handler raised: its event fails with the error, which is reported (with its
    traceback, on the event's log line) once the turn is committed."""
    progress.errors[cause] = exc
    return FAILED, cut(f"{type(exc).__name__}: {exc}", ERROR_KEPT)


def _learn(event: Event | HandoffEvent, item: InboxItem, progress: _Progress) -> None:
    """What the event tells of the window and of delivery, kept whatever its handler does."""
    if isinstance(event, InboundMessage):
        progress.window = progress.window.with_inbound(item.lane_seq, float(event.timestamp))
        progress.inbound = True
    elif isinstance(event, StatusUpdate):
        errors = [{"code": e.code, "title": e.title, "message": e.message} for e in event.errors]
        encoded = codec.dumps_str(errors) if errors else None
        progress.statuses.append(
            StatusRecord(event.message_id, event.status, event.timestamp, encoded)
        )
        if event.status == "failed" and any(e.code == WINDOW_CLOSED_CODE for e in event.errors):
            failed_at = float(event.timestamp)
            progress.window = progress.window.with_failed_status(item.lane_seq, failed_at)
            # the message was not delivered: it falls back (or is held) whatever the window is
            # now; a user who wrote after the refusal gets what was held at once (see below)
            progress.refused.append(event.message_id)


def _resume(
    spec: ConversationSpec, session: Session | None
) -> tuple[str, JSONObject, Message | None]:
    """The state and data to resume from, and a message to send first: a state the code no
    longer has goes where the conversation's `migrations` say, else to the initial state; a
    session of another conversation starts fresh."""
    if session is None:
        return spec.initial, {}, None
    if session.conversation != spec.name:  # another bot's user, on a database shared by mistake
        log.warning(
            "%s: the stored session belongs to conversation %r (another bot on the same "
            "database?); starting fresh at %r",
            spec.name,
            session.conversation,
            spec.initial,
        )
        return spec.initial, {}, None
    migration = spec.migrations.get(session.state)
    if migration is not None:
        log.info(
            "%s: stored state %r migrated to %r (version %s -> %s)",
            spec.name,
            session.state,
            migration.to,
            session.version,
            spec.version,
        )
        return migration.to, session.data, migration.message
    if session.state not in spec.states:
        log.warning(
            "%s: stored state %r no longer exists (version %s -> %s); back to %r",
            spec.name,
            session.state,
            session.version,
            spec.version,
            spec.initial,
        )
        return spec.initial, session.data, None
    return session.state, session.data, None


def _touch(progress: _Progress, now: float) -> None:
    """A message passed either way: a handoff's timeout counts again from `now`."""
    touched = handoff_timer.touched(progress.handoff, now)
    if touched != progress.handoff:
        progress.handoff, progress.changed = touched, True


def _last(lane: InboxLane) -> str:
    """The id of the lane's last event (the cause of the timers its turn sets)."""
    return lane.events[-1].event_id if lane.events else lane.wa_id


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _copy(data: JSONObject) -> dict[str, Any]:
    """A deep copy through JSON: a handler that fails leaves nothing of its changes behind,
    and data that could not be stored fails here (TypeError or ValueError)."""
    copied: dict[str, Any] = codec.loads(codec.dumps(data))
    return copied


def _read(item: InboxItem) -> Event | OtherEvent | HandoffEvent:
    if item.kind == "trigger":
        return TriggerEvent.from_envelope(item.envelope)
    if item.kind == TIMER_KIND:
        return TimerEvent.from_envelope(item.envelope)
    if item.kind == HANDOFF_KIND:
        return HandoffEvent.from_envelope(item.envelope)
    return parse_envelope(item.envelope)


def _send(ctx: Context, queued: Queued, cause: str, position: int) -> NewSend:
    """The outbox row of a queued message, with its closed-window policy; a message that
    cannot be encoded raises here, failing its event."""
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
    codec.dumps([wire, fallback])  # what the store will write, checked before it has to
    return NewSend(
        user.phone_number_id,
        user.wa_id,
        idempotency_key(cause, position),
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
