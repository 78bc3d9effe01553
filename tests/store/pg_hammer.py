"""A process that hammers a PostgreSQL store, for test_postgres's concurrency test.

    python -m tests.store.pg_hammer URL add NAME USERS EVENTS   # adds EVENTS per user, in order
    python -m tests.store.pg_hammer URL claim NAME TOTAL         # claims and completes lanes
                                                                  # until TOTAL events are done
    python -m tests.store.pg_hammer URL send NAME TOTAL          # claims outbox lanes and
                                                                  # records some of their sends
                                                                  # as sent, until TOTAL are

A claimer logs, in the table `hammer_log` and by the database's clock, when it got each event
(after its claim returned) and when it finished it (before completing it), so that two claims
of one user in flight at once show as overlapping intervals.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid

import asyncpg

from botkit.store.base import (
    DONE,
    SENT,
    EventResult,
    LaneOutcome,
    NewEvent,
    SendLaneOutcome,
    SendOutcome,
)
from botkit.store.postgres import PostgresStore

PN = "555123456789"
LOG = """
CREATE TABLE IF NOT EXISTS hammer_log (
    wa_id text NOT NULL, event_id text NOT NULL, seq bigint NOT NULL, worker text NOT NULL,
    started_at timestamptz NOT NULL, ended_at timestamptz NOT NULL, written boolean NOT NULL
)
"""


def wa_id(user: int) -> str:
    return f"54911{user:08d}"


async def add(url: str, name: str, users: int, events: int) -> None:
    async with PostgresStore(url, pool_size=4, listen=False) as store:
        order = [(n, user) for n in range(events) for user in range(users)]
        for n, user in order:  # each user's events one after another, users interleaved
            envelope = {"id": f"{name}-{user}-{n}", "n": n}
            new = NewEvent(f"{name}-{user}-{n}", None, "message", PN, wa_id(user), envelope)
            assert await store.inbox.add([new]) == [True]


async def claim(url: str, name: str, total: int, seconds: float = 100.0) -> None:
    log = await asyncpg.connect(url)  # (the test created the table)
    async with PostgresStore(url, pool_size=4) as store:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            token = f"{name}-{uuid.uuid4().hex[:8]}"
            lanes = await store.inbox.claim(token, random.randint(1, 8), 60.0)
            if not lanes:
                if await log.fetchval("SELECT count(*) FROM hammer_log") >= total:
                    break
                await store.inbox.wait_for_work(0.05)
            for lane in lanes:  # in turn: the other processes interleave with them
                started = await log.fetchval("SELECT clock_timestamp()")
                await asyncio.sleep(random.random() * 0.005)
                ended = await log.fetchval("SELECT clock_timestamp()")
                results = tuple(EventResult(e.seq, e.lane_seq, DONE) for e in lane.events)
                outcome = LaneOutcome(lane.phone_number_id, lane.wa_id, lane.token, results)
                [written] = await store.inbox.complete([outcome])
                await log.executemany(
                    "INSERT INTO hammer_log VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    [(e.wa_id, e.event_id, e.seq, name, started, ended, written)
                     for e in lane.events],
                )  # fmt: skip
    await log.close()


async def send(url: str, name: str, total: int, seconds: float = 100.0) -> None:
    log = await asyncpg.connect(url)  # (the test created the table)
    async with PostgresStore(url, pool_size=4) as store:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            token = f"{name}-{uuid.uuid4().hex[:8]}"
            lanes = await store.outbox.claim(token, random.randint(1, 8), 60.0)
            if not lanes:
                if await log.fetchval("SELECT count(*) FROM hammer_log") >= total:
                    break
                await store.outbox.wait_for_work(0.05)
            for lane in lanes:
                started = await log.fetchval("SELECT clock_timestamp()")
                await asyncio.sleep(random.random() * 0.005)
                # some of its sends: the rest are claimed again, after these
                chosen = lane.sends[: random.randint(1, max(1, len(lane.sends)))]
                results = tuple(
                    SendOutcome(item.seq, SENT, 1, f"wamid.{item.idempotency_key}")
                    for item in chosen
                )
                ended = await log.fetchval("SELECT clock_timestamp()")
                outcome = SendLaneOutcome(*lane.key, lane.token, results, lane.position)
                [written] = await store.outbox.record([outcome])
                await log.executemany(
                    "INSERT INTO hammer_log VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    [(lane.wa_id, item.idempotency_key, item.seq, name, started, ended, written)
                     for item in chosen],
                )  # fmt: skip
    await log.close()


def main() -> None:
    url, role, name, *rest = sys.argv[1:]
    if role == "add":
        asyncio.run(add(url, name, int(rest[0]), int(rest[1])))
    elif role == "send":
        asyncio.run(send(url, name, int(rest[0])))
    else:
        asyncio.run(claim(url, name, int(rest[0])))


if __name__ == "__main__":
    main()
