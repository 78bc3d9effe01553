"""The timer decorators: mistakes in a declaration are DefinitionErrors at import, naming the
conversation, the handler and the state; ctx.schedule refuses what no handler takes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from botkit import BotkitError, Context, Conversation, DefinitionError, State, on
from botkit.conversation.context import WindowView
from botkit.wire.trigger import TriggerEvent
from botkit.wire.window import Window


def test_a_timeout_for_an_undeclared_state_names_conversation_handler_and_state() -> None:
    with pytest.raises(DefinitionError, match=r"Clinic\.nudge: state 'waiting' is not declared"):

        class Clinic(Conversation):
            idle = State(initial=True)

            @on.timeout(after=timedelta(minutes=30), states=["waiting"])
            async def nudge(self, ctx: Context) -> None: ...


@pytest.mark.parametrize("after", [timedelta(0), timedelta(minutes=-5), 0, -1.5])
def test_a_non_positive_timeout_names_conversation_handler_and_state(after: object) -> None:
    with pytest.raises(
        DefinitionError,
        match=r"Clinic\.nudge: on\.timeout\(after=\.\.\.\) in state 'idle' must be a positive",
    ):

        class Clinic(Conversation):
            idle = State(initial=True)

            @on.timeout(after=after, states=[idle])  # type: ignore[arg-type]
            async def nudge(self, ctx: Context) -> None: ...


def test_a_window_closing_must_come_within_the_window() -> None:
    with pytest.raises(
        DefinitionError, match=r"Clinic\.late: .*in states idle, busy must be under"
    ):

        class Clinic(Conversation):
            idle = State(initial=True)
            busy = State()

            @on.window_closing(before=timedelta(hours=24))
            async def late(self, ctx: Context) -> None: ...

    with pytest.raises(DefinitionError, match=r"Lab\.late: .*'idle' must be a positive"):

        class Lab(Conversation):
            idle = State(initial=True)

            @on.window_closing(before=timedelta(0), states=[idle])
            async def late(self, ctx: Context) -> None: ...


def test_a_duration_must_be_a_timedelta_or_seconds() -> None:
    with pytest.raises(
        DefinitionError, match=r"nudge: on\.timeout\(after=\.\.\.\) takes a timedelta"
    ):

        class Clinic(Conversation):
            idle = State(initial=True)

            @on.timeout(after="30m")  # type: ignore[arg-type]
            async def nudge(self, ctx: Context) -> None: ...


def test_a_reminder_name_must_be_plain() -> None:
    with pytest.raises(DefinitionError, match=r"remind: on\.timer: name 'a:b'"):

        class Clinic(Conversation):
            idle = State(initial=True)

            @on.timer("a:b")
            async def remind(self, ctx: Context) -> None: ...


class Reminding(Conversation):
    idle = State(initial=True)

    @on.timer("reminder", states=[idle])
    async def reminder(self, ctx: Context) -> None: ...


def context() -> Context:
    event = TriggerEvent.create(wa_id="5491100000000", phone_number_id="555", name="x", data={})
    return Context(Reminding.spec, event, "idle", {}, WindowView(Window(), 1000.0))


def test_schedule_refuses_a_reminder_no_handler_takes() -> None:
    with pytest.raises(
        BotkitError, match=r"no @on\.timer\('other'\).*declared reminders: reminder"
    ):
        context().schedule("other", after=60)


def test_schedule_takes_after_or_at_and_cancel_is_recorded() -> None:
    ctx = context()
    ctx.schedule("reminder", after=timedelta(minutes=1), data={"n": 1})
    ctx.schedule("reminder", at=5000.0)
    ctx.cancel("reminder")
    assert [(s.due_at, s.data) for s in ctx.scheduled] == [
        (1060.0, {"n": 1}),
        (5000.0, {}),
        (None, {}),
    ]
    with pytest.raises(BotkitError, match="give after= or at="):
        ctx.schedule("reminder")


def test_schedule_at_takes_an_aware_datetime_only() -> None:
    from datetime import UTC, datetime

    ctx = context()
    ctx.schedule("reminder", at=datetime(2030, 1, 1, tzinfo=UTC))
    assert ctx.scheduled[0].due_at == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    with pytest.raises(BotkitError, match="give the datetime a timezone"):
        ctx.schedule("reminder", at=datetime(2030, 1, 1))
