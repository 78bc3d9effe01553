"""Repairs as an operator asks for them: the store's Repair part (botkit/store/repair.py) in
JSON, for the admin API (botkit/web/admin.py, which answers with it) and the `botkit events`,
`botkit sends` and `botkit conversations` commands (botkit/tools/repair.py, which print it).

Lists mask users' numbers (54911****3456); what names one user or one event shows it whole
(the envelope has it anyway). Times are ISO 8601 in UTC. An operation the store refuses
because a turn of the user's is running (LaneBusyError) is tried again for up to `busy_wait`
seconds (a turn takes milliseconds) before the refusal is passed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from botkit.conversation.dsl import ConversationSpec
from botkit.exceptions import LaneBusyError, PayloadError, RepairError
from botkit.store.base import FAILED, Store
from botkit.store.repair import EventRecord, SendRecord, UserLane
from botkit.types import JSON, Clock, JSONObject
from botkit.wire.events import (
    ButtonTap,
    ContactsInput,
    InboundMessage,
    Input,
    LocationInput,
    MediaInput,
    QuickReplyTap,
    RowPick,
    StatusUpdate,
    TextInput,
    UnsupportedInput,
    parse_envelope,
)
from botkit.wire.handoff import KIND as HANDOFF_KIND
from botkit.wire.handoff import HandoffEvent
from botkit.wire.timer import SCHEDULED, TIMER_KIND, TimerEvent
from botkit.wire.trigger import TriggerEvent

T = TypeVar("T")

BUSY_WAIT = 1.0  # seconds a repair waits for a user's turn in flight to end
RECENT = 20  # messages in and out `conversation` shows by default
MAX_LIMIT = 1000  # the most a list (or `conversation`) shows at once
RETRY_ALL = 1000  # failed events (or sends) one `retry_failed_*` call retries at most
SUMMARY = 80  # characters of a message a summary keeps


def masked_user(wa_id: str) -> str:
    """A user's number as lists show it: its first five and last four digits (54911****3456)."""
    if len(wa_id) <= 9:
        return f"****{wa_id[-4:]}"
    return f"{wa_id[:5]}****{wa_id[-4:]}"


def timestamp(at: float | None) -> str | None:
    """A time of the store's clock as ISO 8601 in UTC (None stays None)."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Repairs:
    """The operator's view of a store, and its repairs, in JSON.

    `spec` names the conversation's initial state (a user with no session is there); `wake`
    tells workers elsewhere that work was queued (the worker process of `botkit run`)."""

    def __init__(
        self,
        store: Store,
        spec: ConversationSpec,
        clock: Clock,
        *,
        wake: Callable[[], None] | None = None,
        busy_wait: float = BUSY_WAIT,
    ) -> None:
        self.store = store
        self.spec = spec
        self.clock = clock
        self.wake = wake
        self.busy_wait = busy_wait

    # -- events -------------------------------------------------------------------------------

    async def events(self, status: str = FAILED, limit: int = 50) -> list[JSON]:
        """Events of a status (failed ones by default), newest first, each in a line's worth
        (user masked)."""
        found = await self.store.repair.events(status=status, limit=limit)
        return [_event_line(record) for record in found]

    async def event(self, event_id: str) -> JSONObject:
        """One event whole: status, attempts, error, envelope (RepairError 404 if unknown)."""
        record = await self.store.repair.event(event_id)
        if record is None:
            raise RepairError(f"no event {event_id!r} in the inbox", status=404)
        return _event_whole(record)

    async def retry_event(self, event_id: str) -> JSONObject:
        """Queues a failed event again (as a copy at the end of its user's lane): the copy."""
        copy = await self.store.repair.retry_event(event_id)
        self._woken()
        return {"retried": event_id, "as": _event_whole(copy)}

    async def retry_failed_events(self) -> JSONObject:
        """Queues every failed event again (up to RETRY_ALL): which, and which could not be."""
        found = await self.store.repair.events(status=FAILED, limit=RETRY_ALL)
        retried: list[JSON] = []
        refused: list[JSON] = []
        for record in reversed(found):  # oldest first: their copies queue in that order
            try:
                copy = await self.store.repair.retry_event(record.event_id)
            except RepairError as exc:  # changed meanwhile (another operator retried it)
                refused.append({"event_id": record.event_id, "error": str(exc)})
            else:
                retried.append({"event_id": record.event_id, "as": copy.event_id})
        if retried:
            self._woken()
        return {"retried": retried, "refused": refused, "more": len(found) == RETRY_ALL}

    # -- sends --------------------------------------------------------------------------------

    async def sends(self, status: str = FAILED, limit: int = 50) -> list[JSON]:
        """Sends of a status (failed ones by default), newest first, each in a line's worth
        (user masked)."""
        found = await self.store.repair.sends(status=status, limit=limit)
        return [_send_line(record) for record in found]

    async def send(self, seq: int) -> JSONObject:
        """One send whole (RepairError 404 if unknown)."""
        record = await self.store.repair.send(seq)
        if record is None:
            raise RepairError(f"no send {seq} in the outbox", status=404)
        return _send_whole(record)

    async def retry_send(self, seq: int) -> JSONObject:
        """Puts a failed send back to pending under a new key: the send."""
        record = await self.store.repair.retry_send(seq)
        self._woken()
        return _send_whole(record)

    async def retry_failed_sends(self) -> JSONObject:
        """Puts every failed send back (up to RETRY_ALL): which, and which could not be."""
        found = await self.store.repair.sends(status=FAILED, limit=RETRY_ALL)
        retried: list[JSON] = []
        refused: list[JSON] = []
        for record in reversed(found):
            try:
                again = await self.store.repair.retry_send(record.seq)
            except RepairError as exc:
                refused.append({"send": record.seq, "error": str(exc)})
            else:
                retried.append({"send": record.seq, "idempotency_key": again.idempotency_key})
        if retried:
            self._woken()
        return {"retried": retried, "refused": refused, "more": len(found) == RETRY_ALL}

    # -- one user -----------------------------------------------------------------------------

    async def conversation(self, wa_id: str, recent: int = RECENT) -> JSONObject:
        """The user's state, data and window on each number, their work not finished, the
        latest `recent` messages in and out, oldest first, and their pending timers, soonest
        first (RepairError 404 if unknown)."""
        lanes = await self.store.repair.lanes(wa_id)
        events = await self.store.repair.events(wa_id=wa_id, limit=recent)
        sends = await self.store.repair.sends(wa_id=wa_id, limit=recent)
        if not lanes and not events and not sends:
            raise RepairError(_unknown_user(wa_id), status=404)
        now = self.clock.now()
        # events by arrival; each send right after the event that caused it (times alone tie
        # within a turn), or by its own time when that event is not among them
        order: dict[str, tuple[float, int, int, int]] = {
            e.event_id: (e.received_at, e.seq, 0, 0) for e in events
        }
        timed = [(order[e.event_id], _inbound(e)) for e in events]
        for s in sends:
            cause = order.get(s.cause)
            key = (cause[0], cause[1], 1, s.seq) if cause else (s.created_at, 0, 1, s.seq)
            timed.append((key, _outbound(s)))
        timed.sort(key=lambda entry: entry[0])
        latest: list[JSON] = [entry[1] for entry in timed[-recent:]]
        timers: list[JSON] = [
            {"phone_number_id": t.phone_number_id, "name": t.name,
             "due_at": timestamp(t.due_at), "data": t.payload.get("data", {})}
            for t in await self.store.inspect.timers(wa_id)
        ]  # fmt: skip
        return {
            "wa_id": wa_id,
            "conversation": self.spec.name,
            "numbers": [*(self._lane(lane, now) for lane in lanes)],
            "messages": latest,
            "timers": timers,
        }

    def _lane(self, lane: UserLane, now: float) -> JSONObject:
        session = lane.session
        window = lane.window
        found: JSONObject = {
            "phone_number_id": lane.phone_number_id,
            "state": self.spec.initial if session is None else session.state,
            "initial": session is None,  # no session stored: the initial state, no data
            "data": {} if session is None else session.data,
            "window": {
                "open": window.is_open(now),
                "closes_at": timestamp(window.closes_at),
                "refused": window.refused,
            },
            "pending_events": lane.pending_events,
            "pending_sends": lane.pending_sends,
            "in_flight": lane.in_flight,
        }
        if session is not None and session.conversation != self.spec.name:
            found["stored_conversation"] = session.conversation  # another bot's, by mistake
        return found

    async def reset(self, wa_id: str) -> JSONObject:
        """Back to the initial state with empty data on every number (RepairError 404 if
        the store knows nothing of the user)."""
        if not await self.store.repair.lanes(wa_id):
            raise RepairError(_unknown_user(wa_id), status=404)
        sessions = await self._patiently(lambda: self.store.repair.reset(wa_id))
        return {"wa_id": wa_id, "state": self.spec.initial, "sessions_deleted": sessions}

    async def forget(self, wa_id: str) -> JSONObject:
        """Deletes everything stored about the user: what, per kind (RepairError 404 if the
        store knows nothing of them; 409 while events of theirs are not processed)."""
        if not await self.store.repair.lanes(wa_id):
            raise RepairError(_unknown_user(wa_id), status=404)
        gone = await self._patiently(lambda: self.store.repair.forget(wa_id))
        deleted: JSONObject = {
            "sessions": gone.sessions,
            "events": gone.events,
            "event_results": gone.results,
            "sends": gone.sends,
            "delivery_statuses": gone.statuses,
            "lanes": gone.lanes,
        }
        return {"wa_id": wa_id, "deleted": deleted, "total": gone.total}

    async def _patiently(self, operation: Callable[[], Awaitable[T]]) -> T:
        """`operation()`, again while a turn of the user's runs, for up to `busy_wait` s."""
        deadline = asyncio.get_running_loop().time() + self.busy_wait
        while True:
            try:
                return await operation()
            except LaneBusyError:
                if asyncio.get_running_loop().time() >= deadline:
                    raise
            await asyncio.sleep(0.02)

    def _woken(self) -> None:
        if self.wake is not None:
            self.wake()


def _unknown_user(wa_id: str) -> str:
    return f"no user {wa_id} in the store: not one event, send or session of theirs"


def _event_line(record: EventRecord) -> JSONObject:
    return {
        "event_id": record.event_id,
        "user": masked_user(record.wa_id),
        "kind": record.kind,
        "status": record.status,
        "received_at": timestamp(record.received_at),
        "processed_at": timestamp(record.processed_at),
        "attempts": record.attempts,
        "error": record.error,
    }


def _event_whole(record: EventRecord) -> JSONObject:
    return {
        "event_id": record.event_id,
        "phone_number_id": record.phone_number_id,
        "wa_id": record.wa_id,
        "kind": record.kind,
        "status": record.status,
        "attempts": record.attempts,
        "error": record.error,
        "received_at": timestamp(record.received_at),
        "processed_at": timestamp(record.processed_at),
        "summary": _event_summary(record),
        "envelope": record.envelope,
    }


def _send_line(record: SendRecord) -> JSONObject:
    return {
        "send": record.seq,
        "user": masked_user(record.wa_id),
        "type": record.type,
        "status": record.status,
        "created_at": timestamp(record.created_at),
        "finished_at": timestamp(record.finished_at),
        "attempts": record.attempts,
        "error": record.error,
    }


def _send_whole(record: SendRecord) -> JSONObject:
    return {
        "send": record.seq,
        "phone_number_id": record.phone_number_id,
        "wa_id": record.wa_id,
        "idempotency_key": record.idempotency_key,
        "type": record.type,
        "instead_of": record.instead_of,
        "status": record.status,
        "attempts": record.attempts,
        "error": record.error,
        "provider_message_id": record.provider_message_id,
        "delivery_status": record.delivery_status,
        "created_at": timestamp(record.created_at),
        "finished_at": timestamp(record.finished_at),
        "cause": record.cause,
        "summary": _send_summary(record),
        "payload": record.payload,
    }


def _inbound(record: EventRecord) -> JSONObject:
    return {
        "direction": "in",
        "at": timestamp(record.received_at),
        "event_id": record.event_id,
        "kind": record.kind,
        "summary": _event_summary(record),
        "status": record.status,
        "error": record.error,
    }


def _outbound(record: SendRecord) -> JSONObject:
    return {
        "direction": "out",
        "at": timestamp(record.created_at),
        "send": record.seq,
        "type": record.type,
        "summary": _send_summary(record),
        "status": record.status,
        "delivery_status": record.delivery_status,
        "error": record.error,
    }


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY else text[: SUMMARY - 1] + "…"


def _event_summary(record: EventRecord) -> str:
    """What the event was, in a few words: the user's text, the button tapped, the status."""
    try:
        if record.kind == "trigger":
            trigger = TriggerEvent.from_envelope(record.envelope)
            return _cut(f"trigger {trigger.input.name}")
        if record.kind == TIMER_KIND:
            timer = TimerEvent.from_envelope(record.envelope).input
            return _cut(f"timer {timer.name}" if timer.kind == SCHEDULED else timer.kind)
        if record.kind == HANDOFF_KIND:
            handoff = HandoffEvent.from_envelope(record.envelope)
            detail = handoff.reason or handoff.state or handoff.text
            return _cut(f"handoff {handoff.action} {detail}".strip())
        event = parse_envelope(record.envelope)
    except (PayloadError, ValueError, KeyError, TypeError):
        return "(an envelope botkit cannot read)"
    if isinstance(event, InboundMessage):
        return _cut(_input(event.input))
    if isinstance(event, StatusUpdate):
        return f"status {event.status} of {event.message_id}"
    return f"({event.type})"


def _input(found: Input) -> str:
    if isinstance(found, TextInput):
        return found.body
    if isinstance(found, ButtonTap | RowPick):
        return f"[{found.id}] {found.title}"
    if isinstance(found, QuickReplyTap):
        return f"[{found.payload}] {found.text}"
    if isinstance(found, MediaInput):
        return f"[{found.kind}] {found.caption or ''}".strip()
    if isinstance(found, LocationInput):
        return f"[location] {found.name or f'{found.latitude}, {found.longitude}'}"
    if isinstance(found, ContactsInput):
        return f"[contacts: {len(found.contacts)}]"
    assert isinstance(found, UnsupportedInput)
    return f"[{found.type}]"


def _send_summary(record: SendRecord) -> str:
    """What the message said, in a few words: its text, or its kind and name."""
    payload: Any = record.payload
    if not isinstance(payload, dict):
        return f"[{record.type}]"
    if record.type == "text":
        return _cut(str(payload.get("body", "")))
    if record.type == "template":
        return _cut(f"[template {payload.get('name', '?')}]")
    if record.type == "interactive":
        body = payload.get("body")
        text = body.get("text", "") if isinstance(body, dict) else ""
        return _cut(f"[{payload.get('type', 'interactive')}] {text}")
    caption = payload.get("caption")
    return _cut(f"[{record.type}] {caption or ''}".strip())
