"""What a bot module exports (`Bot`), and how a bot is found from `module[:attr]`."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from botkit.conversation.dsl import Conversation
from botkit.exceptions import BotkitError
from botkit.types import JSONObject

if TYPE_CHECKING:
    from botkit.runtime.runtime import Runtime


class Bot:
    """A bot: its conversation class, and how it is named in logs and the CLI."""

    def __init__(self, conversation: type[Conversation], *, name: str | None = None) -> None:
        if not (isinstance(conversation, type) and issubclass(conversation, Conversation)):
            raise BotkitError(f"Bot() takes a Conversation subclass, not {conversation!r}")
        self.conversation = conversation
        self.name = name or conversation.__name__
        self.runtime: Runtime | None = None  # set while the bot runs

    def __repr__(self) -> str:
        return f"Bot({self.conversation.__name__})"

    async def trigger(
        self,
        wa_id: str,
        name: str,
        data: JSONObject | None = None,
        *,
        phone_number_id: str | None = None,
        key: str | None = None,
    ) -> str:
        """Starts `name` for a user from application code; returns the trigger's event id.

        Like POST /conversations/{wa_id}/trigger: durable, ordered with the user's messages.
        """
        if self.runtime is None:
            raise BotkitError(f"{self.name} is not running: start it (botkit run, Simulator) first")
        return await self.runtime.ingest.trigger(
            wa_id, name, data or {}, phone_number_id=phone_number_id, key=key
        )


def import_target(target: str) -> tuple[ModuleType, str]:
    """Imports the module of `module[:attr]`; returns it and the attribute named (or "")."""
    module_name, _, attr = target.partition(":")
    try:
        return importlib.import_module(module_name), attr
    except ModuleNotFoundError as exc:
        raise BotkitError(
            f"cannot import {module_name!r}: {exc} (run from the folder that holds it)"
        ) from exc


def find_bot(module: ModuleType, attr: str = "") -> Bot:
    """The module's Bot: the attribute `attr`, or the only Bot it defines."""
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Bot):
            raise BotkitError(f"{module.__name__}:{attr} is not a botkit.Bot")
        return found
    bots = [value for value in vars(module).values() if isinstance(value, Bot)]
    if len(bots) != 1:
        raise BotkitError(
            f"{module.__name__} defines {len(bots)} Bot objects; name one as "
            f"{module.__name__}:ATTRIBUTE"
        )
    return bots[0]


def load_bot(target: str) -> Bot:
    """Imports `module[:attr]` and returns its Bot."""
    return find_bot(*import_target(target))
