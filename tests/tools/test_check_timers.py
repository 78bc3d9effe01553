"""`botkit check` on timers: handlers that can never run, reminders with nothing to send into
a closed window, last calls too close to the window's end."""

from __future__ import annotations

from datetime import timedelta

from botkit import HOLD, Context, Conversation, State, on
from botkit.tools.check import check
from tests.runtime.timer_bot import Timed


def lines(conversation: type[Conversation]) -> list[str]:
    return [str(problem) for problem in check(conversation)]


class Lonely(Conversation):
    idle = State(initial=True)
    lost = State(final=True)

    @on.text(states=[idle])
    async def talk(self, ctx: Context) -> None: ...

    @on.timeout(after=timedelta(minutes=5), states=[lost])
    async def nudge(self, ctx: Context) -> None: ...


class Forgetful(Conversation):
    idle = State(initial=True)

    @on.text()
    async def talk(self, ctx: Context) -> None: ...

    @on.timer("later")
    async def later(self, ctx: Context) -> None: ...

    @on.window_closing(before=timedelta(seconds=30))
    async def last_call(self, ctx: Context) -> None: ...


class Careful(Conversation):
    idle = State(initial=True, fallback=HOLD)

    @on.text()
    async def talk(self, ctx: Context) -> None: ...

    @on.timer("later")
    async def later(self, ctx: Context) -> None: ...


def test_a_timer_handler_only_in_unreachable_states_can_never_run() -> None:
    assert (
        "Lonely.lost: on.timeout handler nudge can never run: none of its states (lost) can be "
        "reached from 'idle'"
    ) in lines(Lonely)


def test_a_reminder_with_no_fallback_and_a_last_call_too_late() -> None:
    assert lines(Forgetful) == [
        "Forgetful.idle: reminder 'later' can message a user whose 24-hour window is closed, "
        "and neither the on.timer nor state 'idle' has a fallback; add fallback=Template(...) "
        "or fallback=HOLD",
        "warning: Forgetful.idle: on.window_closing handler last_call runs 30 s before the "
        "window ends: its messages may reach WhatsApp after it closed; give before= at least "
        "5 minutes",
    ]


def test_a_held_reminder_and_the_timer_bot_pass() -> None:
    assert lines(Careful) == []
    assert lines(Timed) == []
