"""What the benchmarks post: GoSendAPI `whatsapp.message.received` envelopes of numbered users."""

from __future__ import annotations

import time
from typing import Any

PHONE_NUMBER_ID = "555123456789"

# the clinic flow: text, a list row, a button (bots/clinic.py), each user's three steps
CLINIC_FLOW: tuple[dict[str, Any], ...] = (
    {"type": "text", "text": {"body": "hola"}},
    {
        "type": "interactive",
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": "general", "title": "Consulta general"},
        },
    },
    {
        "type": "interactive",
        "interactive": {
            "type": "button_reply",
            "button_reply": {"id": "confirm_yes", "title": "Sí, confirmo"},
        },
    },
)


def wa_id_of(user: int) -> str:
    """The WhatsApp id of benchmark user number `user`."""
    return f"549110{user:07d}"


def received(user: int, event_id: str, message_id: str, part: dict[str, Any]) -> dict[str, Any]:
    """An envelope of a message from `user`, sent now, carrying Meta's message `part`."""
    wa_id = wa_id_of(user)
    return {
        "id": event_id,
        "type": "whatsapp.message.received",
        "created_at": "2026-05-19T14:00:05Z",
        "phone_number_id": PHONE_NUMBER_ID,
        "data": {
            "contact": {"wa_id": wa_id, "profile": {"name": f"User {user}"}},
            "message": {
                "from": wa_id,
                "id": message_id,
                "timestamp": str(int(time.time())),
                **part,
            },
        },
    }
