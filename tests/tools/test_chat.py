"""Tests for botkit.tools.chat: a terminal conversation driven by a script of input lines.

Most tests run the chat in-process (`converse` over given lines and a StringIO); one pipes a
script into the real command, `python -m botkit.tools.cli chat bots.clinic`, as a developer would.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bots.clinic
import bots.hello
import bots.pizza
from botkit import Bot, Button, Buttons, Context, Conversation, Image, Location, State, Text, on
from botkit.exceptions import BotkitError
from botkit.tools.chat import Chat, converse, lines_reader, parse_duration, stdin_reader
from botkit.tools.simulator import Simulator

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
REMIND = '/trigger remind {"name": "Juan", "date": "2026-06-01", "time": "10:00", "appointment_id": "42"}'
LIST = """\
bot: ¡Hola! ¿Qué turno querés reservar?
     ≡ Ver servicios
     Consultas
       [1] Consulta general (general) · 30 min · $5000
       [2] Especialista (specialist) · 45 min · $8000
     Estudios
       [3] Laboratorio (lab) · Análisis de sangre
"""


async def talk(*lines: str, bot: Bot = bots.clinic.bot) -> str:
    """The output of a chat fed `lines`, echoed as a piped session echoes them."""
    out = io.StringIO()
    code = await converse(bot, lines_reader(lines), out, echo=True)
    assert code == 0
    return out.getvalue()


class Cards(Conversation):
    """Sends media and locations, and a text that a closed window refuses."""

    idle = State(initial=True)

    @on.text(regex="^foto")
    async def photo(self, ctx: Context) -> None:
        await ctx.send(Image(link="https://example.com/a.jpg", caption="La sede"))

    @on.text(regex="^mapa")
    async def where(self, ctx: Context) -> None:
        await ctx.send(Location(-34.6, -58.38, name="Clínica", address="Av. Corrientes 1234"))

    @on.trigger("nudge")
    async def nudge(self, ctx: Context) -> None:
        await ctx.send(Text("¿Seguís ahí?"))  # no fallback: WindowClosedError when closed

    @on.text(regex="^boom")
    async def boom(self, ctx: Context) -> None:
        raise RuntimeError("a bug in the bot")


CARDS = Bot(Cards)


class Picky(Conversation):
    """Its question offers a button that only another state takes."""

    idle = State(initial=True)
    asking = State(
        prompt=Buttons("¿Seguimos?", [Button("yes", "Sí"), Button("no", "No"), Button("x", "X")])
    )
    done = State(prompt=Buttons("¿Otra vez?", [Button("again", "Otra")]))

    @on.text(states=[idle], to=asking)
    async def hello(self, ctx: Context) -> None:
        pass

    @on.button("yes", "no", states=[asking], to=done)
    async def answered(self, ctx: Context) -> None:
        pass

    @on.button("again", "x", states=[done], to=asking)
    async def again(self, ctx: Context) -> None:
        pass


# --- the clinic flow -----------------------------------------------------------------------


async def test_text_shows_the_list_with_rows_numbered_across_sections() -> None:
    out = await talk("hola")
    assert "Juan> hola\n" + LIST in out
    assert "· state idle → choosing_service" in out


async def test_numbers_pick_a_row_then_tap_a_button() -> None:
    out = await talk("hola", "3", "1")
    assert "bot: Elegiste Laboratorio. ¿Confirmás el turno?\n" in out
    assert "     [1] Sí, confirmo (confirm_yes)\n     [2] Reprogramar (reschedule)\n" in out
    assert "bot: ¡Listo! Tu turno de Laboratorio quedó confirmado." in out
    assert out.rstrip().endswith("· state confirming → confirmed")


async def test_tap_and_pick_by_id() -> None:
    out = await talk("hola", "/pick general", "/tap reschedule", "/pick lab", "/state")
    assert out.count("≡ Ver servicios") == 2
    assert "state:  confirming\n" in out
    assert 'data:   {"service": "lab"}\n' in out


async def test_state_shows_the_window_open_then_closed() -> None:
    out = await talk("/state", "hola", "/state", "/advance 25h", "/state")
    assert "window: closed (the user has never written)" in out
    assert "window: open until 2026-05-20 14:00:00 UTC (in 24h 0m)" in out
    assert "· clock 2026-05-20 15:00:00 UTC (+25h)" in out
    assert "window: closed since 2026-05-20 14:00:00 UTC" in out


async def test_a_trigger_after_the_window_closed_arrives_as_a_template() -> None:
    out = await talk("hola", "3", "1", "/advance 25h", REMIND, "1")
    assert (
        "bot: template appointment_reminder (es_AR)\n"
        "     Hola Juan, te recordamos tu turno del 2026-06-01 a las 10:00. ¿Lo confirmás?\n"
        "     [1] Sí, confirmo (confirm_yes_apt_42)\n"
    ) in out  # the wording the clinic declares (TemplateSpec(text=..., buttons=...))
    assert "bot: ¡Listo! Tu turno del 2026-06-01 a las 10:00 quedó confirmado." in out


async def test_tap_accepts_a_quick_reply_payload() -> None:
    out = await talk("hola", "3", "/advance 25h", REMIND, "/tap confirm_yes_apt_42")
    assert "quedó confirmado" in out


async def test_a_tap_no_handler_takes_says_so_and_which_taps_the_state_takes() -> None:
    out = await talk("hola", "/tap x", bot=Bot(Picky))
    assert "     · nothing handled the tap 'x' in state asking; the taps it takes: yes, no\n" in out
    out = await talk("hola", "/tap yes", "/tap yes", bot=bots.hello.bot)
    assert "     · nothing handled the tap 'yes' in state done; the taps it takes: none\n" in out


async def test_a_tap_on_an_old_list_is_reported_beside_the_prompt_sent_again() -> None:
    out = await talk("hola", "3", "/pick general", "/tap confirm_yes")
    assert (
        "     [2] Reprogramar (reschedule)\n"
        "     · nothing handled the pick of row 'general' in state confirming; the taps it "
        "takes: confirm_yes, reschedule, confirm_yes_apt_*\n"
    ) in out
    assert out.count("nothing handled") == 1  # a handled tap says nothing more


# --- users and reset -----------------------------------------------------------------------


async def test_users_keep_their_own_conversations() -> None:
    out = await talk("hola", "/user 5491100000000 Ana", "/state", "/user 5491140123456", "/state")
    assert "· now talking as Ana" in out
    assert "Ana> /state\nuser:   5491100000000 (Ana)\nstate:  idle\n" in out
    assert "· now back as Juan" in out
    assert out.rstrip().split("\n")[-5] == "state:  choosing_service"  # then data, window, timers


async def test_reset_starts_over_on_a_fresh_database_keeping_the_clock() -> None:
    out = await talk("hola", "/advance 1h", "/reset", "/state", "hola")
    assert "· reset: a fresh database, every user starts over; the clock stays" in out
    assert "state:  idle\ndata:   {}\nwindow: closed (the user has never written)" in out
    assert "clock:  2026-05-19 15:00:00 UTC" in out
    assert out.count("≡ Ver servicios") == 2


# --- errors: one line, and the session goes on ----------------------------------------------


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/nope", "! unknown command /nope: /help lists them"),
        ("/trigger remind {bad", "! the trigger data is not JSON: "),
        ("/trigger remind [1]", "! the trigger data must be a JSON object"),
        ("/advance soon", "! cannot read the duration 'soon'"),
        ("/tap nope", "! 5491140123456: no message offered a button 'nope'"),
        ("/trigger remind {}", "! TriggerError: "),
        ("/user 12", "! /user needs a phone number of 6 to 15 digits, got '12'"),
    ],
)
async def test_a_mistake_prints_one_line_and_the_session_goes_on(line: str, error: str) -> None:
    out = await talk(line, "hola")
    [printed] = [each for each in out.splitlines() if each.startswith("!")]
    assert printed.startswith(error)
    assert LIST in out


async def test_a_number_beyond_the_choices_says_which_exist() -> None:
    out = await talk("hola", "4")
    assert "! no choice [4]: the latest choices are 1 to 3" in out


async def test_say_sends_a_number_as_text() -> None:
    out = await talk("hola", "/say 3")
    assert "state" not in out.split("Juan> /say 3")[1]  # text in choosing_service: ignored


async def test_handler_exceptions_print_one_line() -> None:
    out = await talk("/trigger nudge", "boom", "foto", bot=CARDS)
    assert "! WindowClosedError: " in out
    assert "! RuntimeError: a bug in the bot" in out
    assert "bot: [image] link https://example.com/a.jpg · La sede" in out


async def test_media_and_locations_are_one_line_cards() -> None:
    out = await talk("foto", "mapa", bot=CARDS)
    assert "bot: [image] link https://example.com/a.jpg · La sede\n" in out
    assert "bot: [location] Clínica, Av. Corrientes 1234 (-34.6, -58.38)\n" in out


async def test_quit_ends_before_the_remaining_lines() -> None:
    out = await talk("/quit", "hola")
    assert "Ver servicios" not in out


async def test_help_lists_every_command() -> None:
    out = await talk("/help")
    for command in ("/tap", "/pick", "/advance", "/trigger", "/state", "/user", "/reset", "/quit"):
        assert command in out


def test_the_docs_list_every_chat_command() -> None:
    readme = (ROOT / "docs" / "guide" / "chat.md").read_text(encoding="utf-8")
    start = readme.index("Commands: `/tap ID`")
    listed = readme[start : readme.index("\n\n", start)]
    chat = Chat(Simulator(bots.clinic.bot), io.StringIO(), wa_id="5491140123456", name=None)
    for command in [*chat.commands, "reset", "quit"]:
        assert f"`/{command}" in listed, command


# --- pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("25h", 90000.0), ("30m", 1800.0), ("90s", 90.0), ("1h30m", 5400.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "25", "h", "25x", "1h 30q"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(BotkitError, match="cannot read the duration"):
        parse_duration(text)


def test_stdin_reader_from_a_pipe_reads_lines_until_the_end() -> None:
    read = stdin_reader(io.StringIO("hola\n3\n"))
    assert [read("> "), read("> "), read("> ")] == ["hola\n", "3\n", None]


# --- the real command, from a pipe ------------------------------------------------------------


def test_the_command_walks_the_clinic_flow_from_a_pipe() -> None:
    script = "\n".join(["hola", "3", "1", "/state", "/advance 25h", REMIND, "/quit", "hola"])
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    for name in [n for n in env if n.startswith(("GOSENDAPI_", "BOTKIT_"))]:
        del env[name]
    done = subprocess.run(
        [sys.executable, "-m", "botkit.tools.cli", "chat", "bots.clinic"],
        input=script + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("botkit chat: Clinic, no network")
    assert LIST in out
    assert "[1] Sí, confirmo (confirm_yes)" in out
    assert "quedó confirmado" in out
    assert "state:  confirmed\n" in out
    assert "bot: template appointment_reminder (es_AR)\n" in out
    assert "     [1] Sí, confirmo (confirm_yes_apt_42)\n" in out
    assert out.rstrip().endswith("Juan> /quit")  # nothing after /quit is read
    assert "> " not in out.replace("Juan> ", "")  # no prompt of its own: stdin is not a TTY


@pytest.mark.anyio
async def test_a_number_after_a_question_is_text_and_a_location_can_be_shared() -> None:
    out = io.StringIO()
    lines = ["hola", "1", "2", "3", "/location -34.6037 -58.3816 Obelisco", "/state", "/quit"]
    await converse(bots.pizza.bot, lines_reader(lines), out, echo=True)
    text = out.getvalue()
    assert "counting → locating" in text  # "3" answered the quantity question as text
    assert "locating → confirming" in text
    assert '"quantity": 3' in text


async def test_state_shows_the_pending_timers_and_advance_fires_them() -> None:
    out = await talk("hola", "3", "/state", "/advance 31m", "/state")
    assert "timers: timeout:nudge at 2026-05-19 14:30:00 UTC (in 30m 0s)" in out
    assert "bot: ¿Seguís ahí? Tu turno todavía no está confirmado." in out
    assert out.rstrip().split("\n")[-2] == "timers: none"  # it fired


class Bursty(Conversation):
    coalesce = 2

    start = State(initial=True)

    @on.text(states=[start])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(" + ".join(ctx.texts)))


async def test_a_burst_gathers_lines_until_enter_lets_the_interval_pass() -> None:
    out = await talk("hola", "quería saber", "", "otra", "/advance 2s", bot=Bot(Bursty))
    assert out.count("gathering a burst: texts within 2 s are one turn") == 2  # once per burst
    assert "bot: hola + quería saber" in out
    assert out.index("bot: hola + quería saber") < out.index("bot: otra")
