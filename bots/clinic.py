"""The reference bot: a clinic that books a consultation or a lab test, and reminds of appointments.

A user who goes quiet while asked to confirm gets a nudge after 30 minutes (CLINIC_NUDGE_SECONDS
sets another delay, so that a person can watch it fire in a live `botkit run`).
"""

from __future__ import annotations

import os
from datetime import timedelta

from botkit import (
    Bot,
    Button,
    Buttons,
    Context,
    Conversation,
    List,
    Row,
    Section,
    State,
    Template,
    TemplateSpec,
    Text,
    on,
)

SERVICES = {
    "general": "Consulta general",
    "specialist": "Especialista",
    "lab": "Laboratorio",
}
REMINDER_DATA = ("name", "date", "time", "appointment_id")
NUDGE_AFTER = timedelta(seconds=float(os.environ.get("CLINIC_NUDGE_SECONDS", "1800")))
NUDGE = "¿Seguís ahí? Tu turno todavía no está confirmado."

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
CONFIRM_BUTTONS = [Button("confirm_yes", "Sí, confirmo"), Button("reschedule", "Reprogramar")]


def confirm_buttons(ctx: Context) -> Buttons:
    """Asks to confirm the service chosen, or the appointment a reminder is about."""
    appointment = ctx.data.get("appointment")
    if isinstance(appointment, dict):
        return Buttons(
            f"Hola {appointment['name']}, te recordamos tu turno del {appointment['date']} "
            f"a las {appointment['time']}. ¿Lo confirmás?",
            CONFIRM_BUTTONS,
        )
    service = SERVICES.get(str(ctx.data.get("service")), "el turno")
    return Buttons(f"Elegiste {service}. ¿Confirmás el turno?", CONFIRM_BUTTONS)


def reminder_template(ctx: Context) -> Template | None:
    """The approved template that reminds of an appointment when the 24-hour window is closed."""
    appointment = ctx.data.get("appointment")
    if not isinstance(appointment, dict):
        return None
    return Template.of(
        "appointment_reminder",
        "es_AR",
        body=[str(appointment["name"]), str(appointment["date"]), str(appointment["time"])],
        quick_replies=[f"confirm_yes_apt_{appointment['appointment_id']}"],
    )


class Clinic(Conversation):
    """idle -> choosing_service -> confirming -> confirmed; anything unexpected re-asks."""

    # The approved templates it sends, with the wording Meta approved: `botkit check bots.clinic`
    # compares them with what the bot sends, and the simulators show them as the user reads them.
    templates = {
        "appointment_reminder": TemplateSpec(
            text="Hola {{1}}, te recordamos tu turno del {{2}} a las {{3}}. ¿Lo confirmás?",
            buttons=["Sí, confirmo"],
        )
    }

    idle = State(initial=True)
    choosing_service = State(prompt=SERVICE_LIST)
    confirming = State(prompt=confirm_buttons, fallback=reminder_template)
    confirmed = State()

    @on.text(states=[idle, confirmed], to=choosing_service)
    async def greet(self, ctx: Context) -> None:
        """Any text starts a booking: entering choosing_service sends the list."""

    @on.row(*SERVICES, states=[choosing_service], to=confirming)
    async def choose(self, ctx: Context) -> None:
        """Remembers the service; entering confirming asks to confirm it."""
        ctx.data["service"] = ctx.choice
        ctx.data.pop("appointment", None)

    @on.button("confirm_yes", states=[confirming], to=confirmed)
    @on.payload("confirm_yes_apt_*", states=[confirming], to=confirmed)
    async def confirm(self, ctx: Context) -> None:
        """Confirms the booking, from the buttons or from the reminder template's quick reply."""
        appointment = ctx.data.pop("appointment", None)
        if isinstance(appointment, dict):
            what = f"del {appointment['date']} a las {appointment['time']}"
        else:
            what = f"de {SERVICES.get(str(ctx.data.get('service')), 'tu consulta')}"
        await ctx.send(Text(f"¡Listo! Tu turno {what} quedó confirmado. Te esperamos."))

    @on.button("reschedule", states=[confirming], to=choosing_service)
    async def reschedule(self, ctx: Context) -> None:
        """Back to the list of services."""
        ctx.data.pop("appointment", None)

    @on.timeout(after=NUDGE_AFTER, states=[confirming])
    async def nudge(self, ctx: Context) -> None:
        """The user went quiet while asked to confirm: once per silence (a closed window gets
        the state's fallback, the appointment's reminder template)."""
        await ctx.send(Text(NUDGE))

    @on.text("persona", "hablar con una persona", "humano")
    async def human(self, ctx: Context) -> None:
        """In any state, "persona" hands the user to the clinic's staff until they resume."""
        await ctx.send(Text("Te comunico con una persona del equipo; te va a escribir por acá."))
        await ctx.handoff(reason="pidió hablar con una persona")

    @on.trigger("remind", requires=REMINDER_DATA, to=confirming)
    async def remind(self, ctx: Context) -> None:
        """An appointment reminder: entering confirming asks to confirm it (a template if closed)."""
        data = ctx.trigger_data
        ctx.data["appointment"] = {key: str(data[key]) for key in REMINDER_DATA}


bot = Bot(Clinic)
