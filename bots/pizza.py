"""A second example bot: a pizzeria that takes an order and says when it leaves for delivery.

idle -> choosing (menu photo + list) -> sizing (buttons) -> counting (typed quantity) ->
locating (shared location) -> confirming (buttons) -> ordered; the application's
`out_for_delivery` trigger tells an ordered customer that the order is on its way, as a
template when the 24-hour window is closed. Anything unexpected re-asks; "cancelar" cancels.
Taps on an older message than the latest list or buttons are stale (`stale_taps`): the
confirmation of an earlier order cannot confirm this one, and a pick from an old menu says so.
"""

from __future__ import annotations

import re
from pathlib import Path

from botkit import (
    Bot,
    Button,
    Buttons,
    Context,
    Conversation,
    Image,
    List,
    LocationInput,
    Row,
    Section,
    State,
    Template,
    TemplateSpec,
    Text,
    on,
)
from botkit.types import JSONObject

ASSETS = Path(__file__).parent / "assets"

# id: (name, ingredients, price of a mediana in pesos)
CLASSICS = {
    "muzzarella": ("Muzzarella", "Muzzarella, aceitunas y orégano", 9000),
    "napolitana": ("Napolitana", "Tomate en rodajas, ajo y albahaca", 10500),
    "fugazzeta": ("Fugazzeta", "Cebolla y muzzarella", 10000),
}
SPECIALS = {
    "cuatro_quesos": ("Cuatro quesos", "Muzzarella, roquefort, parmesano y provolone", 13000),
    "calabresa": ("Calabresa", "Longaniza calabresa y morrón asado", 12500),
    "rucula": ("Rúcula y crudo", "Rúcula, jamón crudo y parmesano", 14000),
}
PIZZAS = {**CLASSICS, **SPECIALS}
# id: (label, price difference with the mediana)
SIZES = {"chica": ("chica", -2000), "mediana": ("mediana", 0), "grande": ("grande", 3000)}
MAX_PIZZAS = 10
DELIVERY_DATA = ("order_id", "eta_minutes")
QUANTITY = re.compile(r"(\d+)(?:\s*pizzas?)?")

MENU_PHOTO = Image.from_file(ASSETS / "menu.png", caption="Nuestro menú de hoy 🍕")


def price(amount: int) -> str:
    """Pesos the Argentine way: 10500 -> "$10.500"."""
    return f"${amount:,}".replace(",", ".")


def _rows(pizzas: dict[str, tuple[str, str, int]]) -> list[Row]:
    return [
        Row(key, name, f"{about} · {price(cost)}") for key, (name, about, cost) in pizzas.items()
    ]


MENU = List(
    body="¡Hola! Bienvenido a Pizzería Don Botkit. ¿Qué pizza querés? (precios de la mediana)",
    button="Ver el menú",
    sections=[Section("Clásicas", _rows(CLASSICS)), Section("Especiales", _rows(SPECIALS))],
    footer="Escribí «cancelar» para salir",
)
COUNT_PROMPT = Text(f"¿Cuántas querés? Escribí un número del 1 al {MAX_PIZZAS}.")
LOCATION_PROMPT = Text(
    "¿A dónde te la llevamos? Compartí tu ubicación: tocá 📎 y elegí «Ubicación». "
    "No tomamos direcciones escritas: con la ubicación el repartidor llega sin vueltas."
)
LOCATION_REASK = Text(
    "Necesito tu ubicación compartida, no una dirección escrita: tocá 📎, elegí «Ubicación» "
    "y enviá tu ubicación actual o buscá la de entrega."
)
CANCELLED = Text("Listo, cancelamos el pedido. Cuando quieras pedir de nuevo, escribinos.")


def unit_price(data: JSONObject) -> int:
    """The price of one pizza of the chosen kind and size."""
    return PIZZAS[str(data["pizza"])][2] + SIZES[str(data["size"])][1]


def order_line(data: JSONObject) -> str:
    """E.g. "2 x Napolitana grande"."""
    name = PIZZAS[str(data["pizza"])][0]
    return f"{data['quantity']} x {name} {SIZES[str(data['size'])][0]}"


def total(data: JSONObject) -> int:
    """What the whole order costs."""
    quantity = data["quantity"]
    return unit_price(data) * (quantity if isinstance(quantity, int) else 1)


def size_buttons(ctx: Context) -> Buttons:
    """The three sizes of the pizza chosen, with their prices."""
    pizza = str(ctx.data["pizza"])
    buttons = [
        Button(key, f"{label.capitalize()} · {price(PIZZAS[pizza][2] + extra)}")
        for key, (label, extra) in SIZES.items()
    ]
    return Buttons(f"{PIZZAS[pizza][0]}, ¡buena elección! ¿De qué tamaño?", buttons)


def confirm_buttons(ctx: Context) -> Buttons:
    """The order, the total and the delivery place, to confirm or cancel."""
    body = (
        f"Tu pedido:\n{order_line(ctx.data)} ({price(unit_price(ctx.data))} c/u)\n"
        f"Total: {price(total(ctx.data))}\nEntrega en: {ctx.data['place']}\n¿Lo confirmamos?"
    )
    return Buttons(body, [Button("confirm", "Confirmar"), Button("cancel", "Cancelar")])


def delivery_template(ctx: Context) -> Template:
    """The approved template that says the order left, for a closed 24-hour window."""
    data = ctx.trigger_data
    return Template.of(
        "order_out_for_delivery",
        "es_AR",
        body=[str(data["order_id"]), order_line(ctx.data), str(data["eta_minutes"])],
    )


def _place(where: LocationInput) -> str:
    label = where.name or where.address or f"{where.latitude:.5f}, {where.longitude:.5f}"
    return label[:200]


def _quoted(text: str) -> str:
    text = " ".join(text.split())
    return f"«{text[:40]}…»" if len(text) > 40 else f"«{text}»"


class Pizza(Conversation):
    """Menu, size, quantity, location, confirmation; then the out_for_delivery trigger."""

    # the approved templates it sends, with the wording Meta approved (checked by botkit check,
    # shown by the simulators)
    templates = {
        "order_out_for_delivery": TemplateSpec(
            text="¡Tu pedido #{{1}} ({{2}}) salió! Llega en unos {{3}} minutos."
        )
    }
    # the data an order has gathered by the time it is confirmed, for `botkit check`
    examples = [{"pizza": "napolitana", "size": "grande", "quantity": 2, "place": "Obelisco"}]
    # a tap on an older list or buttons than the latest: the notice, then the current question
    stale_taps = True
    stale_text = Text("Ese botón es de un mensaje anterior. Seguimos desde acá 👇")

    idle = State(initial=True)
    choosing = State(prompt=MENU)
    sizing = State(prompt=size_buttons)
    counting = State(prompt=COUNT_PROMPT)
    locating = State(prompt=LOCATION_PROMPT)
    confirming = State(prompt=confirm_buttons)
    ordered = State()

    @on.text(states=[idle, ordered], to=choosing)
    @on.fallback(states=[idle])
    async def start(self, ctx: Context) -> None:
        """Text (in idle, anything) starts an order: the photo; entering choosing sends the list."""
        ctx.data.clear()
        await ctx.send(MENU_PHOTO)
        ctx.goto(self.choosing)

    @on.row(*PIZZAS, states=[choosing], to=sizing)
    async def choose(self, ctx: Context) -> None:
        """Remembers the pizza; entering sizing asks for the size."""
        ctx.data["pizza"] = ctx.choice

    @on.stale(states=[choosing])
    async def old_menu(self, ctx: Context) -> None:
        """A pick from an earlier menu: say so; the current menu follows."""
        await ctx.send(Text("Ese menú es de antes. Elegí tu pizza de este 👇"))

    @on.button(*SIZES, states=[sizing], to=counting)
    async def size(self, ctx: Context) -> None:
        """Remembers the size; entering counting asks how many."""
        ctx.data["size"] = ctx.choice

    @on.text(states=[counting], to=locating)
    async def count(self, ctx: Context) -> None:
        """A quantity from 1 to 10 moves on; anything else says what is wrong and stays."""
        typed = (ctx.text or "").strip()
        found = QUANTITY.fullmatch(typed.casefold())
        if found is None:
            await ctx.send(
                Text(
                    f"No entendí {_quoted(typed)} como cantidad. Escribí solo el número, "
                    f"del 1 al {MAX_PIZZAS} (por ejemplo: 2)."
                )
            )
            ctx.stay()
            return
        quantity = int(found.group(1))
        if not 1 <= quantity <= MAX_PIZZAS:
            await ctx.send(
                Text(
                    f"Preparamos de 1 a {MAX_PIZZAS} pizzas por pedido y escribiste {quantity}. "
                    "¿Cuántas querés?"
                )
            )
            ctx.stay()
            return
        ctx.data["quantity"] = quantity

    @on.location(states=[locating], to=confirming)
    async def locate(self, ctx: Context) -> None:
        """Remembers where to deliver; entering confirming shows the order."""
        where = ctx.input
        if isinstance(where, LocationInput):
            ctx.data["location"] = {"latitude": where.latitude, "longitude": where.longitude}
            ctx.data["place"] = _place(where)

    @on.text(states=[locating])
    async def typed_address(self, ctx: Context) -> None:
        """A written address is not taken: say how to share the location instead."""
        await ctx.send(LOCATION_REASK)

    @on.button("confirm", states=[confirming], to=ordered)
    async def confirm(self, ctx: Context) -> None:
        """Confirms the order with its summary."""
        await ctx.send(
            Text(
                f"¡Pedido confirmado! {order_line(ctx.data)}. Total: {price(total(ctx.data))}, "
                f"se paga al recibir. Lo llevamos a {ctx.data['place']}; te avisamos cuando salga."
            )
        )

    @on.button("cancel", states=[confirming], to=idle)
    @on.text("cancelar", states=[choosing, sizing, counting, locating, confirming], to=idle)
    async def cancel(self, ctx: Context) -> None:
        """Drops the order at any step."""
        ctx.data.clear()
        await ctx.send(CANCELLED)

    @on.trigger(
        "out_for_delivery", requires=DELIVERY_DATA, states=[ordered], fallback=delivery_template
    )
    async def out_for_delivery(self, ctx: Context) -> None:
        """The application says the order left: tell the customer (a template if closed)."""
        data = ctx.trigger_data
        ctx.data["order_id"] = str(data["order_id"])
        await ctx.send(
            Text(
                f"¡Tu pedido #{data['order_id']} ({order_line(ctx.data)}) salió! "
                f"Llega en unos {data['eta_minutes']} minutos."
            )
        )


bot = Bot(Pizza)
