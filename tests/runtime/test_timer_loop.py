"""The timer loop: it sleeps until the soonest timer, is woken by a sooner one, and outlives a
store error (a real MemoryStore and a manual clock; the waits are the loop's real ones)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from botkit.runtime.timer_loop import TimerLoop
from botkit.store import MemoryStore
from botkit.store.base import Backlog
from botkit.types import ManualClock
from tests.store.contract import ANA
from tests.store.timers_contract import set_timers, timer

pytestmark = pytest.mark.anyio


async def fired(store: MemoryStore, within: float = 2.0) -> None:
    """Waits (real time) until a timer's event is in the inbox."""
    async with asyncio.timeout(within):
        while await store.inspect.backlog() == Backlog():
            await store.inbox.wait_for_work(0.05)  # the inbox says when an event is added


async def test_a_sooner_timer_wakes_the_loop_that_waits_for_a_later_one() -> None:
    clock = ManualClock()
    async with MemoryStore(clock=clock) as store:
        await set_timers(store, ANA, timer("later", clock.now() + 3600))
        loop = TimerLoop(store, poll=600)  # without the wake-up it would sleep 10 minutes
        running = asyncio.create_task(loop.run())
        await asyncio.sleep(0.02)  # the loop is waiting
        assert await store.timers.next_due() == 3600
        await set_timers(store, ANA, timer("now", clock.now()))
        await fired(store)
        assert [t.name for t in await store.inspect.timers()] == ["later"]
        loop.stop()
        await asyncio.wait_for(running, 1.0)


async def test_a_store_error_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    store = MemoryStore(clock=clock)
    await store.open()
    await set_timers(store, ANA, timer("due", clock.now()))
    await store.aclose()  # firing fails while the store is closed
    loop = TimerLoop(store, poll=600, pause=0.01)
    with caplog.at_level(logging.ERROR, "botkit.runtime.timer_loop"):
        running = asyncio.create_task(loop.run())
        await asyncio.sleep(0.05)
        await store.open()
        await fired(store)
    assert "could not fire timers" in caplog.text
    loop.stop()
    await asyncio.wait_for(running, 1.0)
