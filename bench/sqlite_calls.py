"""How the SQLite store reaches its connection: aiosqlite's public API against botkit's own thread.

Run:  .venv/bin/python bench/sqlite_calls.py [--seconds 5]

A store transaction is a few statements between BEGIN and COMMIT (botkit's group commit of
acknowledged events: a dedupe lookup and a multi-row insert). aiosqlite's public API runs each
statement as its own hop to its thread and back, so a transaction spans event-loop iterations;
botkit's `Connection` (botkit/store/sqlite/connection.py) runs the whole transaction as one
call in the connection's thread. Both are measured while the event loop is busy with other
work, as a web process under load is (a coroutine that keeps the loop busy, yielding every
millisecond), and idle. It prints transactions/s for each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botkit.store.sqlite.connection import Connection

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE, envelope TEXT NOT NULL)"
)
ROWS = 16  # events a transaction writes
ENVELOPE = '{"id": "evt", "type": "whatsapp.message.received", "data": {"text": "hola"}}'


def rows(start: int) -> list[tuple[str, str]]:
    return [(f"e{start + n}", ENVELOPE) for n in range(ROWS)]


INSERT = "INSERT INTO inbox (event_id, envelope) VALUES " + ", ".join(["(?, ?)"] * ROWS)
LOOKUP = "SELECT event_id FROM inbox WHERE event_id IN (" + ", ".join("?" * ROWS) + ")"


async def busy_loop(stop: asyncio.Event) -> None:
    """Keeps the event loop busy: a millisecond of Python, then a yield, until stopped."""
    while not stop.is_set():
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0)


async def with_aiosqlite(path: str, seconds: float) -> int:
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(SCHEMA)
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            batch = rows(done * ROWS)
            await db.execute("BEGIN")
            await db.execute_fetchall(LOOKUP, [event_id for event_id, _ in batch])
            await db.execute(INSERT, [value for row in batch for value in row])
            await db.execute("COMMIT")
            done += 1
        return done


def transaction(batch: list[tuple[str, str]], db: sqlite3.Connection) -> None:
    db.execute("BEGIN")
    db.execute(LOOKUP, [event_id for event_id, _ in batch]).fetchall()
    db.execute(INSERT, [value for row in batch for value in row])
    db.execute("COMMIT")


async def with_connection(path: str, seconds: float) -> int:
    connection = Connection("bench")
    await connection.open(lambda: sqlite3.connect(path, isolation_level=None))
    try:
        await connection.run(lambda db: db.execute("PRAGMA journal_mode=WAL").fetchall())
        await connection.run(lambda db: db.execute(SCHEMA))
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            batch = rows(done * ROWS)
            await connection.run(lambda db, batch=batch: transaction(batch, db))
            done += 1
        return done
    finally:
        await connection.close()


async def measure(name: str, seconds: float, busy: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.db")
        stop = asyncio.Event()
        loader = asyncio.create_task(busy_loop(stop)) if busy else None
        run = with_aiosqlite if name == "aiosqlite" else with_connection
        count = await run(path, seconds)
        stop.set()
        if loader is not None:
            await loader
    return count / seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sys.setswitchinterval(0.0005)  # as `botkit run` sets it
    for busy in (True, False):
        loop = "busy event loop" if busy else "idle event loop"
        public = await measure("aiosqlite", args.seconds, busy)
        owned = await measure("connection", args.seconds, busy)
        print(
            f"{loop}: aiosqlite public API {public:8.0f} tx/s   botkit Connection {owned:8.0f} tx/s"
            f"   ratio {owned / public:5.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
