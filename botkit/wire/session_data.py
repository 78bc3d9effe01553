"""A session's data as its handlers see it: botkit keeps a few things of its own in it.

The handoff mark (wire/handoff.py), the latest prompt's key (wire/prompt.py), a burst of texts
being gathered (wire/burst.py) and the timers' marks (wire/timer.py `MARKS_KEY`) are stored in
the session's data, committed with it: the turn takes them out before any handler sees
`ctx.data` (`split`) and puts them back when it saves (`joined`). Whatever shows a user's data
as the bot author knows it (the Simulator, the dev server) asks here, so that a new key of
botkit's is hidden everywhere at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from botkit.types import JSON, JSONObject
from botkit.wire.burst import BURST_KEY
from botkit.wire.handoff import MARK_KEY
from botkit.wire.prompt import PROMPT_KEY
from botkit.wire.timer import MARKS_KEY

BOTKIT_KEYS = frozenset({MARK_KEY, PROMPT_KEY, BURST_KEY, MARKS_KEY})


def handlers_view(data: JSONObject) -> JSONObject:
    """The data without botkit's own keys."""
    return {key: value for key, value in data.items() if key not in BOTKIT_KEYS}


def split(data: JSONObject) -> tuple[JSONObject, JSONObject]:
    """The data as handlers see it, and botkit's own keys with their values, in one pass (a
    turn reads each part back: the handoff mark, the latest prompt, a burst, the timers' marks)."""
    if not any(key in data for key in BOTKIT_KEYS):
        return data, {}
    rest = {key: value for key, value in data.items() if key not in BOTKIT_KEYS}
    return rest, {key: data[key] for key in BOTKIT_KEYS if key in data}


def joined(data: JSONObject, own: Mapping[str, JSON]) -> JSONObject:
    """The data to save: the handlers' data with botkit's keys put back (`split`'s other half;
    a key whose value is None is left out)."""
    kept = {key: value for key, value in own.items() if value is not None}
    return {**data, **kept} if kept else data


__all__ = ["BOTKIT_KEYS", "handlers_view", "joined", "split"]
