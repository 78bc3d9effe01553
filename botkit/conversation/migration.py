"""Where a user goes whose stored state the running code no longer has (a renamed or removed state).

A conversation declares, beside its states, what became of the old ones:

    migrations = {
        "choosing": "choosing_service",                       # renamed
        "waitlist": Migration("idle", Text("Cambiamos el bot: empecemos de nuevo.")),  # removed
    }

The user moves when their next event (a message, a trigger) is processed: the state is
replaced before any handler runs, and the optional message is sent first (held until the user
writes when the window is closed). A stored state that is neither declared nor migrated falls
back to the initial state, keeping the data, with a warning; `botkit check` fails on it when
the lock file names the state (tools/lock.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from botkit.exceptions import DefinitionError
from botkit.wire.messages import Message, is_message


@dataclass(frozen=True, slots=True)
class Migration:
    """An old state's users go to the state `to`, told `message` first if one is given."""

    to: str
    message: Message | None = None


MigrationSource: TypeAlias = "str | Migration"


def check_migrations(
    owner: str, states: Mapping[str, object], declared: object
) -> dict[str, Migration]:
    """The declared `migrations`, checked: old names that are not states, to declared states."""
    if not isinstance(declared, Mapping):
        raise DefinitionError(
            f"{owner}.migrations: expected a dict of old state name -> new state name or "
            f"Migration(...), got {type(declared).__name__}"
        )
    found: dict[str, Migration] = {}
    for old, target in declared.items():
        where = f"{owner}.migrations[{old!r}]"
        if not isinstance(old, str) or not old:
            raise DefinitionError(f"{where}: an old state's name must be a non-empty string")
        if old in states:
            raise DefinitionError(
                f"{where}: {old!r} is a state of {owner}; a migration is for a state the code "
                "no longer has"
            )
        migration = Migration(target) if isinstance(target, str) else target
        if not isinstance(migration, Migration):
            raise DefinitionError(
                f"{where}: expected a state name or Migration(to, message), got "
                f"{type(target).__name__}"
            )
        if migration.to not in states:
            raise DefinitionError(
                f"{where}: {migration.to!r} is not declared in {owner}; declared states: "
                f"{', '.join(states)}"
            )
        if migration.message is not None and not is_message(migration.message):
            raise DefinitionError(
                f"{where}: Migration(message=...) takes a message such as Text(...), not "
                f"{type(migration.message).__name__}"
            )
        found[old] = migration
    return found


__all__ = ["Migration", "check_migrations"]
