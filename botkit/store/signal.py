"""Waiting for work, and being told of it, within this process (the stores' notify and
wait_for_work: a store with several nodes adds its own way to wake the others)."""

from __future__ import annotations

import asyncio


class Signal:
    """A queue's wake-up: `notify()` wakes `wait_for_work()` now, or the next one at once."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wakes this process's waiters."""
        self._event.set()

    async def wait_for_work(self, within: float) -> None:
        """Returns when notified, or after `within` seconds."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout=max(within, 0.0))
        except TimeoutError:
            return
        self._event.clear()


__all__ = ["Signal"]
