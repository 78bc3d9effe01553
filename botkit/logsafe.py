"""botkit's log: values from outside escaped and cut, users' numbers masked, every line as
text or as JSON, and the setup of a process's log (the one home of log formatting).

An attacker controls most of a webhook body (ids, texts, field names) and, through a
handler's exception, some of what botkit reports; a log line repeated a megabyte of it.
`shown(value)` is what to put in a message; `SafeFormatter` (text) and `JsonFormatter` (one
JSON object a line) bound every line of a process's log whatever its loggers were given.

Structured lines (one per turn, one per send attempt) carry their fields with
`extra=fields(name=value, ...)`: the text formatter writes them after the message as
`name=value`, the JSON formatter as keys. A user's number goes in as `Phone(wa_id)`: shown
masked (`54911****3456`) unless the formatter is told `phones="full"`, so that no formatter,
ours or a test's, writes a whole number by accident.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from botkit import codec

SHOWN = 120  # characters of a value in a message
LINE = 4000  # characters of a log message; a traceback keeps its last TRACEBACK
TRACEBACK = 8000


def cut(text: str, limit: int) -> str:
    """`text`, at most `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


def shown(value: object, limit: int = SHOWN) -> str:
    """`repr(value)`, escaped (no newline or control character survives) and cut to about
    `limit` characters, without ever building the repr of a huge string."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}…[{len(value) - limit} more]"
    return cut(repr(value), limit)


def escaped(text: str) -> str:
    """`text` on one line: control characters (newlines included) written as escapes."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


FIELDS = "botkit_fields"  # the LogRecord attribute `fields()` sets
MASKED, FULL = "masked", "full"
PHONE_MODES = (MASKED, FULL)
TEXT, JSON = "text", "json"
FORMATS = (TEXT, JSON)
FIELD_SHOWN = 300  # characters of one field's value (an error's message is cut here)
# the standard keys of a JSON line; a field of the same name is written with a "field_" prefix
_JSON_KEYS = frozenset({"time", "level", "logger", "message", "exception"})
# an access-log path naming a user (the trigger API, the conversation API): the number masked
_USER_PATH = re.compile(r"(/conversations/)(\+?[0-9]{5,32})")


class Phone:
    """A user's number in a log line: masked when formatted, unless the process's formatter
    shows numbers in full (BOTKIT_LOG_PHONE=full)."""

    __slots__ = ("digits",)

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __str__(self) -> str:
        return masked_phone(self.digits)

    __repr__ = __str__

    def shown(self, phones: str) -> str:
        """The number as a formatter told `phones` (masked or full) writes it."""
        return self.digits if phones == FULL else masked_phone(self.digits)


def masked_phone(digits: str) -> str:
    """A number with its middle hidden: `54911****3456` (at most the first five digits and
    the last four, and never fewer than four hidden)."""
    shown_head = max(0, min(5, len(digits) - 8))
    return f"{digits[:shown_head]}****{digits[-4:]}"


def fields(**values: object) -> dict[str, object]:
    """The `extra=` of a structured line: its fields, written as name=value (text) or as
    keys (JSON)."""
    return {FIELDS: values}


_PLAIN = frozenset({int, float, bool, type(None)})


def _value(value: object, phones: str) -> object:
    """A field's value as a line shows it: numbers as they are, a Phone as told, a list item
    by item, anything else as escaped text cut to FIELD_SHOWN characters. (Every line of a
    busy bot goes through here: the common cases come first, by exact type.)"""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
    elif kind in _PLAIN:
        return value
    elif kind is Phone:
        return value.shown(phones)  # type: ignore[attr-defined]
    elif kind is list or kind is tuple:
        return [_value(item, phones) for item in value[:50]]  # type: ignore[index]
    else:
        text = str(value)
    if len(text) > FIELD_SHOWN:
        text = cut(text, FIELD_SHOWN)
    return text if text.isprintable() else escaped(text)


def _args(record: logging.LogRecord, phones: str) -> None:
    """The record's %-arguments with every Phone written as told, and the path of an access
    line with the number it names masked (uvicorn logs the trigger API's path)."""
    args = record.args
    if not isinstance(args, tuple) or not args:
        return
    if phones != FULL and record.name == "uvicorn.access" and len(args) > 2:
        path = args[2]
        if isinstance(path, str) and "/conversations/" in path:
            path = _USER_PATH.sub(lambda m: m.group(1) + masked_phone(m.group(2)), path)
            args = (*args[:2], path, *args[3:])
    record.args = tuple(arg.shown(phones) if isinstance(arg, Phone) else arg for arg in args)


class SafeFormatter(logging.Formatter):
    """A formatter whose message is one escaped line of at most LINE characters, followed by
    the record's fields as name=value; its traceback (several lines, as Python writes it)
    keeps its last TRACEBACK characters. `phones`: MASKED or FULL (see Phone)."""

    def __init__(self, fmt: str | None = None, *, phones: str = MASKED) -> None:
        super().__init__(fmt)
        self.phones = phones

    def format(self, record: logging.LogRecord) -> str:
        _args(record, self.phones)
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        values = getattr(record, FIELDS, None)
        if values:
            message = f"{message} {_pairs(values, self.phones)}"
        record.message = escaped(cut(message, LINE))
        return super().formatMessage(record)

    def fields_line(self, level: str, name: str, message: str, values: dict[str, object]) -> str:
        """The line `format` makes of a record with no %-arguments and no exception (the
        workers' structured lines, written without a LogRecord: see `direct`)."""
        if self._fmt != TEXT_LINE:  # a format of its own: only the record path knows it
            raise ValueError("fields_line needs the TEXT_LINE format")
        return f"{level} {name}: {escaped(cut(f'{message} {_pairs(values, self.phones)}', LINE))}"

    def formatException(self, ei: object) -> str:
        text = super().formatException(ei)  # type: ignore[arg-type]
        if len(text) <= TRACEBACK:
            return text
        return f"[{len(text) - TRACEBACK} characters of traceback left out]…{text[-TRACEBACK:]}"


def _pairs(values: Mapping[str, object], phones: str) -> str:
    """name=value ... (logfmt), leaving out those with no value (None, an empty list); a
    value with a space, a quote or an equals sign is quoted. Values are cut here; the line
    they end up in is escaped whole (SafeFormatter.formatMessage)."""
    parts = []
    for name, value in values.items():
        kind = type(value)
        if kind is str:
            text: str = value  # type: ignore[assignment]
            if len(text) > FIELD_SHOWN:
                text = cut(text, FIELD_SHOWN)
        elif value is None:
            continue
        elif kind is int or kind is float or kind is bool:
            parts.append(f"{name}={value}")
            continue
        elif kind is Phone:
            text = value.shown(phones)  # type: ignore[attr-defined]
        elif kind is list or kind is tuple:
            if not value:
                continue
            text = ",".join(str(_value(item, phones)) for item in value[:50])  # type: ignore[index]
        else:
            text = cut(str(value), FIELD_SHOWN)
        if not text or " " in text or '"' in text or "=" in text:
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{name}={text}")
    return " ".join(parts)


class JsonFormatter(SafeFormatter):
    """One compact JSON object a line: time (UTC, ISO 8601), level, logger, message, the
    record's fields as keys, and `exception` (the traceback, as one string) when there is one.
    Values are escaped and cut as SafeFormatter's are."""

    def format(self, record: logging.LogRecord) -> str:
        _args(record, self.phones)
        line = self._object(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, FIELDS, None) or {},
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return codec.dumps_str(line)  # orjson: a fifth of what json.dumps takes here

    def fields_line(self, level: str, name: str, message: str, values: dict[str, object]) -> str:
        """The line `format` makes of a record with no %-arguments and no exception (the
        workers' structured lines, written without a LogRecord: see `direct`)."""
        return codec.dumps_str(self._object(time.time(), level, name, message, values))

    def _object(
        self, created: float, level: str, name: str, message: str, values: Mapping[str, object]
    ) -> dict[str, Any]:
        line: dict[str, Any] = {
            "time": _timestamp(created),
            "level": level,
            "logger": name,
            "message": escaped(cut(message, LINE)),
        }
        phones = self.phones
        for key, value in values.items():
            if key in _JSON_KEYS:
                key = f"field_{key}"
            # the common case inline: a short printable string, a number, nothing
            kind = type(value)
            plain = kind is int or value is None
            short = kind is str and len(value) <= FIELD_SHOWN  # type: ignore[arg-type]
            if plain or (short and value.isprintable()):  # type: ignore[attr-defined]
                line[key] = value
            else:
                line[key] = _value(value, phones)
        return line


_SECOND: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    whole = int(created)
    if _SECOND[0] != whole:  # a busy log writes hundreds of lines a second: format it once
        _SECOND[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_SECOND[1]}.{int(created % 1 * 1000):03d}Z"


TEXT_LINE = "%(levelname)s %(name)s: %(message)s"
FLUSH_EVERY = 0.2  # seconds an INFO line of a process's log may wait to be written
BATCH_CHARACTERS = 64 * 1024  # ... unless this much waits
# Their own loggers' lines that stay out of botkit's log unless it is at DEBUG: transitions
# logs each state change's callbacks at INFO; httpx one line per request.
QUIET = ("transitions", "httpx")


def handler(
    *,
    format: str = TEXT,
    phones: str = MASKED,
    stream: TextIO | None = None,
    flush_every: float | None = None,
) -> logging.Handler:
    """A handler writing `format` (TEXT or JSON) lines to `stream` (stderr); with
    `flush_every` (seconds), lines are written in batches (BatchingHandler)."""
    found: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream or sys.stderr)
        if flush_every is None
        else BatchingHandler(stream or sys.stderr, flush_every)
    )
    found.setFormatter(
        JsonFormatter(phones=phones) if format == JSON else SafeFormatter(TEXT_LINE, phones=phones)
    )
    return found


class BatchingHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes its lines in batches: at most every `every` seconds (a
    daemon thread writes what waits), at once for a WARNING or worse, and at exit.

    A busy worker logs two lines an event; writing and flushing each was a system call an
    event (a twentieth of a worker's time, bench/webhook.py --metrics-overhead --with-logs).
    A process killed outright loses at most the last `every` seconds of INFO lines.
    """

    def __init__(self, stream: TextIO, every: float) -> None:
        super().__init__(stream)
        self.every = every
        self._waiting: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        self._stopped = False
        threading.Thread(target=self._write_now_and_then, name="botkit-log", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        """Formats the line and keeps it (called with the handler's lock held)."""
        try:
            line = self.format(record) + self.terminator
        except Exception:  # as logging's own handlers do: a bad record is reported, not raised
            self.handleError(record)
            return
        self._waiting.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= BATCH_CHARACTERS:
            self._write()

    def write_line(self, line: str) -> None:
        """Keeps a line already formatted (by this handler's formatter's `fields_line`)."""
        with self.lock or contextlib.nullcontext():
            self._waiting.append(line + self.terminator)
            self._size += len(line)
            if self._size >= BATCH_CHARACTERS:
                self._write()

    def flush(self) -> None:
        """Writes what waits, then flushes the stream."""
        with self.lock or contextlib.nullcontext():
            self._write()

    def close(self) -> None:
        """Writes what waits and stops the thread."""
        self._stopped = True
        self._wake.set()
        self.flush()
        super().close()

    def _write(self) -> None:
        if self._waiting:
            lines, self._waiting, self._size = self._waiting, [], 0
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:  # a closed or broken stream: as StreamHandler, lines are dropped
                pass

    def _write_now_and_then(self) -> None:
        while not self._stopped:
            self._wake.wait(self.every)
            self.flush()


def direct(logger: logging.Logger, level: int) -> BatchingHandler | None:
    """The handler a line of `logger` at `level` would reach when it is botkit's own alone
    (one BatchingHandler on the root, no filter anywhere on the way): a caller may then give
    it a formatted line (`write_line`) instead of a LogRecord, about half the cost. None when
    the line is off, or when anything else would see the record (a host's handlers, such as
    pytest's, a filter, a handler of its own): then the record goes the usual way."""
    if not logger.isEnabledFor(level):
        return None
    found: BatchingHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or type(handler) is not BatchingHandler:
                return None
            if handler.filters or level < handler.level or handler.formatter is None:
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


def configure(
    level: str = "INFO",
    *,
    format: str = TEXT,
    phones: str = MASKED,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Sets up this process's log: one handler on the root logger writing `format` (TEXT or
    JSON) lines at `level` and above to `stream` (stderr), unless the root logger has one
    already (a host's, such as pytest's); transitions' and httpx's own lines only at DEBUG.
    Returns the handler."""
    root = logging.getLogger()
    # lines written in batches where botkit owns the process's log; a host's handler (such as
    # pytest's) stays, and the one returned then writes each line at once
    every = None if root.handlers else FLUSH_EVERY
    made = handler(format=format, phones=phones, stream=stream, flush_every=every)
    logging.basicConfig(level=level.upper(), handlers=[made])
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in QUIET:
        logging.getLogger(name).setLevel(quiet)
    return made


__all__ = [
    "FIELDS",
    "FORMATS",
    "FULL",
    "JSON",
    "LINE",
    "MASKED",
    "PHONE_MODES",
    "SHOWN",
    "TEXT",
    "BatchingHandler",
    "JsonFormatter",
    "Phone",
    "SafeFormatter",
    "configure",
    "direct",
    "cut",
    "escaped",
    "fields",
    "handler",
    "masked_phone",
    "shown",
]
