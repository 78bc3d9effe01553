"""What one process runs of a bot: its store, opened once, its ingest, and its workers if here.

A process of a deployed bot plays one of these parts, all composed here:

- `botkit run`: ingest here (the web app), workers in a child process (`worker_process`), or
  here against the built-in fake provider;
- `botkit run --no-workers`: ingest only (`workers=False`), a web replica whose events a
  `botkit worker` elsewhere processes;
- `botkit worker`: the workers (and an ingest, for `bot.trigger` from a handler), no web app;
- the simulator and the dev server: both, in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx

from botkit.config import Settings
from botkit.metrics import Metrics
from botkit.runtime.bot import Bot
from botkit.runtime.ingest import Ingest
from botkit.runtime.repair import Repairs
from botkit.runtime.worker import WorkerProcess
from botkit.runtime.workers import Workers
from botkit.store import Store, open_store
from botkit.tracing import Tracing
from botkit.types import Clock, SystemClock


class Runtime:
    """A running bot in this process: the store, its `ingest`, and its `workers` if they run here.

    Workers run here unless `workers=False` (they run elsewhere: `botkit worker`) or a
    `worker_process` runs them in a child, which `ingest` then wakes. `tracing` makes spans of
    each event (botkit.tracing); without it, BOTKIT_TRACING (`settings.tracing`) decides.
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
        tracing: Tracing | None = None,
        handoff_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.bot = bot
        self.settings = settings
        self.clock = clock or SystemClock()
        # this process's figures (botkit.metrics); in `botkit run`, added up with its worker's
        self.metrics = Metrics(enabled=settings.metrics)
        # spans of each event (botkit.tracing): `tracing`, else as BOTKIT_TRACING says
        self.tracing = tracing or Tracing.configured(settings.tracing)
        here = workers and worker_process is None
        self.store = store or open_store(
            settings.database, clock=self.clock, worker=here, pool_size=settings.database_pool
        )
        self.worker_process = worker_process
        if worker_process is not None:
            worker_process.metrics = self.metrics  # counts its restarts
        self.ingest = Ingest(
            self.store,
            bot.conversation.spec,
            phone_number_id=settings.sending_number,
            wake=worker_process.wake if worker_process is not None else None,
            tracing=self.tracing,
        )
        self.workers: Workers | None = None
        if here:
            self.workers = Workers(
                self.store,
                bot.conversation,
                settings,
                self.clock,
                transport=transport,
                on_error=on_error,
                metrics=self.metrics,
                tracing=self.tracing,
                handoff_transport=handoff_transport,
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        """Opens the store and runs the workers (here, or the worker process) for the block;
        at its end the workers finish what is in flight, then the store closes."""
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

    def repairs(self) -> Repairs:
        """The operator's view of this bot's store, and its repairs (the admin API's); what
        they queue wakes the worker process, if this one has one."""
        wake = self.worker_process.wake if self.worker_process is not None else None
        return Repairs(self.store, self.bot.conversation.spec, self.clock, wake=wake)

    async def settle(self, *, within: float = 10.0, autojump: Clock | None = None) -> None:
        """Waits until this process's workers have processed and sent everything (tests); see
        `Workers.settle`."""
        if self.workers is None:
            raise RuntimeError("settle() needs the workers in this process")
        await self.workers.settle(within=within, autojump=autojump)
