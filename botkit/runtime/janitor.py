"""The janitor: prunes what the store keeps past the retention, beside the workers.

At start and then every `every` seconds, a round prunes what finished before `retention`
seconds ago (the store's clock), in batches of `limit` of each kind, until a batch finds
nothing. It pauses a moment between batches, so that claims and completions waiting on the
store run in between and a large backlog to prune never stalls the workers. A store error
ends the round (logged); the next round tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from botkit.config import DAY, DEFAULT_RETENTION_DAYS, MIN_RETENTION
from botkit.store.base import Store
from botkit.types import Clock

log = logging.getLogger(__name__)


class Janitor:
    """Prunes finished events, sends and delivery statuses older than `retention` seconds."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        retention: float = DEFAULT_RETENTION_DAYS * DAY,
        every: float = 60.0,
        limit: int = 500,
        pause: float = 0.01,
    ) -> None:
        if retention < MIN_RETENTION:
            raise ValueError(
                f"retention is {retention:g} s: keep finished work at least {MIN_RETENTION:g} s "
                "(BOTKIT_RETENTION_DAYS), longer than the provider redelivers a webhook"
            )
        if every <= 0 or pause < 0 or limit < 1:
            raise ValueError(
                f"every must be over 0 s, pause 0 s or more and limit 1 or more; got every={every},"
                f" pause={pause}, limit={limit}"
            )
        self.store = store
        self.clock = clock
        self.retention = retention
        self.every = every
        self.limit = limit
        self.pause = pause
        self._stopping = False
        self._woken = asyncio.Event()

    async def run(self) -> None:
        """Prunes now, then every `every` seconds, until stopped."""
        while not self._stopping:
            await self.prune()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=self.every)

    def stop(self) -> None:
        """Ends the loop (after the batch in flight, if any)."""
        self._stopping = True
        self._woken.set()

    async def prune(self) -> int:
        """One round: batches until one deletes nothing; returns how many rows went. A store
        error ends the round early, logged (the next round tries again)."""
        before = self.clock.now() - self.retention
        pruned = 0
        while not self._stopping:
            try:
                deleted = await self.store.retention.prune(before, self.limit)
            except Exception:
                log.exception("could not prune the store; trying again in %g s", self.every)
                break
            pruned += deleted
            if deleted == 0:
                break
            await asyncio.sleep(self.pause)  # claims and completions go first
        if pruned:
            log.debug("pruned %d finished rows older than %g days", pruned, self.retention / DAY)
        return pruned


__all__ = ["Janitor"]
