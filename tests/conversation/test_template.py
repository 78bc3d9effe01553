"""TemplateSpec: a template's approved wording, checked at import, shown as the user reads it."""

from __future__ import annotations

import pytest

from botkit import (
    Bot,
    Context,
    Conversation,
    DefinitionError,
    Simulator,
    State,
    Template,
    TemplateSpec,
    Text,
    on,
)
from botkit.tools.chat import render

pytestmark = pytest.mark.anyio

REMINDER = "Hola {{1}}, tu turno del {{2}} a las {{3}}. ¿Lo confirmás?"


def test_counts_follow_from_the_wording() -> None:
    spec = TemplateSpec(text=REMINDER, header="Turno {{1}}", buttons=["Sí", "No"])
    assert (spec.body, spec.quick_replies, spec.header_parameters) == (3, 2, 1)
    assert spec.buttons == ("Sí", "No")
    assert TemplateSpec(body=2).header_parameters is None


def test_render_fills_the_placeholders_and_keeps_the_missing_ones() -> None:
    spec = TemplateSpec(text=REMINDER, header="Turno {{1}}")
    assert spec.render(["Juan", "20/05", "10:30"], ["#12"]) == (
        "Turno #12",
        "Hola Juan, tu turno del 20/05 a las 10:30. ¿Lo confirmás?",
    )
    assert spec.render(["Juan"])[1] == "Hola Juan, tu turno del {{2}} a las {{3}}. ¿Lo confirmás?"
    assert TemplateSpec(body=2).render(["a", "b"]) == (None, "a | b")


def test_a_button_text_by_index_else_the_payload() -> None:
    spec = TemplateSpec(buttons=["Sí, confirmo"])
    assert spec.button_text(0, "yes_1") == "Sí, confirmo"
    assert spec.button_text(1, "later_1") == "later_1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "Hola {{1}} y {{3}}"}, r"TemplateSpec\(text=...\): .*got \{\{1\}\}, \{\{3\}\}"),
        ({"text": "{{1}} {{1}}"}, r"once each"),
        ({"text": "Hola {{1}}", "body": 2}, r"body=...\): 2 does not match the 1 placeholders"),
        ({"text": "   "}, r"non-empty string"),
        ({"text": "x" * 1025}, r"at most 1024 characters, got 1025"),
        ({"header": "{{1}} {{2}}"}, r"header=...\): a header takes at most one placeholder"),
        ({"buttons": ["x" * 26]}, r"buttons\[0\]=...\): a button text has 1 to 25 characters"),
        ({"buttons": "Sí"}, r"buttons=...\): expected a list of button texts"),
        ({"buttons": ["Sí"], "quick_replies": 2}, r"2 does not match the 1 button texts"),
        ({"quick_replies": 11}, r"at most 10 buttons, got 11"),
        ({"body": -1}, r"body=...\): expected a count \(0 or more\), got -1"),
    ],
)
def test_a_declaration_whatsapp_would_refuse_is_an_error(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        TemplateSpec(**kwargs)  # type: ignore[arg-type]


def _reminder(ctx: Context) -> Template:
    return Template.of("reminder", "es", body=["Juan", "20/05", "10:30"], quick_replies=["yes_1"])


class Declared(Conversation):
    templates = {"reminder": TemplateSpec(text=REMINDER, buttons=["Sí, confirmo"])}

    idle = State(initial=True)
    done = State()

    @on.trigger("remind", states=[idle], fallback=_reminder)
    async def remind(self, ctx: Context) -> None:
        await ctx.send(_reminder(ctx))

    @on.payload("yes_*", states=[idle], to=done)
    async def confirm(self, ctx: Context) -> None:
        await ctx.send(Text(f"you tapped {ctx.input.text!r}"))  # type: ignore[union-attr]


class Undeclared(Declared):
    templates = {"reminder": TemplateSpec(body=3, quick_replies=1)}


async def test_the_simulator_shows_the_declared_wording_and_taps_with_the_button_text() -> None:
    async with Simulator(Bot(Declared)) as sim:
        juan = sim.user("5491140123456", "Juan")
        await sim.trigger(juan.wa_id, "remind", {})
        shown = render(juan.last_message, Declared.templates)
        assert shown == [
            "template reminder (es)",
            "Hola Juan, tu turno del 20/05 a las 10:30. ¿Lo confirmás?",
            "[1] Sí, confirmo (yes_1)",
        ]
        await juan.taps_payload("yes_1")
        assert juan.last_message.text == "you tapped 'Sí, confirmo'"
        assert juan.transcript.splitlines()[:3] == [
            "bot: template reminder (es): Hola Juan, tu turno del 20/05 a las 10:30. ¿Lo confirmás?",
            "  quick reply: [yes_1] Sí, confirmo",
            "Juan: taps quick reply [yes_1] Sí, confirmo",
        ]


async def test_without_wording_the_parameters_and_payloads_show() -> None:
    async with Simulator(Bot(Undeclared)) as sim:
        juan = sim.user("5491140123456", "Juan")
        await sim.trigger(juan.wa_id, "remind", {})
        assert render(juan.last_message, Undeclared.templates) == [
            "template reminder (es)",
            "{{1}}=Juan  {{2}}=20/05  {{3}}=10:30",
            "[1] quick reply (yes_1)",
        ]
        await juan.taps_payload("yes_1")
        assert juan.last_message.text == "you tapped 'yes_1'"
        assert juan.transcript.splitlines()[:3] == [
            "bot: template reminder (es): Juan | 20/05 | 10:30",
            "  quick reply: yes_1",
            "Juan: taps quick reply yes_1",
        ]
