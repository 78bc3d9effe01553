"""The workers of a bot: the dispatcher and the outbox, with the sender they share, the
janitor that prunes what they finished, and the timer loop that fires users' due timers.

They process what the store holds, whoever stored it: this process's ingest, or web replicas
elsewhere (`botkit worker`, `botkit run`'s worker child).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx

from botkit.config import Settings
from botkit.conversation.dsl import Conversation
from botkit.metrics import Metrics
from botkit.provider.ratelimit import rate_limiter
from botkit.provider.sender import Sender
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.forward import Forwarder
from botkit.runtime.janitor import Janitor
from botkit.runtime.outbox import Outbox
from botkit.runtime.timer_loop import TimerLoop
from botkit.store.base import PacedStore, Pacing, Store
from botkit.tracing import Tracing
from botkit.types import Clock, SystemClock


class Workers:
    """Processes a store's events and delivers its sends, and prunes what is finished and older
    than the retention, until the block of `running()` ends."""

    def __init__(
        self,
        store: Store,
        conversation: type[Conversation],
        settings: Settings,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        handoff_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        metrics = metrics or Metrics.off()
        self.forwarder: Forwarder | None = None
        if settings.handoff_url is not None:
            self.forwarder = Forwarder(
                settings.handoff_url,
                settings.handoff_secret or "",
                clock,
                transport=handoff_transport,
            )
        self.sender = Sender(
            base_url=settings.base_url,
            api_key=settings.api_key or "gsk_test_botkit_fake",
            transport=transport,
            concurrency=settings.send_concurrency,
            # Buckets wait in real time: under a ManualClock (simulator, tests) they would only
            # make tests sleep, so pacing is for the system clock.
            limiter=rate_limiter(settings, _pacing(store))
            if isinstance(clock, SystemClock)
            else None,
            metrics=metrics,
        )
        self.dispatcher = Dispatcher(
            store,
            conversation(),
            clock,
            on_error=on_error,
            lease=settings.lease,
            metrics=metrics,
            tracing=tracing,
        )
        self.outbox = Outbox(
            store,
            self.sender,
            clock,
            media_max_age=settings.media_max_age,
            lease=settings.lease,
            metrics=metrics,
            tracing=tracing,
            forwarder=self.forwarder,
        )
        self.janitor = Janitor(store, clock, retention=settings.retention)
        self.timers = TimerLoop(store)

    @property
    def busy(self) -> bool:
        """Whether either worker has something in flight."""
        return self.dispatcher.busy or self.outbox.busy or self.timers.busy

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Workers]:
        """Runs both workers and the janitor in a TaskGroup for the block; stops them (they
        finish what is in flight) and closes the sender at its end."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.dispatcher.run(), name="botkit-dispatcher")
                group.create_task(self.outbox.run(), name="botkit-outbox")
                group.create_task(self.janitor.run(), name="botkit-janitor")
                group.create_task(self.timers.run(), name="botkit-timers")
                try:
                    yield self
                finally:
                    self.dispatcher.stop()
                    self.outbox.stop()
                    self.janitor.stop()
                    self.timers.stop()
        finally:
            await self.sender.aclose()
            if self.forwarder is not None:
                await self.forwarder.aclose()

    async def settle(self, *, within: float = 10.0, autojump: Clock | None = None) -> None:
        """Waits until every stored event is processed and every due send attempted (tests).

        With `autojump` (a ManualClock), sends waiting for a retry are made due by moving
        that clock forward, so tests need not sleep through backoff.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            # due timers are work too; read first: what the loop fires meanwhile is in the inbox
            if await self.store.timers.next_due() == 0:
                await self.timers.fire_due()
                continue
            backlog = await self.store.inspect.backlog()
            if not backlog.events and not backlog.sends and not self.busy:
                return
            if not backlog.events and backlog.sends and not self.outbox.busy:
                await self._jump(autojump)
            self.dispatcher.wake()
            self.outbox.wake()
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


def _pacing(store: Store) -> Pacing | None:
    """The store's send slots when several processes share it (the provider's limits are the
    deployment's, not each process's); else each process paces alone."""
    return store.pacing if isinstance(store, PacedStore) else None
