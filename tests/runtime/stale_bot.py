"""A bot whose two questions in a row both take "sí" and "no": the case stale taps are for
(tests/runtime/test_stale.py)."""

from __future__ import annotations

from botkit import Bot, Button, Buttons, Context, Conversation, List, Row, Section, State, Text, on

MENU = List("¿Qué pizza?", "Ver", [Section("Pizzas", [Row("muzza", "Muzza"), Row("fuga", "Fuga")])])
ORDER = Buttons("¿Confirmás el pedido?", [Button("yes", "Sí"), Button("no", "No")])
DRINK = Buttons("¿Querés bebida?", [Button("yes", "Sí"), Button("no", "No")])
DONE = "¡Listo!"


class Order(Conversation):
    """Menu, confirm, drink: the confirm's and the drink's buttons have the same ids."""

    stale_taps = True

    start = State(initial=True)
    choosing = State(prompt=MENU)
    confirming = State(prompt=ORDER)
    drinking = State(prompt=DRINK)
    done = State()

    @on.text(states=[start, done], to=choosing)
    async def hello(self, ctx: Context) -> None:
        """Any text starts an order."""

    @on.row("muzza", "fuga", states=[choosing], to=confirming)
    async def pick(self, ctx: Context) -> None:
        """The pizza."""
        ctx.data["pizza"] = ctx.choice

    @on.button("yes", "no", states=[confirming], to=drinking)
    async def confirm(self, ctx: Context) -> None:
        """The order."""
        ctx.data["order"] = ctx.choice

    @on.button("yes", "no", states=[drinking], to=done)
    async def drink(self, ctx: Context) -> None:
        """The drink."""
        ctx.data["drink"] = ctx.choice
        await ctx.send(Text(DONE))


bot = Bot(Order)
