"""Composes the parts: `Bot` is what a bot module exports; `Runtime` runs it (store, workers, sender)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import httpx

from botkit.config import Settings
from botkit.conversation import Conversation
from botkit.dispatch import Dispatcher
from botkit.events import Event, InboundMessage, StatusUpdate
from botkit.exceptions import BotkitError
from botkit.outbox import Outbox
from botkit.sender import Sender
from botkit.store import Store, open_store
from botkit.store.base import NewEvent
from botkit.types import Clock, SystemClock
from botkit.worker import WorkerProcess

log = logging.getLogger(__name__)


class Bot:
    """A bot: its conversation class, and how it is named in logs and the CLI."""

    def __init__(self, conversation: type[Conversation], *, name: str | None = None) -> None:
        if not (isinstance(conversation, type) and issubclass(conversation, Conversation)):
            raise BotkitError(f"Bot() takes a Conversation subclass, not {conversation!r}")
        self.conversation = conversation
        self.name = name or conversation.__name__

    def __repr__(self) -> str:
        return f"Bot({self.conversation.__name__})"


class Runtime:
    """A running bot: the store, the dispatcher and outbox workers, and the sender."""

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
    ) -> None:
        self.bot = bot
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store = store or open_store(settings.database)
        self.sender = Sender(
            base_url=settings.base_url,
            api_key=settings.api_key or "gsk_test_botkit_fake",
            transport=transport,
            concurrency=settings.send_concurrency,
        )
        self.outbox = Outbox(self.store, self.sender, self.clock)
        self.dispatcher = Dispatcher(
            self.store, bot.conversation(), self.clock, on_commit=self.outbox.wake
        )
        self.worker_process = worker_process
        self.workers = workers and worker_process is None  # in this process

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        """Opens the store and runs the workers (in a TaskGroup) for the duration of the block.

        Workers run here, or in the worker process when one is given (`botkit run`).
        """
        await self.store.open()
        try:
            if self.workers:  # single-node: claims left by a process that died are stale
                await self.store.release_claims(None)
            async with asyncio.TaskGroup() as group:
                if self.workers:
                    group.create_task(self.dispatcher.run(), name="botkit-dispatcher")
                    group.create_task(self.outbox.run(), name="botkit-outbox")
                if self.worker_process is not None:
                    group.create_task(self.worker_process.run(), name="botkit-worker-process")
                    await self.worker_process.started()
                try:
                    yield self
                finally:
                    self.dispatcher.stop()
                    self.outbox.stop()
                    if self.worker_process is not None:
                        await self.worker_process.stop()
        finally:
            await self.sender.aclose()
            await self.store.aclose()

    async def accept(self, events: Sequence[Event]) -> list[bool]:
        """Stores events durably (True per new one, False per duplicate) and wakes the dispatcher."""
        flags = await self.store.add_events(
            [_new_event(event) for event in events], self.clock.now()
        )
        if any(flags):
            self.dispatcher.wake()
            if self.worker_process is not None:
                self.worker_process.wake()
        return flags

    async def settle(self, *, within: float = 10.0, autojump: Clock | None = None) -> None:
        """Waits until every stored event is processed and every due send attempted.

        With `autojump` (a ManualClock), sends waiting for a retry are made due by moving
        that clock forward, so tests need not sleep through backoff.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            inbox, outbox = await self.store.backlog()
            if not inbox and not outbox and not self.dispatcher.busy and not self.outbox.busy:
                return
            if not inbox and outbox and not self.outbox.busy and autojump is not None:
                await self._jump(autojump)
            self.dispatcher.wake()
            self.outbox.wake()
            await asyncio.sleep(0.002)
        inbox, outbox = await self.store.backlog()
        raise TimeoutError(
            f"not settled after {within}s: {inbox} events and {outbox} sends pending"
        )

    async def _jump(self, clock: Clock) -> None:
        due = await self.store.next_send_due()
        advance = getattr(clock, "advance", None)
        if due is not None and advance is not None and due > clock.now():
            advance(due - clock.now())


def _new_event(event: Event) -> NewEvent:
    if isinstance(event, InboundMessage):
        return NewEvent(
            event.event_id,
            event.message_id,
            "message",
            event.phone_number_id,
            event.wa_id,
            event.envelope,
        )
    if isinstance(event, StatusUpdate):
        return NewEvent(
            event.event_id,
            None,
            "status",
            event.phone_number_id,
            event.recipient_id,
            event.envelope,
        )
    return NewEvent(event.event_id, None, "other", event.phone_number_id or "", "", event.envelope)
