"""The janitor: rounds of small pruning batches beside the workers, on the real SQLite store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from botkit import Bot, Context, Conversation, State, Text, on
from botkit.config import DAY, MIN_RETENTION, Settings
from botkit.exceptions import StoreError
from botkit.fake.provider import FakeGoSendAPI
from botkit.runtime.janitor import Janitor
from botkit.runtime.runtime import Runtime
from botkit.store.base import DONE, Counts, EventResult, LaneOutcome, NewEvent
from botkit.store.sqlite import SqliteStore
from botkit.types import ManualClock
from botkit.web.app import create_app

pytestmark = pytest.mark.anyio

SECRET = "whsec_test_janitor"
PNID = "555123456789"
ANA = "5491140000001"
WEEK = 7 * DAY


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


class Recorded(SqliteStore):
    """A real SQLite store whose pruning batches are recorded: when each began (event loop
    time) and how many it deleted; the first `failing` batches fail as a locked file would."""

    def __init__(self, path: Path, clock: ManualClock, *, failing: int = 0) -> None:
        super().__init__(path, clock=clock, worker=True)
        self.batches: list[tuple[float, float, int, int]] = []  # (at, before, limit, deleted)
        real = self.retention.prune

        async def prune(before: float, limit: int) -> int:
            nonlocal failing
            at = asyncio.get_running_loop().time()
            if failing:
                failing -= 1
                raise StoreError("could not store it: database is locked")
            deleted = await real(before, limit)
            self.batches.append((at, before, limit, deleted))
            return deleted

        self.retention.prune = prune  # type: ignore[method-assign]


def message(event_id: str) -> NewEvent:
    envelope = {"id": event_id, "type": "whatsapp.message.received", "phone_number_id": PNID}
    return NewEvent(event_id, f"wamid.{event_id}", "message", PNID, ANA, envelope)  # type: ignore[arg-type]


async def finished(store: SqliteStore, count: int) -> None:
    """`count` events of Ana's, stored and completed as done."""
    await store.inbox.add([message(f"e{n}") for n in range(count)])
    while lanes := await store.inbox.claim("T", 1, 60.0):
        results = tuple(EventResult(e.seq, e.lane_seq, DONE) for e in lanes[0].events)
        assert await store.inbox.complete([LaneOutcome(PNID, ANA, "T", results)]) == [True]


async def test_a_round_prunes_in_batches_until_one_deletes_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with Recorded(tmp_path / "j.db", clock) as store:
        await finished(store, 7)
        clock.advance(WEEK + 1)
        await store.inbox.add([message("young")])
        janitor = Janitor(store, clock, retention=WEEK, limit=3, pause=0)

        assert await janitor.prune() == 7
        before = clock.now() - WEEK
        assert [batch[1:] for batch in store.batches] == [
            (before, 3, 3),
            (before, 3, 3),
            (before, 3, 1),
            (before, 3, 0),
        ]
        assert await store.inspect.counts() == Counts(events=1)
        assert await janitor.prune() == 0  # the next round: one batch, nothing to do


async def test_batches_are_apart_by_the_pause(tmp_path: Path, clock: ManualClock) -> None:
    """Between batches the janitor lets the workers' claims and completions go first."""
    async with Recorded(tmp_path / "j.db", clock) as store:
        await finished(store, 6)
        clock.advance(WEEK + 1)
        janitor = Janitor(store, clock, retention=WEEK, limit=2, pause=0.02)
        assert await janitor.prune() == 6
        starts = [batch[0] for batch in store.batches]
        assert len(starts) == 4
        assert all(b - a >= 0.02 for a, b in pairwise(starts))


async def test_a_store_error_ends_the_round_and_the_next_round_prunes(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with Recorded(tmp_path / "j.db", clock, failing=1) as store:
        await finished(store, 2)
        clock.advance(WEEK + 1)
        janitor = Janitor(store, clock, retention=WEEK)
        with caplog.at_level(logging.ERROR, logger="botkit.runtime.janitor"):
            assert await janitor.prune() == 0  # logged, not raised
        [logged] = caplog.records
        assert "could not prune" in logged.getMessage() and logged.exc_info is not None
        assert await janitor.prune() == 2


def test_a_retention_shorter_than_the_providers_redeliveries_is_refused(
    clock: ManualClock,
) -> None:
    with pytest.raises(ValueError, match="BOTKIT_RETENTION_DAYS"):
        Janitor(SqliteStore(":memory:"), clock, retention=MIN_RETENTION - 1)
    with pytest.raises(ValueError, match="limit"):
        Janitor(SqliteStore(":memory:"), clock, limit=0)


# -- with the workers ---------------------------------------------------------------------------


class Echo(Conversation):
    """Says back what it is told."""

    talking = State(initial=True)

    @on.text()
    async def echo(self, ctx: Context) -> None:
        ctx.data["heard"] = ctx.text
        await ctx.send(Text(f"you said {ctx.text}"))


@asynccontextmanager
async def running_bot(
    database: Path, fake: FakeGoSendAPI, clock: ManualClock
) -> AsyncIterator[Runtime]:
    settings = Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_janitor",
        webhook_secrets=(SECRET,),
        database=str(database),
    )
    runtime = Runtime(Bot(Echo), settings, clock=clock, transport=httpx.ASGITransport(app=fake.app))
    app = create_app(runtime)
    fake.webhook_transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        yield runtime


async def test_the_janitor_prunes_with_the_workers_and_stops_with_them(
    tmp_path: Path, clock: ManualClock
) -> None:
    fake = FakeGoSendAPI(clock=clock, webhook_url="http://bot/webhook", webhook_secret=SECRET)
    text = {"type": "text", "text": {"body": "hola"}}
    database = tmp_path / "bot.db"
    async with running_bot(database, fake, clock) as runtime:
        await fake.receive(wa_id=ANA, message=text, phone_number_id=PNID)
        await runtime.settle(autojump=clock)
        await fake.send_status(fake.messages[0].message_id, "read")
        await runtime.settle(autojump=clock)
        clock.advance(WEEK)  # a week later, Ana writes again
        young = await fake.receive(wa_id=ANA, message=text, phone_number_id=PNID)
        await runtime.settle(autojump=clock)
        assert await runtime.store.inspect.counts() == Counts(events=3, sends=2, statuses=1)
    clock.advance(60.0)  # the first message, its reply and status are now over a week old

    async with running_bot(database, fake, clock) as runtime:  # a round runs at start
        async with asyncio.timeout(5):
            while await runtime.store.inspect.counts() != Counts(events=1, sends=1):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        again = await fake.redeliver(young)  # a week younger: still a duplicate
        assert again.response == {"accepted": 0, "duplicates": 1}
        session = (await runtime.store.sessions.get(PNID, ANA)).session
        assert session is not None and session.data == {"heard": "hola"}
        stopping = asyncio.get_running_loop().time()
    # the janitor's wait for its next round (a minute) ends with the workers
    assert asyncio.get_running_loop().time() - stopping < 5
