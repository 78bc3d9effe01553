"""Tests for botkit.tools.check and `botkit check`: each check has a failing conversation here."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from botkit import TemplateSpec
from botkit.conversation.context import HOLD, Context
from botkit.conversation.dsl import Conversation, State, on
from botkit.tools.check import check
from botkit.tools.cli import main
from botkit.wire.messages import Button, Buttons, List, Row, Section, Template, Text

YES_NO = Buttons("¿Seguimos?", [Button("yes", "Sí"), Button("no", "No")])


def lines(conversation: type[Conversation]) -> list[str]:
    return [str(problem) for problem in check(conversation)]


class Unreachable(Conversation):
    idle = State(initial=True)
    done = State(final=True)
    orphan = State(final=True)

    @on.text(states=[idle], to=done)
    async def finish(self, ctx: Context) -> None: ...


class DeadEnd(Conversation):
    idle = State(initial=True)
    stuck = State()

    @on.text(states=[idle], to=stuck)
    async def go(self, ctx: Context) -> None: ...


class UnhandledButton(Conversation):
    idle = State(initial=True)
    asking = State(prompt=YES_NO)

    @on.text(to=asking)
    async def ask(self, ctx: Context) -> None: ...

    @on.button("yes", states=[asking], to=idle)
    async def yes(self, ctx: Context) -> None: ...


def rows_prompt(ctx: Context) -> List:
    rows = [Row("small", "Chica"), Row("large", "Grande")]
    return List("¿Qué tamaño?", "Ver", [Section("Tamaños", rows)])


class UnhandledRow(Conversation):
    idle = State(initial=True)
    sizing = State(prompt=rows_prompt)

    @on.text(to=sizing)
    async def ask(self, ctx: Context) -> None: ...

    @on.row("small", states=[sizing], to=idle)
    async def small(self, ctx: Context) -> None: ...


class UnofferedHandler(Conversation):
    idle = State(initial=True)
    asking = State(prompt=YES_NO)

    @on.text(to=asking)
    async def ask(self, ctx: Context) -> None: ...

    @on.button("yes", "no", "maybe", states=[asking], to=idle)
    async def answer(self, ctx: Context) -> None: ...


def four_buttons(ctx: Context) -> Buttons:
    return Buttons("¿Cuál?", [Button(f"b{i}", f"Botón {i}") for i in range(4)])


class TooManyButtons(Conversation):
    idle = State(initial=True)
    asking = State(prompt=four_buttons, final=True)

    @on.text(to=asking)
    async def ask(self, ctx: Context) -> None: ...


def needs_name(ctx: Context) -> Text:
    return Text(f"Hola {ctx.data['name']}")


class PromptRaises(Conversation):
    idle = State(initial=True)
    greeting = State(prompt=needs_name, final=True)

    @on.text(to=greeting)
    async def greet(self, ctx: Context) -> None: ...


class WrongTemplate(Conversation):
    templates = {"reminder": TemplateSpec(body=2)}

    idle = State(initial=True)
    asking = State(prompt=YES_NO, fallback=Template.of("reminder", "es", body=["Ana"]))

    @on.text(states=[idle], to=asking)
    async def ask(self, ctx: Context) -> None: ...

    @on.button("yes", "no", states=[asking], to=idle)
    async def answer(self, ctx: Context) -> None: ...

    @on.trigger("remind", to=asking)
    async def remind(self, ctx: Context) -> None: ...


class SilentTrigger(Conversation):
    idle = State(initial=True)
    told = State(final=True)

    @on.text(states=[idle], to=told)
    async def hello(self, ctx: Context) -> None: ...

    @on.trigger("news", requires=["headline"], to=told)
    async def news(self, ctx: Context) -> None:
        await ctx.send(Text(str(ctx.input.data["headline"])))  # type: ignore[union-attr]


class HeldTrigger(Conversation):
    idle = State(initial=True)
    told = State(final=True)

    @on.text(states=[idle], to=told)
    async def hello(self, ctx: Context) -> None: ...

    @on.trigger("news", requires=["headline"], to=told, fallback=HOLD)
    async def news(self, ctx: Context) -> None:
        await ctx.send(Text(str(ctx.input.data["headline"])))  # type: ignore[union-attr]


class NeedsData(Conversation):
    idle = State(initial=True)
    greeting = State(prompt=lambda ctx: Text(f"Hola {ctx.data['name']}"), final=True)
    examples = [{"name": "Ana"}]

    @on.text(states=[idle], to=greeting)
    async def greet(self, ctx: Context) -> None:
        ctx.data["name"] = ctx.text


class OneStateEcho(Conversation):
    idle = State(initial=True)

    @on.text()
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(f"echo {ctx.text}"))


class ForgetsAwait(Conversation):
    idle = State(initial=True)

    @on.text()
    async def greet(self, ctx: Context) -> None:
        ctx.send(Text("hola"))  # the mistake under test: no await

    @on.button("both")
    async def both(self, context: Context) -> None:
        await asyncio.gather(context.send(Text("uno")), context.send(Text("dos")))
        return context.send(Text("tres"))  # type: ignore[return-value]


def test_the_clinic_passes() -> None:
    import bots.clinic

    assert lines(bots.clinic.Clinic) == []


def test_an_unreachable_state() -> None:
    assert lines(Unreachable) == [
        "Unreachable.orphan: unreachable from the initial state 'idle'; add a route with "
        "to=orphan into it, or remove it (ctx.goto moves are not seen)"
    ]


def test_a_state_with_no_way_out_that_is_not_final() -> None:
    assert lines(DeadEnd) == [
        "DeadEnd.stuck: no way out: no route leaves this state; add a route with to=... from "
        "it, or mark it State(final=True)"
    ]


def test_a_button_offered_by_the_prompt_and_handled_nowhere() -> None:
    assert lines(UnhandledButton) == [
        "UnhandledButton.asking: button 'no' is offered by the prompt but no handler in asking "
        "takes it; add @on.button('no', states=[asking], to=...) or remove the button"
    ]


def test_a_row_offered_by_a_callable_prompt_and_handled_nowhere() -> None:
    assert lines(UnhandledRow) == [
        "UnhandledRow.sizing: row 'large' is offered by the prompt but no handler in sizing "
        "takes it; add @on.row('large', states=[sizing], to=...) or remove the row"
    ]


def test_a_handler_for_an_id_no_prompt_offers_is_a_warning() -> None:
    problems = check(UnofferedHandler)
    assert [str(p) for p in problems] == [
        "warning: UnofferedHandler.asking: answer handles button 'maybe', which no prompt of "
        "asking offers; offer it, or remove the id"
    ]
    assert problems[0].warning


def test_a_prompt_over_whatsapps_limits() -> None:
    assert lines(TooManyButtons) == [
        "TooManyButtons.asking: the prompt breaks a WhatsApp limit (with empty user data): "
        "Buttons.buttons: at most 3 reply buttons, got 4; fix it"
    ]


def test_a_prompt_that_raises_on_sample_data_is_a_warning_naming_the_exception() -> None:
    assert lines(PromptRaises) == [
        "warning: PromptRaises.greeting: evaluating the prompt with empty user data raised "
        "KeyError: 'name'; make it work with the data it can get, declare examples = [{...}] "
        "of the data it needs, or check it by hand"
    ]


def test_a_prompt_needs_to_work_with_one_sample_only_such_as_a_declared_example() -> None:
    assert lines(NeedsData) == []


def test_a_valid_one_state_echo_bot_has_nothing_to_say() -> None:
    assert lines(OneStateEcho) == []


def test_the_pizza_example_passes_with_its_declared_examples_and_templates() -> None:
    import bots.pizza

    assert lines(bots.pizza.Pizza) == []


def test_a_send_not_awaited_is_an_error_naming_the_handler_and_line() -> None:
    first = inspect.getsourcelines(ForgetsAwait.greet)[1]
    second = inspect.getsourcelines(ForgetsAwait.both)[1]
    assert [line for line in lines(ForgetsAwait) if "without await" in line] == [
        f"ForgetsAwait.greet: line {first + 2} calls ctx.send(...) without await: the event "
        "would fail and nothing be sent; write `await ctx.send(...)`",
        f"ForgetsAwait.both: line {second + 3} calls ctx.send(...) without await: the event "
        "would fail and nothing be sent; write `await ctx.send(...)`",
    ]


def test_a_template_with_the_wrong_number_of_body_parameters() -> None:
    assert lines(WrongTemplate) == [
        "WrongTemplate.asking: template 'reminder' (the fallback template) has 1 body "
        "parameters, declared 2; pass 2, or fix the declaration"
    ]


def test_a_trigger_with_no_template_fallback_and_no_hold() -> None:
    assert lines(SilentTrigger) == [
        "SilentTrigger.told: trigger 'news' can message a user whose 24-hour window is closed, "
        "and neither the trigger nor state 'told' has a fallback; add fallback=Template(...) "
        "or fallback=HOLD to the on.trigger or the State",
        "SilentTrigger.idle: trigger 'news' handler news sends a free-form message with no "
        "fallback for a closed window; add fallback=Template(...) or fallback=HOLD to the "
        "on.trigger",
    ]
    assert lines(HeldTrigger) == []


def test_botkit_check_exits_0_for_the_clinic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "bots.clinic"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "0 errors, 0 warnings" in captured.err


def test_botkit_check_exits_1_with_one_line_per_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "tests.tools.test_check:DeadEnd"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == lines(DeadEnd)


def test_botkit_check_exits_0_with_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.tools.test_check:UnofferedHandler"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("warning: ")
    assert len(lines(UnofferedHandler)) == 1
    assert "0 errors, 1 warning\n" in captured.err  # not "1 warnings"


def test_botkit_check_has_nothing_to_say_of_the_echo_bot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "tests.tools.echo_bot"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "botkit check: 0 errors, 0 warnings\n")


def test_botkit_check_exits_1_for_a_send_without_await(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.tools.test_check:ForgetsAwait"]) == 1
    assert "ForgetsAwait.greet: line " in capsys.readouterr().out


class Gathers(Conversation):
    coalesce = 2

    idle = State(initial=True, final=True)

    @on.text("menu", states=[idle])
    async def menu(self, ctx: Context) -> None: ...

    @on.text(regex=r"^\d+$", states=[idle])
    async def number(self, ctx: Context) -> None: ...

    @on.text(states=[idle])
    async def anything(self, ctx: Context) -> None: ...


class Separate(Conversation):  # the same handlers, each text a turn of its own
    idle = State(initial=True, final=True)

    @on.text("menu", states=[idle])
    async def menu(self, ctx: Context) -> None: ...


def test_word_and_regex_text_handlers_of_a_coalescing_conversation_are_warned_about() -> None:
    found = lines(Gathers)
    assert len(found) == 2 and all(
        line.startswith("warning: Gathers.idle: on.text") for line in found
    )
    assert "handler menu matches menu" in found[0] and "joined by newlines" in found[0]
    assert "handler number matches /^\\d+$/" in found[1]
    assert lines(Separate) == []
