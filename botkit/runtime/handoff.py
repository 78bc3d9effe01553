"""Human handoff in a turn: what a handed-off user's message, a person's reply and the
people's start and resume become (pure functions, used by botkit.runtime.turn).

The mark lives in the session's data under `MARK_KEY`; the turn takes it out before any
handler sees the data and puts it back when it saves (botkit.wire.session_data: `split`,
`joined`).
"""

from __future__ import annotations

import dataclasses

from botkit.store.base import FAIL, FALL_BACK, NewSend
from botkit.types import JSON, JSONObject
from botkit.wire.events import InboundMessage
from botkit.wire.handoff import FORWARD_TYPE, HandoffEvent, HandoffMark
from botkit.wire.idempotency import idempotency_key
from botkit.wire.messages import Message, request_body

HANDLER = "(handoff)"  # the handler named in the log line of what the people's side did


def forward(event: InboundMessage, mark: HandoffMark, cause: str) -> NewSend:
    """The outbox row that posts a handed-off user's message to the people's webhook."""
    found = event.input
    parsed: JSONObject = {"input": type(found).__name__}
    fields = _json(dataclasses.asdict(found))
    if isinstance(fields, dict):
        parsed.update((k, v) for k, v in fields.items() if not (k == "parts" and not v))
    payload: JSONObject = {
        "event_id": event.event_id,
        "phone_number_id": event.phone_number_id,
        "wa_id": event.wa_id,
        "name": event.contact.name,
        "message_id": event.message_id,
        "timestamp": event.timestamp,
        "message": parsed,
        "handoff": mark.to_json(),
    }
    return NewSend(
        event.phone_number_id, event.wa_id, idempotency_key(cause, 0), FORWARD_TYPE, payload,
        cause, FAIL, None, False, None,
    )  # fmt: skip


def reply(event: HandoffEvent) -> NewSend:
    """The outbox row of a person's reply: free-form, so a closed window sends the request's
    fallback template, or fails the send with the window's error when it gave none."""
    message = event.message()
    template = event.fallback_template()
    fallback: JSONObject | None = None
    if template is not None:
        fallback = {"type": "template", "payload": _wire(template, event)}
    return NewSend(
        event.phone_number_id, event.wa_id, idempotency_key(event.event_id, 0), message.type,
        _wire(message, event), event.event_id, FAIL if fallback is None else FALL_BACK,
        fallback, False, None,
    )  # fmt: skip


def _wire(message: Message, event: HandoffEvent) -> JSON:
    body = request_body(message, to=event.wa_id, phone_number_id=event.phone_number_id)
    return body[message.type]


def _json(item: object) -> JSON:
    if isinstance(item, tuple | list):
        return [_json(each) for each in item]
    if isinstance(item, dict):
        return {str(key): _json(each) for key, each in item.items()}
    if item is None or isinstance(item, str | int | float | bool):
        return item
    return str(item)


__all__ = ["HANDLER", "forward", "reply"]
