"""Every example bot passes `botkit check` with nothing to say: examples are what people copy."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from botkit.tools.cli import main

ROOT = Path(__file__).parents[2]
BOTS = sorted(
    f"bots.{path.stem}"
    for path in (Path(__file__).parents[2] / "bots").glob("*.py")
    if path.stem != "__init__"
)


def test_the_examples_are_found() -> None:
    assert {"bots.clinic", "bots.hello", "bots.pizza"} <= set(BOTS)


@pytest.mark.parametrize("target", BOTS)
def test_an_example_passes_botkit_check_with_nothing_to_say(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = str(ROOT / "botkit.lock")  # the states they have had: none may vanish unmigrated
    assert main(["check", target, "--lock", lock]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "botkit check: 0 errors, 0 warnings\n"


def test_the_lock_file_knows_every_example() -> None:
    lock = json.loads((ROOT / "botkit.lock").read_text())
    assert sorted(lock["conversations"]) == [
        f"{target}.{main_class}" for target, main_class in sorted(_classes().items())
    ]


def _classes() -> dict[str, str]:
    found = {}
    for target in BOTS:
        bot = importlib.import_module(target).bot
        found[target] = bot.conversation.__qualname__
    return found
