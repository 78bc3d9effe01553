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
from botkit.store.base import (
    FALL_BACK,
    HELD,
    HOLD,
    PENDING,
    SENT,
    LaneOutcome,
    SendLaneOutcome,
    SendOutcome,
    Store,
)
from botkit.store.postgres import LISTEN_RETRY, PostgresStore, functions, redacted, schema
from botkit.store.postgres import inbox as inbox_sql
from botkit.store.postgres import outbox as outbox_sql
from botkit.types import ManualClock
from botkit.wire.window import Window
from tests.tcp_proxy import TcpProxy

from . import pg_hammer
from .contract import (
    BEN,
    LEASE,
    T0,
    TEMPLATE,
    StoreContract,
    StoreFactory,
    complete,
    done,
    event,
    ids,
    keys,
    run_lane,
    send,
)
from .prompt_contract import PromptContract
from .repair_contract import RepairContract
from .trace_contract import TraceContract

ROOT = Path(__file__).resolve().parents[2]


class TestPostgresStore(StoreContract, RepairContract, TraceContract, PromptContract):
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
    for wa_id, finished in by_user.items():
        # one claim at a time: each interval ends before the next one starts
        runs = sorted({(r["started_at"], r["ended_at"]) for r in finished})
        for (_, ended), (started, _) in itertools.pairwise(runs):
            assert ended < started, f"{wa_id}: two claims in flight at once"
        # in the order stored (seq), and each adder's events in the order it added them
        assert [r["seq"] for r in finished] == sorted(r["seq"] for r in finished), wa_id
        for adder in ("p0", "p1"):
            mine = [
                int(r["event_id"].rsplit("-", 1)[1])
                for r in finished
                if r["event_id"].startswith(adder)
            ]
            assert mine == list(range(per_user)), (wa_id, adder)


@pytest.mark.slow
@pytest.mark.anyio
async def test_senders_in_several_processes_never_share_a_user_nor_reorder_their_sends(
    postgres_url: str,
) -> None:
    """Three processes claim outbox lanes of 200 users with four sends each, recording a few
    of a lane's sends at a time: no user ever has two claims in flight, and each user's sends
    are recorded in the order they were queued, each once."""
    users, per_user = 200, 4
    async with PostgresStore(postgres_url, listen=False) as store:
        await store.run(lambda db: db.execute(pg_hammer.LOG))
        people = [f"54911{user:08d}" for user in range(users)]
        await store.inbox.add([event(f"e-{wa_id}", wa_id) for wa_id in people])
        for lane in await store.inbox.claim("Q", users, LEASE):
            sends = tuple(send(f"k-{lane.wa_id}-{n}", lane.wa_id) for n in range(per_user))
            assert await complete(store, lane, sends=sends)
    total = str(users * per_user)
    senders = [_start(postgres_url, "send", f"s{n}", total) for n in range(3)]
    for process in senders:
        _, err = await asyncio.to_thread(process.communicate, timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
    db = await asyncpg.connect(postgres_url)
    try:
        rows = await db.fetch("SELECT * FROM hammer_log ORDER BY ended_at, seq")
    finally:
        await db.close()
    assert all(row["written"] for row in rows)
    assert sorted(row["event_id"] for row in rows) == sorted(
        f"k-{wa_id}-{n}" for wa_id in people for n in range(per_user)
    )
    by_user: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_user.setdefault(row["wa_id"], []).append(row)
    for wa_id, recorded in by_user.items():
        runs = sorted({(r["started_at"], r["ended_at"]) for r in recorded})
        for (_, ended), (started, _) in itertools.pairwise(runs):
            assert ended < started, f"{wa_id}: two claims in flight at once"
        assert [r["event_id"] for r in recorded] == [f"k-{wa_id}-{n}" for n in range(per_user)]


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


# -- wake-ups across processes -------------------------------------------------------------------


@pytest.mark.anyio
async def test_acknowledgements_wake_other_processes_after_they_commit_in_few_notices(
    postgres_url: str,
) -> None:
    heard: list[str] = []
    spy = await asyncpg.connect(postgres_url)
    try:
        async with (
            PostgresStore(postgres_url) as worker,
            PostgresStore(postgres_url, listen=False) as web,
        ):
            await spy.add_listener(functions.INBOX_CHANNEL, lambda *args: heard.append(args[2]))
            # the add itself notifies no one: its commit waits for the disk, and a transaction
            # that notifies holds the database's one notify lock until its commit is flushed
            added = await web.run(
                lambda db: inbox_sql.add(db, [event("direct", "5491100000001")], ["{}"], T0)
            )
            assert added == [True]
            await asyncio.sleep(0.3)
            assert heard == []
            await worker.inbox.wait_for_work(0.01)  # (the wake-up of listening's start)
            waiting = asyncio.create_task(worker.inbox.wait_for_work(30))
            await asyncio.sleep(0.05)
            users = [f"54911{n:08d}" for n in range(200)]
            flags = await asyncio.gather(
                *(web.inbox.add([event(f"e{n}", user)]) for n, user in enumerate(users))
            )
            assert flags == [[True]] * len(users)
            await asyncio.wait_for(waiting, 5)  # the other process's workers woke
            await asyncio.sleep(0.3)
            # coalesced: a notice on its way stands for every add committed meanwhile
            assert 1 <= web.notices.sent == len(heard) < len(users) // 4
    finally:
        await spy.close()


@pytest.mark.anyio
async def test_a_notice_owed_when_the_store_closes_is_still_sent(postgres_url: str) -> None:
    heard: list[str] = []
    spy = await asyncpg.connect(postgres_url)
    try:
        async with PostgresStore(postgres_url, listen=False) as web:
            await spy.add_listener(functions.INBOX_CHANNEL, lambda *args: heard.append(args[2]))
            assert await web.inbox.add([event("last")]) == [True]
        await _heard(heard, 1)
        # the add of the version before (still called by its processes during a rolling
        # deploy) is kept, and still notifies
        older = await spy.fetch(
            "SELECT * FROM botkit_add_v1($1, $2, $3, $4, $5, $6, $7, $8)",
            [1],
            ["v1"],
            [None],
            ["message"],
            ["555"],
            ["5491100000002"],
            ["{}"],
            T0,
        )
        assert [row[0] for row in older] == ["v1"]
        await _heard(heard, 2)
    finally:
        await spy.close()


async def _heard(heard: list[str], count: int, within: float = 10.0) -> None:
    """Waits until `count` notices arrived (a loaded machine delivers them late), or fails."""
    deadline = asyncio.get_running_loop().time() + within
    while len(heard) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(heard)} notices of {count}"
        await asyncio.sleep(0.02)


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


# -- a record and a completion of one user at the same moment (two processes) --------------------


async def _interleaved(
    store: PostgresStore, record: SendLaneOutcome, completion: LaneOutcome, now: float
) -> None:
    """`record` written by one connection in a transaction left open while another writes
    `completion` (as two processes would), then committed."""
    pool = store._pool
    assert pool is not None
    async with pool.acquire() as first, pool.acquire() as second:
        transaction = first.transaction()
        await transaction.start()
        assert await outbox_sql.record(first, [record], now) == [True]
        later = asyncio.create_task(
            inbox_sql.complete(second, [inbox_sql.Completion.of(completion)], now)
        )
        await asyncio.sleep(0.3)  # the completion runs meanwhile, as far as it can
        await transaction.commit()
        [done] = await later
        assert done.written


@pytest.mark.anyio
async def test_a_refusal_completed_while_its_send_is_being_recorded_is_not_lost(
    postgres_url: str, clock: ManualClock
) -> None:
    """The failed status (131047) of a message is processed while another process records
    that it sent it: whichever commits first, the send falls back to its template."""
    async with PostgresStore(postgres_url, clock=clock, listen=False) as store:
        await store.inbox.add([event("a1")])
        policy = {"when_closed": FALL_BACK, "fallback": TEMPLATE}
        await run_lane(store, window=Window(T0, 1, None), sends=(send("k1", **policy),))
        [out] = await store.outbox.claim("O", 10, LEASE)
        await store.inbox.add([event("st1")])
        [lane] = await store.inbox.claim("H", 10, LEASE)
        sent = SendOutcome(out.sends[0].seq, SENT, 1, "wamid.k1")
        recorded = SendLaneOutcome(*out.key, out.token, (sent,), out.position)
        refusal = done(lane, refused=("wamid.k1",), window=Window(T0, 1, 2))
        await _interleaved(store, recorded, refusal, clock.now())
        [row] = await store.inspect.outbox()
        assert (row.idempotency_key, row.type, row.status) == ("k1-fb", "template", PENDING)


@pytest.mark.anyio
async def test_a_send_held_while_the_user_writes_goes_out(
    postgres_url: str, clock: ManualClock
) -> None:
    """The outbox holds a send on the closed window it read at its claim while another process
    completes the user's new message: whichever commits first, the send goes out."""
    async with PostgresStore(postgres_url, clock=clock, listen=False) as store:
        long_ago = clock.now() - 90_000
        await store.inbox.add([event("a1")])
        held = send("k1", when_closed=HOLD)
        await run_lane(store, window=Window(long_ago, 1, None), sends=(held,))
        [out] = await store.outbox.claim("O", 10, LEASE)
        await store.inbox.add([event("a2")])
        [lane] = await store.inbox.claim("A", 1, LEASE)
        wrote = lane.window.with_inbound(lane.events[0].lane_seq, clock.now() - 5)
        hold = SendOutcome(out.sends[0].seq, HELD, 0, error="closed", fall_back=HOLD)
        recorded = SendLaneOutcome(*out.key, out.token, (hold,), out.position)
        await _interleaved(
            store, recorded, done(lane, window=wrote, release_held=True), clock.now()
        )
        assert keys(await store.outbox.claim("O2", 10, LEASE)) == [["k1-held"]]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bot:s3cret@db:5432/botkit", "postgresql://bot:***@db:5432/botkit"),
        ("postgresql://bot:s3cret@db:notaport/botkit", "postgresql://bot:***@db:notaport/botkit"),
        ("postgresql://bot:p@ss@db/botkit", "postgresql://bot:***@db/botkit"),
        ("postgresql://bot@db/botkit", "postgresql://bot@db/botkit"),
    ],
)
def test_a_url_is_shown_without_its_password_even_when_malformed(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.anyio
async def test_a_malformed_url_is_a_clear_error_naming_it() -> None:
    with pytest.raises(StoreError, match=r"postgresql://bot:\*\*\*@127.0.0.1:notaport/db"):
        await PostgresStore("postgresql://bot:s3cret@127.0.0.1:notaport/db").open()
