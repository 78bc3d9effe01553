"""The latest prompt a user was sent: where a session keeps it, and which taps answer it.

A *prompt* here is an interactive message (reply buttons or a list) the bot queued. The
session remembers the idempotency key of the latest one in its data under `PROMPT_KEY` (out
of the handlers' sight, as the handoff mark is); the store's claim hands the turn the
provider's message id recorded for that key, and a tap whose `context.id` names another
message is stale (botkit.runtime.stale).
"""

from __future__ import annotations

from botkit.types import JSONObject

PROMPT_KEY = "botkit.prompt"  # where a session's data keeps the latest prompt's idempotency key
PROMPT_TYPE = "interactive"  # the outbox type of a prompt: reply buttons or a list


def prompt_key(data: JSONObject) -> str | None:
    """The idempotency key of the latest prompt a session's data remembers (None: none)."""
    key = data.get(PROMPT_KEY)
    return key if isinstance(key, str) else None
