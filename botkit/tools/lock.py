"""botkit.lock: the states each conversation has had, so that `botkit check` sees one disappear.

Users are stored in states; a deploy that renames or removes a state strands them unless the
conversation says where they go (`migrations`, conversation/migration.py). The lock file,
committed with the bot, remembers every state each conversation has had (keyed by its
`module.Class`), and `botkit check --lock botkit.lock` fails on a remembered state that is
neither declared nor migrated. `botkit check --write-lock` adds the current states once the
check passes. The file is JSON, sorted, one conversation per key, so its diffs read well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from botkit.conversation.dsl import Conversation
from botkit.exceptions import BotkitError

LOCK_FILE = "botkit.lock"
FORMAT = 1


class LockError(BotkitError):
    """A lock file that cannot be read: not JSON, or not botkit's shape."""


@dataclass(frozen=True, slots=True)
class Lost:
    """A state the lock remembers that the conversation neither declares nor migrates."""

    state: str
    version: str  # the last version that had it


def key_of(conversation: type[Conversation]) -> str:
    """The conversation's key in the lock file: `module.Class`."""
    return f"{conversation.__module__}.{conversation.__qualname__}"


def read_lock(path: Path) -> dict[str, dict[str, str]]:
    """The lock's conversations: key -> state -> the last version that had it; {} with none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise LockError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise LockError(f"{path}: not JSON ({exc}); restore it from version control") from None
    conversations = found.get("conversations") if isinstance(found, dict) else None
    if not isinstance(conversations, dict) or not all(
        isinstance(states, dict) and all(isinstance(v, str) for v in states.values())
        for states in conversations.values()
    ):
        raise LockError(
            f'{path}: expected {{"format": {FORMAT}, "conversations": {{"module.Class": '
            '{"state": "version"}}}}}; restore it from version control'
        )
    return conversations


def lost_states(conversation: type[Conversation], path: Path) -> list[Lost]:
    """The states the lock remembers for `conversation` that it neither has nor migrates."""
    spec = conversation.spec
    remembered = read_lock(path).get(key_of(conversation), {})
    return [
        Lost(state, version)
        for state, version in sorted(remembered.items())
        if state not in spec.states and state not in spec.migrations
    ]


def write_lock(conversation: type[Conversation], path: Path) -> list[str]:
    """Adds the conversation's current states (with its version) to the lock; returns the new."""
    conversations = read_lock(path)
    spec = conversation.spec
    states = conversations.setdefault(key_of(conversation), {})
    added = [state for state in spec.states if state not in states]
    for state in spec.states:
        states[state] = spec.version
    body = {"format": FORMAT, "conversations": conversations}
    path.write_text(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return added


__all__ = ["LOCK_FILE", "LockError", "Lost", "key_of", "lost_states", "read_lock", "write_lock"]
