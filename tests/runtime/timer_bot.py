"""A bot with every kind of timer, for the timer tests (tests/runtime/test_timers.py and
tests/store/test_timers_*): a quiet-user nudge, a last call before the window closes, and a
reminder a handler schedules and cancels."""

from __future__ import annotations

from datetime import timedelta

from botkit import HOLD, Bot, Button, Buttons, Context, Conversation, State, Text, on

NUDGE = "¿Seguís ahí?"
LAST_CALL = "Última llamada: tu ventana de chat cierra en una hora."


class Timed(Conversation):
    """idle -> asking (nudged after 30 quiet minutes) -> done (reminders)."""

    idle = State(initial=True)
    asking = State(prompt=Buttons("¿Confirmás?", [Button("yes", "Sí")]), fallback=HOLD)
    done = State(fallback=HOLD, final=True)

    @on.text(states=[idle], to=asking)
    async def start(self, ctx: Context) -> None:
        """Any text starts the question."""

    @on.text(states=[asking])
    async def chatter(self, ctx: Context) -> None:
        """Text while asking: an answer, and the question stays."""
        await ctx.send(Text("Tocá el botón, por favor."))

    @on.button("yes", states=[asking], to=done)
    async def confirmed(self, ctx: Context) -> None:
        """The answer."""
        await ctx.send(Text("¡Listo!"))

    @on.timeout(after=timedelta(minutes=30), states=[asking])
    async def nudge(self, ctx: Context) -> None:
        """The user went quiet while asked."""
        await ctx.send(Text(NUDGE))

    @on.window_closing(before=timedelta(hours=1), states=[asking])
    async def last_call(self, ctx: Context) -> None:
        """An hour before the window ends, still free-form."""
        await ctx.send(Text(LAST_CALL))

    @on.text("remind", states=[done])
    async def remind(self, ctx: Context) -> None:
        """Schedules a reminder in two hours."""
        ctx.schedule("reminder", after=timedelta(hours=2), data={"n": 1})
        await ctx.send(Text("Te aviso en dos horas."))

    @on.text("remind tomorrow", states=[done])
    async def remind_tomorrow(self, ctx: Context) -> None:
        """Schedules a reminder in 30 hours (the window will be closed: it is held)."""
        ctx.schedule("reminder", after=timedelta(hours=30), data={"n": 2})

    @on.text("cancel", states=[done])
    async def cancel(self, ctx: Context) -> None:
        """Cancels the reminder."""
        ctx.cancel("reminder")
        await ctx.send(Text("Cancelado."))

    @on.timer("reminder", states=[done])
    async def reminder(self, ctx: Context) -> None:
        """The reminder fires."""
        await ctx.send(Text(f"Recordatorio {ctx.timer_data['n']}"))


bot = Bot(Timed)
