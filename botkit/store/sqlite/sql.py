"""Helpers for the SQLite store's statements: multi-row VALUES."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

ROWS_PER_STATEMENT = 400  # under SQLite's 32,766 host parameters for the widest rows


def marks(count: int) -> str:
    """`?, ?, ?` for `count` parameters (NULL for none, so that `IN (NULL)` matches nothing)."""
    return ", ".join("?" * count) if count else "NULL"


def many(
    template: str, rows: Sequence[tuple[Any, ...]], db: sqlite3.Connection, *extra: Any
) -> list[Any]:
    """Runs `template` with its {values} filled by `rows`, a few hundred rows a statement.

    Multi-row statements, not executemany: each statement releases the GIL once, where
    executemany's hundreds of statements each waited to get it back from a busy event loop
    (bench/webhook.py). `extra` parameters follow the rows'. Returns the rows the statements
    return (RETURNING), if any.
    """
    returned: list[Any] = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        part = rows[start : start + ROWS_PER_STATEMENT]
        row = f"({marks(len(part[0]))})"
        sql = template.format(values=", ".join([row] * len(part)))
        returned += db.execute(sql, [value for each in part for value in each] + list(extra))
    return returned
