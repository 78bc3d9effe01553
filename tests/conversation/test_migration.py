"""Flow versions: users stored in a renamed or removed state move where `migrations` says."""

from __future__ import annotations

from pathlib import Path

import pytest

from botkit import (
    HOLD,
    Bot,
    Context,
    Conversation,
    DefinitionError,
    Migration,
    Simulator,
    State,
    Text,
    on,
)
from botkit.types import ManualClock

pytestmark = pytest.mark.anyio
JUAN = "5491140123456"


def v1() -> Bot:
    """The first version."""

    class Flow(Conversation):
        idle = State(initial=True)
        choosing = State(prompt=Text("¿Qué querés?"))
        waitlist = State()

        @on.text(states=[idle], to=choosing)
        async def hello(self, ctx: Context) -> None: ...

        @on.text("lista", states=[choosing], to=waitlist)
        async def wait(self, ctx: Context) -> None:
            ctx.data["waiting"] = True

        @on.text(states=[choosing, waitlist])
        async def echo(self, ctx: Context) -> None:
            await ctx.send(Text(f"v1 {ctx.state}"))

    return Bot(Flow)


def v2() -> Bot:
    """The same conversation (same name) after a deploy."""

    class Flow(Conversation):
        """choosing is now choosing_service; waitlist is gone (back to idle, told why)."""

        migrations = {
            "choosing": "choosing_service",
            "waitlist": Migration("idle", Text("Cerramos la lista de espera; empecemos de nuevo.")),
        }

        idle = State(initial=True)
        choosing_service = State(prompt=Text("¿Qué querés?"))

        @on.text(states=[idle], to=choosing_service)
        async def hello(self, ctx: Context) -> None:
            await ctx.send(Text(f"v2 hello, data {sorted(ctx.data)}"))

        @on.text(states=[choosing_service])
        async def echo(self, ctx: Context) -> None:
            await ctx.send(Text(f"v2 {ctx.state}"))

        @on.trigger("news", requires=["text"], fallback=HOLD)
        async def news(self, ctx: Context) -> None:
            await ctx.send(Text(str(ctx.trigger_data["text"])))

    return Bot(Flow)


async def test_a_renamed_state_keeps_its_users_where_they_were(tmp_path: Path) -> None:
    clock, db = ManualClock(), tmp_path / "bot.db"
    async with Simulator(v1(), database=db, clock=clock) as sim:
        juan = sim.user(JUAN, "Juan")
        await juan.says("hola")
        assert juan.state == "choosing"
    async with Simulator(v2(), database=db, clock=clock) as sim:  # the deploy
        juan = sim.user(JUAN, "Juan")
        await juan.says("pizza")
        assert juan.last_message.text == "v2 choosing_service"
        assert juan.state == "choosing_service"


async def test_a_removed_state_sends_its_message_then_the_new_state_answers(
    tmp_path: Path,
) -> None:
    clock, db = ManualClock(), tmp_path / "bot.db"
    async with Simulator(v1(), database=db, clock=clock) as sim:
        juan = sim.user(JUAN, "Juan")
        await juan.says("hola")
        await juan.says("lista")
        assert (juan.state, juan.data) == ("waitlist", {"waiting": True})
    async with Simulator(v2(), database=db, clock=clock) as sim:
        juan = sim.user(JUAN, "Juan")
        before = len(juan.messages)
        await juan.says("hola")
        assert [m.text for m in juan.messages[before:]] == [
            "Cerramos la lista de espera; empecemos de nuevo.",
            "v2 hello, data ['waiting']",  # the data is kept
            "¿Qué querés?",
        ]
        await juan.says("otra")
        assert juan.last_message.text == "v2 choosing_service"  # told once


async def test_a_migration_message_waits_for_a_closed_window(tmp_path: Path) -> None:
    clock, db = ManualClock(), tmp_path / "bot.db"
    async with Simulator(v1(), database=db, clock=clock) as sim:
        juan = sim.user(JUAN, "Juan")
        await juan.says("hola")
        await juan.says("lista")
    clock.advance(25 * 3600)
    async with Simulator(v2(), database=db, clock=clock) as sim:
        juan = sim.user(JUAN, "Juan")
        before = len(juan.messages)
        await sim.trigger(JUAN, "news", {"text": "Abrimos el sábado"})
        assert (juan.messages[before:], juan.state) == ([], "idle")  # migrated; both held
        await juan.says("hola")
        assert [m.text for m in juan.messages[before:]] == [
            "Cerramos la lista de espera; empecemos de nuevo.",
            "Abrimos el sábado",
            "v2 hello, data ['waiting']",
            "¿Qué querés?",
        ]


def test_a_migration_for_a_state_that_exists_is_an_error() -> None:
    with pytest.raises(DefinitionError, match=r"Bad.migrations\['idle'\]: 'idle' is a state"):

        class Bad(Conversation):
            migrations = {"idle": "idle"}
            idle = State(initial=True)


@pytest.mark.parametrize(
    ("migrations", "message"),
    [
        ({"old": "nowhere"}, r"Bad.migrations\['old'\]: 'nowhere' is not declared in Bad; "),
        ({"old": 3}, r"expected a state name or Migration\(to, message\), got int"),
        ({"old": Migration("idle", "hola")}, r"takes a message such as Text\(...\), not str"),
        ({"": "idle"}, r"an old state's name must be a non-empty string"),
        (["old"], r"Bad.migrations: expected a dict"),
    ],
)
def test_a_bad_migration_is_an_error_naming_it(migrations: object, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        type("Bad", (Conversation,), {"migrations": migrations, "idle": State(initial=True)})
