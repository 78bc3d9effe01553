"""Stale taps in a turn: which tap answers an older prompt than the user's current one
(pure functions, used by botkit.runtime.turn; docs/guide/stale-taps.md).

The race this settles: the turn is pure and knows only the idempotency keys of what it
queues, while the provider's message id, which a tap's `context.id` names, exists only once
the outbox has sent the message. So the session remembers the key of the latest prompt the
bot queued (in its data under `botkit.wire.prompt.PROMPT_KEY`, committed with the session,
out of the handlers' sight), and the store's claim hands the turn the provider's id recorded
for that key (`InboxLane.prompt_message_id`, None while it is not sent). A reply-button or
list tap with a `context.id` is stale when it names another message than that one, or when
the newest prompt is not even sent yet (the tap can only be on an older one). Keeping the
provider's id in the session instead would need the outbox to write sessions, which only
turns write; looking the tapped id up among all the user's sends would cost a lookup per
tap and still not say which prompt is current.

A prompt is any interactive message (reply buttons or a list: the only taps that carry the
bot's own ids). Template quick replies are not prompts of a state (a template is sent when
the window is closed, often from a trigger or timer, and its payload says what it is about):
they, and taps without `context`, run as they always have.

A tap that arrives in the milliseconds between the provider accepting the newest prompt and
botkit recording that send counts as stale: the safe side, since the user gets the prompt
again and no handler runs on a guess.
"""

from __future__ import annotations

from collections.abc import Sequence

from botkit.store.base import NewSend
from botkit.wire.events import ButtonTap, InboundMessage, RowPick
from botkit.wire.prompt import PROMPT_TYPE


def latest(sends: Sequence[NewSend]) -> str | None:
    """The idempotency key of the last prompt among `sends` (None: they hold none)."""
    keys = [send.idempotency_key for send in sends if send.type == PROMPT_TYPE]
    return keys[-1] if keys else None


def is_stale(event: InboundMessage, prompt: str | None, sent: str | None) -> bool:
    """True for a tap on another message than the latest prompt (`prompt`, its key;
    `sent`, the provider's id recorded for it, None while it is not sent)."""
    if not isinstance(event.input, ButtonTap | RowPick) or event.context_id is None:
        return False
    return prompt is not None and event.context_id != sent
