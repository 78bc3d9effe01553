"""Every example bot passes `botkit check` with nothing to say: examples are what people copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from botkit.tools.cli import main

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
    assert main(["check", target]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "botkit check: 0 errors, 0 warnings\n"
