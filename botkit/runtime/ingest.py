"""Ingest: what arrives (webhook events, trigger requests) as the inbox stores it."""

from __future__ import annotations

from botkit.conversation.dsl import ConversationSpec
from botkit.exceptions import TriggerError
from botkit.store.base import NewEvent
from botkit.types import JSONObject
from botkit.wire.events import Event, InboundMessage, StatusUpdate
from botkit.wire.phone import PhoneNumberError, to_wa_id
from botkit.wire.trigger import TriggerEvent


def new_event(event: Event | TriggerEvent) -> NewEvent:
    """The inbox row of an event: its lane is the user it concerns, on its business number.

    An event botkit does not handle (no user) gets a lane of its number's own, where it is
    marked ignored without holding up any user.
    """
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
        raise TriggerError(f"no trigger {name!r} is declared (declared: {declared})", status=404)
    missing = [k for k in required if k not in data]
    if missing:
        raise TriggerError(f"trigger {name!r} needs data {', '.join(repr(k) for k in missing)}")
    if not phone_number_id or not phone_number_id.isdigit():
        raise TriggerError(
            "no phone_number_id to send from: give one in the request or set "
            "GOSENDAPI_PHONE_NUMBER_ID"
        )
    try:
        user = to_wa_id(wa_id)
    except PhoneNumberError as exc:
        raise TriggerError(str(exc)) from exc
    return TriggerEvent.create(
        wa_id=user, phone_number_id=phone_number_id, name=name, data=data, key=key
    )
