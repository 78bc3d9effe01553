"""The SQLite store's pruning: what only SQLite has (two files, an index of lanes' events,
query plans); the contract's retention tests run on it in test_sqlite.py."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from botkit.exceptions import StoreError
from botkit.store.base import DONE, FAILED, Counts, Store
from botkit.store.sqlite import SqliteStore
from botkit.store.sqlite import retention as retention_sql
from botkit.store.sqlite.connection import MAIN, transaction
from botkit.types import ManualClock

from .contract import ANA, BEN, CAL, KEEP, LEASE, done, event, ids

pytestmark = pytest.mark.anyio


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


@pytest.fixture
async def store(db_path: Path, clock: ManualClock) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(db_path, clock=clock, worker=True) as opened:
        yield opened


def rows(db_path: Path) -> dict[str, int]:
    """Rows per table that keeps something per event, read from the files without botkit."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        db.execute("ATTACH DATABASE ? AS incoming", (f"{db_path}-inbox",))
        tables = ("incoming.inbox", "main.lane_events", "main.event_results")
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables
        }


async def finish(store: Store, status: str = DONE) -> None:
    """Claims and completes every waiting event with `status`, a lane at a time."""
    while lanes := await store.inbox.claim("F", 1, LEASE):
        assert await store.inbox.complete([done(lanes[0], status)]) == [True]


async def test_pruned_events_leave_no_row_in_either_file(
    store: SqliteStore, db_path: Path, clock: ManualClock
) -> None:
    await store.inbox.add([event(f"a{n}") for n in range(450)])  # over one statement's rows
    await finish(store)
    await store.inbox.add([event("b1", BEN), event("b2", BEN)])
    await finish(store, FAILED)  # failed events keep a result row
    await store.inbox.add([event("c1", CAL)])
    await store.inbox.claim("C", 1, LEASE)  # synced into its lane, not finished
    assert rows(db_path) == {
        "incoming.inbox": 453,
        "main.lane_events": 453,
        "main.event_results": 2,
    }
    clock.advance(KEEP + 1)

    assert await store.retention.prune(clock.now() - KEEP, 500) == 452
    assert rows(db_path) == {"incoming.inbox": 1, "main.lane_events": 1, "main.event_results": 0}
    assert await store.inspect.counts() == Counts(events=1)


async def test_an_emptied_inbox_still_goes_with_its_main_file_and_numbers_on(
    db_path: Path, clock: ManualClock
) -> None:
    async with SqliteStore(db_path, clock=clock, worker=True) as store:
        await store.inbox.add([event("a1"), event("a2"), event("b1", BEN)])
        await finish(store)
        clock.advance(KEEP + 1)
        assert await store.retention.prune(clock.now() - KEEP, 100) == 3
        assert await store.inspect.counts() == Counts()
    async with SqliteStore(db_path, clock=clock, worker=True) as again:  # _check_pair passes
        await again.inbox.add([event("a3")])
        [lane] = await again.inbox.claim("A", 1, LEASE)
        assert [(item.event_id, item.seq) for item in lane.events] == [("a3", 4)]


async def test_a_prune_cut_off_between_the_two_files_is_finished_by_the_next(
    store: SqliteStore, db_path: Path, clock: ManualClock
) -> None:
    await store.inbox.add([event("a1"), event("b1", BEN)])
    await finish(store, FAILED)
    clock.advance(KEEP + 1)
    before = clock.now() - KEEP
    # the main file's transaction commits; the process dies before the inbox's
    forget = partial(retention_sql._forget_events, before, 100)
    await store.run(lambda db: transaction(db, forget, MAIN))
    assert rows(db_path) == {"incoming.inbox": 2, "main.lane_events": 0, "main.event_results": 0}

    assert await store.retention.prune(before, 100) == 2
    assert rows(db_path) == {"incoming.inbox": 0, "main.lane_events": 0, "main.event_results": 0}


async def test_a_lane_with_pruned_events_claims_its_next_ones_in_order(
    store: SqliteStore, clock: ManualClock
) -> None:
    await store.inbox.add([event(f"a{n}") for n in range(3)])
    await finish(store)
    clock.advance(KEEP + 1)
    await store.inbox.add([event(f"a{n}") for n in range(3, 40)])
    assert await store.retention.prune(clock.now() - KEEP, 100) == 3
    [first] = await store.inbox.claim("A", 1, LEASE)  # a claim takes 32 at most
    assert [item.event_id for item in first.events] == [f"a{n}" for n in range(3, 35)]
    assert await store.inbox.complete([done(first)]) == [True]
    assert ids(await store.inbox.claim("A", 1, LEASE)) == [[f"a{n}" for n in range(35, 40)]]


async def test_only_the_worker_prunes(db_path: Path) -> None:
    async with SqliteStore(db_path) as web:
        with pytest.raises(StoreError, match="worker=True"):
            await web.retention.prune(0.0, 10)


async def test_pruning_reads_only_the_rows_it_may_delete(store: SqliteStore) -> None:
    """Each statement finds its rows through a key or an index, never by scanning a table:
    a round costs what it deletes, not the size of the retention window."""
    statements = [
        (retention_sql._FINISHED_EVENTS, (10, 1.0, 5)),
        (retention_sql._DELETE_SENDS, (1.0, 5)),
        (retention_sql._DELETE_STATUSES, (1.0, 5)),
        (f"DELETE FROM main.lane_events WHERE {retention_sql._LANE_EVENT}", (ANA, ANA, 1)),
    ]

    def plans(db: sqlite3.Connection) -> list[list[str]]:
        return [
            [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
            for sql, args in statements
        ]

    for plan in await store.run(plans):
        assert not [step for step in plan if step.startswith("SCAN")], plan
