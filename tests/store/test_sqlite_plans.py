"""The SQLite store's statements keep their indexes at any batch size and any store size: a
plan that scans a table grows with the users ever stored (bench/users.py --explain found two
that did from about 254 lanes a batch, and one in the janitor)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from botkit.store.sqlite import SqliteStore, inbox, outbox
from botkit.types import ManualClock

pytestmark = pytest.mark.anyio


def plan(db: sqlite3.Connection, sql: str, params: list[object]) -> list[str]:
    return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.mark.parametrize("lanes", [1, 300, 400])
@pytest.mark.parametrize(
    ("name", "sql", "extra"),
    [("release held", inbox._RELEASE_HELD, 1), ("release if open", outbox._RELEASE_IF_OPEN, 2)],
)
async def test_releasing_held_sends_searches_the_held_index_at_any_batch_size(
    tmp_path: Path, lanes: int, name: str, sql: str, extra: int
) -> None:
    path = tmp_path / "plans.db"
    async with SqliteStore(str(path), clock=ManualClock()):
        pass  # the schema, as botkit creates it
    db = sqlite3.connect(path)
    db.execute("ATTACH DATABASE ? AS incoming", (f"{path}-inbox",))
    values = ",".join(["(?, ?)"] * lanes)
    params: list[object] = [v for n in range(lanes) for v in ("555123456789", f"549110{n:07d}")]
    steps = plan(db, sql.format(values=values), [*params, *([0.0] * extra)])
    assert any("USING INDEX outbox_held" in step for step in steps), (name, steps)
    assert not any("AUTOMATIC" in step or step.startswith("SCAN main.outbox") for step in steps)
    db.execute("BEGIN")  # and the statement runs (INDEXED BY fails loudly if it cannot)
    db.execute(sql.format(values=values), [*params, *([0.0] * extra)]).fetchall()
    db.execute("ROLLBACK")


async def test_the_janitors_bounds_of_the_inbox_are_two_searches(tmp_path: Path) -> None:
    from botkit.store.sqlite import retention

    path = tmp_path / "plans.db"
    async with SqliteStore(str(path), clock=ManualClock()):
        pass
    db = sqlite3.connect(path)
    db.execute("ATTACH DATABASE ? AS incoming", (f"{path}-inbox",))
    assert retention._horizon(0.0, db) == 0  # an empty inbox
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    retention._horizon(0.0, db)
    db.set_trace_callback(None)
    bounds = [s for s in statements if "min(seq)" in s or "max(seq)" in s]
    assert bounds and all(plan(db, s, []) == ["SEARCH incoming.inbox"] for s in bounds)
