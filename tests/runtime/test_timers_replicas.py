"""Each timer fires once when several processes' timer loops share one store: two runtimes on
one PostgreSQL database, and on SQLite a web replica's store racing the worker's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from botkit.config import Settings
from botkit.fake.provider import FakeGoSendAPI
from botkit.runtime.runtime import Runtime
from botkit.runtime.timer_loop import TimerLoop
from botkit.store.sqlite import SqliteStore
from botkit.types import ManualClock
from botkit.web.app import create_app
from tests.runtime.timer_bot import NUDGE, bot

pytestmark = pytest.mark.anyio

SECRET = "whsec_test_timers"
PNID = "555123456789"
USERS = [f"54911{i:08d}" for i in range(12)]


def settings(database: str) -> Settings:
    return Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_timers",
        webhook_secrets=(SECRET,),
        database=database,
    )


@asynccontextmanager
async def serving(database: str, fake: FakeGoSendAPI, clock: ManualClock) -> AsyncIterator[Runtime]:
    """A runtime with the webhook app (the fake provider posts to it) and workers."""
    transport = httpx.ASGITransport(app=fake.app)
    runtime = Runtime(bot, settings(database), clock=clock, transport=transport)
    app = create_app(runtime)
    fake.webhook_transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        yield runtime


async def everyone_asked(fake: FakeGoSendAPI, runtime: Runtime, clock: ManualClock) -> None:
    for wa_id in USERS:
        message = {"type": "text", "text": {"body": "hola"}}
        delivery = await fake.receive(wa_id=wa_id, message=message, phone_number_id=PNID)
        assert delivery.status_code == 200
    await runtime.settle(autojump=clock)


def nudges(fake: FakeGoSendAPI) -> dict[str, int]:
    found = {wa_id: 0 for wa_id in USERS}
    for wa_id in USERS:
        for message in fake.messages_to(wa_id):
            if message.type == "text" and message.body["text"] == {
                "body": NUDGE,
                "preview_url": False,
            }:
                found[wa_id] += 1
    return found


async def fire_at_once(first: Runtime, second: Runtime, clock: ManualClock) -> None:
    """Both runtimes' timer loops fire what is due, twice each, all at once; then both settle."""
    assert first.workers is not None and second.workers is not None
    await asyncio.gather(
        first.workers.timers.fire_due(), second.workers.timers.fire_due(),
        first.workers.timers.fire_due(), second.workers.timers.fire_due(),
    )  # fmt: skip
    await first.settle(autojump=clock)
    await second.settle(autojump=clock)


async def test_two_runtimes_on_one_postgresql_database_fire_each_timer_once(
    postgres_url: str,
) -> None:
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, webhook_url="http://bot/webhook", webhook_secret=SECRET)
    second = Runtime(
        bot, settings(postgres_url), clock=clock, transport=httpx.ASGITransport(app=fake.app)
    )
    async with serving(postgres_url, fake, clock) as first, second.running():
        await everyone_asked(fake, first, clock)
        assert len(await first.store.inspect.timers()) == 2 * len(USERS)  # nudge, last call
        clock.advance(31 * 60)
        await fire_at_once(first, second, clock)
        assert nudges(fake) == {wa_id: 1 for wa_id in USERS}
        assert [t.name for t in await first.store.inspect.timers()] == [
            "window_closing:last_call"
        ] * len(USERS)


async def test_a_replicas_store_racing_the_workers_on_sqlite_fires_each_timer_once(
    tmp_path: object,
) -> None:
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, webhook_url="http://bot/webhook", webhook_secret=SECRET)
    database = f"{tmp_path}/timers.db"
    async with serving(database, fake, clock) as runtime:
        await everyone_asked(fake, runtime, clock)
        clock.advance(31 * 60)
        assert runtime.workers is not None
        async with SqliteStore(database, clock=clock) as replica:
            other = TimerLoop(replica, limit=3)
            await asyncio.gather(
                runtime.workers.timers.fire_due(), other.fire_due(), other.fire_due()
            )
        await runtime.settle(autojump=clock)
        assert nudges(fake) == {wa_id: 1 for wa_id in USERS}
