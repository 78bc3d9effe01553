"""Ingest: what arrives (webhook events, trigger requests), stored durably in the inbox.

`Ingest` is the part of a running bot that a web replica needs: it checks triggers, stores
events (acknowledging comes after) and wakes whoever processes them. It runs no handler and
sends nothing; the workers (workers.py) do, here or in another process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

from botkit.conversation.dsl import ConversationSpec
from botkit.exceptions import HandoffError, MessageError, TriggerError
from botkit.logsafe import fields, shown
from botkit.store.base import NewEvent, Store
from botkit.tracing import Tracing
from botkit.types import JSONObject
from botkit.wire.events import Event, InboundMessage, StatusUpdate
from botkit.wire.handoff import KIND as HANDOFF_KIND
from botkit.wire.handoff import (
    MAX_REASON,
    REPLY,
    RESUME,
    START,
    HandoffEvent,
    handoff_timeout,
    template_of,
)
from botkit.wire.ids import PHONE_NUMBER_ID_DIGITS, is_ascii_digits
from botkit.wire.messages import Text
from botkit.wire.phone import PhoneNumberError, to_wa_id
from botkit.wire.trigger import TriggerEvent

log = logging.getLogger(__name__)


def new_event(event: Event | TriggerEvent | HandoffEvent) -> NewEvent:
    """The inbox row of an event: its lane is the user it concerns, on its business number.

    An event botkit does not handle (no user) gets a lane of its number's own, where it is
    marked ignored without holding up any user.
    """
    if isinstance(event, HandoffEvent):
        return NewEvent(
            event.event_id, None, HANDOFF_KIND, event.phone_number_id, event.wa_id, event.envelope
        )
    if isinstance(event, TriggerEvent):
        return NewEvent(
            event.event_id, None, "trigger", event.phone_number_id, event.wa_id, event.envelope
        )
    if isinstance(event, InboundMessage):
        return NewEvent(
            event.event_id, event.message_id, "message", event.phone_number_id, event.wa_id,
            event.envelope,
        )  # fmt: skip
    if isinstance(event, StatusUpdate):
        return NewEvent(
            event.event_id, None, "status", event.phone_number_id, event.recipient_id,
            event.envelope,
        )  # fmt: skip
    return NewEvent(event.event_id, None, "other", event.phone_number_id or "", "", event.envelope)


def trigger_event(
    spec: ConversationSpec,
    wa_id: str,
    name: str,
    data: JSONObject,
    phone_number_id: str | None,
    key: str | None,
) -> TriggerEvent:
    """A trigger request checked against the conversation's declarations.

    TriggerError (status 404) for a trigger no state declares; (400) for missing data keys,
    a number that is not a phone number, or no business number to send from.
    """
    required = spec.triggers.get(name)
    if required is None:
        declared = ", ".join(sorted(spec.triggers)) or "none"
        raise TriggerError(
            f"no trigger {shown(name)} is declared (declared: {declared})", status=404
        )
    missing = [k for k in required if k not in data]
    if missing:
        raise TriggerError(
            f"trigger {shown(name)} needs data {', '.join(repr(k) for k in missing)}"
        )
    if not phone_number_id:
        raise TriggerError(
            "no phone_number_id to send from: give one in the request or set "
            "GOSENDAPI_PHONE_NUMBER_ID"
        )
    if not is_ascii_digits(phone_number_id, *PHONE_NUMBER_ID_DIGITS):
        low, high = PHONE_NUMBER_ID_DIGITS
        raise TriggerError(
            f"phone_number_id {shown(phone_number_id)} is not a Meta phone number id "
            f"({low} to {high} ASCII digits)"
        )
    try:
        user = to_wa_id(wa_id)
    except PhoneNumberError as exc:
        raise TriggerError(str(exc)) from exc
    return TriggerEvent.create(
        wa_id=user, phone_number_id=phone_number_id, name=name, data=data, key=key
    )


class Ingest:
    """Stores events and triggers durably in a store's inbox, then wakes the workers.

    `phone_number_id` is the number a trigger sends from when its request names none; `wake`
    tells workers in another process that there is work (the worker child's pipe). Workers in
    this process need no wake: the store's own notify reaches them. With `tracing`, each
    event stored gets a span, whose trace context is stored with it (botkit.tracing).
    """

    def __init__(
        self,
        store: Store,
        spec: ConversationSpec,
        *,
        phone_number_id: str | None = None,
        wake: Callable[[], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        self.spec = spec
        self.phone_number_id = phone_number_id
        self.wake = wake
        self.tracing = tracing

    async def accept(self, events: Sequence[Event | TriggerEvent | HandoffEvent]) -> list[bool]:
        """Stores events durably (True per new one, False per duplicate); the workers wake."""
        return await self.accept_rows([new_event(event) for event in events])

    async def accept_rows(self, rows: Sequence[NewEvent]) -> list[bool]:
        """`accept`, for events already made inbox rows (a large body's, by the process that
        decoded it: botkit.web.decoder)."""
        if self.tracing is None:
            flags = await self.store.inbox.add(rows)
        else:
            flags = await self._traced(self.tracing, rows)
        if any(flags) and self.wake is not None:
            self.wake()
        if log.isEnabledFor(logging.DEBUG):  # a line per request: DEBUG (docs/logging.md)
            new = [row.event_id for row, stored in zip(rows, flags, strict=True) if stored]
            old = [row.event_id for row, stored in zip(rows, flags, strict=True) if not stored]
            values = fields(log="ingest", event_ids=new, duplicates=old)
            log.debug("stored %d events, %d duplicates", len(new), len(old), extra=values)
        return flags

    async def _traced(self, tracing: Tracing, rows: Sequence[NewEvent]) -> list[bool]:
        """`store.inbox.add` under a span per event, each row carrying its span's context."""
        with tracing.inbox([(row.event_id, row.kind) for row in rows]) as spans:
            traced = [
                replace(row, trace=trace)
                for row, trace in zip(rows, spans.traceparents, strict=True)
            ]
            flags = await self.store.inbox.add(traced)
            spans.stored(flags)
        return flags

    async def trigger(
        self,
        wa_id: str,
        name: str,
        data: JSONObject,
        *,
        phone_number_id: str | None = None,
        key: str | None = None,
    ) -> str:
        """Checks and stores a trigger like an inbound event; returns its event id.

        TriggerError (status 404) for a trigger no conversation declares, (400) for missing
        data keys, a number that is not a phone number, or no phone_number_id to send from.
        """
        number = phone_number_id or self.phone_number_id
        event = trigger_event(self.spec, wa_id, name, data, number, key)
        await self.accept([event])
        return event.event_id

    async def handoff(
        self,
        wa_id: str,
        *,
        reason: str = "",
        timeout: timedelta | float | None = None,  # noqa: ASYNC109 (the handoff's, not the call's)
        resume_to: str | None = None,
        phone_number_id: str | None = None,
        key: str | None = None,
    ) -> str:
        """Hands a user's conversation to people (after the user's earlier messages); returns
        the event id. With `timeout`, the bot resumes it by itself (in `resume_to`, else the
        state the user was in) when no message passed either way for that long.
        HandoffError: 404 for a conversation the store does not have, 400 for a bad timeout
        or an undeclared `resume_to`."""
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise HandoffError(f'"reason" must be a string of at most {MAX_REASON} characters')
        seconds, state = handoff_timeout(timeout, resume_to, list(self.spec.states))
        user, number = await self.existing(wa_id, phone_number_id)
        event = HandoffEvent.create(
            START, wa_id=user, phone_number_id=number, reason=reason, key=key,
            timeout=seconds, resume_to=state,
        )  # fmt: skip
        await self.accept([event])
        return event.event_id

    async def reply(
        self,
        wa_id: str,
        text: str,
        *,
        fallback: JSONObject | None = None,
        phone_number_id: str | None = None,
        key: str | None = None,
    ) -> str:
        """A person's text to a user, sent through the outbox like the bot's (the window, and
        `fallback`, a template `{"name", "language", "body": [...]}` for a closed one).
        HandoffError: 404 for an unknown conversation, 400 for a text or template botkit
        cannot send."""
        try:  # what the turn will build, built now: a bad text or template is the caller's 400
            Text(text)
            if fallback is not None:
                template_of(fallback)
        except MessageError as exc:
            raise HandoffError(str(exc)) from exc
        user, number = await self.existing(wa_id, phone_number_id)
        event = HandoffEvent.create(
            REPLY, wa_id=user, phone_number_id=number, text=text, fallback=fallback, key=key
        )
        await self.accept([event])
        return event.event_id

    async def resume(
        self,
        wa_id: str,
        state: str,
        *,
        phone_number_id: str | None = None,
        key: str | None = None,
    ) -> str:
        """Hands the conversation back to the bot in `state` (whose prompt it sends).
        HandoffError: 400 for an undeclared state (naming the declared ones), 404 for an
        unknown conversation."""
        if not isinstance(state, str) or state not in self.spec.states:
            declared = ", ".join(self.spec.states)
            raise HandoffError(
                f"no state {shown(str(state))} in {self.spec.name} (declared: {declared})"
            )
        user, number = await self.existing(wa_id, phone_number_id)
        event = HandoffEvent.create(
            RESUME, wa_id=user, phone_number_id=number, state=state, key=key
        )
        await self.accept([event])
        return event.event_id

    async def existing(self, wa_id: str, phone_number_id: str | None) -> tuple[str, str]:
        """The user and number of a conversation the store has; HandoffError 404 otherwise."""
        number = phone_number_id or self.phone_number_id
        if not number or not is_ascii_digits(number, *PHONE_NUMBER_ID_DIGITS):
            raise HandoffError(
                "no phone_number_id of the conversation: give one in the request or set "
                "GOSENDAPI_PHONE_NUMBER_ID"
            )
        try:
            user = to_wa_id(wa_id)
        except PhoneNumberError as exc:
            raise HandoffError(str(exc)) from exc
        found = await self.store.sessions.get(number, user)
        if found.session is None:
            raise HandoffError(
                f"no conversation with {shown(wa_id)} on number {number}", status=404
            )
        return user, number


__all__ = ["Ingest", "new_event", "trigger_event"]
