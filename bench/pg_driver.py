"""Which PostgreSQL driver for the PostgreSQL store: asyncpg against psycopg 3, on the store's statements.

Run:  .venv/bin/python bench/pg_driver.py [--dsn postgresql://postgres@127.0.0.1:5432/test] [--seconds 2]

Creates a database of its own (botkit_bench_pg_driver_<pid>, dropped at the end) on the server
of `--dsn`, with the store's inbox and lanes tables, and runs the statements the store runs
through each driver, under uvloop as `botkit run` does:

- ack: one transaction that takes `pg_advisory_xact_lock` on a hashed key (the business
  number's, the same for every ack here, so concurrent acks queue on it) and stores a batch of
  events (envelopes of ~700 bytes of JSON text) with one statement: an INSERT into the inbox
  from `unnest` of arrays, ON CONFLICT DO NOTHING, whose RETURNING feeds the upsert of the
  events' lanes. Batches of 1 and of 32 events, on 1 connection and on 4 at once; events/s.
- claim: the claim of up to 8 lanes (`FOR UPDATE SKIP LOCKED` in a CTE, UPDATE ... FROM it
  RETURNING the lanes), then the SELECT of the claimed lanes' events (8 rows with their
  envelope); claims/s. 64 lanes with one event each, leases that run out 8 claims later, so
  that every claim takes 8 lanes.
- read: one lanes row by its primary key, the round trip; queries/s.
- notify: `pg_notify` on one connection, until the listener's callback runs on another (one
  notification at a time, 512 of them); median and p99 in µs (lower is better).

Each driver is used as it is at its best, with the same statements and round trips: asyncpg's
`conn.fetch` with $n parameters (it prepares and caches statements itself); psycopg's
`AsyncConnection` in autocommit mode, one binary cursor a connection (binary results), `await
cur.execute` with %b (binary) parameters and prepare=True (text parameters, the default
prepare_threshold or `conn.execute` measured no better for psycopg on this box),
`conn.transaction()` for the ack, `conn.notifies()` for the listener. Plain connections for
both (psycopg_pool is not installed: no pool for either), no executemany or pipeline mode
(psycopg only) anywhere. Commits flush the WAL (synchronous_commit on, as acknowledged events
need), so the writes' figures include the disk's flush, the same for both drivers.

Each figure is `--seconds` of work cut in 8 slices, the drivers taking turns (asyncpg first in
one, psycopg in the next), after a warm-up that prepares the statements, so that the box's
load at a moment weighs on both alike; notifications likewise go in 8 blocks of 64 a driver.
It prints each figure for both drivers and the ratio asyncpg/psycopg: operations a second
(above 1: asyncpg faster), and for the same runs the CPU time this process spent for each
(client CPU, user and system, µs an event, claim or read: the driver's own cost, which the
box's noise blurs far less than its throughput; below 1: asyncpg cheaper); for notifications,
µs (below 1: asyncpg faster).

Figures
-------
Three runs (asyncpg 0.32.0, psycopg 3.3.9 binary, PostgreSQL 15.20 on loopback, uvloop 0.23,
Python 3.11) on a shared, noisy 2-core box: other work kept its load average at 4-6 during the
runs, so the absolute figures spread 2-3x from run to run; the ratios less, the client CPU
ratio least. Ranges over the three runs, low-high:

                                   a second                          client CPU, µs each
                          asyncpg       psycopg       a/p        asyncpg  psycopg   a/p
  ack, batch 1, 1 conn    262-866       169-594       1.43-1.54  232-451  477-998   0.45-0.49
  ack, batch 1, 4 conns   210-463       177-403       1.12-1.18  398-583  684-1078  0.54-0.62
  ack, batch 32, 1 conn   4,750-7,607   4,701-6,510   1.01-1.17  18-26    30-40     0.59-0.70
  ack, batch 32, 4 conns  4,874-6,214   4,378-5,744   1.04-1.31  22-25    37-38     0.58-0.67
  claim (8 lanes)         252-875       199-695       1.26-1.52  213-360  393-669   0.46-0.54
  read by primary key     8,702-15,113  4,694-10,112  1.40-1.85  28-31    53-70     0.45-0.54
  notify, median µs       126-459       162-499       0.77-0.92
  notify, p99 µs          2,405-5,567   1,007-6,696   0.83-4.70  (noise)

Conclusion: asyncpg. It was ahead in every throughput row of every run: 1.26-1.85x on one
connection's round-trip-bound statements (one-event acks, claims, primary-key reads),
1.12-1.18x for one-event acks on 4 connections (queued on the advisory lock), 1.01-1.31x for
32-event acks, where the WAL flush and the server's work dominate. Its steadier advantage is
the client's CPU: about half of psycopg's for each operation (ratio 0.45-0.70, in every row of
every run), CPU that a web process shares with the webhooks it acknowledges. Notifications reach
the callback sooner with it too (median 0.77-0.92 of psycopg's); their p99 is the box's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import psycopg
import uvloop
from envelopes import PHONE_NUMBER_ID, received, wa_id_of

SCHEMA = """
CREATE TABLE inbox (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    message_id text UNIQUE,
    kind text NOT NULL,
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    envelope text NOT NULL,
    received_at double precision NOT NULL
);
CREATE INDEX inbox_lane ON inbox (phone_number_id, wa_id, seq);
CREATE TABLE lanes (
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    done_seq bigint NOT NULL DEFAULT 0,
    next_event bigint,
    pending integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    event_token text,
    event_until double precision,
    last_inbound_at double precision,
    inbound_seq bigint NOT NULL DEFAULT 0,
    closed_seq bigint,
    suspect_until bigint,
    PRIMARY KEY (phone_number_id, wa_id)
);
CREATE INDEX lanes_events ON lanes (next_event) WHERE next_event IS NOT NULL;
"""

# The statements, with asyncpg's $n parameters, each used once and in order (psycopg's %b
# placeholders are positional: `for_psycopg` checks the order).
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
ACK = (
    "WITH ins AS (INSERT INTO inbox (event_id, message_id, kind, phone_number_id, wa_id,"
    " envelope, received_at) SELECT e.event_id, e.message_id, e.kind, e.phone_number_id,"
    " e.wa_id, e.envelope, $1 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::text[]) AS e (event_id, message_id, kind, phone_number_id, wa_id, envelope)"
    " ON CONFLICT DO NOTHING RETURNING seq, phone_number_id, wa_id)"
    " INSERT INTO lanes AS l (phone_number_id, wa_id, next_event, pending)"
    " SELECT phone_number_id, wa_id, min(seq), count(*) FROM ins GROUP BY phone_number_id, wa_id"
    " ON CONFLICT (phone_number_id, wa_id) DO UPDATE"
    " SET next_event = coalesce(l.next_event, excluded.next_event),"
    " pending = l.pending + excluded.pending RETURNING l.phone_number_id, l.wa_id"
)
CLAIM_LANES = 8
CLAIM = (
    "WITH c AS (SELECT phone_number_id, wa_id FROM lanes WHERE next_event IS NOT NULL"
    " AND (event_until IS NULL OR event_until <= $1) ORDER BY next_event"
    f" LIMIT {CLAIM_LANES} FOR UPDATE SKIP LOCKED)"
    " UPDATE lanes AS l SET event_token = $2, event_until = $3, attempts = l.attempts + 1"
    " FROM c WHERE l.phone_number_id = c.phone_number_id AND l.wa_id = c.wa_id"
    " RETURNING l.phone_number_id, l.wa_id, l.next_event, l.attempts, l.last_inbound_at,"
    " l.inbound_seq, l.closed_seq, l.suspect_until"
)
EVENTS = (
    "SELECT i.seq, i.event_id, i.kind, i.phone_number_id, i.wa_id, i.envelope"
    " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v (p, w, first)"
    " CROSS JOIN LATERAL (SELECT * FROM inbox x WHERE x.phone_number_id = v.p"
    " AND x.wa_id = v.w AND x.seq >= v.first ORDER BY x.seq LIMIT 4) AS i ORDER BY i.seq"
)
READ = (
    "SELECT done_seq, next_event, pending, attempts, event_token, event_until, last_inbound_at,"
    " inbound_seq, closed_seq FROM lanes WHERE phone_number_id = $1 AND wa_id = $2"
)
NOTIFY = "SELECT pg_notify($1, $2)"
CHANNEL = "botkit_bench"
LOCK_KEY = f"inbox:{PHONE_NUMBER_ID}"

USERS = 1000  # the ack's events come from these users in turn
LANES = 64  # lanes the claims cycle through, one event each
LEASE = LANES // CLAIM_LANES  # in claims: a lane is free again when its 8 claims are past
NOTIFICATIONS = 512  # for each driver
# Each figure's time in slices, the drivers taking turns, so that the box's load at one
# moment weighs on both alike.
ROUNDS = [("asyncpg", "psycopg"), ("psycopg", "asyncpg")] * 4
ENVELOPE_SIZE = 700
Batch = tuple[list[str], list[str], list[str], list[str], list[str], list[str]]


def for_psycopg(sql: str) -> str:
    """`sql` with psycopg's binary placeholders for asyncpg's $1, $2, ... (in that order)."""
    numbers = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    assert numbers == list(range(1, len(numbers) + 1)), sql
    return re.sub(r"\$\d+", "%b", sql)


def envelope(user: int, event_id: str, message_id: str) -> str:
    """A text message's envelope, its body padded so that the JSON is ENVELOPE_SIZE bytes."""
    part: dict[str, Any] = {"type": "text", "text": {"body": ""}}
    bare = json.dumps(received(user, event_id, message_id, part), separators=(",", ":"))
    words = "Hola, quisiera pedir un turno para el martes a la tarde si hay lugar. "
    part["text"]["body"] = (words * 20)[: max(0, ENVELOPE_SIZE - len(bare))]
    return json.dumps(received(user, event_id, message_id, part), separators=(",", ":"))


# Each user's envelope, made once: the ack stores the text it was given (the webhook's body),
# and building JSON while timing would be work of neither driver.
ENVELOPES = [envelope(user, f"evt_{user:020d}", f"wamid.{user:032d}") for user in range(USERS)]


def batch(prefix: str, start: int, size: int) -> Batch:
    """`size` events, numbered from `start` under `prefix`, of users taken in turn."""
    users = [n % USERS for n in range(start, start + size)]
    return (
        [f"evt_{prefix}_{n}" for n in range(start, start + size)],
        [f"wamid.{prefix}.{n}" for n in range(start, start + size)],
        ["message"] * size,
        [PHONE_NUMBER_ID] * size,
        [wa_id_of(user) for user in users],
        [ENVELOPES[user] for user in users],
    )


class Client:
    """One connection of a driver, running the store's statements."""

    async def ack(self, events: Batch) -> int:
        raise NotImplementedError

    async def claim(self, now: float) -> int:
        raise NotImplementedError

    async def read(self, wa_id: str) -> int:
        raise NotImplementedError

    async def notify(self, channel: str, payload: str) -> None:
        raise NotImplementedError

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Calls `callback` with each notification's payload, until one says "stop"."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class Asyncpg(Client):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, dsn: str) -> Asyncpg:
        return cls(await asyncpg.connect(dsn))

    async def ack(self, events: Batch) -> int:
        async with self.conn.transaction():
            await self.conn.fetch(LOCK, LOCK_KEY)
            await self.conn.fetch(ACK, time.time(), *events)
        return len(events[0])

    async def claim(self, now: float) -> int:
        lanes = await self.conn.fetch(CLAIM, now, "token", now + LEASE)
        rows = await self.conn.fetch(
            EVENTS, [r[0] for r in lanes], [r[1] for r in lanes], [r[2] for r in lanes]
        )
        assert len(rows) == CLAIM_LANES, len(rows)
        return 1

    async def read(self, wa_id: str) -> int:
        rows = await self.conn.fetch(READ, PHONE_NUMBER_ID, wa_id)
        assert len(rows) == 1
        return 1

    async def notify(self, channel: str, payload: str) -> None:
        await self.conn.fetch(NOTIFY, channel, payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        stopped = asyncio.Event()

        def on_notify(conn: object, pid: int, channel_: str, payload: object) -> None:
            if payload == "stop":
                stopped.set()
            else:
                callback(str(payload))

        await self.conn.add_listener(channel, on_notify)
        await stopped.wait()
        await self.conn.remove_listener(channel, on_notify)

    async def close(self) -> None:
        await self.conn.close()


class Psycopg(Client):
    LOCK, ACK, CLAIM, EVENTS, READ, NOTIFY = map(
        for_psycopg, (LOCK, ACK, CLAIM, EVENTS, READ, NOTIFY)
    )

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.cur = conn.cursor(binary=True)

    @classmethod
    async def connect(cls, dsn: str) -> Psycopg:
        return cls(await psycopg.AsyncConnection.connect(dsn, autocommit=True))

    async def ack(self, events: Batch) -> int:
        async with self.conn.transaction():
            await self.cur.execute(self.LOCK, (LOCK_KEY,), prepare=True)
            await self.cur.execute(self.ACK, (time.time(), *events), prepare=True)
            await self.cur.fetchall()
        return len(events[0])

    async def claim(self, now: float) -> int:
        await self.cur.execute(self.CLAIM, (now, "token", now + LEASE), prepare=True)
        lanes = await self.cur.fetchall()
        params = ([r[0] for r in lanes], [r[1] for r in lanes], [r[2] for r in lanes])
        await self.cur.execute(self.EVENTS, params, prepare=True)
        rows = await self.cur.fetchall()
        assert len(rows) == CLAIM_LANES, len(rows)
        return 1

    async def read(self, wa_id: str) -> int:
        await self.cur.execute(self.READ, (PHONE_NUMBER_ID, wa_id), prepare=True)
        rows = await self.cur.fetchall()
        assert len(rows) == 1
        return 1

    async def notify(self, channel: str, payload: str) -> None:
        await self.cur.execute(self.NOTIFY, (channel, payload), prepare=True)
        await self.cur.fetchall()

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        await self.conn.execute(f"LISTEN {channel}")
        async for notification in self.conn.notifies():
            if notification.payload == "stop":
                break
            callback(notification.payload)
        await self.conn.execute(f"UNLISTEN {channel}")

    async def close(self) -> None:
        await self.conn.close()


DRIVERS: dict[str, Callable[[str], Awaitable[Client]]] = {
    "asyncpg": Asyncpg.connect,
    "psycopg": Psycopg.connect,
}
Operation = Callable[[Client, int, int], Awaitable[int]]  # (client, its number, iteration)


async def throughput(
    clients: Sequence[Client], operation: Operation, seconds: float
) -> tuple[int, float, float]:
    """Units of work done, the time taken and this process's CPU time, `operation` running on
    each client at once for `seconds`."""
    deadline = time.perf_counter() + seconds

    async def run(client: Client, number: int) -> int:
        done = iteration = 0
        while time.perf_counter() < deadline:
            done += await operation(client, number, iteration)
            iteration += 1
        return done

    start, cpu = time.perf_counter(), time.process_time()
    counts = await asyncio.gather(*(run(client, n) for n, client in enumerate(clients)))
    return sum(counts), time.perf_counter() - start, time.process_time() - cpu


class Acks:
    """The ack operation: new events each time (none is a duplicate the statement skips)."""

    runs = itertools.count()

    def __init__(self, driver: str, size: int) -> None:
        self.driver, self.size, self.run = driver, size, next(self.runs)
        self.batches: dict[int, int] = {}

    async def __call__(self, client: Client, number: int, iteration: int) -> int:
        done = self.batches.get(number, 0)
        self.batches[number] = done + 1
        prefix = f"{self.driver}{self.run}_{number}"
        return await client.ack(batch(prefix, done * self.size, self.size))


class Clock:
    """The claims' time: a claim a tick, so that a lease runs out LEASE claims later."""

    def __init__(self) -> None:
        self.now = 0.0

    async def claim(self, client: Client, number: int, iteration: int) -> int:
        self.now += 1
        return await client.claim(self.now)


async def read(client: Client, number: int, iteration: int) -> int:
    return await client.read(wa_id_of(iteration % LANES))


class Listening:
    """A driver's listener connection, and the latency of each notification it receives."""

    def __init__(self, driver: str, listener: Client, notifier: Client) -> None:
        self.channel, self.notifier = f"{CHANNEL}_{driver}", notifier
        self.arrived: dict[str, float] = {}
        self.waiting: dict[str, asyncio.Event] = {}
        self.task = asyncio.create_task(listener.listen(self.channel, self.on_notify))

    def on_notify(self, payload: str) -> None:
        self.arrived[payload] = time.perf_counter()
        self.waiting[payload].set()

    async def measure(self, count: int) -> list[float]:
        """Seconds from sending each of `count` notifications, one at a time, to the callback."""
        times = []
        for _ in range(count):
            payload = str(len(self.waiting))
            self.waiting[payload] = asyncio.Event()
            sent = time.perf_counter()
            await self.notifier.notify(self.channel, payload)
            await asyncio.wait_for(self.waiting[payload].wait(), 5)
            times.append(self.arrived[payload] - sent)
        return times

    async def stop(self) -> None:
        await self.notifier.notify(self.channel, "stop")
        await self.task


async def seed(dsn: str) -> None:
    """Empties the tables and stores one event for each of the LANES lanes the claims take."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE inbox, lanes RESTART IDENTITY")
        await conn.fetch(ACK, time.time(), *batch("seed", 0, LANES))
        await conn.execute("VACUUM ANALYZE inbox")
        await conn.execute("VACUUM ANALYZE lanes")
    finally:
        await conn.close()


ROW = "{:>10}{:>10}{:>8}"


def columns(asyncpg_figure: float, psycopg_figure: float) -> str:
    """The two drivers' figures and their ratio, asyncpg/psycopg."""
    ratio = f"{asyncpg_figure / psycopg_figure:.2f}"
    return ROW.format(f"{asyncpg_figure:,.0f}", f"{psycopg_figure:,.0f}", ratio)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=2.0, help="of work for each figure")
    args = parser.parse_args()
    name = f"botkit_bench_pg_driver_{os.getpid()}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = args.dsn.rsplit("/", 1)[0] + f"/{name}"
    clients: dict[str, list[Client]] = {}
    try:
        conn = await asyncpg.connect(dsn)
        await conn.execute(SCHEMA)
        version = await conn.fetchval("SHOW server_version")
        await conn.close()
        for driver, connect in DRIVERS.items():
            clients[driver] = [await connect(dsn) for _ in range(5)]  # 4 workers, 1 listener
        print(
            f"PostgreSQL {version}, asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__}"
            f" ({psycopg.pq.__impl__}), uvloop {uvloop.__version__}; {args.seconds:g} s a figure"
        )
        print(f"{'':32}{'--- a second ---':^28}   {'--- client CPU, µs each ---':^28}".rstrip())
        print(
            f"{'':32}{ROW.format('asyncpg', 'psycopg', 'a/p')}   {ROW.format('asyncpg', 'psycopg', 'a/p')}"
        )

        async def compare(label: str, make: Callable[[str], Operation], n: int) -> None:
            done = {driver: 0 for driver in DRIVERS}
            took = {driver: 0.0 for driver in DRIVERS}
            cpu = {driver: 0.0 for driver in DRIVERS}
            operations = {driver: make(driver) for driver in DRIVERS}
            for driver in DRIVERS:  # warm-up: statements prepared, caches filled
                await throughput(clients[driver][:n], operations[driver], 0.1)
            for order in ROUNDS:
                for driver in order:
                    slice_ = args.seconds / len(ROUNDS)
                    units, elapsed, used = await throughput(
                        clients[driver][:n], operations[driver], slice_
                    )
                    done[driver] += units
                    took[driver] += elapsed
                    cpu[driver] += used
            a, p = (done[driver] / took[driver] for driver in DRIVERS)
            ca, cp = (cpu[driver] / done[driver] * 1e6 for driver in DRIVERS)
            print(f"{label:32}{columns(a, p)}   {columns(ca, cp)}")

        for size in (1, 32):
            for n in (1, 4):

                def acks(driver: str, size: int = size) -> Operation:
                    return Acks(driver, size)

                label = f"ack: events, batch {size}, {n} conn{'s' if n > 1 else ''}"
                await compare(label, acks, n)
        await seed(dsn)
        clock = Clock()  # one for both drivers: the leases they leave are in its time
        await compare("claim: claims (8 lanes, events)", lambda _: clock.claim, 1)
        await compare("read: rows by primary key", lambda _: read, 1)

        listening = {
            driver: Listening(driver, clients[driver][4], clients[driver][0]) for driver in DRIVERS
        }
        await asyncio.sleep(0.2)  # the listeners' LISTEN done
        figures: dict[str, list[float]] = {driver: [] for driver in DRIVERS}
        for driver in DRIVERS:
            await listening[driver].measure(20)  # warm-up
        for order in ROUNDS:
            for driver in order:
                count = NOTIFICATIONS // len(ROUNDS)
                figures[driver] += await listening[driver].measure(count)
        for driver in DRIVERS:
            await listening[driver].stop()
        for label, pick in (
            ("notify: µs to callback, median", statistics.median),
            ("notify: µs to callback, p99", lambda t: statistics.quantiles(t, n=100)[98]),
        ):
            a, p = (pick(figures[driver]) * 1e6 for driver in DRIVERS)
            print(f"{label:32}{columns(a, p)}")
    finally:
        for connections in clients.values():
            for client in connections:
                await client.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    uvloop.run(main())
