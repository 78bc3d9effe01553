"""Bursts (Conversation.coalesce) through the Simulator: a user's consecutive texts reach a
text handler as one turn, in order with everything else the user does, once, also across a
restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from botkit import (
    Bot,
    Button,
    Buttons,
    Context,
    Conversation,
    DefinitionError,
    Migration,
    Simulator,
    State,
    Text,
    on,
)
from botkit.fake.provider import FakeGoSendAPI
from botkit.runtime.runtime import Runtime
from botkit.runtime.turn import MAX_ATTEMPTS, take_turn
from botkit.store.base import InboxItem, InboxLane, Session
from botkit.store.timers import TimerRecord, fired_event
from botkit.tools.simulator import SimUser
from botkit.types import ManualClock
from botkit.web.app import create_app
from botkit.wire.idempotency import idempotency_key
from botkit.wire.window import Window
from tests.runtime.test_timers_replicas import PNID, SECRET, USERS, fire_at_once, settings
from tests.runtime.test_turn import NOW, PN, T0, text_item

pytestmark = pytest.mark.anyio

ANA = "5491155550000"
ASK = Buttons("¿Algo más?", [Button("no", "No"), Button("si", "Sí")])


class Chat(Conversation):
    """Answers each burst of texts with what it read; a tap moves on."""

    coalesce = timedelta(seconds=2)

    talking = State(initial=True)
    asked = State(prompt=ASK)
    done = State()

    @on.text("boom", states=[talking])
    async def explode(self, ctx: Context) -> None:
        raise RuntimeError("the handler's bug")

    @on.text(states=[talking], to=asked)
    async def read(self, ctx: Context) -> None:
        ctx.data["bursts"] = [*ctx.data.get("bursts", []), list(ctx.texts)]  # type: ignore[misc]
        await ctx.send(Text(f"Leí {len(ctx.texts)}: {ctx.text}"))

    @on.text(states=[asked, done])
    async def again(self, ctx: Context) -> None:
        await ctx.send(Text(f"Otra vez {len(ctx.texts)}: {ctx.text}"))

    @on.button("no", "si", states=[asked], to=done)
    async def answer(self, ctx: Context) -> None:
        await ctx.send(Text(f"Tocó {ctx.choice}"))

    @on.trigger("ping", states=[talking, asked, done])
    async def ping(self, ctx: Context) -> None:
        await ctx.send(Text("pong"))


bot = Bot(Chat)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(bot) as simulator:
        yield simulator


@pytest.fixture
def ana(sim: Simulator) -> SimUser:
    return sim.user(ANA, name="Ana")


def texts(user: SimUser) -> list[str | None]:
    return [message.text or message.type for message in user.messages]


async def sent(sim: Simulator) -> list[object]:
    """The bodies of the text replies in the outbox, whatever became of them at the provider."""
    rows = await sim.outbox(ANA)
    return [r.payload.get("body") for r in rows if r.type == "text" and isinstance(r.payload, dict)]


async def gathered_then_stopped(database: Path, clock: ManualClock) -> None:
    """Ana sends two texts to a botkit that stops before their burst ends."""
    async with Simulator(bot, database=database, clock=clock) as first:
        ana = first.user(ANA)
        await ana.says("hola")
        await ana.says("sigo")
        assert ana.messages == []


async def test_texts_within_the_interval_reach_the_handler_as_one_turn(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await ana.says("quiero")
    await ana.says("una pizza")
    assert ana.messages == []  # gathered: the interval has not passed
    assert ana.state == "talking"
    await sim.advance(seconds=1.9)
    assert ana.messages == []
    await sim.advance(seconds=0.2)
    assert texts(ana) == ["Leí 3: hola\nquiero\nuna pizza", "¿Algo más?"]
    assert ana.state == "asked"
    assert ana.data == {"bursts": [["hola", "quiero", "una pizza"]]}  # botkit's key is hidden


async def test_each_text_starts_the_interval_again(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await sim.advance(seconds=1.5)
    await ana.says("sigo")
    await sim.advance(seconds=1.5)  # 3 s after the first text, 1.5 s after the last
    assert ana.messages == []
    await sim.advance(seconds=0.6)
    assert texts(ana)[0] == "Leí 2: hola\nsigo"


async def test_a_text_after_the_interval_is_a_turn_of_its_own(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await sim.advance(seconds=3)
    await ana.says("¿hay alguien?")
    await sim.advance(seconds=3)
    assert texts(ana) == ["Leí 1: hola", "¿Algo más?", "Otra vez 1: ¿hay alguien?"]


async def test_a_tap_ends_the_burst_first_and_is_handled_after_it(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await sim.advance(seconds=3)
    asked = ana.last_message
    await ana.says("no sé")
    await ana.says("creo que no")
    await ana.taps("no", on=asked)  # no waiting: the texts run first, then the tap
    assert texts(ana)[2:] == ["Otra vez 2: no sé\ncreo que no", "Tocó no"]
    assert ana.state == "done"
    await sim.advance(seconds=5)  # the burst's timer was cancelled: nothing runs twice
    assert len(ana.messages) == 4
    assert await sim.runtime.store.inspect.timers(ANA) == []


async def test_a_trigger_ends_the_burst_first(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await sim.trigger(ANA, "ping")
    assert texts(ana) == ["Leí 1: hola", "¿Algo más?", "pong"]


async def test_a_status_does_not_end_the_burst(sim: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await sim.advance(seconds=3)
    await ana.says("uno")
    await ana.reads()  # the provider reports the prompt read: not the user's input
    assert len(ana.messages) == 2
    await ana.says("dos")
    await sim.advance(seconds=2)
    assert texts(ana)[-1] == "Otra vez 2: uno\ndos"


async def test_each_burst_is_answered_once_under_a_key_of_its_last_text(
    sim: Simulator, ana: SimUser
) -> None:
    await ana.says("a")
    last = await ana.says("b")
    await sim.advance(seconds=2)
    [reply] = [row for row in await sim.outbox(ANA) if row.type == "text"]
    assert reply.status == "sent"
    assert reply.idempotency_key == idempotency_key(str(last.envelope["id"]), 0)
    keys = [row.idempotency_key for row in await sim.outbox(ANA)]
    assert len(keys) == len(set(keys))


async def test_a_user_who_never_stops_typing_is_answered_after_five_intervals(
    sim: Simulator, ana: SimUser
) -> None:
    for n in range(8):
        await ana.says(f"t{n}")
        await sim.advance(seconds=1.5)  # always less than the interval
    # the burst's first text came at 0 s; it ended at 10 s (five intervals), after t6
    [first, *_] = [m.text for m in ana.messages]
    assert first == "Leí 7: t0\nt1\nt2\nt3\nt4\nt5\nt6"


async def test_a_burst_of_twenty_texts_ends_at_once(sim: Simulator, ana: SimUser) -> None:
    for n in range(20):
        await ana.says(f"t{n}")
    assert texts(ana)[0] == "Leí 20: " + "\n".join(f"t{n}" for n in range(20))


async def test_a_failing_handler_fails_its_burst_only(sim: Simulator, ana: SimUser) -> None:
    await ana.says("boom")
    with pytest.raises(RuntimeError, match="the handler's bug"):
        await sim.advance(seconds=2)
    assert ana.messages == [] and ana.state == "talking"
    await ana.says("hola")
    await sim.advance(seconds=2)
    assert texts(ana) == ["Leí 1: hola", "¿Algo más?"]  # "boom" is not in it: it was handled
    failed = await sim.runtime.repairs().events(status="failed")
    assert len(failed) == 1 and "the handler's bug" in str(failed[0])


async def test_a_burst_survives_a_restart_and_is_answered_once(tmp_path: Path) -> None:
    clock = ManualClock()
    await gathered_then_stopped(tmp_path / "bursts.db", clock)
    clock.advance(60)  # down for a minute: the burst's timer came due meanwhile
    async with Simulator(bot, database=tmp_path / "bursts.db", clock=clock) as second:
        await second.settle()
        assert await sent(second) == ["Leí 2: hola\nsigo"]
        await second.advance(seconds=10)
        assert len(await sent(second)) == 1


class Desk(Conversation):
    coalesce = 2

    start = State(initial=True)

    @on.text("persona", states=[start])
    async def human(self, ctx: Context) -> None:
        await ctx.handoff(reason="pidió una persona")

    @on.text(states=[start])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text("BOT: " + (ctx.text or "")))


async def test_a_handed_off_users_texts_go_to_the_people_one_by_one() -> None:
    async with Simulator(Bot(Desk)) as sim:
        ana = sim.user(ANA)
        await ana.says("persona")
        await sim.advance(seconds=2)
        assert ana.handoff is not None
        await ana.says("hola")
        await ana.says("¿están?")
        assert [body["message"]["body"] for body in sim.desk.messages] == ["hola", "¿están?"]
        assert all("parts" not in body["message"] for body in sim.desk.messages)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (0, "give more than 0"),
        (-1.5, "give more than 0"),
        (timedelta(minutes=2), "at most 60s"),
        ("2s", "takes a timedelta or seconds"),
        (True, "takes a timedelta or seconds"),
    ],
)
def test_a_bad_interval_is_an_error_naming_the_conversation(value: object, says: str) -> None:
    with pytest.raises(DefinitionError, match=f"Bad.coalesce.*{says}"):
        type("Bad", (Conversation,), {"coalesce": value, "start": State(initial=True)})


async def test_two_runtimes_on_one_postgresql_database_answer_each_burst_once(
    postgres_url: str,
) -> None:
    # each user's texts reach one replica or the other; both fire the burst timers at once
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, webhook_url="http://bot/webhook", webhook_secret=SECRET)
    transport = httpx.ASGITransport(app=fake.app)
    first = Runtime(bot, settings(postgres_url), clock=clock, transport=transport)
    second = Runtime(bot, settings(postgres_url), clock=clock, transport=transport)
    apps = [create_app(first), create_app(second)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        for n, text in enumerate(["hola", "quiero", "turno"]):
            fake.webhook_transport = httpx.ASGITransport(app=apps[n % 2])
            for wa_id in USERS:
                message = {"type": "text", "text": {"body": text}}
                delivery = await fake.receive(wa_id=wa_id, message=message, phone_number_id=PNID)
                assert delivery.status_code == 200
            await asyncio.gather(first.settle(autojump=clock), second.settle(autojump=clock))
        assert not any(fake.messages_to(wa_id) for wa_id in USERS)  # all gathering
        clock.advance(2)
        await fire_at_once(first, second, clock)
        for wa_id in USERS:
            bodies = [m.body["text"]["body"] for m in fake.messages_to(wa_id) if m.type == "text"]  # type: ignore[index, call-overload]
            assert bodies == ["Leí 3: hola\nquiero\nturno"], wa_id


# the same conversation (the same name) after a deploy that turned coalescing off
Plain: type[Conversation] = type("Chat", (Chat,), {"coalesce": None})


async def test_a_burst_left_by_a_deploy_that_turned_coalesce_off_is_answered_first(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    await gathered_then_stopped(tmp_path / "bursts.db", clock)
    async with Simulator(Bot(Plain), database=tmp_path / "bursts.db", clock=clock) as second:
        await second.user(ANA).says("tercero")  # before the burst's timer: the burst goes first
        assert await sent(second) == ["Leí 2: hola\nsigo", "Otra vez 1: tercero"]
        await second.advance(seconds=10)  # the old timer fires: nothing is answered twice
        assert len(await sent(second)) == 2


class Reminding(Conversation):
    coalesce = 2

    start = State(initial=True)

    @on.text(states=[start])
    async def read(self, ctx: Context) -> None:
        if ctx.text == "arma":
            ctx.schedule("nudge", after=3)
        if ctx.text == "cancela":
            ctx.cancel("nudge")
        await ctx.send(Text(f"leí: {ctx.text}"))

    @on.timer("nudge", states=[start])
    async def nudge(self, ctx: Context) -> None:
        await ctx.send(Text("NUDGE"))


async def test_a_timer_due_while_texts_gather_runs_after_them_and_sees_what_they_did() -> None:
    async with Simulator(Bot(Reminding)) as sim:
        ana = sim.user(ANA)
        await ana.says("arma")
        await sim.advance(seconds=2)  # the reminder is set now, due 3 s later
        await sim.advance(seconds=2)
        await ana.says("cancela")  # gathered 1 s before the reminder is due
        await sim.advance(seconds=10)
        assert texts(ana) == ["leí: arma", "leí: cancela"]  # the burst cancelled it first


async def test_a_text_after_a_burst_that_handed_off_goes_to_the_people() -> None:
    # a backlog: "persona" (its burst hands off), then "hola" more than the interval later
    lane = InboxLane(
        PN, ANA, "c",
        (text_item(1, "persona", timestamp=T0), text_item(2, "hola", timestamp=T0 + 5)),
        None, Window(), 1,
    )  # fmt: skip
    outcome = (await take_turn(Desk(), lane, NOW)).outcome
    assert [(send.type, send.cause) for send in outcome.sends] == [("botkit.handoff", "evt_2")]
    assert outcome.session is not None and "botkit.burst" not in outcome.session.data
    assert [(t.name, t.due_at) for t in outcome.timers if t.name == "burst:texts"] == [
        ("burst:texts", None)
    ]


class Waiting(Conversation):
    idle = State(initial=True)
    waitlist = State()

    @on.text(states=[idle], to=waitlist)
    async def wait(self, ctx: Context) -> None:
        await ctx.send(Text("en espera"))


class Migrated(Conversation):
    coalesce = 2
    migrations = {"waitlist": Migration("idle", Text("Cerramos la lista de espera."))}

    idle = State(initial=True)

    @on.text(states=[idle])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(f"eco: {' + '.join(ctx.texts)}"))


async def test_a_migrations_message_goes_first_when_the_user_next_writes_texts(
    tmp_path: Path,
) -> None:
    clock, database = ManualClock(), tmp_path / "migrated.db"
    async with Simulator(Bot(Waiting), database=database, clock=clock) as first:
        await first.user(ANA).says("hola")
    second_bot = Bot(type("Waiting", (Migrated,), {}))  # the same conversation, version 2
    async with Simulator(second_bot, database=database, clock=clock) as second:
        ana = second.user(ANA)
        await ana.says("vuelvo")  # its first text: not gathered, so the message goes at once
        await ana.says("otra")
        await ana.says("más")
        await second.advance(seconds=3)
        assert (await sent(second))[1:] == [
            "Cerramos la lista de espera.",
            "eco: vuelvo",
            "eco: otra + más",
        ]


class Poison(Conversation):
    coalesce = 2

    start = State(initial=True)

    @on.text(states=[start])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text("BOT: " + (ctx.text or "")))


async def test_a_burst_whose_claim_was_given_up_on_is_dropped_not_run_again() -> None:
    first = (
        await take_turn(
            Poison(), InboxLane(PN, ANA, "c", (text_item(1, "poison"),), None, Window(), 1), NOW
        )
    ).outcome
    [written] = [t for t in first.timers if t.name == "burst:texts"]
    assert written.due_at is not None
    fired = fired_event(
        TimerRecord(PN, ANA, written.name, written.due_at, written.payload, written.timer_id)
    )
    item = InboxItem(100, 2, fired.event_id, "timer", PN, ANA, fired.envelope)
    # the timer's turn killed the worker ten times: the eleventh claim gives up
    lane = InboxLane(PN, ANA, "c", (item,), first.session, first.window, MAX_ATTEMPTS + 1)
    given_up = (await take_turn(Poison(), lane, NOW + 3)).outcome
    [result] = given_up.results
    assert result.status == "failed" and "burst of 1 texts it ended was dropped" in (
        result.error or ""
    )
    assert given_up.session is not None and "botkit.burst" not in given_up.session.data
    later = InboxLane(
        PN, ANA, "c", (text_item(3, "hola", timestamp=T0 + 600),), given_up.session,
        given_up.window, 1,
    )  # fmt: skip
    assert (await take_turn(Poison(), later, NOW + 600)).outcome.sends == ()  # gathered, alone


async def test_a_burst_ended_by_another_event_has_its_own_report() -> None:
    lane = InboxLane(
        PN, ANA, "c", tuple(text_item(n, f"t{n}") for n in range(1, 21)), None, Window(), 1
    )
    turn = await take_turn(Poison(), lane, NOW)  # the 20th text fills the burst: it runs now
    [burst] = [r for r in turn.reports if r.kind == "burst"]
    assert burst.event_id == "evt_20/burst" and len(burst.sent) == 1
    assert [r.sent for r in turn.reports if r.kind != "burst"] == [()] * 20  # texts send nothing


class Leaving(Conversation):
    coalesce = 2

    asking = State(initial=True)
    done = State()

    @on.text(states=[asking])
    async def got(self, ctx: Context) -> None:
        ctx.goto("done")

    @on.timeout(after=timedelta(minutes=30), states=[asking])
    async def nudge(self, ctx: Context) -> None:
        await ctx.send(Text("nudge"))


async def test_a_full_burst_that_leaves_a_timed_state_cancels_its_timeout() -> None:
    spec = Leaving.spec
    stored = Session(PN, ANA, spec.name, "asking", {"botkit.timers": {"entered": 2}}, spec.version)
    texts = tuple(text_item(n, f"t{n}") for n in range(5, 25))  # 20: the burst runs at once
    outcome = (
        await take_turn(Leaving(), InboxLane(PN, ANA, "c", texts, stored, Window(T0, 4), 1), NOW)
    ).outcome
    assert outcome.session is not None and outcome.session.state == "done"
    assert outcome.session.data["botkit.timers"] == {"entered": 24}  # entered done at the 20th
    assert ("timeout:nudge", None) in [(t.name, t.due_at) for t in outcome.timers]
