"""The 24-hour window: the Window value's rules, then the window as a running bot sees it.

The bot tests run a small conversation in the Simulator (real webhook app, SQLite, fake
GoSendAPI that enforces the window itself) and move time with `sim.advance`, never sleep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botkit import Bot, Context, Conversation, Simulator, State, Template, Text, on
from botkit.tools.simulator import SimUser
from botkit.types import JSONObject
from botkit.wire.window import WINDOW_SECONDS, Window

pytestmark = pytest.mark.anyio

HOUR = 3600.0
T0 = 1_779_199_200.0  # the ManualClock's start: the user's message in most tests
ANA = "5491140123456"
NOTICE = Template.of("window_notice", "en", body=["closed"])


# --- Window: inbound messages (provider clock), refusals (lane order), time passing ---------


def test_the_window_lasts_24_hours() -> None:
    assert WINDOW_SECONDS == 24 * 3600


def test_a_user_who_never_wrote_has_no_window() -> None:
    assert Window().closes_at is None
    assert not Window().is_open(T0)
    assert not Window().with_refusal(3).is_open(T0)


def test_it_closes_24_hours_after_the_latest_inbound() -> None:
    assert Window().with_inbound(1, T0).closes_at == T0 + 24 * HOUR


@pytest.mark.parametrize(
    ("hours", "expected"),
    [(0, True), (1, True), (23, True), (23.999, True), (24, False), (24.001, False), (25, False)],
)
def test_open_until_exactly_24_hours(hours: float, expected: bool) -> None:
    assert Window().with_inbound(1, T0).is_open(T0 + hours * HOUR) is expected


def test_an_older_message_never_moves_the_window_back() -> None:
    window = Window().with_inbound(1, T0).with_inbound(2, T0 - 30 * HOUR)
    assert window == Window(T0, 2, None)


def test_a_refusal_closes_it_until_the_user_writes_again() -> None:
    closed = Window().with_inbound(1, T0).with_refusal(1)
    assert closed.refused and not closed.is_open(T0 + HOUR)  # inside the 24 h: closed anyway
    assert closed.closes_at == T0 + 24 * HOUR
    assert closed.with_inbound(2, T0 + 2 * HOUR).is_open(T0 + 3 * HOUR)


def test_a_message_stored_after_a_refusal_reopens_it_whatever_its_timestamp_says() -> None:
    # The 403 came at 10:00:00.4 on this machine; the user's answer carries the provider's
    # whole second 10:00:00, or a clock a second behind: it was stored after the refusal.
    closed = Window().with_inbound(1, T0).with_refusal(2)
    reopened = closed.with_inbound(3, T0 - 1)
    assert reopened.is_open(T0 + 60)


def test_a_message_stored_before_the_refusal_does_not_reopen_it() -> None:
    # The refusal counted every event stored until then (lane position 3).
    window = Window().with_inbound(1, T0).with_refusal(3).with_inbound(2, T0 + HOUR)
    assert window.refused and not window.is_open(T0 + 2 * HOUR)


def test_a_failed_status_closes_it_unless_the_user_wrote_after_the_failure() -> None:
    wrote = Window().with_inbound(1, T0)
    assert wrote.with_failed_status(2, T0 + 60).refused  # failed after her message
    assert not wrote.with_failed_status(2, T0 - 60).refused  # her message came after it
    # the same whole second: the order of arrival decides, and the status came after hers
    assert wrote.with_failed_status(2, T0).refused
    assert Window().with_failed_status(2, T0).with_inbound(3, T0).is_open(T0 + 1)


def test_a_reopened_window_still_closes_after_24_hours() -> None:
    wrote = T0 + 2 * HOUR
    window = Window().with_inbound(1, T0).with_refusal(1).with_inbound(2, wrote)
    assert not window.is_open(wrote + 24 * HOUR)


def test_merging_takes_each_fields_maximum_in_any_order() -> None:
    views = [Window(T0, 1, None), Window(T0 + HOUR, 2, None), Window(T0, 1, 2), Window()]
    merged = {
        a.merge(b).merge(c).merge(d)
        for a in views
        for b in views
        for c in views
        for d in views
        if len({a, b, c, d}) == 4
    }
    assert merged == {Window(T0 + HOUR, 2, 2)}


def test_a_closure_is_never_erased_by_a_view_from_before_it() -> None:
    before = Window(T0, 1, None)  # what a trigger's handler started from
    stored = before.with_refusal(2)  # the outbox's 403 while the handler ran
    assert stored.merge(before).refused
    assert before.merge(stored).refused


# --- through the Simulator ------------------------------------------------------------------


class Echo(Conversation):
    """Replies to text (the notice template when closed); `ping` sends free-form, no fallback."""

    idle = State(initial=True)

    @on.text()
    async def echo(self, ctx: Context) -> None:
        _remember_window(ctx)
        await ctx.send(Text(f"echo: {ctx.text}"), fallback=NOTICE)

    @on.trigger("ping")
    async def ping(self, ctx: Context) -> None:
        _remember_window(ctx)
        await ctx.send(Text("ping"))

    @on.trigger("notice")
    async def notice(self, ctx: Context) -> None:
        _remember_window(ctx)
        await ctx.send(Text("ping"), fallback=NOTICE)


def _remember_window(ctx: Context) -> None:
    ctx.data["open"] = ctx.window.open
    ctx.data["closes_at"] = ctx.window.closes_at


@pytest.fixture
async def echo() -> AsyncIterator[Simulator]:
    async with Simulator(Bot(Echo)) as simulator:
        yield simulator


@pytest.fixture
def ana(echo: Simulator) -> SimUser:
    return echo.user(ANA, name="Ana")


def texts(user: SimUser) -> list[str | None]:
    """What the user received: text bodies, or the template's name."""
    return [view.text if view.type == "text" else view.template_name for view in user.messages]


async def test_a_user_who_never_wrote_gets_no_free_form_message(
    echo: Simulator, ana: SimUser
) -> None:
    await echo.trigger(ANA, "notice")
    assert texts(ana) == ["window_notice"]
    assert ana.data == {"open": False, "closes_at": None}


async def test_an_inbound_message_opens_the_window_before_the_handler_runs(
    echo: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    assert texts(ana) == ["echo: hola"]
    assert ana.data == {"open": True, "closes_at": T0 + 24 * HOUR}


async def test_23_hours_after_the_last_message_free_form_goes_out(
    echo: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await echo.advance(hours=23)
    await echo.trigger(ANA, "ping")
    assert texts(ana) == ["echo: hola", "ping"]
    assert ana.data["open"] is True
    assert [view.is_template for view in ana.messages] == [False, False]


async def test_the_window_is_measured_from_the_latest_message(
    echo: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await echo.advance(hours=20)
    await ana.says("sigo acá")
    await echo.advance(hours=20)  # 40 h after the first, 20 h after the latest
    await echo.trigger(ANA, "ping")
    assert texts(ana) == ["echo: hola", "echo: sigo acá", "ping"]
    assert ana.data["closes_at"] == T0 + 20 * HOUR + 24 * HOUR


@pytest.mark.parametrize("hours", [24, 25])
async def test_24_hours_or_more_after_the_last_message_the_fallback_goes_out(
    echo: Simulator, ana: SimUser, hours: int
) -> None:
    await ana.says("hola")
    await echo.advance(hours=hours)
    await echo.trigger(ANA, "notice")
    assert texts(ana) == ["echo: hola", "window_notice"]
    assert ana.messages[-1].is_template
    assert ana.data == {"open": False, "closes_at": T0 + 24 * HOUR}


async def test_the_window_follows_the_messages_timestamp_not_its_arrival(
    echo: Simulator, ana: SimUser
) -> None:
    # Sent 23 h ago, delivered only now (a provider retry): it opened a window that is
    # still open for one hour.
    await echo.advance(hours=30)
    now = echo.clock.now()
    delivery = await echo.fake.receive(
        wa_id=ANA, name="Ana", message=_text("tarde"), timestamp=now - 23 * HOUR
    )
    await echo.after(delivery, ana)
    assert texts(ana) == ["echo: tarde"]
    assert ana.data["closes_at"] == now + HOUR
    await echo.advance(hours=2)
    await echo.trigger(ANA, "notice")
    assert texts(ana)[-1] == "window_notice"


async def test_an_older_message_alone_leaves_the_window_closed(
    echo: Simulator, ana: SimUser
) -> None:
    now = echo.clock.now()
    delivery = await echo.fake.receive(
        wa_id=ANA, name="Ana", message=_text("vieja"), timestamp=now - 30 * HOUR
    )
    await echo.after(delivery, ana)
    assert texts(ana) == ["window_notice"]  # the reply to it fell back: closed
    assert ana.data == {"open": False, "closes_at": now - 6 * HOUR}


async def test_an_out_of_order_older_message_never_moves_the_window_back(
    echo: Simulator, ana: SimUser
) -> None:
    await ana.says("reciente")
    now = echo.clock.now()
    delivery = await echo.fake.receive(
        wa_id=ANA, name="Ana", message=_text("vieja"), timestamp=now - 30 * HOUR
    )
    await echo.after(delivery, ana)
    assert texts(ana) == ["echo: reciente", "echo: vieja"]  # still open: free-form
    assert ana.data == {"open": True, "closes_at": now + 24 * HOUR}
    assert ana.window.last_inbound_at == now
    await echo.advance(hours=23)
    await echo.trigger(ANA, "ping")
    assert texts(ana)[-1] == "ping"


async def test_the_window_is_per_business_number(echo: Simulator, ana: SimUser) -> None:
    await ana.says("hola")  # to the simulator's number
    await echo.trigger(ANA, "notice", phone_number_id="555000111222")
    [other] = [m for m in echo.sent if m.phone_number_id == "555000111222"]
    assert other.type == "template"  # Ana never wrote to that number


def _text(body: str) -> JSONObject:
    return {"type": "text", "text": {"body": body}}


class Fragile(Conversation):
    """A handler that fails on "boom"; `ping` sends free-form without a fallback."""

    idle = State(initial=True)

    @on.text()
    async def answer(self, ctx: Context) -> None:
        if ctx.text == "boom":
            raise RuntimeError("the handler's bug")
        await ctx.send(Text(f"re: {ctx.text}"))

    @on.trigger("ping")
    async def ping(self, ctx: Context) -> None:
        await ctx.send(Text("ping"))


async def test_a_message_whose_handler_failed_still_opens_the_window() -> None:
    async with Simulator(Bot(Fragile)) as sim:
        ana = sim.user(ANA, name="Ana")
        with pytest.raises(RuntimeError, match="bug"):
            await ana.says("boom")
        await sim.advance(hours=1)
        await sim.trigger(ANA, "ping")
        assert texts(ana) == ["ping"]
