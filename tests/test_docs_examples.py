"""The documentation's Python examples, run: each block of the README and docs/ has a runner here
that executes it as a reader would use it (a bot module in the Simulator, a test under pytest,
a fragment inside the class it belongs to) and checks that it does what the page says.

A new example without a runner fails `test_every_example_has_a_runner`: the docs cannot grow an
example that nobody ran.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import bots.pizza
from botkit import Bot, BotkitError, Simulator, logsafe
from botkit.provider.ratelimit import RateLimiter
from botkit.provider.sender import Sender
from botkit.tools.cli import main
from botkit.types import JSON
from botkit.wire.messages import Template
from tests.fake_api import fake_api_process
from tests.test_docs import ROOT, examples

pytestmark = pytest.mark.anyio

Runner = Callable[[str, Path], Awaitable[None]]
RUNNERS: dict[str, Runner] = {}
JUAN = "5491140123456"


def runs(where: str) -> Callable[[Runner], Runner]:
    def register(runner: Runner) -> Runner:
        RUNNERS[where] = runner
        return runner

    return register


def module(code: str, name: str = "docs_example") -> types.ModuleType:
    """The example executed as a module of its own (as a reader's file would be)."""
    found = types.ModuleType(name)
    exec(compile(code, name, "exec"), found.__dict__)
    return found


def test_every_example_has_a_runner() -> None:
    assert sorted(where for where, _ in examples() if where not in RUNNERS) == []
    assert sorted(where for where in RUNNERS if where not in dict(examples())) == []


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
async def test_the_example_does_what_its_page_says(where: str, code: str, tmp_path: Path) -> None:
    await RUNNERS[where](code, tmp_path)


@runs("README.md#1")
async def _hello(code: str, tmp_path: Path) -> None:
    async with Simulator(module(code).bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("hola")
        assert [m.text for m in juan.messages] == ["¡Hola Juan!", "¿Querés recibir novedades?"]
        assert juan.last_message.button_ids == ["yes", "no"]
        await juan.taps("yes")
        assert (juan.last_message.text, juan.state, juan.data) == (
            "¡Anotado!",
            "done",
            {"news": True},
        )


@runs("README.md#2")
async def _through_time(code: str, tmp_path: Path) -> None:
    # versions: users stored by the deployed version in states this one renamed or removed
    database = tmp_path / "clinic.db"
    async with Simulator(module(README_OLD_CLINIC, "old_clinic").bot, database=database) as sim:
        await sim.user(ANA, "Ana").says("hola")
        luis = sim.user(LUIS, "Luis")
        await luis.says("hola")
        await luis.says("lista")
        assert (sim.user(ANA).state, luis.state) == ("choosing", "waitlist")
        clock = sim.clock
    bot: Bot = module(code).bot
    async with Simulator(bot, database=database, clock=clock) as sim:
        ana, luis = sim.user(ANA, "Ana"), sim.user(LUIS, "Luis")
        await ana.says("hola")  # renamed: in confirming, which asks again
        assert (ana.state, ana.last_message.text) == ("confirming", "¿Confirmás el turno?")
        seen = len(luis.messages)
        await luis.says("hola")  # removed: told, then in idle, which takes the message
        assert [m.text for m in luis.messages[seen:]] == [
            "Cerramos la lista de espera.",
            "¿Confirmás el turno?",
        ]
        assert luis.state == "confirming"

        # timers: the quiet nudge, the window's last call, a reminder and its cancellation
        juan = sim.user(JUAN, "Juan")
        await juan.says("hola")
        question = juan.last_message
        await sim.advance(minutes=29)
        assert len(juan.messages) == 1  # the question only
        await sim.advance(minutes=2)
        assert juan.last_message.text == "¿Seguís ahí?"
        await sim.advance(hours=22, minutes=30)  # an hour before the window ends
        assert juan.last_message.text == "Última llamada: ¿confirmás?"

        # stale taps: the question asked again makes the first one's button stale
        await juan.says("sí")  # not a tap: the question again
        assert juan.last_message.text == "¿Confirmás el turno?"
        await juan.taps("yes", on=question)
        assert juan.state == "confirming"
        assert [m.text for m in juan.messages[-2:]] == [
            "Ese botón es de un mensaje anterior.",
            "¿Confirmás el turno?",
        ]
        await juan.taps("yes")
        assert juan.state == "confirmed"
        [reminder] = await sim.runtime.store.inspect.timers(JUAN)
        assert reminder.name == "reminder"
        await ana.taps("yes")
        await ana.says("cancelar")
        assert (ana.state, await sim.runtime.store.inspect.timers(ANA)) == ("idle", [])
        await sim.advance(hours=20)
        assert juan.last_message.text == "Te recordamos tu turno."
        assert "Te recordamos tu turno." not in [m.text for m in ana.messages]

        # handoff: people answer; after 30 minutes of silence the bot resumes in idle
        await juan.says("persona")
        assert juan.last_message.text == "Te comunico con una persona."
        assert juan.handoff is not None and juan.handoff.reason == "pidió una persona"
        await juan.says("hola")  # to the people, not to `start`
        assert (juan.state, juan.last_message.text) == ("confirmed", "Te comunico con una persona.")
        assert sim.desk.messages[-1]["message"]["body"] == "hola"
        await sim.reply(JUAN, "Hola Juan, soy Ana")
        assert juan.last_message.text == "Hola Juan, soy Ana"
        await sim.advance(minutes=29)
        assert juan.handoff is not None
        await sim.advance(minutes=2)
        assert (juan.handoff, juan.state) == (None, "idle")
        # the same from Python, as a desk's code would: bot.handoff, bot.reply, bot.resume
        await bot.handoff(JUAN, reason="reclamo")
        await bot.reply(JUAN, "Soy Ana otra vez")
        await sim.settle()
        await juan.refresh()
        assert juan.handoff is not None and juan.handoff.reason == "reclamo"
        assert juan.last_message.text == "Soy Ana otra vez"
        await bot.resume(JUAN, state="confirming")
        await sim.settle()
        await juan.refresh()
        assert (juan.handoff, juan.state) == (None, "confirming")
        assert juan.last_message.text == "¿Confirmás el turno?"  # the state's prompt

    # `botkit check --write-lock` remembers the states (under `version`); a state gone
    # without a migration then fails the check
    (tmp_path / "clinic_v.py").write_text(README_OLD_CLINIC)
    assert (await _check(tmp_path, "--write-lock")).returncode == 0
    (tmp_path / "clinic_v.py").write_text(code)
    assert (await _check(tmp_path, "--write-lock")).returncode == 0
    lock = json.loads((tmp_path / "botkit.lock").read_text())["conversations"]["clinic_v.Clinic"]
    assert {state: lock[state] for state in ("idle", "confirming", "confirmed")} == {
        "idle": "2",
        "confirming": "2",
        "confirmed": "2",
    }
    (tmp_path / "clinic_v.py").write_text(code.replace('"choosing": "confirming",', ""))
    refused = await _check(tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "state 'choosing' (in botkit.lock" in refused.stdout + refused.stderr


async def _check(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "botkit.tools.cli", "check", "clinic_v", *extra]
    environment = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}
    return await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


LUIS = "5491140777777"
README_OLD_CLINIC = """
from botkit import Bot, Context, Conversation, State, Text, on


class Clinic(Conversation):
    idle = State(initial=True)
    choosing = State(prompt=Text("¿Qué turno querés?"))
    waitlist = State(final=True)  # a dead end, as botkit check wants it said

    @on.text(states=[idle], to=choosing)
    async def greet(self, ctx: Context) -> None: ...

    @on.text("lista", states=[choosing], to=waitlist)
    async def wait(self, ctx: Context) -> None: ...


bot = Bot(Clinic)
"""


@runs("docs/guide/check.md#1")
async def _templates(code: str, tmp_path: Path) -> None:
    declared = module(code).Pizza.templates
    assert declared == bots.pizza.Pizza.templates  # the page shows what the example bot declares
    assert declared["order_out_for_delivery"].body == 3
    assert await asyncio.to_thread(main, ["check", "bots.pizza"]) == 0


@runs("docs/guide/conversations.md#1")
async def _clinic(code: str, tmp_path: Path) -> None:
    async with Simulator(module(code).bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("hola")
        assert juan.last_message.row_ids == ["general", "specialist", "lab"]
        await juan.picks("lab")
        assert juan.last_message.text == "Elegiste lab. ¿Confirmás el turno?"
        await juan.taps("reschedule")
        assert juan.state == "choosing_service"
        await juan.picks("general")
        await juan.taps("confirm_yes")
        assert (juan.state, juan.data) == ("confirmed", {"service": "general"})
        assert juan.last_message.text == "¡Listo! Tu turno quedó confirmado."


@runs("docs/guide/rate-limits.md#1")
async def _limiter(code: str, tmp_path: Path) -> None:
    # against `botkit fake-api` over real HTTP; the page's "..." sends two templates
    async with fake_api_process() as base:
        names: dict[str, Any] = {"url": f"{base}/v1", "key": "gsk_test_docs", "send": _two}
        code = code.replace("    ...  # each send", "    await send(sender)  # each send")
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        await eval(compile(code, "rate-limits.md", "exec", flags=flags), names)
        async with httpx.AsyncClient() as client:
            sent = (await client.get(f"{base}/_fake/messages")).json()
    limiter: RateLimiter = names["limiter"]
    assert (limiter.rate_for("555000000001"), limiter.rate_for("555123456789")) == (1000, 80)
    assert [m["to"] for m in sent] == [JUAN, JUAN]


async def _two(sender: Sender) -> None:
    template = Template.of("appointment_reminder", "es_AR", body=["Juan", "lunes 3", "10:00"])
    for n, number in enumerate(("555000000001", "555123456789")):
        await sender.send(
            phone_number_id=number,
            to=JUAN,
            type="template",
            payload=template.payload(),
            idempotency_key=f"docs-{n}",
        )


@runs("docs/guide/testing-conversations.md#1")
async def _simulator_test(code: str, tmp_path: Path) -> None:
    await module(code).test_booking()


@runs("docs/guide/testing.md#1")
async def _plugin_test(code: str, tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_booking.py").write_text(code)  # where the page's comment has it
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    for extra in (["--snapshot-update"], []):  # writes the golden file, then compares with it
        done = await asyncio.to_thread(
            subprocess.run,
            command + extra,
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 passed" in done.stdout
    golden = (tmp_path / "tests" / "snapshots" / "booking.txt").read_text()
    assert "Juan: picks (lab) Laboratorio\n" in golden


@runs("docs/guide/triggers.md#1")
async def _trigger(code: str, tmp_path: Path) -> None:
    # a method of a conversation: here inside the smallest one it fits in
    source = "from botkit import Bot, Context, Conversation, State, on\n\n\n" + (
        "class Clinic(Conversation):\n"
        "    idle = State(initial=True)\n"
        "    confirming = State()\n\n" + textwrap.indent(code, "    ") + "\n\nbot = Bot(Clinic)\n"
    )
    data: dict[str, JSON] = {
        "name": "Juan",
        "date": "lunes 3",
        "time": "10:00",
        "appointment_id": "123",
    }
    async with Simulator(module(source).bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await sim.trigger(JUAN, "remind", data)
        assert (juan.state, juan.data) == ("confirming", {"appointment": data})
        with pytest.raises(BotkitError, match="date"):
            await sim.trigger(JUAN, "remind", {"name": "Juan"})


@runs("docs/guide/timers.md#1")
async def _timers(code: str, tmp_path: Path) -> None:
    bot: Bot = module(code).bot
    async with Simulator(bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("hola")
        await sim.advance(minutes=29)
        assert juan.state == "confirming" and len(juan.messages) == 1  # the question only
        await sim.advance(minutes=2)
        assert juan.last_message.text == "¿Seguís ahí? Tu turno todavía no está confirmado."
        await sim.advance(hours=22, minutes=30)  # an hour before the window ends
        assert (juan.last_message.type, juan.last_message.text) == (
            "text",
            "Última llamada: ¿confirmás?",
        )
        await juan.taps("yes")
        await sim.advance(hours=20)
        assert juan.last_message.text == "Te recordamos tu turno."
        ana = sim.user("5491140000009", name="Ana")
        await ana.says("hola")
        await ana.taps("yes")
        await ana.says("cancelar")
        assert await sim.runtime.store.inspect.timers(ana.wa_id) == []
        await sim.advance(hours=21)
        assert ana.last_message.text == "No te recordamos nada."


@runs("docs/guide/stale-taps.md#1")
async def _stale_taps(code: str, tmp_path: Path) -> None:
    async with Simulator(module(code).bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("hola")
        confirmation = juan.last_message
        await juan.taps("yes")
        await juan.taps("no", on=confirmation)  # in drinking: stale, the drink is not taken
        assert juan.state == "drinking" and "drink" not in juan.data
        assert [m.text for m in juan.messages[-2:]] == [
            "Ese botón es de un mensaje anterior.",
            "¿Querés bebida?",
        ]
        await juan.taps("no")
        assert juan.state == "done" and juan.data == {"order": "yes", "drink": "no"}
        await juan.taps("yes", on=confirmation)  # in done: too_late answers, nothing follows
        assert juan.last_message.text == "Tu pedido ya está hecho; «yes» llegó tarde."
        assert juan.state == "done"


@runs("docs/guide/bursts.md#1")
async def _bursts(code: str, tmp_path: Path) -> None:
    async with Simulator(module(code).bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("hola")
        await sim.advance(seconds=1)
        await juan.says("quería saber")
        await juan.says("¿tienen turno el lunes?")
        await sim.advance(seconds=1.9)
        assert juan.messages == []  # 1.9 s after the last text: still gathering
        await sim.advance(seconds=0.1)
        assert [m.text for m in juan.messages] == [
            "Recibí 3 mensajes: hola / quería saber / ¿tienen turno el lunes?"
        ]


@runs("docs/guide/handoff.md#1")
async def _handoff_handler(code: str, tmp_path: Path) -> None:
    # a method of a conversation: here inside the smallest one it fits in
    source = "from botkit import Bot, Context, Conversation, State, Text, on\n\n\n" + (
        "class Clinic(Conversation):\n"
        "    idle = State(initial=True)\n\n"
        + textwrap.indent(code, "    ")
        + "\n\nbot = Bot(Clinic)\n"
    )
    async with Simulator(module(source).bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("Persona ")
        assert (
            juan.last_message.text
            == "Te comunico con una persona del equipo; te va a escribir por acá."
        )
        assert juan.handoff is not None and juan.handoff.reason == "pidió hablar con una persona"
        await juan.says("¿hola?")
        assert len(juan.messages) == 1
        assert [body["message"]["body"] for body in sim.desk.messages] == ["¿hola?"]


@runs("docs/guide/handoff.md#2")
async def _handoff_receiver(code: str, tmp_path: Path) -> None:
    import time

    from botkit.wire.handoff import signature

    verified = module(code).verified
    body, now = b'{"wa_id": "5491140123456"}', str(int(time.time()))
    headers = {"x-botkit-timestamp": now, "x-botkit-signature": signature("s3cret", now, body)}
    assert verified("s3cret", headers, body)
    assert not verified("other", headers, body)
    assert not verified("s3cret", headers, body + b" ")
    old = str(int(time.time()) - 3600)
    stale = {"x-botkit-timestamp": old, "x-botkit-signature": signature("s3cret", old, body)}
    assert not verified("s3cret", stale, body)


@runs("docs/guide/handoff.md#3")
async def _handoff_test(code: str, tmp_path: Path) -> None:
    await module(code).test_a_person_takes_over()


@runs("docs/guide/handoff.md#4")
async def _handoff_timeout(code: str, tmp_path: Path) -> None:
    source = (
        "from datetime import timedelta\n\n"
        "from botkit import Bot, Context, Conversation, State, Text, on\n\n\n"
        "class Clinic(Conversation):\n"
        "    idle = State(initial=True)\n"
        "    asking = State(prompt=Text('¿En qué te ayudo?'))\n\n"
        "    @on.text('hola', states=[idle], to=asking)\n"
        "    async def hello(self, ctx: Context) -> None:\n"
        "        pass\n\n" + textwrap.indent(code, "    ") + "\n\nbot = Bot(Clinic)\n"
    )
    async with Simulator(module(source).bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await juan.says("hola")
        await juan.says("persona")
        await sim.advance(minutes=20)
        await sim.reply(JUAN, "Hola Juan, soy Ana")  # the 30 minutes count again from here
        await sim.advance(minutes=29)
        assert juan.handoff is not None
        await sim.advance(minutes=2)
        assert (juan.state, juan.handoff, juan.last_message.text) == (
            "asking",
            None,
            "¿En qué te ayudo?",
        )


@runs("docs/guide/window.md#1")
async def _window(code: str, tmp_path: Path) -> None:
    bot: Bot = module(code).bot
    async with Simulator(bot) as sim:
        juan = sim.user(JUAN, name="Juan")
        await sim.trigger(JUAN, "remind", {"name": "Juan"})  # Juan never wrote: closed
        reminder = juan.last_message
        assert (reminder.template_name, reminder.template_parameters) == (
            "appointment_reminder",
            ["Juan", "lunes 3", "10:00"],
        )  # the state's fallback, for its prompt
        await sim.trigger(JUAN, "news", {"text": "Abrimos el sábado"})
        assert len(juan.messages) == 1  # held
        await juan.says("hola")  # the window opens: the held message goes out, in order
        assert [m.text for m in juan.messages[1:]] == ["Abrimos el sábado", "¡Hola!"]
        await sim.advance(hours=25)
        ana = sim.user("5491140999999", name="Ana")
        await ana.says("hola")
        assert ana.last_message.text == "¡Hola!"  # open: as written


@runs("docs/guide/versions.md#1")
async def _versions(code: str, tmp_path: Path) -> None:
    before = module(OLD_CLINIC, "old_clinic").bot  # the version deployed before
    database = tmp_path / "clinic.db"
    async with Simulator(before, database=database) as sim:
        await sim.user(JUAN, "Juan").says("hola")
        ana = sim.user(ANA, "Ana")
        await ana.says("hola")
        await ana.says("lista")
        assert (sim.user(JUAN).state, ana.state) == ("choosing", "waitlist")
        clock = sim.clock
    async with Simulator(module(code).bot, database=database, clock=clock) as sim:
        juan, ana = sim.user(JUAN, "Juan"), sim.user(ANA, "Ana")
        await juan.says("general")
        assert (juan.last_message.text, juan.state) == ("Anotado: general", "idle")
        seen = len(ana.messages)
        await ana.says("hola")
        assert [m.text for m in ana.messages[seen:]] == [
            "Cerramos la lista de espera; empecemos de nuevo.",
            "¿Qué turno querés?",
        ]
        assert ana.state == "choosing_service"


ANA = "5491140999999"
OLD_CLINIC = """
from botkit import Bot, Context, Conversation, State, Text, on


class Clinic(Conversation):
    idle = State(initial=True)
    choosing = State(prompt=Text("¿Qué turno querés?"))
    waitlist = State()

    @on.text(states=[idle], to=choosing)
    async def greet(self, ctx: Context) -> None: ...

    @on.text("lista", states=[choosing], to=waitlist)
    async def wait(self, ctx: Context) -> None: ...


bot = Bot(Clinic)
"""


@runs("docs/logging.md#1")
async def _own_lines(code: str, tmp_path: Path) -> None:
    example = module(code, "shop.handlers")
    for form, phones in (("json", "masked"), ("text", "masked"), ("json", "full")):
        stream = io.StringIO()
        made = logsafe.handler(format=form, phones=phones, stream=stream)
        example.log.addHandler(made)
        example.log.setLevel(logging.INFO)
        try:
            example.noted(JUAN, "A-17")
        finally:
            example.log.removeHandler(made)
        line = stream.getvalue().strip()
        if form == "json":
            written = json.loads(line)
            assert (written["message"], written["order"]) == ("order A-17 placed", "A-17")
            assert written["user"] == (JUAN if phones == "full" else "54911****3456")
        else:
            assert line.startswith("INFO shop.handlers: order A-17 placed ")
            assert "user=54911****3456" in line and JUAN not in line


_TRACED_CONVERSATION = """
import asyncio, json, sys
from botkit import Simulator
import shop

async def main() -> None:
    async with Simulator(shop.bot) as sim:
        juan = sim.user(sys.argv[1], name="Juan")
        await juan.says("hola")
        assert [m.text for m in juan.messages] == ["¡Hola!"]
    shop.provider.force_flush()

asyncio.run(main())
"""


@runs("docs/tracing.md#1")
async def _traced_bot(code: str, tmp_path: Path) -> None:
    # its own process: the module sets OpenTelemetry's global provider, which is set once
    (tmp_path / "shop.py").write_text(code)
    environment = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    environment.pop("BOTKIT_TRACING", None)  # auto: on, since the module set a provider
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _TRACED_CONVERSATION, JUAN],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    spans = json.loads("[" + done.stdout.replace("}\n{", "},\n{") + "]")
    names = sorted(span["name"] for span in spans)
    assert names == ["botkit.inbox", "botkit.send", "botkit.turn", "botkit.webhook"]
    assert len({span["context"]["trace_id"] for span in spans}) == 1
    [turn] = [span for span in spans if span["name"] == "botkit.turn"]
    assert turn["attributes"]["botkit.user"] == "54911****3456"
    assert JUAN not in done.stdout  # no span has the number in clear
