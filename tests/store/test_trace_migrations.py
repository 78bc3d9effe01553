"""The trace context columns reach databases an older botkit made: a SQLite pair without them
gets them, and a PostgreSQL database at step 6 migrates to step 7 with its work intact while
processes of the older botkit (its functions) keep working beside the new ones."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from botkit.store.postgres import PostgresStore, schema
from botkit.store.postgres.inbox import lane_lock
from botkit.store.sqlite import SqliteStore
from botkit.types import ManualClock

from .contract import ANA, LEASE, PN, complete, event, send
from .trace_contract import TURN, WEBHOOK

pytestmark = pytest.mark.anyio


async def test_a_sqlite_pair_without_the_trace_columns_gets_them(tmp_path: Path) -> None:
    path, clock = tmp_path / "bot.db", ManualClock()
    async with SqliteStore(path, clock=clock, worker=True) as store:
        await store.inbox.add([event("old")])
    with contextlib.closing(sqlite3.connect(f"{path}-inbox")) as db, db:
        db.execute("ALTER TABLE inbox DROP COLUMN traceparent")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("ALTER TABLE outbox DROP COLUMN traceparent")

    async with SqliteStore(path, clock=clock, worker=True) as store:
        await store.inbox.add([replace(event("new"), trace=WEBHOOK)])
        [lane] = await store.inbox.claim("W", 1, LEASE)
        assert [(item.event_id, item.trace) for item in lane.events] == [
            ("old", None),
            ("new", WEBHOOK),
        ]
        assert await complete(store, lane, sends=(replace(send("k1"), trace=TURN),))
        [out] = await store.outbox.claim("O", 1, LEASE)
        assert [item.trace for item in out.sends] == [TURN]


async def _add_as_step_6(db: asyncpg.Connection, event_id: str) -> None:
    """An event stored the way the botkit before traces stores it (botkit_add_v2)."""
    await db.fetch(
        "SELECT * FROM botkit_add_v2($1, $2, $3, $4, $5, $6, $7, $8)",
        [lane_lock((PN, ANA))], [event_id], [None], ["message"], [PN], [ANA],
        [f'{{"id": "{event_id}"}}'], 1.0,
    )  # fmt: skip


async def test_a_postgres_database_at_step_6_migrates_and_both_versions_work(
    postgres_url: str,
) -> None:
    db = await asyncpg.connect(postgres_url)
    try:
        await schema.migrate(db, upto=6)  # as the botkit before traces left it
        await _add_as_step_6(db, "old")
    finally:
        await db.close()

    async with PostgresStore(postgres_url, listen=False) as store:
        assert store.schema_found == 6
        await store.inbox.add([replace(event("new"), trace=WEBHOOK)])
        await store.run(lambda db: _add_as_step_6(db, "older-process"))  # during the deploy
        [lane] = await store.inbox.claim("W", 1, LEASE)
        assert [(item.event_id, item.trace) for item in lane.events] == [
            ("old", None),
            ("new", WEBHOOK),
            ("older-process", None),
        ]
        assert await complete(store, lane, sends=(replace(send("k1"), trace=TURN),))
        [out] = await store.outbox.claim("O", 1, LEASE)
        assert [item.trace for item in out.sends] == [TURN]
        # the older claim of sends still reads the outbox (a row it does not know of is fine)
        await store.outbox.release("O")
        rows = await store.run(
            lambda db: db.fetch("SELECT * FROM botkit_claim_sends_v2('X', 1e12, 1e12, 10)")
        )
        assert [row["idempotency_key"] for row in rows] == ["k1"]
