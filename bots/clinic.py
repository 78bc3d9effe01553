"""The reference bot: a clinic that books a consultation or a lab test, in Spanish."""

from __future__ import annotations

from botkit import Bot, Button, Buttons, Context, Conversation, List, Row, Section, State, Text, on

SERVICES = {
    "general": "Consulta general",
    "specialist": "Especialista",
    "lab": "Laboratorio",
}

SERVICE_LIST = List(
    body="¡Hola! ¿Qué turno querés reservar?",
    button="Ver servicios",
    sections=[
        Section(
            "Consultas",
            [
                Row("general", "Consulta general", "30 min · $5000"),
                Row("specialist", "Especialista", "45 min · $8000"),
            ],
        ),
        Section("Estudios", [Row("lab", "Laboratorio", "Análisis de sangre")]),
    ],
)


def confirm_buttons(ctx: Context) -> Buttons:
    """Asks to confirm the service chosen."""
    service = SERVICES.get(str(ctx.data.get("service")), "el turno")
    return Buttons(
        f"Elegiste {service}. ¿Confirmás el turno?",
        [Button("confirm_yes", "Sí, confirmo"), Button("reschedule", "Reprogramar")],
    )


class Clinic(Conversation):
    """idle -> choosing_service -> confirming -> confirmed; anything unexpected re-asks."""

    idle = State(initial=True)
    choosing_service = State(prompt=SERVICE_LIST)
    confirming = State(prompt=confirm_buttons)
    confirmed = State()

    @on.text(states=[idle, confirmed], to=choosing_service)
    async def greet(self, ctx: Context) -> None:
        """Any text starts a booking: entering choosing_service sends the list."""

    @on.row(*SERVICES, states=[choosing_service], to=confirming)
    async def choose(self, ctx: Context) -> None:
        """Remembers the service; entering confirming asks to confirm it."""
        ctx.data["service"] = ctx.choice

    @on.button("confirm_yes", states=[confirming], to=confirmed)
    async def confirm(self, ctx: Context) -> None:
        """Confirms the booking."""
        service = SERVICES.get(str(ctx.data.get("service")), "tu turno")
        await ctx.send(Text(f"¡Listo! Tu turno de {service} quedó confirmado. Te esperamos."))

    @on.button("reschedule", states=[confirming], to=choosing_service)
    async def reschedule(self, ctx: Context) -> None:
        """Back to the list of services."""


bot = Bot(Clinic)
