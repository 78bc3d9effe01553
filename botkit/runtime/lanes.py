"""One worker loop over lanes (a user on a business number): claim, run each lane apart, renew.

The dispatcher and the outbox are the same loop with different work:
`LaneWorker(name, queue, work, commit)` keeps up to `capacity` lanes in flight. It claims free
lanes whenever it has room, each claim under a token of its own; each lane runs as a task of
its own (`work`, then `commit` of what it produced) and commits as soon as it is done, so a
slow handler or a slow send delays its own user only. A commit that leaves the lane with
work (events that came while it ran) wakes the claim loop through the store's notify. While
lanes work, their claims are renewed; a lane whose claim could not be renewed in time is stopped,
so that it never runs beside the worker that claimed it next (a lane that is committing is
left to its commit, which ends the claim itself).

A lane whose work or commit fails is released, to be claimed again: at once the first time,
then after a growing pause (up to `poll`), so that a lane that keeps failing never spins. A
failed commit gives its attempt back (the store, not the user, failed); failed work keeps it
counted, so that a lane whose work always fails ends given up (see botkit.runtime.turn).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from botkit.exceptions import StoreError
from botkit.store.base import LaneKey, LaneQueue

log = logging.getLogger(__name__)

CONTENDED = 0.02  # seconds to wait after a claim that found nothing although work was due


class _Lane(Protocol):
    @property
    def key(self) -> LaneKey: ...


L = TypeVar("L", bound=_Lane)
R = TypeVar("R")


@dataclass(slots=True)
class _Claim:
    """The lanes one claim (one token) still runs, and when its lease was last known good."""

    token: str
    renewed_at: float
    tasks: dict[LaneKey, asyncio.Task[None]] = field(default_factory=dict)


class LaneWorker(Generic[L, R]):
    """Claims lanes from `queue`; runs `work(lane)` on each, up to `capacity` at once, then
    `commit(lane, result)` (None: `work` commits itself)."""

    def __init__(
        self,
        name: str,
        queue: LaneQueue[L],
        work: Callable[[L], Awaitable[R]],
        commit: Callable[[L, R], Awaitable[None]] | None = None,
        *,
        capacity: int = 512,
        batch: int = 256,
        lease: float = 60.0,
        poll: float = 1.0,
        gather: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.queue = queue
        self.work = work
        self.commit = commit
        self.capacity = capacity
        self.batch = batch
        self.lease = lease
        self.poll = poll
        # at most one claim every `gather` seconds: a claim's cost, as its store says
        self.gather = queue.claim_interval if gather is None else gather
        self._monotonic = monotonic
        self._claims: dict[str, _Claim] = {}
        self._running: set[LaneKey] = set()
        self._committing: set[LaneKey] = set()
        self._room = asyncio.Event()
        self._stopping = False
        self._claiming = False
        self._failures = 0  # claims that failed in a row
        self._lane_failures: dict[LaneKey, int] = {}  # lanes that failed in a row

    @property
    def busy(self) -> bool:
        """Whether a claim is being made or a lane runs."""
        return self._claiming or bool(self._running)

    def wake(self) -> None:
        """There may be new work: claim now rather than at the next poll."""
        self.queue.notify()

    def stop(self) -> None:
        """Ends the loop; lanes in flight finish (and commit) first."""
        self._stopping = True
        self.queue.notify()
        self._room.set()

    async def run(self) -> None:
        """Claims and runs lanes until stopped; renews the claims of lanes in flight."""
        async with asyncio.TaskGroup() as group:
            renewing = group.create_task(self._renew_forever(), name=f"{self.name}-leases")
            try:
                await self._claim_forever(group)
                await self._drain()
            finally:
                renewing.cancel()

    async def run_once(self) -> list[L]:
        """One claim and its lanes run to the end, without the loop (tests, scripts)."""
        token = f"{self.name}-{uuid.uuid4().hex[:16]}"
        lanes = await self.queue.claim(token, self.batch, self.lease)
        claim = _Claim(token, self._monotonic())
        self._claims[token] = claim
        for lane in lanes:
            self._running.add(lane.key)
            claim.tasks[lane.key] = asyncio.create_task(self._run_lane(claim, lane))
        await asyncio.gather(*claim.tasks.values())
        return lanes

    async def _claim_forever(self, group: asyncio.TaskGroup) -> None:
        last = float("-inf")
        while not self._stopping:
            await self._room_for_a_claim()
            pause = last + self.gather - self._monotonic()
            if self._running and pause > 0:  # busy: one claim every `gather` seconds at most
                await asyncio.sleep(pause)
            if self._stopping:
                return
            last = self._monotonic()
            limit = min(self.capacity - len(self._running), self.batch)
            claimed = await self._claim(group, limit)
            if claimed < limit:  # all there was: wait for more
                await self._wait(claimed)

    async def _room_for_a_claim(self) -> None:
        """Waits, while lanes run, until a claim can take a fair batch (half of one), or
        `gather` seconds have passed. A claim is a transaction: while lanes run, claims are
        gathered into fewer, larger ones (at most one every `gather` seconds); with nothing in
        flight, a claim goes at once."""
        fair = max(1, min(self.batch, self.capacity) // 2)
        deadline = self._monotonic() + self.gather
        while self._running and self.capacity - len(self._running) < fair and not self._stopping:
            self._room.clear()
            left = deadline - self._monotonic()
            full = len(self._running) >= self.capacity
            try:
                await asyncio.wait_for(self._room.wait(), timeout=None if full else max(left, 0))
            except TimeoutError:
                return

    async def _claim(self, group: asyncio.TaskGroup, limit: int) -> int:
        token = f"{self.name}-{uuid.uuid4().hex[:16]}"
        self._claiming = True
        started = self._monotonic()
        try:
            lanes = await self.queue.claim(token, limit, self.lease)
        except Exception as exc:
            self._failures += 1
            if isinstance(exc, StoreError):  # the database is down: a line, not a traceback
                log.warning("%s: could not claim work (%s); trying again", self.name, exc)
            else:
                log.exception("%s: could not claim work; trying again", self.name)
            await asyncio.sleep(self._backoff(self._failures))
            return 0
        finally:
            self._claiming = False
        self._failures = 0
        if not lanes:
            return 0
        claim = _Claim(token, started)
        self._claims[token] = claim
        again = []  # their commit here just freed them: claimed again soon
        for lane in lanes:
            if lane.key in self._running:
                again.append(lane.key)
                continue
            self._running.add(lane.key)
            claim.tasks[lane.key] = group.create_task(self._run_lane(claim, lane))
        if not claim.tasks:
            del self._claims[token]
        if again:
            await self._release(token, again, refund=True)
        return len(lanes)

    async def _run_lane(self, claim: _Claim, lane: L) -> None:
        committing = False
        try:
            result = await self.work(lane)
            if self.commit is not None:
                committing = True
                self._committing.add(lane.key)  # the commit ends the claim: no renewing it
                await self.commit(lane, result)
            self._lane_failures.pop(lane.key, None)
        except Exception:
            self._committing.discard(lane.key)  # renewed again while it waits to be released
            failures = self._lane_failures[lane.key] = self._lane_failures.get(lane.key, 0) + 1
            log.exception("%s: a lane failed (%d in a row); it runs again", self.name, failures)
            if failures > 1:
                await asyncio.sleep(self._backoff(failures - 1))
            # work that commits itself (no `commit`) may have failed in its commit
            await self._release(claim.token, [lane.key], refund=committing or not self.commit)
        finally:
            self._running.discard(lane.key)
            self._committing.discard(lane.key)
            claim.tasks.pop(lane.key, None)
            if not claim.tasks:
                self._claims.pop(claim.token, None)
            self._room.set()

    def _backoff(self, failures: int) -> float:
        """The pause after `failures` failures in a row: 0.1 s, doubling, at most `poll`."""
        return min(self.poll, 0.05 * 2.0 ** min(failures, 5))

    async def _release(self, token: str, keys: list[LaneKey], *, refund: bool) -> None:
        try:
            await self.queue.release(token, keys, refund=refund)
        except Exception:  # their lease ends them instead
            log.exception("%s: could not give %d lanes back; leases will end", self.name, len(keys))

    async def _wait(self, claimed: int) -> None:
        """Until there may be work, or the next thing comes due."""
        try:
            due = await self.queue.next_due()
        except Exception:
            log.exception("%s: could not read when work is due", self.name)
            due = None
        timeout = self.poll if due is None else min(self.poll, due)
        if claimed == 0:  # something is due, yet none came: another claimer holds it for the
            # moment (with several processes, a row it is locking). Waiting a little, not
            # spinning: a notice of new work still ends the wait at once.
            timeout = max(timeout, CONTENDED)
        if timeout > 0:
            await self.queue.wait_for_work(timeout)

    async def _drain(self) -> None:
        """Waits for the lanes in flight to finish."""
        while self._running:
            self._room.clear()
            await self._room.wait()

    async def _renew_forever(self) -> None:
        """Every third of a lease, renews what runs; stops lanes whose claim may have lapsed."""
        while True:
            await asyncio.sleep(self.lease / 3)
            for claim in list(self._claims.values()):
                await self._renew(claim)

    async def _renew(self, claim: _Claim) -> None:
        keys = [key for key in claim.tasks if key not in self._committing]
        if not keys:
            return
        asked = self._monotonic()
        try:
            kept = set(await self.queue.renew(claim.token, keys, self.lease))
        except Exception:
            log.exception("%s: could not renew %d claims", self.name, len(keys))
            # the next renewal comes a third of a lease later: stop now if that is too late
            if self._monotonic() + self.lease / 3 - claim.renewed_at >= self.lease:
                self._stop_lanes(claim, keys, "its claim may have ended (renewing failed)")
            return
        claim.renewed_at = asked
        lost = [key for key in keys if key not in kept]
        if lost:
            self._stop_lanes(claim, lost, "its claim was lost")

    def _stop_lanes(self, claim: _Claim, keys: list[LaneKey], why: str) -> None:
        for key in keys:
            task = claim.tasks.get(key)
            if task is not None and not task.done() and key not in self._committing:
                log.error("%s: stopping a lane: %s", self.name, why)
                task.cancel()


class LaneService(Generic[L, R]):
    """A service whose loop is a LaneWorker (the dispatcher, the outbox): its `busy`, `wake`,
    `stop` and `run` are the worker's."""

    worker: LaneWorker[L, R]

    @property
    def busy(self) -> bool:
        """Whether a claim is being made or a lane is in flight."""
        return self.worker.busy

    def wake(self) -> None:
        """There may be new work."""
        self.worker.wake()

    def stop(self) -> None:
        """Ends the loop once the lanes in flight are committed."""
        self.worker.stop()

    async def run(self) -> None:
        """Works until stopped."""
        await self.worker.run()


__all__ = ["LaneService", "LaneWorker"]
