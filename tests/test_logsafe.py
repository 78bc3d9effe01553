"""botkit.logsafe: what a log line or an error shows of a value from outside, and the
formatter that bounds every line of a botkit process's log."""

from __future__ import annotations

import logging
import sys

from botkit.logsafe import LINE, SHOWN, SafeFormatter, shown


def test_a_short_value_is_shown_as_its_repr() -> None:
    assert shown("evt_1") == "'evt_1'"
    assert shown(42) == "42"


def test_a_huge_value_is_cut_saying_how_much_was_left_out() -> None:
    text = shown("x" * 1_000_000)
    assert len(text) < SHOWN + 40
    assert text.endswith(f"…[{1_000_000 - SHOWN} more]")


def test_control_characters_cannot_forge_a_line() -> None:
    assert "\n" not in shown("evt\nINFO botkit: forged")
    assert "\\n" in shown("evt\nINFO botkit: forged")


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("y" * 100_000)
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("botkit.test", logging.ERROR, __file__, 1, message, args, info)


def test_the_formatter_keeps_a_message_on_one_bounded_line() -> None:
    formatter = SafeFormatter("%(levelname)s %(name)s: %(message)s")
    line = formatter.format(record("event %s failed", "a\nb" + "z" * 1_000_000))
    assert "\n" not in line
    assert len(line) < LINE + 100
    assert "more characters" in line


def test_the_formatter_bounds_a_traceback_and_keeps_its_end() -> None:
    formatter = SafeFormatter("%(message)s")
    text = formatter.format(record("handler failed", exc=True))
    assert len(text) < 9000
    assert text.rstrip().endswith("y" * 50)  # the last line: the exception's own
    assert "characters of traceback left out" in text
