"""What a bot module exports (`Bot`), and how a bot is found from `module[:attr]`."""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path
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

    async def handoff(
        self,
        wa_id: str,
        *,
        reason: str = "",
        timeout: timedelta | float | None = None,  # noqa: ASYNC109 (the handoff's, not the call's)
        resume_to: str | None = None,
        phone_number_id: str | None = None,
    ) -> str:
        """Hands a user's conversation to people, as POST /conversations/{wa_id}/handoff;
        returns the event id (HandoffError 404: no such conversation). With `timeout`, the bot
        resumes it by itself, in `resume_to` (else the user's state), after that long with no
        message either way."""
        return await self._running().ingest.handoff(
            wa_id, reason=reason, timeout=timeout, resume_to=resume_to,
            phone_number_id=phone_number_id,
        )  # fmt: skip

    async def reply(
        self,
        wa_id: str,
        text: str,
        *,
        fallback: JSONObject | None = None,
        phone_number_id: str | None = None,
    ) -> str:
        """A person's message to a user, as POST /conversations/{wa_id}/messages: through the
        outbox, the window and `fallback` (a template's {"name", "language", "body"})."""
        return await self._running().ingest.reply(
            wa_id, text, fallback=fallback, phone_number_id=phone_number_id
        )

    async def resume(self, wa_id: str, *, state: str, phone_number_id: str | None = None) -> str:
        """Hands the conversation back to the bot in `state`, as POST
        /conversations/{wa_id}/resume (HandoffError 400: an undeclared state)."""
        return await self._running().ingest.resume(wa_id, state, phone_number_id=phone_number_id)

    def _running(self) -> Runtime:
        if self.runtime is None:
            raise BotkitError(f"{self.name} is not running: start it (botkit run, Simulator) first")
        return self.runtime


def import_target(target: str) -> tuple[ModuleType, str]:
    """Imports the module of `module[:attr]`; returns it and the attribute named (or "").

    A file path (``bots/clinic.py``) is taken as the module it names (``bots.clinic``).
    """
    written, _, attr = target.partition(":")
    module_name = module_of(written)
    try:
        return importlib.import_module(module_name), attr
    except ModuleNotFoundError as exc:
        raise BotkitError(_not_found(written, module_name, exc)) from exc


def module_of(written: str) -> str:
    """The module name of a bot given as a module (``bots.clinic``) or a path (``bots/clinic.py``)."""
    if "/" not in written and "\\" not in written and not written.endswith(".py"):
        return written
    path = Path(written).with_suffix("") if written.endswith(".py") else Path(written)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            raise BotkitError(
                f"cannot import {written!r}: it is outside the current folder; run from the "
                f"folder that holds it and name it as a module, e.g. {path.name}"
            ) from None
    parts = [part for part in path.parts if part != "."]
    if not parts or ".." in parts or not all(part.isidentifier() for part in parts):
        raise BotkitError(
            f"cannot import {written!r}: name the bot as a module (folders joined with dots, "
            "without .py), run from the folder that holds it, e.g. bots.clinic"
        )
    return ".".join(parts)


def _not_found(written: str, module_name: str, exc: ModuleNotFoundError) -> str:
    missing = exc.name or ""
    if missing == module_name or module_name.startswith(f"{missing}."):
        shown = f"{written!r} (module {module_name})" if written != module_name else repr(written)
        return (
            f"cannot import {shown}: no module {missing!r} in {Path.cwd()}; run from the "
            "folder that holds it, and name it as a module, e.g. bots.clinic"
        )
    return (
        f"cannot import {module_name!r}: the bot was found, but its own import of {missing!r} "
        f"failed ({exc}); install {missing.partition('.')[0]} in this environment, or fix "
        "the bot's import"
    )


def find_bot(module: ModuleType, attr: str = "") -> Bot:
    """The module's Bot: the attribute `attr`, or the only Bot it defines."""
    if attr:
        if not hasattr(module, attr):
            raise BotkitError(
                f"{module.__name__} has no attribute {attr!r} (it has: {_offered(module)})"
            )
        found = getattr(module, attr)
        if not isinstance(found, Bot):
            raise BotkitError(
                f"{module.__name__}:{attr} is not a botkit.Bot but {_kind(found)}; "
                f"its Bots: {_offered(module)}"
            )
        return found
    bots = [value for value in vars(module).values() if isinstance(value, Bot)]
    if len(bots) != 1:
        raise BotkitError(
            f"{module.__name__} defines {len(bots)} Bot objects; name one as "
            f"{module.__name__}:ATTRIBUTE"
        )
    return bots[0]


def _offered(module: ModuleType) -> str:
    """The names of the module's Bots, then of its Conversations."""
    values = {name: value for name, value in vars(module).items() if not name.startswith("_")}
    bots = [name for name, value in values.items() if isinstance(value, Bot)]
    conversations = [
        name
        for name, value in values.items()
        if isinstance(value, type) and issubclass(value, Conversation) and value is not Conversation
    ]
    return ", ".join([*bots, *conversations]) or "no Bot"


def _kind(value: object) -> str:
    if isinstance(value, type) and issubclass(value, Conversation):
        return f"the Conversation {value.__name__} (Bot({value.__name__}) makes one)"
    return f"a {type(value).__name__}"


def load_bot(target: str) -> Bot:
    """Imports `module[:attr]` and returns its Bot."""
    return find_bot(*import_target(target))
