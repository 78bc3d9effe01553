"""The timer loop: moves due timers into the inbox, beside the workers (one per process).

It sleeps until the soonest timer is due, or until a turn of this process sets a timer (the
store's notify), or at most `poll` seconds (a timer set by another process, or a clock moved
by hand); then `fire` moves what is due, in batches, each a short write of its own. What it
moves runs through each user's lane like a message, so the loop itself never runs a handler
and never waits on a user. A store error is logged and tried again after a pause.
"""

from __future__ import annotations

import asyncio
import logging

from botkit.store.base import Store
from botkit.store.timers import FIRE_BATCH

log = logging.getLogger(__name__)


class TimerLoop:
    """Fires the store's due timers into its inbox until stopped."""

    def __init__(
        self, store: Store, *, poll: float = 5.0, limit: int = FIRE_BATCH, pause: float = 1.0
    ) -> None:
        if poll <= 0 or limit < 1 or pause < 0:
            raise ValueError(f"poll must be over 0 s, limit 1 or more; got {poll}, {limit}")
        self.store = store
        self.poll = poll
        self.limit = limit
        self.pause = pause
        self._stopping = False
        self._firing = 0  # fire_due calls in flight (the loop's, and settle's)

    @property
    def busy(self) -> bool:
        """Whether timers are being moved into the inbox."""
        return self._firing > 0

    async def run(self) -> None:
        """Fires what is due, then waits for the next due time (or a notice), until stopped."""
        timers = self.store.timers
        while not self._stopping:
            try:
                await self.fire_due()
                due = await timers.next_due()
            except Exception:
                log.exception("could not fire timers; trying again in %g s", self.pause)
                due = self.pause
            if self._stopping:
                return
            await timers.wait_for_work(self.poll if due is None else min(due, self.poll))

    async def fire_due(self) -> int:
        """Moves every due timer into the inbox, a batch at a time; returns how many."""
        fired = 0
        self._firing += 1
        try:
            while True:
                moved = await self.store.timers.fire(self.limit)
                fired += moved
                if moved < self.limit or self._stopping:
                    break
                await asyncio.sleep(0)  # others' work goes in between batches
        finally:
            self._firing -= 1
        if fired:
            log.debug("fired %d timers", fired)
        return fired

    def stop(self) -> None:
        """Ends the loop (after the batch in flight, if any)."""
        self._stopping = True
        self.store.timers.notify()


__all__ = ["TimerLoop"]
