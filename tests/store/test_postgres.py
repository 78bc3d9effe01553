"""PostgresStore: the Store contract on a real PostgreSQL database, and what only it does."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from botkit.exceptions import StoreError
from botkit.store.base import Store
from botkit.store.postgres import LISTEN_RETRY, PostgresStore, schema
from botkit.types import ManualClock
from tests.tcp_proxy import TcpProxy

from . import pg_hammer
from .contract import BEN, LEASE, StoreContract, StoreFactory, event, ids

ROOT = Path(__file__).resolve().parents[2]


class TestPostgresStore(StoreContract):
    """The contract on one database shared by the stores `make_store` gives."""

    @pytest.fixture
    def make_store(self, clock: ManualClock, postgres_url: str) -> StoreFactory:
        return lambda: PostgresStore(postgres_url, clock=clock, pool_size=4)

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> AsyncIterator[Store]:
        store = make_store()
        await store.open()
        yield store
        await store.aclose()


# -- several processes at once ---------------------------------------------------------------


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.pg_hammer", *args], cwd=ROOT, stderr=subprocess.PIPE
    )


@pytest.mark.slow
@pytest.mark.anyio
async def test_claimers_in_several_processes_never_share_a_user_nor_reorder_one(
    postgres_url: str,
) -> None:
    """Two processes add 300 users' events (each user's in order) while three processes
    claim and complete lanes: no user ever has two claims in flight, each user's events
    complete in the order they were stored, each once."""
    users, per_user = 300, 4
    async with PostgresStore(postgres_url, listen=False) as store:  # the schema, and the log
        await store.run(lambda db: db.execute(pg_hammer.LOG))
    adders = [_start(postgres_url, "add", f"p{n}", str(users), str(per_user)) for n in range(2)]
    total = str(2 * users * per_user)
    claimers = [_start(postgres_url, "claim", f"c{n}", total) for n in range(3)]
    for process in adders + claimers:
        _, err = await asyncio.to_thread(process.communicate, timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
    db = await asyncpg.connect(postgres_url)
    try:
        rows = await db.fetch("SELECT * FROM hammer_log ORDER BY ended_at, seq")
        stored = await db.fetch("SELECT event_id, seq, wa_id FROM inbox")
    finally:
        await db.close()
    assert all(row["written"] for row in rows)
    assert len(stored) == 2 * users * per_user
    assert sorted(row["event_id"] for row in rows) == sorted(row["event_id"] for row in stored)
    by_user: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_user.setdefault(row["wa_id"], []).append(row)
    for wa_id, done in by_user.items():
        # one claim at a time: each interval ends before the next one starts
        runs = sorted({(r["started_at"], r["ended_at"]) for r in done})
        for (_, ended), (started, _) in itertools.pairwise(runs):
            assert ended < started, f"{wa_id}: two claims in flight at once"
        # in the order stored (seq), and each adder's events in the order it added them
        assert [r["seq"] for r in done] == sorted(r["seq"] for r in done), wa_id
        for adder in ("p0", "p1"):
            mine = [
                int(r["event_id"].rsplit("-", 1)[1])
                for r in done
                if r["event_id"].startswith(adder)
            ]
            assert mine == list(range(per_user)), (wa_id, adder)


# -- pacing shared by processes ------------------------------------------------------------------


@pytest.mark.anyio
async def test_stores_on_one_database_share_a_buckets_slots(postgres_url: str) -> None:
    """Three stores (three pools: as three processes) taking slots of one bucket at once get
    consecutive slots, one interval apart, none twice; another bucket is apart."""
    stores = [PostgresStore(postgres_url, pool_size=4, listen=False) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        waits = await asyncio.gather(
            *(store.pacing.reserve("number:555", 1.0) for _ in range(40) for store in stores)
        )
        other = await stores[0].pacing.reserve("number:556", 1.0)
    finally:
        for store in stores:
            await store.aclose()
    # slot k is k seconds after the first, less the time the reservations took (well under 1 s)
    assert [round(wait) for wait in sorted(waits)] == list(range(120))
    assert other == 0.0


@pytest.mark.anyio
async def test_limiters_of_several_processes_pace_one_number_together(postgres_url: str) -> None:
    """Two limiters on one database (two processes) take turns in one schedule per number,
    and in one per API key; a number on its own has a schedule of its own."""
    from botkit.provider.ratelimit import RateLimiter

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with (
        PostgresStore(postgres_url, listen=False) as one,
        PostgresStore(postgres_url, listen=False) as two,
    ):
        limiters = [
            RateLimiter(per_number=1.0, per_key=0, pacing=store.pacing, sleep=sleep, headroom=0)
            for store in (one, two)
        ]
        for _ in range(3):
            for limiter in limiters:
                await limiter.acquire("555")
        await limiters[1].acquire("556")
    # six slots of one number, one second apart (the first is now: no sleep)
    assert [round(wait) for wait in slept] == [1, 2, 3, 4, 5]


# -- start-up: migrations, and databases that cannot be used ------------------------------------


@pytest.mark.anyio
async def test_replicas_starting_at_once_on_an_old_schema_migrate_it_once(
    postgres_url: str,
) -> None:
    db = await asyncpg.connect(postgres_url)
    try:
        assert await schema.migrate(db, upto=1) == 0  # as an older botkit left it
    finally:
        await db.close()
    stores = [PostgresStore(postgres_url, pool_size=2, listen=False) for _ in range(3)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        # one found version 1 and migrated; the others waited, then found it done
        version = schema.SCHEMA_VERSION
        assert sorted(store.schema_found or 0 for store in stores) == [1, version, version]
        assert await stores[0].pacing.reserve("number:555", 1.0) == 0.0  # step 2's table
        version = await stores[0].run(
            lambda db: db.fetchval("SELECT value FROM botkit_meta WHERE key = 'schema'")
        )
        assert version == str(schema.SCHEMA_VERSION)
    finally:
        for store in stores:
            await store.aclose()


@pytest.mark.anyio
async def test_a_schema_newer_than_this_botkit_is_refused(postgres_url: str) -> None:
    async with PostgresStore(postgres_url, listen=False) as store:
        await store.run(lambda db: db.execute("UPDATE botkit_meta SET value = '99'"))
    with pytest.raises(StoreError, match="schema version 99, newer than this botkit's"):
        await PostgresStore(postgres_url, listen=False).open()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"port": 1}, "check that PostgreSQL runs there and accepts TCP connections"),
        ({"user": "nobody_botkit"}, "check the user name and password"),
        ({"database": "no_such_botkit_db"}, "the database does not exist"),
    ],
)
async def test_a_database_that_cannot_be_reached_names_the_url_without_its_password(
    postgres_url: str, change: dict[str, object], says: str
) -> None:
    parts = urlsplit(postgres_url)
    user = str(change.get("user", parts.username or "postgres"))
    port = change.get("port", parts.port or 5432)
    database = change.get("database", parts.path.lstrip("/"))
    url = f"postgresql://{user}:s3cret@{parts.hostname}:{port}/{database}"
    with pytest.raises(StoreError) as raised:
        await PostgresStore(url).open()
    message = str(raised.value)
    assert f"postgresql://{user}:***@{parts.hostname}:{port}/{database}" in message
    assert says in message
    assert "s3cret" not in message


@pytest.mark.anyio
async def test_a_user_who_may_not_create_tables_is_told_what_to_grant(postgres_url: str) -> None:
    role = f"botkit_reader_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        parts = urlsplit(postgres_url)
        url = f"postgresql://{role}@{parts.hostname}:{parts.port or 5432}{parts.path}"
        with pytest.raises(StoreError, match="GRANT USAGE, CREATE ON SCHEMA public"):
            await PostgresStore(url, listen=False).open()
    finally:
        await admin.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        await admin.close()


# -- a database that goes away -------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_database_that_goes_away_fails_calls_then_serves_again_losing_nothing(
    postgres_url: str,
) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    url = f"postgresql://{parts.username}@127.0.0.1:{proxy.port}{parts.path}"
    other = PostgresStore(postgres_url, listen=False)  # a replica that still reaches it
    try:
        async with PostgresStore(url, pool_size=2) as store, other:
            assert await store.inbox.add([event("a1")]) == [True]
            await proxy.cut()  # the database restarts
            for _ in range(3):
                with pytest.raises(StoreError, match="is unavailable"):
                    await asyncio.wait_for(store.inbox.add([event("a2")]), 10)
            with pytest.raises(StoreError, match="is unavailable"):
                await asyncio.wait_for(store.inbox.claim("W", 10, LEASE), 10)
            await proxy.restore()
            assert await store.inbox.add([event("a2")]) == [True]
            assert ids(await store.inbox.claim("W", 10, LEASE)) == [["a1", "a2"]]
            # listening again: another process's add wakes this one
            await asyncio.sleep(LISTEN_RETRY + 0.5)
            await store.inbox.wait_for_work(0.01)  # (any wake-up from reconnecting)
            waiting = asyncio.create_task(store.inbox.wait_for_work(30))
            await asyncio.sleep(0.05)
            assert await other.inbox.add([event("b1", BEN)]) == [True]
            await asyncio.wait_for(waiting, 5)
    finally:
        await proxy.aclose()
