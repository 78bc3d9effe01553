"""Values from outside (a request's fields, a handler's error) as logs and errors show them:
escaped, so that one cannot forge a line, and cut, so that one cannot fill a disk.

An attacker controls most of a webhook body (ids, texts, field names) and, through a
handler's exception, some of what botkit reports; a log line repeated a megabyte of it.
`shown(value)` is what to put in a message; `SafeFormatter` bounds every line of a process's
log whatever its loggers were given.
"""

from __future__ import annotations

import logging

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


class SafeFormatter(logging.Formatter):
    """A formatter whose message is one escaped line of at most LINE characters, and whose
    traceback (several lines, as Python writes it) keeps its last TRACEBACK characters."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped(cut(record.message, LINE))
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:
        text = super().formatException(ei)  # type: ignore[arg-type]
        if len(text) <= TRACEBACK:
            return text
        return f"[{len(text) - TRACEBACK} characters of traceback left out]…{text[-TRACEBACK:]}"


__all__ = ["LINE", "SHOWN", "SafeFormatter", "cut", "escaped", "shown"]
