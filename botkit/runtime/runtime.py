"""A running bot: its store, what it ingests, and its workers (here, or in a worker process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import httpx

from botkit.config import Settings
from botkit.runtime.bot import Bot
from botkit.runtime.ingest import new_event, trigger_event
from botkit.runtime.worker import WorkerProcess
from botkit.runtime.workers import Workers
from botkit.store import Store, open_store
from botkit.types import Clock, JSONObject, SystemClock
from botkit.wire.events import Event
from botkit.wire.trigger import TriggerEvent

log = logging.getLogger(__name__)


class Runtime:
    """A running bot: the store, and the dispatcher and outbox in this process or in a child.

    With `worker_process` (`botkit run` with a real provider) this process only ingests, and
    the child runs the workers; else they run here (`workers=False`: neither, a web replica
    that only acknowledges).
    """

    def __init__(
        self,
        bot: Bot,
        settings: Settings,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        workers: bool = True,
        worker_process: WorkerProcess | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.bot = bot
        self.settings = settings
        self.clock = clock or SystemClock()
        runs_workers = workers and worker_process is None
        self.store = store or open_store(settings.database, clock=self.clock, worker=runs_workers)
        self.worker_process = worker_process
        self.workers: Workers | None = None
        if runs_workers:
            self.workers = Workers(
                self.store,
                bot.conversation,
                settings,
                self.clock,
                transport=transport,
                on_error=on_error,
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        """Opens the store and runs the workers (here, or the worker process) for the block."""
        await self.store.open()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.workers is not None:
                    await stack.enter_async_context(self.workers.running())
                if self.worker_process is not None:
                    await stack.enter_async_context(self.worker_process.running())
                self.bot.runtime = self
                try:
                    yield self
                finally:
                    self.bot.runtime = None
        finally:
            await self.store.aclose()

    async def accept(self, events: Sequence[Event | TriggerEvent]) -> list[bool]:
        """Stores events durably (True per new one, False per duplicate); the workers wake."""
        flags = await self.store.inbox.add([new_event(event) for event in events])
        if any(flags) and self.worker_process is not None:
            self.worker_process.wake()
        return flags

    async def trigger(
        self,
        wa_id: str,
        name: str,
        data: JSONObject,
        *,
        phone_number_id: str | None = None,
        key: str | None = None,
    ) -> str:
        """Checks and stores a trigger like an inbound event; returns its event id.

        TriggerError (status 404) for a trigger no conversation declares, (400) for missing
        data keys, a number that is not a phone number, or no phone_number_id to send from.
        """
        number = phone_number_id or self.settings.phone_number_id
        spec = self.bot.conversation.spec
        event = trigger_event(spec, wa_id, name, data, number, key)
        await self.accept([event])
        return event.event_id

    async def settle(self, *, within: float = 10.0, autojump: Clock | None = None) -> None:
        """Waits until every stored event is processed and every due send attempted (tests).

        With `autojump` (a ManualClock), sends waiting for a retry are made due by moving
        that clock forward, so tests need not sleep through backoff.
        """
        workers = self.workers
        if workers is None:
            raise RuntimeError("settle() needs the workers in this process")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            backlog = await self.store.inspect.backlog()
            if not backlog.events and not backlog.sends and not workers.busy:
                return
            if not backlog.events and backlog.sends and not workers.outbox.busy:
                await self._jump(autojump)
            workers.dispatcher.wake()
            workers.outbox.wake()
            await asyncio.sleep(0.002)
        backlog = await self.store.inspect.backlog()
        raise TimeoutError(
            f"not settled after {within}s: {backlog.events} events and {backlog.sends} sends pending"
        )

    async def _jump(self, clock: Clock | None) -> None:
        advance = getattr(clock, "advance", None)
        if advance is None:
            return
        due = await self.store.outbox.next_due()
        if due is not None and due > 0:
            advance(due)
