"""botkit.logsafe: what a log line or an error shows of a value from outside, and the
formatter that bounds every line of a botkit process's log."""

from __future__ import annotations

import io
import json
import logging
import sys
import time

import pytest

from botkit.logsafe import (
    FULL,
    JSON,
    LINE,
    MASKED,
    SHOWN,
    BatchingHandler,
    JsonFormatter,
    Phone,
    SafeFormatter,
    configure,
    direct,
    fields,
    handler,
    masked_phone,
    shown,
)


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


# -- structured lines, users' numbers, JSON --------------------------------------------------


def structured(text: str, *args: object, **values: object) -> logging.LogRecord:
    line = record(text, *args)
    line.__dict__.update(fields(**values))
    return line


def test_a_number_is_masked_keeping_its_country_and_last_four_digits() -> None:
    assert masked_phone("5491140123456") == "54911****3456"
    assert masked_phone("15551234567") == "155****4567"
    assert masked_phone("12345678") == "****5678"  # never fewer than four digits hidden
    assert str(Phone("5491140123456")) == "54911****3456"  # whatever formats it
    assert "5491140123456" not in repr(Phone("5491140123456"))


@pytest.mark.parametrize("phones", [MASKED, FULL])
def test_a_phone_in_a_message_or_a_field_is_shown_as_configured(phones: str) -> None:
    expected = "5491140123456" if phones == FULL else "54911****3456"
    for formatter in (SafeFormatter("%(message)s", phones=phones), JsonFormatter(phones=phones)):
        line = formatter.format(
            structured("user %s: ok", Phone("5491140123456"), user=Phone("5491140123456"))
        )
        assert line.count(expected) == 2, line


def test_the_text_formatter_writes_fields_as_name_value_pairs() -> None:
    line = SafeFormatter("%(message)s").format(
        structured(
            "turn done",
            event_id="evt_1",
            sent=2,
            types=["text", "image"],
            error=None,
            note='a "b" c',
        )
    )
    assert line == 'turn done event_id=evt_1 sent=2 types=text,image note="a \\"b\\" c"'


def test_the_json_formatter_writes_fields_as_keys_escaped_and_cut() -> None:
    hostile = 'evt\n{"forged": 1}' + "z" * 100_000
    line = JsonFormatter().format(
        structured("turn %s", "done", event_id=hostile, sent=1, ok=True, message="clash")
    )
    assert "\n" not in line
    found = json.loads(line)
    assert found["message"] == "turn done" and found["level"] == "ERROR"
    assert found["logger"] == "botkit.test" and found["time"].endswith("Z")
    assert found["sent"] == 1 and found["ok"] is True and "forged" not in found
    assert found["event_id"].startswith("evt\\n{") and "more characters" in found["event_id"]
    assert len(found["event_id"]) < 400
    assert found["field_message"] == "clash"  # a field never hides a standard key


def test_the_json_formatter_puts_the_traceback_in_one_string_field() -> None:
    found = json.loads(JsonFormatter().format(record("handler failed", exc=True)))
    assert "characters of traceback left out" in found["exception"]
    assert found["exception"].endswith("y" * 50) and len(found["exception"]) < 9000


def test_the_access_log_path_of_a_users_conversation_is_masked() -> None:
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/conversations/5491140123456/trigger", "1.1", 202), None,
    )  # fmt: skip
    line = SafeFormatter("%(message)s").format(access)
    assert "/conversations/54911****3456/trigger" in line


def test_configure_sets_the_root_handler_and_keeps_transitions_quiet() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    root.handlers[:] = []  # as in a new process (pytest's own are put back below)
    try:
        made = configure("info", format=JSON, stream=out)
        assert isinstance(made, BatchingHandler)  # the process's own log: lines in batches
        assert logging.getLogger("transitions").level == logging.WARNING
        logging.getLogger("transitions.core").info("Finished processing state idle exit callbacks")
        logging.getLogger("botkit.x").info("hello %s", Phone("5491140123456"))
        made.flush()
        [line] = out.getvalue().splitlines()
        assert json.loads(line)["message"] == "hello 54911****3456"
        made.close()
        root.handlers[:] = []
        configure("debug", stream=out)
        assert logging.getLogger("transitions").level == logging.DEBUG
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("transitions").setLevel(logging.WARNING)


def test_a_batching_handler_writes_info_lines_in_batches_and_a_warning_at_once() -> None:
    out = io.StringIO()
    made = handler(format=JSON, stream=out, flush_every=3600.0)  # its thread waits an hour
    log = logging.getLogger("botkit.test_batching")
    log.addHandler(made)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        log.info("one")
        log.info("two")
        assert out.getvalue() == ""  # kept: no write per line
        log.warning("three")  # written at once, with what waited before it, in order
        assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == [
            "one",
            "two",
            "three",
        ]
        log.info("four")
        made.close()  # at exit: nothing is left behind
        assert json.loads(out.getvalue().splitlines()[-1])["message"] == "four"
    finally:
        log.removeHandler(made)
        log.propagate = True


def test_a_batching_handler_writes_what_waits_within_its_interval() -> None:
    out = io.StringIO()
    made = handler(stream=out, flush_every=0.05)
    record = logging.LogRecord("botkit.x", logging.INFO, __file__, 1, "waiting", None, None)
    made.handle(record)
    deadline = time.monotonic() + 10
    while "waiting" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    made.close()
    assert out.getvalue() == "INFO botkit.x: waiting\n"


VALUES: dict[str, object] = {
    "log": "turn",
    "event_id": "evt_1",
    "user": Phone("5491140123456"),
    "sent_types": ["text", "interactive"],
    "error": None,
    "note": "a b=c\nd",
    "duration_ms": 0.5,
}


@pytest.mark.parametrize("form", ["text", "json"])
def test_a_line_written_directly_reads_as_the_record_would(form: str) -> None:
    made = handler(format=form)
    formatter = made.formatter
    assert isinstance(formatter, SafeFormatter)
    record = logging.LogRecord("botkit.x", logging.INFO, __file__, 1, "turn %s", ("done",), None)
    record.__dict__.update(fields(**VALUES))
    by_record = formatter.format(record)
    direct_line = formatter.fields_line("INFO", "botkit.x", "turn done", VALUES)
    if form == "json":
        by_record_json, direct_json = json.loads(by_record), json.loads(direct_line)
        del by_record_json["time"], direct_json["time"]
        assert direct_json == by_record_json
        assert direct_json["user"] == "54911****3456"
    else:
        assert direct_line == by_record
        assert "5491140123456" not in direct_line


def test_direct_is_botkit_s_own_handler_only_when_nothing_else_would_see_the_line() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    log = logging.getLogger("botkit.test_direct")
    out = io.StringIO()
    root.handlers[:] = []
    try:
        made = configure("info", format=JSON, stream=out)
        assert direct(log, logging.INFO) is made
        assert direct(log, logging.DEBUG) is None  # the line is off
        other = logging.StreamHandler(io.StringIO())
        root.addHandler(other)  # a host's handler (pytest's) would miss a direct line
        assert direct(log, logging.INFO) is None
        root.removeHandler(other)
        log.addFilter(lambda record: True)
        assert direct(log, logging.INFO) is None
        log.filters.clear()
        made.close()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
