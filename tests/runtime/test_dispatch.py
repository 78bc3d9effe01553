"""Per-user ordering, concurrency across users, and nothing lost or sent twice across a crash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

import bots.clinic as clinic
from botkit import Bot, Context, Conversation, State, Text, on
from botkit.config import Settings
from botkit.exceptions import StoreError
from botkit.fake.provider import FakeGoSendAPI
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.runtime import Runtime
from botkit.store.base import Backlog, InboxLane, LaneOutcome, NewEvent
from botkit.store.sqlite import SqliteStore
from botkit.types import ManualClock, SystemClock
from botkit.web.app import create_app
from botkit.wire.idempotency import idempotency_key

pytestmark = pytest.mark.anyio

SECRET = "whsec_test_dispatch"
PNID = "555123456789"
ANA, BEN = "5491140000001", "5491140000002"


class Counter(Conversation):
    """Records every number a user sends, replies with it, and tracks how many users run at once."""

    counting = State(initial=True)
    running: int = 0
    most: int = 0

    @on.text()
    async def count(self, ctx: Context) -> None:
        Counter.running += 1
        Counter.most = max(Counter.most, Counter.running)
        await asyncio.sleep(0)  # let other users' handlers interleave, as real I/O would
        seen = list(ctx.data.get("seen", []))  # type: ignore[arg-type]
        ctx.data["seen"] = [*seen, int(ctx.text or 0)]
        await ctx.send(Text(f"got {ctx.text}"))
        Counter.running -= 1


@asynccontextmanager
async def running_bot(
    bot: Bot, database: Path, fake: FakeGoSendAPI, clock: ManualClock, *, workers: bool = True
) -> AsyncIterator[Runtime]:
    settings = Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_dispatch",
        webhook_secrets=(SECRET,),
        database=str(database),
    )
    runtime = Runtime(
        bot, settings, clock=clock, transport=httpx.ASGITransport(app=fake.app), workers=workers
    )
    app = create_app(runtime)
    fake.webhook_transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        yield runtime


def provider(clock: ManualClock) -> FakeGoSendAPI:
    return FakeGoSendAPI(clock=clock, webhook_url="http://bot/webhook", webhook_secret=SECRET)


def text(body: str) -> dict[str, object]:
    return {"type": "text", "text": {"body": body}}


async def test_100_users_x_6_steps_in_flight_keep_each_users_order(tmp_path: Path) -> None:
    clock = ManualClock()
    fake = provider(clock)
    users = [f"54911{i:08d}" for i in range(100)]

    async def user_sends(wa_id: str) -> None:
        for step in range(1, 7):  # each step acknowledged before the next is sent, like WhatsApp
            delivery = await fake.receive(
                wa_id=wa_id, message=text(str(step)), phone_number_id=PNID
            )
            assert delivery.status_code == 200

    Counter.most = 0
    async with running_bot(Bot(Counter), tmp_path / "order.db", fake, clock) as runtime:
        await asyncio.gather(*(user_sends(wa_id) for wa_id in users))
        await runtime.settle(within=60, autojump=clock)
        for wa_id in users:
            session = (await runtime.store.sessions.get(PNID, wa_id)).session
            assert session is not None
            assert session.data["seen"] == [1, 2, 3, 4, 5, 6], wa_id
            replies = [m.body["text"]["body"] for m in fake.messages_to(wa_id)]  # type: ignore[index,call-overload]
            assert replies == [f"got {n}" for n in range(1, 7)], wa_id
    assert len(fake.messages) == 600
    assert Counter.most > 1, "users were processed one at a time, not concurrently"


async def test_a_crash_after_the_ack_loses_nothing_and_sends_once(tmp_path: Path) -> None:
    clock = ManualClock()
    fake = provider(clock)
    database = tmp_path / "crash.db"
    async with running_bot(clinic.bot, database, fake, clock, workers=False) as first:
        delivery = await fake.receive(
            wa_id="5491140123456", name="Juan", message=text("hola"), phone_number_id=PNID
        )
        assert delivery.status_code == 200
        assert await first.store.inspect.backlog() == Backlog(1, 0)
    assert fake.messages == []  # the process "died" after acknowledging, before processing

    async with running_bot(clinic.bot, database, fake, clock) as second:
        await second.settle(autojump=clock)
        again = await fake.redeliver(delivery)  # the provider retries: a duplicate
        assert again.status_code == 200
        assert again.response == {"accepted": 0, "duplicates": 1}
        await second.settle(autojump=clock)
        session = (await second.store.sessions.get(PNID, "5491140123456")).session
    assert session is not None and session.state == "choosing_service"
    assert len(fake.messages) == 1
    event_id = str(delivery.envelope["id"])
    assert fake.messages[0].idempotency_key == idempotency_key(event_id, 0)


async def test_a_crash_before_the_send_succeeds_sends_the_reply_once(tmp_path: Path) -> None:
    clock = ManualClock()
    fake = provider(clock)
    database = tmp_path / "crash2.db"
    fake.fail_next(503)
    async with running_bot(clinic.bot, database, fake, clock) as first:
        await fake.receive(wa_id="5491140123456", message=text("hola"), phone_number_id=PNID)
        await until(lambda: len(fake.requests) >= 1)
        async with asyncio.timeout(5):  # the 503 is recorded right after the request
            while [(r.status, r.attempts) for r in await first.store.inspect.outbox()] != [  # noqa: ASYNC110
                ("pending", 1)
            ]:
                await asyncio.sleep(0.005)
    async with running_bot(clinic.bot, database, fake, clock) as second:
        await second.settle(autojump=clock)
        [row] = await second.store.inspect.outbox()
    assert row.status == "sent"
    assert len(fake.messages) == 1
    keys = {request.headers.get("idempotency-key") for request in fake.requests}
    assert keys == {row.idempotency_key}


async def test_a_handler_that_raises_fails_its_event_and_keeps_the_state(tmp_path: Path) -> None:
    class Fragile(Conversation):
        idle = State(initial=True)
        done = State()

        @on.text("boom", to=done)
        async def explode(self, ctx: Context) -> None:
            raise RuntimeError("handler bug")

        @on.text(to=done)
        async def fine(self, ctx: Context) -> None:
            await ctx.send(Text("ok"))

    clock = ManualClock()
    fake = provider(clock)
    async with running_bot(Bot(Fragile), tmp_path / "fragile.db", fake, clock) as runtime:
        bad = await fake.receive(wa_id="5491140123456", message=text("boom"), phone_number_id=PNID)
        await runtime.settle(autojump=clock)
        assert await runtime.store.inspect.event_status(str(bad.envelope["id"])) == (
            "failed",
            "RuntimeError: handler bug",
        )
        kept = await runtime.store.sessions.get(PNID, "5491140123456")
        assert kept.session is None  # nothing of the failed handler's changes
        assert kept.window.last_inbound_at is not None  # the message still opened the window
        await fake.receive(wa_id="5491140123456", message=text("hola"), phone_number_id=PNID)
        await runtime.settle(autojump=clock)
        session = (await runtime.store.sessions.get(PNID, "5491140123456")).session
    assert session is not None and session.state == "done"
    assert [m.type for m in fake.messages] == ["text"]


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls state the fake does not signal
            await asyncio.sleep(0.005)


async def test_a_failed_handler_leaves_nothing_of_its_changes_to_the_next_event(
    tmp_path: Path,
) -> None:
    class Cart(Conversation):
        shopping = State(initial=True)

        @on.text()
        async def add(self, ctx: Context) -> None:
            items = ctx.data.setdefault("cart", [])
            items.append(ctx.text)  # type: ignore[union-attr]
            if ctx.text == "boom":
                raise RuntimeError("after changing the data")

    clock = ManualClock()
    fake = provider(clock)
    database = tmp_path / "cart.db"
    async with running_bot(Bot(Cart), database, fake, clock, workers=False):
        for body in ("a", "boom", "b"):  # stored, to be processed in one batch
            await fake.receive(wa_id="5491140123456", message=text(body), phone_number_id=PNID)
    async with running_bot(Bot(Cart), database, fake, clock) as runtime:
        await runtime.settle(autojump=clock)
        session = (await runtime.store.sessions.get(PNID, "5491140123456")).session
    assert session is not None and session.data == {"cart": ["a", "b"]}


class Slow(Conversation):
    """A handler slower than the test's lease: each event takes a quarter of a second."""

    waiting = State(initial=True)
    log: list[str] = []

    @on.text()
    async def slow(self, ctx: Context) -> None:
        Slow.log.append(f"start {ctx.text}")
        await asyncio.sleep(0.25)
        Slow.log.append(f"end {ctx.text}")
        await ctx.send(Text(f"done {ctx.text}"))


async def test_a_turn_longer_than_its_lease_keeps_its_lane(tmp_path: Path) -> None:
    # Three events of one user in one claim take 0.75 s, past a 0.3 s lease: renewed, the
    # claim stops the dispatcher's next claims from taking the user's events again.
    clock = ManualClock(time.time())  # the fake's clock at the real time the runtime uses
    fake = provider(clock)
    database = tmp_path / "lease.db"
    async with running_bot(Bot(Slow), database, fake, clock, workers=False):
        for n in range(3):
            delivery = await fake.receive(
                wa_id="5491140123456", message=text(str(n)), phone_number_id=PNID
            )
            assert delivery.status_code == 200
    settings = Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_dispatch",
        webhook_secrets=(SECRET,),
        database=str(database),
    )
    runtime = Runtime(Bot(Slow), settings, transport=httpx.ASGITransport(app=fake.app))
    assert runtime.workers is not None
    runtime.workers.dispatcher.worker.lease = 0.3  # the real clock: leases expire in real time
    Slow.log = []
    app = create_app(runtime)
    async with app.router.lifespan_context(app):
        await runtime.settle(within=10)
    assert Slow.log == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]
    assert [m.body["text"]["body"] for m in fake.messages_to("5491140123456")] == [  # type: ignore[index,call-overload]
        "done 0",
        "done 1",
        "done 2",
    ]


class FailsOneCommit(SqliteStore):
    """A real SQLite store whose first completion fails, as a full disk would."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, worker=True)
        self.failed = False
        self.attempts: list[int] = []  # of each claim of Ana's lane
        complete, claim = self.inbox.complete, self.inbox.claim

        async def claim_noting(token: str, limit: int, lease: float) -> list[InboxLane]:
            lanes = await claim(token, limit, lease)
            self.attempts += [lane.attempts for lane in lanes if lane.wa_id == ANA]
            return lanes

        async def complete_once(outcomes: Sequence[LaneOutcome]) -> list[bool]:
            if not self.failed:
                self.failed = True
                raise StoreError("disk I/O error (once)")
            return await complete(outcomes)

        self.inbox.complete = complete_once  # type: ignore[method-assign]
        self.inbox.claim = claim_noting  # type: ignore[method-assign]


class Steady(Conversation):
    """Records who was handled; BEN's events are slower than he writes: a round always runs."""

    waiting = State(initial=True)
    handled: list[str] = []
    ana_handled = asyncio.Event()

    @on.text()
    async def note(self, ctx: Context) -> None:
        Steady.handled.append(ctx.user.wa_id)
        if ctx.user.wa_id == ANA:
            Steady.ana_handled.set()
        if ctx.user.wa_id == BEN:
            await asyncio.sleep(0.15)


def inbound(event_id: str, wa_id: str) -> NewEvent:
    envelope = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": PNID,
        "data": {
            "message": {
                "from": wa_id,
                "id": f"wamid.{event_id}",
                "timestamp": str(int(time.time())),
                **text("hola"),
            }
        },
    }
    return NewEvent(event_id, f"wamid.{event_id}", "message", PNID, wa_id, envelope)


async def test_a_turn_that_failed_to_commit_runs_again_at_once_without_an_attempt(
    tmp_path: Path,
) -> None:
    # The failed lane is given back at once (not after its 60 s lease), its attempt refunded,
    # while another user's lane is always busy.
    Steady.handled, Steady.ana_handled = [], asyncio.Event()
    async with FailsOneCommit(tmp_path / "flaky.db") as store:
        dispatcher = Dispatcher(store, Steady(), SystemClock(), lease=60.0, poll=0.05)
        await store.inbox.add([inbound("a1", ANA)])
        running = asyncio.create_task(dispatcher.run())
        await Steady.ana_handled.wait()
        for n in range(5):  # BEN writes every 0.1 s, each event a 0.15 s handler
            await store.inbox.add([inbound(f"b{n}", BEN)])
            await asyncio.sleep(0.1)
        async with asyncio.timeout(5):  # far less than the lease
            while await store.inspect.event_status("a1") != ("done", None):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the store does not signal a completion
        dispatcher.stop()
        await running
    assert Steady.handled.count(ANA) == 2  # the run whose commit failed, and the one that counted
    assert store.attempts == [1, 1]  # the failed commit was not charged to Ana
