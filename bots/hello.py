"""The README's first bot: a greeting and one question with two buttons."""

from __future__ import annotations

from botkit import Bot, Button, Buttons, Context, Conversation, State, Text, on

ASK = Buttons("¿Querés recibir novedades?", [Button("yes", "Sí"), Button("no", "No")])


class Hello(Conversation):
    start = State(initial=True)
    asking = State(prompt=ASK)  # entering a state sends its prompt
    done = State()

    @on.text(states=[start, done], to=asking)
    async def greet(self, ctx: Context) -> None:
        await ctx.send(Text(f"¡Hola {ctx.user.name or ''}!"))

    @on.button("yes", "no", states=[asking], to=done)
    async def answer(self, ctx: Context) -> None:
        ctx.data["news"] = ctx.choice == "yes"  # persisted per user
        await ctx.send(Text("¡Anotado!"))


bot = Bot(Hello)
