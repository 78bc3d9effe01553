"""Status events: correlated with the outbox row through the provider's message id, never
moving backwards, duplicates changing nothing; and conversations that handle them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botkit import (
    Bot,
    Context,
    Conversation,
    DefinitionError,
    Simulator,
    State,
    StatusUpdate,
    Template,
    Text,
    WindowClosedError,
    on,
)
from botkit.store.base import OutboxRecord
from botkit.tools.simulator import SentView, SimUser

pytestmark = pytest.mark.anyio

JUAN = "5491140123456"
ANA = "5491155550000"
NOTICE = Template.of("window_notice", "en")


async def row_of(sim: Simulator, view: SentView) -> OutboxRecord:
    """The outbox row of a message the provider accepted."""
    [found] = [r for r in await sim.outbox() if r.provider_message_id == view.message_id]
    return found


# --- correlation and ordering (the clinic bot) ----------------------------------------------


async def test_the_provider_message_id_is_stored_when_the_send_succeeds(
    sim: Simulator, juan: SimUser
) -> None:
    await juan.says("hola")
    [row] = await sim.outbox(JUAN)
    assert row.provider_message_id == juan.last_message.message_id
    assert (row.status, row.delivery_status) == ("sent", None)  # no status event yet


async def test_sent_delivered_read_are_recorded_on_the_row(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    shown = juan.last_message
    seen = []
    for status in ("sent", "delivered", "read"):
        await sim.status(shown, status)
        seen.append((await row_of(sim, shown)).delivery_status)
    assert seen == ["sent", "delivered", "read"]
    assert (await row_of(sim, shown)).status == "sent"  # the outbox's own state is untouched


async def test_juan_reads(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await juan.reads()
    assert (await row_of(sim, juan.last_message)).delivery_status == "read"


async def test_each_status_goes_to_its_own_message(sim: Simulator, juan: SimUser) -> None:
    ana = sim.user(ANA, name="Ana")
    await juan.says("hola")
    await ana.says("hola")
    await juan.picks("lab")
    first, second = juan.messages
    await sim.status(first, "read")
    await sim.status(second, "delivered")
    await sim.status(ana.last_message, "sent")
    assert (await row_of(sim, first)).delivery_status == "read"
    assert (await row_of(sim, second)).delivery_status == "delivered"
    assert (await row_of(sim, ana.last_message)).delivery_status == "sent"


async def test_a_redelivered_status_event_changes_nothing(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    shown = juan.last_message
    delivered = await sim.status(shown, "delivered")
    await sim.status(shown, "read")
    again = await sim.redeliver(delivered)
    assert again.response == {"accepted": 0, "duplicates": 1}
    assert (await row_of(sim, shown)).delivery_status == "read"


async def test_the_same_status_twice_changes_nothing(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    shown = juan.last_message
    await sim.status(shown, "delivered")
    before = await row_of(sim, shown)
    await sim.status(shown, "delivered")
    assert await row_of(sim, shown) == before
    assert juan.state == "choosing_service" and len(juan.messages) == 1


@pytest.mark.parametrize("late", ["sent", "delivered"])
async def test_read_then_a_late_earlier_status_stays_read(
    sim: Simulator, juan: SimUser, late: str
) -> None:
    await juan.says("hola")
    shown = juan.last_message
    await juan.reads(shown)
    await sim.status(shown, late)
    assert (await row_of(sim, shown)).delivery_status == "read"


async def test_delivered_then_a_late_sent_stays_delivered(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    shown = juan.last_message
    await sim.status(shown, "delivered")
    await sim.status(shown, "sent")
    assert (await row_of(sim, shown)).delivery_status == "delivered"


async def test_statuses_do_not_move_the_conversation_nor_the_window(
    sim: Simulator, juan: SimUser
) -> None:
    await juan.says("hola")
    session = juan.session
    await sim.advance(hours=23)
    await sim.status(juan.last_message, "read")
    await juan.refresh()
    assert juan.session == session
    assert len(juan.messages) == 1


# --- conversations that handle statuses -----------------------------------------------------


class Watcher(Conversation):
    """Answers text; on a failed message says sorry and moves to `trouble`."""

    idle = State(initial=True)
    trouble = State()

    @on.text(states=[idle])
    async def answer(self, ctx: Context) -> None:
        await ctx.send(Text(f"re: {ctx.text}"))

    @on.status("failed", to=trouble)
    async def failed(self, ctx: Context) -> None:
        update = ctx.input
        if not isinstance(update, StatusUpdate):
            raise TypeError(f"expected a StatusUpdate, got {update!r}")
        ctx.data["failed"] = {
            "message_id": update.message_id,
            "status": update.status,
            "codes": [error.code for error in update.errors],
            "wa_id": ctx.user.wa_id,
        }
        await ctx.send(Text("Perdón, no pudimos enviarte el mensaje."), fallback=NOTICE)

    @on.status("read", states=[trouble])
    async def read_in_trouble(self, ctx: Context) -> None:
        ctx.data["read_in_trouble"] = True


@pytest.fixture
async def watcher() -> AsyncIterator[Simulator]:
    async with Simulator(Bot(Watcher)) as simulator:
        yield simulator


async def test_a_failed_status_reaches_the_handler_as_ctx_input(watcher: Simulator) -> None:
    ana = watcher.user(ANA, name="Ana")
    await ana.says("hola")
    original = ana.last_message
    await watcher.status(original, "failed", code=131026)
    await ana.refresh()
    assert ana.state == "trouble"
    assert ana.data["failed"] == {
        "message_id": original.message_id,
        "status": "failed",
        "codes": [131026],
        "wa_id": ANA,
    }
    assert [view.text for view in ana.messages] == [
        "re: hola",
        "Perdón, no pudimos enviarte el mensaje.",
    ]
    assert (await row_of(watcher, original)).delivery_status == "failed"


async def test_statuses_without_a_handler_in_the_state_are_ignored(watcher: Simulator) -> None:
    ana = watcher.user(ANA, name="Ana")
    await ana.says("hola")
    await ana.reads()  # read is only handled in `trouble`
    await ana.refresh()
    assert (ana.state, ana.data) == ("idle", {})
    await watcher.status(ana.messages[0], "failed", code=131026)
    await ana.reads(ana.last_message)
    await ana.refresh()
    assert ana.state == "trouble" and ana.data["read_in_trouble"] is True


async def test_a_handler_sending_after_a_131047_falls_back(watcher: Simulator) -> None:
    ana = watcher.user(ANA, name="Ana")
    await ana.says("hola")
    await watcher.status(ana.last_message, "failed", code=131047)
    await ana.refresh()
    assert ana.state == "trouble"
    assert [view.type for view in ana.messages] == ["text", "template"]
    assert ana.last_message.template_name == "window_notice"
    assert all(r.status == 200 for r in watcher.fake.requests)  # no free-form attempt


def test_an_unknown_status_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="opened"):

        class Wrong(Conversation):
            idle = State(initial=True)

            @on.status("opened")
            async def opened(self, ctx: Context) -> None: ...


class Apologetic(Conversation):
    """On a failed message, sends free-form without a fallback."""

    idle = State(initial=True)

    @on.text()
    async def answer(self, ctx: Context) -> None:
        await ctx.send(Text(f"re: {ctx.text}"))

    @on.status("failed")
    async def failed(self, ctx: Context) -> None:
        ctx.data["window_open"] = ctx.window.open
        await ctx.send(Text("Perdón"))


async def test_a_handler_of_a_131047_sees_the_window_closed() -> None:
    async with Simulator(Bot(Apologetic)) as sim:
        ana = sim.user(ANA, name="Ana")
        await ana.says("hola")
        with pytest.raises(WindowClosedError):
            await sim.status(ana.last_message, "failed", code=131047)
