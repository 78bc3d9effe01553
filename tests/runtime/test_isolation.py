"""One user's trouble stays that user's: a slow handler, a slow send, a value that cannot be
stored, a claim that cannot be renewed, and a 403 racing a handler, each against real parts
(the webhook app, a SQLite file, the fake GoSendAPI). Time is real but short: blocked work is
held by events the test releases, never by sleeping for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import httpx
import pytest

from botkit import (
    Bot,
    Context,
    Conversation,
    Simulator,
    State,
    Template,
    Text,
    WindowClosedError,
    on,
)
from botkit.config import Settings
from botkit.fake.provider import FakeGoSendAPI
from botkit.provider.sender import Sender
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.outbox import Outbox
from botkit.runtime.runtime import Runtime
from botkit.store import MemoryStore
from botkit.store.base import DONE, EventResult, LaneKey, LaneOutcome, NewEvent, NewSend
from botkit.store.sqlite import SqliteStore
from botkit.types import ManualClock, SystemClock
from botkit.web.app import create_app
from botkit.wire.window import Window

pytestmark = pytest.mark.anyio

SECRET = "whsec_test_isolation"
PNID = "555123456789"
SLOW, ANA, BEN = "5491140000009", "5491140000001", "5491140000002"
T0 = 1_779_199_200.0
NOTICE = Template.of("window_notice", "en", body=["closed"])
GUARD = 5.0  # seconds before a wait for something that must happen fails the test


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Waits for something the fake or the runtime does not signal (real time, bounded)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def until_sent(store: MemoryStore) -> None:
    """Waits for the outbox's first row to be recorded sent (real time, bounded)."""
    async with asyncio.timeout(GUARD):
        while not any(row.status == "sent" for row in await store.inspect.outbox()):  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def text(body: str) -> dict[str, object]:
    return {"type": "text", "text": {"body": body}}


def replies(fake: FakeGoSendAPI, wa_id: str) -> list[str]:
    return [str(m.body["text"]["body"]) for m in fake.messages_to(wa_id) if m.type == "text"]  # type: ignore[index,call-overload]


@contextlib.asynccontextmanager
async def running(
    bot: Bot,
    database: Path,
    fake: FakeGoSendAPI,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Runtime]:
    """The bot's webhook app and workers on a SQLite file, replying to `fake`."""
    settings = Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_isolation",
        webhook_secrets=(SECRET,),
        database=str(database),
        phone_number_id=PNID,
    )
    runtime = Runtime(
        bot, settings, clock=SystemClock(), transport=transport or httpx.ASGITransport(app=fake.app)
    )
    app = create_app(runtime)
    fake.webhook_transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        yield runtime


def provider() -> FakeGoSendAPI:
    return FakeGoSendAPI(
        clock=SystemClock(), webhook_url="http://bot/webhook", webhook_secret=SECRET
    )


# -- a slow handler ---------------------------------------------------------------------------


class Waiting(Conversation):
    """Echoes text; the SLOW user's handler waits until the test releases it."""

    idle = State(initial=True)
    release = asyncio.Event()
    started: list[str] = []

    @on.text()
    async def echo(self, ctx: Context) -> None:
        Waiting.started.append(f"{ctx.user.wa_id}:{ctx.text}")
        if ctx.user.wa_id == SLOW and ctx.text == "first":
            await Waiting.release.wait()
        await ctx.send(Text(f"echo {ctx.text}"))


async def test_a_slow_handler_holds_up_its_own_user_only(tmp_path: Path) -> None:
    Waiting.release, Waiting.started = asyncio.Event(), []
    fake = provider()
    async with running(Bot(Waiting), tmp_path / "slow.db", fake) as runtime:
        await fake.receive(wa_id=SLOW, message=text("first"), phone_number_id=PNID)
        await until(lambda: f"{SLOW}:first" in Waiting.started)
        await fake.receive(wa_id=SLOW, message=text("second"), phone_number_id=PNID)
        others = [f"54911400001{n:02d}" for n in range(20)]
        deliveries = [
            await fake.receive(wa_id=wa_id, message=text("hola"), phone_number_id=PNID)
            for wa_id in others
        ]
        # every other user's reply is committed and delivered while SLOW's handler still runs
        await until(lambda: all(replies(fake, wa_id) == ["echo hola"] for wa_id in others))
        for delivery in deliveries:
            status = await runtime.store.inspect.event_status(str(delivery.envelope["id"]))
            assert status == ("done", None)
        assert replies(fake, SLOW) == []
        assert f"{SLOW}:second" not in Waiting.started  # SLOW's next message waits its turn
        Waiting.release.set()
        await until(lambda: replies(fake, SLOW) == ["echo first", "echo second"])


# -- a slow send --------------------------------------------------------------------------------


class Gate(httpx.AsyncBaseTransport):
    """The fake provider behind a gate: messages to `held` wait until the gate opens."""

    def __init__(self, fake: FakeGoSendAPI, held: str) -> None:
        self.inner = httpx.ASGITransport(app=fake.app)
        self.held = held
        self.open = asyncio.Event()
        self.waiting = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        to = json.loads(request.content).get("to") if request.content else None
        if to == self.held and not self.open.is_set():
            self.waiting.set()
            await self.open.wait()
        return await self.inner.handle_async_request(request)


class Echo(Conversation):
    idle = State(initial=True)

    @on.text()
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(f"echo {ctx.text}"))


async def test_a_slow_send_holds_up_its_own_user_only(tmp_path: Path) -> None:
    fake = provider()
    gate = Gate(fake, SLOW)
    async with running(Bot(Echo), tmp_path / "send.db", fake, transport=gate):
        await fake.receive(wa_id=SLOW, message=text("uno"), phone_number_id=PNID)
        await asyncio.wait_for(gate.waiting.wait(), GUARD)  # SLOW's reply is stuck on its way
        others = [f"54911400002{n:02d}" for n in range(20)]
        for wa_id in others:
            await fake.receive(wa_id=wa_id, message=text("hola"), phone_number_id=PNID)
        await until(lambda: all(replies(fake, wa_id) == ["echo hola"] for wa_id in others))
        assert replies(fake, SLOW) == []
        gate.open.set()
        await until(lambda: replies(fake, SLOW) == ["echo uno"])


# -- a value that cannot be stored ---------------------------------------------------------------


class Careless(Conversation):
    """ANA's reply carries a lone surrogate (not UTF-8): it passes the builders' checks."""

    idle = State(initial=True)

    @on.text()
    async def answer(self, ctx: Context) -> None:
        ctx.data["said"] = ctx.text
        body = "bad \ud800" if ctx.user.wa_id == ANA else f"echo {ctx.text}"
        await ctx.send(Text(body))


async def test_a_value_that_cannot_be_stored_fails_its_own_users_event_only(
    tmp_path: Path,
) -> None:
    fake = provider()
    database = tmp_path / "poison.db"
    settings = Settings(webhook_secrets=(SECRET,), database=str(database))
    ingest = Runtime(Bot(Careless), settings, workers=False)
    app = create_app(ingest)
    fake.webhook_transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):  # both stored first: claimed together
        bad = await fake.receive(wa_id=ANA, message=text("hola"), phone_number_id=PNID)
        good = await fake.receive(wa_id=BEN, message=text("hola"), phone_number_id=PNID)
        assert (bad.status_code, good.status_code) == (200, 200)
    async with running(Bot(Careless), database, fake) as runtime:
        await runtime.settle(within=5)
        status, error = await runtime.store.inspect.event_status(str(bad.envelope["id"])) or (
            "",
            "",
        )
        assert status == "failed" and error is not None and "surrogates" in error
        assert await runtime.store.inspect.event_status(str(good.envelope["id"])) == ("done", None)
        assert replies(fake, BEN) == ["echo hola"]
        assert fake.messages_to(ANA) == []
        ana = await runtime.store.sessions.get(PNID, ANA)
        assert ana.session is None  # the failed event left nothing of its changes
        assert ana.window.last_inbound_at is not None  # but her message opened the window
        ben = await runtime.store.sessions.get(PNID, BEN)
        assert ben.session is not None and ben.session.data == {"said": "hola"}


# -- a claim that cannot be renewed ---------------------------------------------------------------


class NoRenewals(SqliteStore):
    """A real SQLite store whose inbox can never renew a claim (a store that is failing)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, worker=True)

        async def renew(token: str, keys: Sequence[LaneKey], lease: float) -> list[LaneKey]:
            raise OSError("disk I/O error (renewing)")

        self.inbox.renew = renew  # type: ignore[method-assign]


class Long(Conversation):
    """A handler that outlives the test's lease; it counts how many run at once."""

    idle = State(initial=True)
    running = 0
    most = 0
    starts = 0

    @on.text()
    async def long(self, ctx: Context) -> None:
        Long.starts += 1
        Long.running += 1
        Long.most = max(Long.most, Long.running)
        try:
            await asyncio.sleep(5)
        finally:
            Long.running -= 1


def inbound(event_id: str, wa_id: str) -> NewEvent:
    message = {
        "from": wa_id,
        "id": f"wamid.{event_id}",
        "timestamp": str(int(time.time())),
        **text("x"),
    }
    envelope = {"id": event_id, "type": "whatsapp.message.received", "phone_number_id": PNID,
                "data": {"message": message}}  # fmt: skip
    return NewEvent(event_id, f"wamid.{event_id}", "message", PNID, wa_id, envelope)


async def test_a_claim_that_cannot_be_renewed_is_stopped_never_run_twice_at_once(
    tmp_path: Path,
) -> None:
    Long.running = Long.most = Long.starts = 0
    async with NoRenewals(tmp_path / "norenew.db") as store:
        dispatcher = Dispatcher(store, Long(), SystemClock(), lease=0.3, poll=0.05)
        await store.inbox.add([inbound("a1", ANA)])
        task = asyncio.create_task(dispatcher.run())
        await until(lambda: Long.starts >= 3, within=3)  # each run stopped at its lease, retaken
        dispatcher.stop()
        await task
    assert Long.most == 1  # never two runs of the user's handler at once
    assert Long.running == 0


# -- an outbox claim longer than its lease -------------------------------------------------------


async def test_a_send_longer_than_its_lease_is_renewed_and_sent_once() -> None:
    # Two outbox workers share one store; the send takes three leases. Renewed, the claim
    # keeps the other worker away: the provider gets one request, and one result is kept.
    store = MemoryStore(clock=SystemClock())
    await store.open()
    fake = FakeGoSendAPI(clock=SystemClock(), enforce_window=False)
    calls: list[str] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["idempotency-key"])
        await asyncio.sleep(0.6)
        return await httpx.ASGITransport(app=fake.app).handle_async_request(request)

    await store.inbox.add([inbound("e1", ANA)])
    [lane] = await store.inbox.claim("T", 1, 60)
    reply = NewSend(PNID, ANA, "k1", "text", {"body": "hola"}, "e1")
    results = (EventResult(lane.events[0].seq, lane.events[0].lane_seq, DONE),)
    window = Window(time.time(), lane.events[0].lane_seq)
    assert await store.inbox.complete(
        [LaneOutcome(PNID, ANA, "T", results, None, window, (reply,))]
    )
    async with Sender(
        base_url="http://provider/v1", api_key="gsk_test_x", transport=httpx.MockTransport(slow)
    ) as sender:
        workers = [Outbox(store, sender, SystemClock(), lease=0.2, poll=0.02) for _ in range(2)]
        tasks = [asyncio.create_task(worker.run()) for worker in workers]
        await until_sent(store)
        await asyncio.sleep(0.3)  # past another lease: nobody sends it again
        for worker in workers:
            worker.stop()
        await asyncio.gather(*tasks)
    assert calls == ["k1"]
    [row] = await store.inspect.outbox()
    assert (row.status, row.attempts) == ("sent", 1)


# -- the 24-hour window ----------------------------------------------------------------------------


class Plain(Conversation):
    """Replies free-form with no fallback; `ping` is free-form with a template fallback."""

    idle = State(initial=True)

    @on.text()
    async def answer(self, ctx: Context) -> None:
        await ctx.send(Text(f"re: {ctx.text}"))

    @on.trigger("ping", fallback=NOTICE)
    async def ping(self, ctx: Context) -> None:
        await ctx.send(Text("ping"))


async def test_a_user_who_answers_in_the_same_second_as_a_403_reopens_the_window() -> None:
    # The 403 comes at 14:00:00.4 on this machine; Ana's answer carries the provider's whole
    # second, 14:00:00: it was stored after the refusal, so the window is open again.
    async with Simulator(Bot(Plain), clock=ManualClock(T0 + 0.4)) as sim:
        ana = sim.user(ANA, name="Ana")
        await ana.says("hola")
        sim.fail_next(403)
        await sim.trigger(ANA, "ping")
        assert ana.window.refused
        assert [v.template_name or v.text for v in ana.messages] == ["re: hola", "window_notice"]
        await ana.says("sigo acá")  # no WindowClosedError: the answer is free-form
        assert ana.messages[-1].text == "re: sigo acá"
        assert not ana.window.refused


class Blocking(Conversation):
    """A trigger whose handler waits for the test; text is echoed."""

    idle = State(initial=True)
    release = asyncio.Event()
    started = asyncio.Event()

    @on.text()
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(f"echo {ctx.text}"))

    @on.trigger("slow")
    async def slow(self, ctx: Context) -> None:
        Blocking.started.set()
        await Blocking.release.wait()

    @on.trigger("ping")
    async def ping(self, ctx: Context) -> None:
        await ctx.send(Text("ping"))


async def test_a_403_recorded_while_a_trigger_runs_is_not_erased_by_its_commit(
    tmp_path: Path,
) -> None:
    Blocking.release, Blocking.started = asyncio.Event(), asyncio.Event()
    fake = provider()
    gate = Gate(fake, ANA)
    async with running(Bot(Blocking), tmp_path / "race.db", fake, transport=gate) as runtime:
        await fake.receive(wa_id=ANA, message=text("hola"), phone_number_id=PNID)
        await asyncio.wait_for(gate.waiting.wait(), GUARD)  # Ana's reply is on its way
        await runtime.ingest.trigger(ANA, "slow", {})
        # the trigger's handler runs with the window open...
        await asyncio.wait_for(Blocking.started.wait(), GUARD)
        fake.fail_next(403)
        gate.open.set()  # ...when the provider refuses the reply
        await until(
            lambda: [r.status for r in fake.requests if r.path.endswith("/messages")] == [403]
        )
        await until_refused(runtime)
        Blocking.release.set()  # its commit carries the window as it was when it started
        await runtime.settle(within=5)
        assert (await runtime.store.sessions.get(PNID, ANA)).window.refused
        event_id = await runtime.ingest.trigger(ANA, "ping", {})
        await runtime.settle(within=5)
        status, error = await runtime.store.inspect.event_status(event_id) or ("", "")
        assert status == "failed" and error is not None and "WindowClosedError" in error
    assert issubclass(WindowClosedError, Exception)


async def until_refused(runtime: Runtime) -> None:
    async with asyncio.timeout(5):
        while not (await runtime.store.sessions.get(PNID, ANA)).window.refused:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
