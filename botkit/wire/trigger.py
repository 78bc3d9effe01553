"""Proactive triggers: what an application asks a conversation to do, as kept in the inbox."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from botkit.exceptions import PayloadError
from botkit.types import JSONObject

TRIGGER_TYPE = "botkit.wire.trigger"


@dataclass(frozen=True, slots=True)
class TriggerInput:
    """A trigger as a handler sees it (ctx.input): its name and data."""

    name: str
    data: JSONObject


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """A trigger for one user on one business number, ordered with that user's messages."""

    event_id: str
    phone_number_id: str
    wa_id: str
    input: TriggerInput
    envelope: JSONObject

    @classmethod
    def create(
        cls,
        *,
        wa_id: str,
        phone_number_id: str,
        name: str,
        data: JSONObject,
        key: str | None = None,
    ) -> TriggerEvent:
        """A new trigger; the same `key` (an Idempotency-Key) for the same user, number and
        trigger gives the same event id, so a retried request is stored once."""
        if key is None:
            event_id = f"trg_{uuid.uuid4().hex}"
        else:  # the same key means the same request only for the same user, number and trigger
            scope = "\x1f".join((phone_number_id, wa_id, name, key))
            event_id = f"trg_{hashlib.sha256(scope.encode()).hexdigest()[:32]}"
        envelope: JSONObject = {
            "id": event_id,
            "type": TRIGGER_TYPE,
            "phone_number_id": phone_number_id,
            "data": {"wa_id": wa_id, "trigger": name, "data": data},
        }
        return cls(event_id, phone_number_id, wa_id, TriggerInput(name, data), envelope)

    @classmethod
    def from_envelope(cls, envelope: JSONObject) -> TriggerEvent:
        """Reads a trigger back from the inbox."""
        body = envelope.get("data")
        if not isinstance(body, dict):
            raise PayloadError("a trigger envelope needs a data object", path="data")
        wa_id, name, data = body.get("wa_id"), body.get("trigger"), body.get("data")
        event_id, number = envelope.get("id"), envelope.get("phone_number_id")
        if not (isinstance(wa_id, str) and isinstance(name, str) and isinstance(data, dict)):
            raise PayloadError("a trigger needs wa_id, trigger and data", path="data")
        if not (isinstance(event_id, str) and isinstance(number, str)):
            raise PayloadError("a trigger needs id and phone_number_id")
        return cls(event_id, number, wa_id, TriggerInput(name, data), envelope)
