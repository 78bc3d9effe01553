"""The lane worker: claims lanes and runs each apart, bounded, renewed, released on failure.

The queue is a real MemoryStore's inbox on a ManualClock (the store's clock decides when
leases end); the work is each test's own coroutine. Nothing waits for time to pass except
the test of renewal, whose loop runs on real seconds by design.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager

import pytest

from botkit.exceptions import StoreError
from botkit.runtime.lanes import LaneWorker
from botkit.store.base import (
    DONE,
    EventResult,
    InboxLane,
    LaneKey,
    LaneOutcome,
    NewEvent,
)
from botkit.store.memory import MemoryStore
from botkit.types import JSONObject, ManualClock

pytestmark = pytest.mark.anyio

PN = "555123456789"
ANA, BEN, CAL = "5491140000001", "5491140000002", "5491140000003"
GUARD = 5.0  # seconds before a test that waits for an event gives up (it never should)


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    async with MemoryStore(clock=ManualClock()) as opened:
        yield opened


def event(event_id: str, wa_id: str) -> NewEvent:
    envelope: JSONObject = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": PN,
        "data": {"message": {"from": wa_id, "id": f"wamid.{event_id}", "text": {"body": "hola"}}},
    }
    return NewEvent(event_id, f"wamid.{event_id}", "message", PN, wa_id, envelope)


async def add(store: MemoryStore, *wa_ids: str) -> None:
    """One event for each of `wa_ids`."""
    await store.inbox.add([event(f"evt_{n}_{wa_id}", wa_id) for n, wa_id in enumerate(wa_ids)])


async def complete(store: MemoryStore, lane: InboxLane) -> None:
    """Completes every claimed event of `lane` as done."""
    results = tuple(EventResult(i.seq, i.lane_seq, DONE) for i in lane.events)
    [written] = await store.inbox.complete(
        [LaneOutcome(lane.phone_number_id, lane.wa_id, lane.token, results)]
    )
    assert written


async def within(awaitable: Awaitable[object]) -> None:
    """Awaits something that must happen soon (a guard against a hang, not a delay)."""
    await asyncio.wait_for(awaitable, GUARD)


async def soon(flag: asyncio.Event, yields: int = 200) -> None:
    """Waits for `flag` over a few turns of the event loop only: it must follow from what
    already happened (a notice, a release), not from a poll or a timer."""
    for _ in range(yields):
        if flag.is_set():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not set within {yields} turns of the event loop")


@asynccontextmanager
async def running(worker: LaneWorker[InboxLane, None]) -> AsyncIterator[asyncio.Task[None]]:
    """The worker's loop, stopped and awaited on the way out."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stop()
        await within(task)


async def test_a_slow_users_lane_does_not_hold_up_the_others(store: MemoryStore) -> None:
    await add(store, ANA, BEN, CAL)
    worked: Counter[str] = Counter()
    finished: list[str] = []
    ana_started, release_ana, others_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    ana_done = asyncio.Event()

    async def work(lane: InboxLane) -> None:
        worked[lane.wa_id] += 1
        if lane.wa_id == ANA:
            ana_started.set()
            await release_ana.wait()
        await complete(store, lane)
        finished.append(lane.wa_id)
        if {BEN, CAL} <= set(finished):
            others_done.set()
        if lane.wa_id == ANA:
            ana_done.set()

    worker = LaneWorker("test", store.inbox, work, lease=3600, poll=60)
    async with running(worker) as loop:
        await within(ana_started.wait())
        await within(others_done.wait())
        assert ANA not in finished  # Ben and Cal finished while Ana's lane was still blocked
        assert worker.busy
        assert (await store.inspect.backlog()).events == 1

        release_ana.set()
        await within(ana_done.wait())
    assert loop.done() and loop.exception() is None
    assert not worker.busy
    assert worked == {ANA: 1, BEN: 1, CAL: 1}
    assert (await store.inspect.backlog()).events == 0
    for n, wa_id in enumerate((ANA, BEN, CAL)):
        assert await store.inspect.event_status(f"evt_{n}_{wa_id}") == (DONE, None)


async def test_stopping_lets_the_lanes_in_flight_finish_first(store: MemoryStore) -> None:
    await add(store, ANA)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def work(lane: InboxLane) -> None:
        started.set()
        await release.wait()
        await complete(store, lane)
        finished.append(lane.wa_id)

    worker = LaneWorker("test", store.inbox, work, lease=3600, poll=60)
    loop = asyncio.create_task(worker.run())
    await within(started.wait())
    worker.stop()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not loop.done()  # still waiting for Ana's lane
    release.set()
    await within(loop)
    assert finished == [ANA]
    assert not worker.busy
    assert (await store.inspect.backlog()).events == 0


async def test_a_lane_added_while_the_worker_waits_is_worked_at_once(store: MemoryStore) -> None:
    worked: list[str] = []
    done = asyncio.Event()

    async def work(lane: InboxLane) -> None:
        await complete(store, lane)
        worked.append(lane.wa_id)
        done.set()

    worker = LaneWorker("test", store.inbox, work, lease=3600, poll=60)
    async with running(worker):
        for _ in range(20):
            await asyncio.sleep(0)  # the worker found nothing, and waits (up to a minute)
        assert worked == []
        await add(store, BEN)  # adding wakes it: no poll needed
        await soon(done)
    assert worked == [BEN]


async def test_a_lane_whose_work_raises_is_released_at_once_with_its_attempt_refunded(
    store: MemoryStore,
) -> None:
    await add(store, ANA)
    attempts: list[int] = []
    done = asyncio.Event()

    async def work(lane: InboxLane) -> None:
        attempts.append(lane.attempts)
        if len(attempts) == 1:
            raise StoreError("the commit failed")
        await complete(store, lane)
        done.set()

    # an hour's lease on a clock that never moves: only a release can free the lane again,
    # and a minute's poll: only the release's notice can wake the worker in time
    worker = LaneWorker("test", store.inbox, work, lease=3600, poll=60)
    async with running(worker):
        await soon(done)
    assert attempts == [1, 1]
    assert (await store.inspect.backlog()).events == 0


async def test_run_once_claims_and_works_one_batch_and_returns_its_lanes(
    store: MemoryStore,
) -> None:
    await add(store, ANA, BEN, CAL)
    worked: list[str] = []

    async def work(lane: InboxLane) -> None:
        worked.append(lane.wa_id)
        await complete(store, lane)

    worker = LaneWorker("test", store.inbox, work, batch=2, lease=3600)
    lanes = await worker.run_once()

    assert [lane.wa_id for lane in lanes] == [ANA, BEN]
    assert sorted(worked) == [ANA, BEN]
    assert (await store.inspect.backlog()).events == 1
    [rest] = await worker.run_once()
    assert rest.wa_id == CAL
    assert await worker.run_once() == []
    assert (await store.inspect.backlog()).events == 0
    assert not worker.busy


async def test_run_once_releases_a_lane_whose_work_raises(store: MemoryStore) -> None:
    await add(store, ANA, BEN)

    async def work(lane: InboxLane) -> None:
        if lane.wa_id == ANA:
            raise StoreError("the commit failed")
        await complete(store, lane)

    worker = LaneWorker("test", store.inbox, work, lease=3600)
    lanes = await worker.run_once()
    assert sorted(lane.wa_id for lane in lanes) == [ANA, BEN]

    # the lease has an hour to run, yet Ana's lane can be claimed again, as a first attempt
    [again] = await store.inbox.claim("another", 10, 3600)
    assert (again.wa_id, again.attempts) == (ANA, 1)


class FailingRenewals:
    """The inbox, except that renewing a claim always fails (the store is unreachable)."""

    claim_interval = 0.005

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.renewals = 0

    async def claim(self, token: str, limit: int, lease: float) -> list[InboxLane]:
        return await self.store.inbox.claim(token, limit, lease)

    async def renew(self, token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
        self.renewals += 1
        raise StoreError("the store is unreachable")

    async def release(
        self, token: str, keys: Sequence[LaneKey] | None = None, *, refund: bool = False
    ) -> None:
        await self.store.inbox.release(token, keys, refund=refund)

    async def next_due(self) -> float | None:
        return await self.store.inbox.next_due()

    async def wait_for_work(self, seconds: float) -> None:
        await self.store.inbox.wait_for_work(seconds)

    def notify(self) -> None:
        self.store.inbox.notify()


async def test_a_lane_whose_claim_cannot_be_renewed_is_stopped_before_its_lease_ends(
    store: MemoryStore,
) -> None:
    await add(store, ANA)
    queue = FailingRenewals(store)
    started, cancelled = asyncio.Event(), asyncio.Event()
    times: dict[str, float] = {}

    async def work(lane: InboxLane) -> None:
        times["started"] = time.monotonic()
        started.set()
        try:
            await asyncio.Event().wait()  # outlives its lease
        except asyncio.CancelledError:
            times["cancelled"] = time.monotonic()
            times["renewals"] = queue.renewals
            cancelled.set()
            raise

    lease = 0.2  # renewals every lease / 3 real seconds
    worker = LaneWorker("test", queue, work, lease=lease, poll=60, monotonic=time.monotonic)
    async with running(worker):
        await within(started.wait())
        await within(cancelled.wait())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not worker.busy
    assert queue.renewals >= 2  # failures short of the lease were tolerated
    # not stopped at the first failed renewal, and stopped before the lease could end
    assert times["cancelled"] - times["started"] >= lease * 0.5
    assert times["cancelled"] - times["started"] < lease * 3
    # renewals come every third of a lease: stopped at the first failed one after which the
    # next would come too late (the second, or the first if it came late), never past the
    # lease, where the lane would run beside the worker that claims it next
    assert 1 <= times["renewals"] <= 2
    assert (await store.inspect.backlog()).events == 1  # never completed


async def test_a_lane_in_its_commit_is_never_stopped_half_way(store: MemoryStore) -> None:
    """Renewals fail while a lane commits: the commit, which ends the claim itself (or finds
    it lost and writes nothing), is left to finish rather than cancelled with its write in
    flight."""
    await add(store, ANA)
    queue = FailingRenewals(store)
    committing, committed = asyncio.Event(), asyncio.Event()
    lease = 0.6  # the first renewal 0.2 s after the claim: the commit has long begun

    async def work(lane: InboxLane) -> str:
        return "turn"

    async def commit(lane: InboxLane, result: str) -> None:
        assert result == "turn"
        committing.set()
        await asyncio.sleep(lease * 3)  # a slow write, past when the lease would be renewed
        await complete(store, lane)
        committed.set()

    worker = LaneWorker("test", queue, work, commit, lease=lease, poll=60, monotonic=time.monotonic)
    async with running(worker):
        await within(committing.wait())
        await within(committed.wait())
    assert queue.renewals == 0  # a committing lane is not renewed either
    assert (await store.inspect.backlog()).events == 0


async def test_a_lane_whose_claim_was_taken_by_another_worker_is_stopped(
    store: MemoryStore,
) -> None:
    await add(store, ANA)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work(lane: InboxLane) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = LaneWorker("test", store.inbox, work, lease=0.15, poll=60)
    async with running(worker):
        await within(started.wait())
        clock = store.clock
        assert isinstance(clock, ManualClock)
        clock.advance(1)  # the store's lease ended...
        [taken] = await store.inbox.claim("another-worker", 10, 3600)  # ...and another took it
        assert taken.wa_id == ANA
        await within(cancelled.wait())  # at the next renewal, which finds the claim lost


async def test_no_more_lanes_than_its_capacity_run_at_once(store: MemoryStore) -> None:
    users = [f"54911400000{n:02d}" for n in range(5)]
    await add(store, *users)
    running_now: set[str] = set()
    most = 0
    worked: list[str] = []
    two_running, gate, all_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work(lane: InboxLane) -> None:
        nonlocal most
        running_now.add(lane.wa_id)
        most = max(most, len(running_now))
        if len(running_now) == 2:
            two_running.set()
        try:
            await gate.wait()
            await complete(store, lane)
        finally:
            running_now.discard(lane.wa_id)
        worked.append(lane.wa_id)
        if len(worked) == len(users):
            all_done.set()

    worker = LaneWorker("test", store.inbox, work, capacity=2, lease=3600, poll=60)
    async with running(worker):
        await within(two_running.wait())
        for _ in range(50):
            await asyncio.sleep(0)  # every chance to claim more, had it room
        assert len(running_now) == 2
        assert worked == []
        gate.set()
        await within(all_done.wait())
    assert most == 2
    assert sorted(worked) == sorted(users)
    assert (await store.inspect.backlog()).events == 0


async def test_a_users_next_event_is_claimed_as_soon_as_their_lane_commits(
    store: MemoryStore,
) -> None:
    """An event that arrives while its user's lane runs cannot be claimed then; the lane's
    commit wakes the worker for it (a minute's poll: nothing else would)."""
    await add(store, ANA)
    first_running, release_first, second_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def work(lane: InboxLane) -> InboxLane:
        seen.extend(item.event_id for item in lane.events)
        if len(seen) == 1:
            first_running.set()
            await release_first.wait()
        return lane

    async def commit(lane: InboxLane, result: InboxLane) -> None:
        await complete(store, result)
        if len(seen) == 2:
            second_done.set()

    worker = LaneWorker("test", store.inbox, work, commit, lease=3600, poll=60)
    async with running(worker):
        await within(first_running.wait())
        await store.inbox.add([event("evt_later", ANA)])
        await asyncio.sleep(0.1)  # the worker tries (after its `gather`), finds it held, waits
        release_first.set()
        await within(second_done.wait())
    assert seen == ["evt_0_" + ANA, "evt_later"]


async def test_a_lane_that_keeps_failing_backs_off_and_only_failed_work_is_charged(
    store: MemoryStore,
) -> None:
    await add(store, ANA, BEN)
    attempts: Counter[str] = Counter()
    charged: list[int] = []

    async def work(lane: InboxLane) -> InboxLane:
        attempts[lane.wa_id] += 1
        if lane.wa_id == BEN:
            charged.append(lane.attempts)
            raise RuntimeError("botkit's own bug on Ben's data")
        return lane

    async def commit(lane: InboxLane, result: InboxLane) -> None:
        raise StoreError("the disk is full")  # Ana's commit, every time

    worker = LaneWorker("test", store.inbox, work, commit, lease=3600, poll=0.2)
    async with running(worker):
        await asyncio.sleep(1.0)
    # once at once, then pauses of 0.1 s and 0.2 s (the poll): a handful in a second, not
    # thousands
    assert 3 <= attempts[ANA] <= 10
    assert 3 <= attempts[BEN] <= 10
    [ana] = [lane for lane in await store.inbox.claim("after", 10, 3600) if lane.wa_id == ANA]
    assert ana.attempts == 1  # the store failed, not Ana: nothing charged
    assert charged == list(range(1, len(charged) + 1))  # Ben's failed work counts
