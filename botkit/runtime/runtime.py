"""A running bot: the store, the workers (dispatcher and outbox) and the sender, composed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import httpx

from botkit.config import Settings
from botkit.exceptions import TriggerError
from botkit.provider.ratelimit import rate_limiter
from botkit.provider.sender import Sender
from botkit.runtime.bot import Bot
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.outbox import Outbox
from botkit.runtime.worker import WorkerProcess
from botkit.store import Store, open_store
from botkit.store.base import NewEvent
from botkit.types import Clock, JSONObject, SystemClock
from botkit.wire.events import Event, InboundMessage, StatusUpdate
from botkit.wire.phone import PhoneNumberError, to_wa_id
from botkit.wire.trigger import TriggerEvent

log = logging.getLogger(__name__)


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
        on_error: Callable[[str, BaseException], None] | None = None,
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
            # Buckets wait in real time: under a ManualClock (simulator, tests) they would only
            # make tests sleep, so pacing is for the system clock.
            limiter=rate_limiter(settings) if isinstance(self.clock, SystemClock) else None,
        )
        self.outbox = Outbox(self.store, self.sender, self.clock)
        self.dispatcher = Dispatcher(
            self.store,
            bot.conversation(),
            self.clock,
            on_commit=self.outbox.wake,
            on_error=on_error,
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
            if self.workers:
                await self.store.start_worker()
            async with asyncio.TaskGroup() as group:
                if self.workers:
                    group.create_task(self.dispatcher.run(), name="botkit-dispatcher")
                    group.create_task(self.outbox.run(), name="botkit-outbox")
                if self.worker_process is not None:
                    group.create_task(self.worker_process.run(), name="botkit-worker-process")
                    await self.worker_process.started()
                self.bot.runtime = self
                try:
                    yield self
                finally:
                    self.bot.runtime = None
                    self.dispatcher.stop()
                    self.outbox.stop()
                    if self.worker_process is not None:
                        await self.worker_process.stop()
        finally:
            await self.sender.aclose()
            await self.store.aclose()

    async def accept(self, events: Sequence[Event | TriggerEvent]) -> list[bool]:
        """Stores events durably (True per new one, False per duplicate) and wakes the dispatcher."""
        flags = await self.store.add_events(
            [_new_event(event) for event in events], self.clock.now()
        )
        if any(flags):
            self.dispatcher.wake()
            if self.worker_process is not None:
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
        event = self._trigger_event(wa_id, name, data, phone_number_id, key)
        await self.accept([event])
        return event.event_id

    def _trigger_event(
        self, wa_id: str, name: str, data: JSONObject, phone_number_id: str | None, key: str | None
    ) -> TriggerEvent:
        required = self.bot.conversation.spec.triggers.get(name)
        if required is None:
            declared = ", ".join(sorted(self.bot.conversation.spec.triggers)) or "none"
            raise TriggerError(
                f"no trigger {name!r} is declared (declared: {declared})", status=404
            )
        missing = [key for key in required if key not in data]
        if missing:
            raise TriggerError(f"trigger {name!r} needs data {', '.join(repr(k) for k in missing)}")
        number = phone_number_id or self.settings.phone_number_id
        if not number or not number.isdigit():
            raise TriggerError(
                "no phone_number_id to send from: give one in the request or set "
                "GOSENDAPI_PHONE_NUMBER_ID"
            )
        try:
            user = to_wa_id(wa_id)
        except PhoneNumberError as exc:
            raise TriggerError(str(exc)) from exc
        return TriggerEvent.create(
            wa_id=user, phone_number_id=number, name=name, data=data, key=key
        )

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


def _new_event(event: Event | TriggerEvent) -> NewEvent:
    if isinstance(event, TriggerEvent):
        return NewEvent(
            event.event_id, None, "trigger", event.phone_number_id, event.wa_id, event.envelope
        )
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
