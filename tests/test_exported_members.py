"""botkit.__all__ stays honest: what it lists exists, it is sorted, and it holds what bot authors use.

After httpx's tests/test_exported_members.py.
"""

from __future__ import annotations
import __future__

import dataclasses
import inspect
import subprocess
import sys
import types
from pathlib import Path

import botkit
import botkit.exceptions
import botkit.wire.events
import botkit.wire.messages

# What a bot author writes (bots/clinic.py is the model) and tests with.
AUTHOR_NAMES = {
    "Bot",
    "Conversation",
    "State",
    "Context",
    "User",
    "on",
    "Simulator",
    "Settings",
    "Runtime",
}


def public_names_in_namespace() -> set[str]:
    """Public names bound in the package, minus its submodules (bound as a side effect) and
    `from __future__ import annotations`."""
    return {
        name
        for name, value in vars(botkit).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }


def test_every_name_in_all_exists() -> None:
    missing = [name for name in botkit.__all__ if not hasattr(botkit, name)]
    assert missing == []


def test_all_is_sorted_and_has_no_duplicates() -> None:
    assert botkit.__all__ == sorted(set(botkit.__all__))


def test_every_public_name_in_the_package_is_in_all() -> None:
    assert public_names_in_namespace() == set(botkit.__all__)


def test_the_names_a_bot_author_uses_are_exported() -> None:
    assert AUTHOR_NAMES - set(botkit.__all__) == set()


def test_every_message_builder_is_exported() -> None:
    builders = {
        name
        for name in botkit.wire.messages.__all__
        if dataclasses.is_dataclass(getattr(botkit.wire.messages, name))
    }
    assert {"Text", "Buttons", "Button", "List", "Row", "Section", "Template"} <= builders
    assert builders - set(botkit.__all__) == set()
    for name in builders:
        assert getattr(botkit, name) is getattr(botkit.wire.messages, name)


def test_every_kind_of_input_a_handler_receives_is_exported() -> None:
    inputs = {
        name
        for name in botkit.wire.events.__all__
        if name.endswith(("Input", "Tap", "Pick"))
        and inspect.isclass(getattr(botkit.wire.events, name))
    }
    assert {"TextInput", "ButtonTap", "RowPick", "QuickReplyTap", "UnsupportedInput"} <= inputs
    assert inputs - set(botkit.__all__) == set()


def test_every_error_in_the_exceptions_module_is_exported() -> None:
    errors = {
        name
        for name, value in vars(botkit.exceptions).items()
        if inspect.isclass(value) and issubclass(value, botkit.BotkitError)
    }
    assert errors - set(botkit.__all__) == set()


def test_the_exported_names_are_the_objects_of_their_modules() -> None:
    """A re-export is the object itself, not a copy or a wrapper."""
    for name in botkit.__all__:
        value = getattr(botkit, name)
        home = getattr(value, "__module__", None)
        if home is not None and home.startswith("botkit.") and hasattr(value, "__qualname__"):
            module = __import__(home, fromlist=["_"])
            assert getattr(module, value.__qualname__.split(".")[0], None) is value, name


def test_importing_botkit_loads_no_test_tooling() -> None:
    """`import botkit` (a production web process) loads neither the fake provider nor the
    simulator, nor asyncpg (an extra, for PostgreSQL only); `from botkit import Simulator`
    still works, on first use."""
    prefixes = ("botkit.fake", "botkit.tools", "botkit.store.postgres", "asyncpg")
    code = (
        "import sys, botkit; "
        f"print(sorted(m for m in sys.modules if m.startswith({prefixes!r}))); "
        "from botkit import Simulator; print(Simulator.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "botkit.tools.simulator"]


def test_the_package_ships_its_type_information() -> None:
    assert (Path(botkit.__file__).parent / "py.typed").is_file()
