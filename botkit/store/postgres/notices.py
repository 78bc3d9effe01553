"""Wakes the workers of other processes after an acknowledgement: a NOTIFY of its own, sent
after the events' transaction commits, and coalesced.

PostgreSQL serialises the commits of transactions that NOTIFY (one lock for the whole
database, held until the commit is flushed). Inside the acknowledgements' transactions, which
wait for the disk, it made every replica's acknowledgements commit one at a time
(bench/webhook.py pg3: most adds waiting on `Lock: object`). Sent apart, in a transaction that
does not wait for the disk, it holds that lock for microseconds; and while one is on its way,
any number of further requests make one more, not one each: a worker woken claims everything
that is due.

A notice that is lost (the process dies between the commit and the notice, the database is
briefly away) delays the work by at most the workers' poll, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from botkit.exceptions import StoreError

log = logging.getLogger(__name__)

Run = Callable[[Callable[[asyncpg.Connection], Awaitable[object]]], Awaitable[object]]


class Notices:
    """Sends `NOTIFY channel` through `run` (the store's pooled runner) whenever `request` was
    called since the last one went out; at most one in flight."""

    def __init__(self, run: Run, channel: str) -> None:
        self._run = run
        self.channel = channel
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # notices sent (tests, benchmarks)

    def start(self) -> None:
        """Starts sending (the store is open)."""
        if self._task is None:
            self._task = asyncio.create_task(self._send_forever(), name="botkit-pg-notices")

    def request(self) -> None:
        """Asks for a notice: events were committed."""
        self._wanted.set()

    async def aclose(self) -> None:
        """Sends a notice still owed, then stops."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._wanted.is_set():
            with contextlib.suppress(StoreError):
                await self._send()

    async def _send_forever(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._send()
            except StoreError as exc:  # the workers' poll finds the work instead
                log.warning("could not wake the other processes' workers: %s", exc)

    async def _send(self) -> None:
        await self._run(lambda db: db.execute("SELECT pg_notify($1, '')", self.channel))
        self.sent += 1


__all__ = ["Notices"]
