"""The testing kit: the pytest plugin end to end (pytester), golden transcripts, fault injection.

This repository's conftest defines `sim` and `juan` for the clinic, which override the plugin's
`sim`; the tests here use the plugin's documented names `botkit_sim` and `botkit_user`, and run a
bot author's project through pytester to exercise `sim`, `user` and `snapshot` themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import bots.pizza as pizza
from botkit.tools.simulator import Simulator, SimUser

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.anyio, pytest.mark.bot("bots.clinic")]

JUAN = "5491140123456"
REMINDER = {"name": "Juan", "date": "20/05", "time": "10:30", "appointment_id": "123"}
MakeUser = Callable[..., SimUser]

AUTHOR_CONFTEST = """
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

AUTHOR_TEST = """
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.bot("bots.clinic")]

async def test_booking(sim, user, snapshot):
    juan = user("5491140123456", "Juan")
    await juan.says("hola")
    await juan.picks("lab")
    await juan.taps("confirm_yes")
    assert juan.state == "confirmed"
    assert sim.user("5491140123456") is juan
    assert juan.transcript == snapshot("booking")
"""


async def book(juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    await juan.taps("confirm_yes")


# --- the plugin, as a bot author uses it -----------------------------------------------------


def author_project(pytester: pytest.Pytester, test: str = AUTHOR_TEST) -> None:
    pytester.makeconftest(AUTHOR_CONFTEST)
    pytester.makepyfile(test_booking=test)


def test_snapshot_update_writes_the_file_and_a_plain_run_then_passes(
    pytester: pytest.Pytester,
) -> None:
    author_project(pytester)
    pytester.runpytest("--snapshot-update").assert_outcomes(passed=1)
    written = (pytester.path / "snapshots" / "booking.txt").read_text(encoding="utf-8")
    assert written.startswith("Juan: hola\nbot: ¡Hola! ¿Qué turno querés reservar?\n")
    assert "Juan: picks (lab) Laboratorio\n" in written
    pytester.runpytest().assert_outcomes(passed=1)
    assert (pytester.path / "snapshots" / "booking.txt").read_text(encoding="utf-8") == written


def test_a_missing_snapshot_fails_saying_how_to_create_it(pytester: pytest.Pytester) -> None:
    author_project(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*snapshots*booking.txt does not exist; run `pytest --snapshot-update`*"]
    )
    assert not (pytester.path / "snapshots").exists()


def test_a_changed_conversation_fails_with_a_diff(pytester: pytest.Pytester) -> None:
    author_project(pytester)
    pytester.runpytest("--snapshot-update").assert_outcomes(passed=1)
    path = pytester.path / "snapshots" / "booking.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("Laboratorio", "Lab"), "utf-8")
    result = pytester.runpytest("-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*differs from the file*", "*-Juan: picks (lab) Lab", "*+Juan: picks (lab) Laboratorio"]
    )


def test_the_bot_can_come_from_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbotkit_bot = bots.clinic\n")
    author_project(pytester, AUTHOR_TEST.replace(', pytest.mark.bot("bots.clinic")', ""))
    pytester.runpytest("--snapshot-update").assert_outcomes(passed=1)


def test_the_bot_can_come_from_the_test_module(pytester: pytest.Pytester) -> None:
    test = AUTHOR_TEST.replace(', pytest.mark.bot("bots.clinic")', "")
    author_project(pytester, test + '\nbotkit_bot = "bots.clinic"\n')
    pytester.runpytest("--snapshot-update").assert_outcomes(passed=1)


def test_without_a_bot_the_failure_says_how_to_name_one(pytester: pytest.Pytester) -> None:
    author_project(pytester, AUTHOR_TEST.replace(', pytest.mark.bot("bots.clinic")', ""))
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*botkit: which bot? Mark the test or module with @pytest.mark.bot(*"]
    )


def test_the_marker_and_option_are_registered(pytester: pytest.Pytester) -> None:
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.bot(module):*"])
    pytester.runpytest("--help").stdout.fnmatch_lines(["*--snapshot-update*"])


# --- golden transcripts --------------------------------------------------------------------


async def test_the_booking_transcript(
    botkit_user: MakeUser, snapshot: Callable[[str], object]
) -> None:
    juan = botkit_user(JUAN, "Juan")
    await book(juan)
    assert juan.transcript == snapshot("booking")


async def test_time_travel_and_the_reminder_template(
    botkit_sim: Simulator, botkit_user: MakeUser, snapshot: Callable[[str], object]
) -> None:
    juan = botkit_user(JUAN, "Juan")
    await book(juan)
    await botkit_sim.advance(hours=25)
    await botkit_sim.trigger(JUAN, "remind", REMINDER)
    await juan.taps_payload("confirm_yes_apt_123")
    assert juan.state == "confirmed"
    assert juan.transcript == snapshot("reminder")


async def test_the_simulator_transcript_shows_every_user(
    botkit_sim: Simulator, botkit_user: MakeUser
) -> None:
    juan, ana = botkit_user(JUAN, "Juan"), botkit_user("5491140999999")
    await juan.says("hola")
    await ana.says("buenas")
    lines = botkit_sim.transcript.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [
        "Juan: hola",
        "bot to Juan: ¡Hola! ¿Qué turno querés reservar?",
        "5491140999999: buenas",
        "bot to 5491140999999: ¡Hola! ¿Qué turno querés reservar?",
    ]
    assert ana.transcript.startswith("5491140999999: buenas\nbot: ")


async def test_a_user_who_said_nothing_has_an_empty_transcript(botkit_user: MakeUser) -> None:
    assert botkit_user(JUAN).transcript == ""


async def test_locations_and_media_from_the_user_render(botkit_user: MakeUser) -> None:
    juan = botkit_user(JUAN, "Juan")
    await juan.shares_location(-34.6, -58.4, name="Casa")
    await juan.sends_media("image", "12345", caption="receta")
    heard = [line for line in juan.transcript.splitlines() if line.startswith("Juan:")]
    assert heard == ["Juan: [location] Casa (-34.6, -58.4)", "Juan: [image] receta"]


# --- fault injection in one line ----------------------------------------------------------


async def test_duplicate_next_delivers_the_message_twice_and_the_bot_answers_once(
    botkit_sim: Simulator, botkit_user: MakeUser
) -> None:
    juan = botkit_user(JUAN, "Juan")
    botkit_sim.duplicate_next()
    await juan.says("hola")
    received = [h for h in botkit_sim.heard if h.envelope["type"] == "whatsapp.message.received"]
    assert len(received) == 2
    assert received[0].envelope["id"] == received[1].envelope["id"]
    assert len(juan.messages) == 1
    assert juan.transcript.splitlines()[:2] == ["Juan: hola", "Juan: hola  (delivered again)"]
    await juan.picks("lab")  # only the next message was duplicated
    assert len(botkit_sim.heard) == 3


async def test_out_of_order_delivers_the_older_message_after_the_newer(
    botkit_sim: Simulator, botkit_user: MakeUser
) -> None:
    juan = botkit_user(JUAN, "Juan")
    await juan.says("hola")
    botkit_sim.out_of_order(juan)
    await juan.picks("lab")  # held: the bot has not heard it yet
    assert (juan.state, len(juan.messages)) == ("choosing_service", 1)
    await juan.says("¿hola?")  # delivered, then the held pick
    said = [line for line in juan.transcript.splitlines() if line.startswith("Juan:")]
    assert said == ["Juan: hola", "Juan: ¿hola?", "Juan: picks (lab) Laboratorio"]
    assert juan.state == "confirming"
    await juan.taps("confirm_yes")  # later messages flow in order again
    assert juan.state == "confirmed"


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, 30.0)], ids=["503", "429"])
async def test_a_transient_provider_failure_leaves_the_same_transcript(
    botkit_sim: Simulator,
    botkit_user: MakeUser,
    snapshot: Callable[[str], object],
    status: int,
    retry_after: float | None,
) -> None:
    juan = botkit_user(JUAN, "Juan")
    botkit_sim.fail_next(status, retry_after=retry_after)
    await book(juan)
    assert juan.transcript == snapshot("booking")
    posts = [r.status for r in botkit_sim.fake.requests if r.path.endswith("/messages")]
    assert posts[:2] == [status, 200]


async def test_a_403_loses_the_reply_and_the_transcript_shows_it(
    botkit_sim: Simulator, botkit_user: MakeUser
) -> None:
    juan = botkit_user(JUAN, "Juan")
    botkit_sim.fail_next(403)
    await juan.says("hola")
    assert juan.transcript == "Juan: hola\n"
    [row] = await botkit_sim.outbox(JUAN)
    assert row.status == "failed"
    assert juan.state == "choosing_service"


async def test_small_clock_jumps_leave_no_time_marker(
    botkit_sim: Simulator, botkit_user: MakeUser
) -> None:
    juan = botkit_user(JUAN, "Juan")
    await juan.says("hola")
    await botkit_sim.advance(seconds=20)
    await juan.picks("lab")
    await botkit_sim.advance(hours=1, minutes=30)
    await juan.taps("reschedule")
    assert "later ---" not in juan.transcript.split("Juan: picks")[0]
    # the clinic's nudge came 30 minutes into the quiet, and is dated too
    assert "--- 30m later ---\nbot: ¿Seguís ahí?" in juan.transcript
    assert "--- 1h later ---\nJuan: taps [reschedule] Reprogramar" in juan.transcript


# --- optional states, and another bot by marker ---------------------------------------------


async def test_states_are_optional_in_a_transcript(
    botkit_sim: Simulator, botkit_user: MakeUser
) -> None:
    juan = botkit_user(JUAN, "Juan")
    await book(juan)
    said = [line for line in juan.render_transcript(states=True).splitlines() if "Juan" in line]
    assert said == [
        "Juan [idle]: hola",
        "Juan [choosing_service]: picks (lab) Laboratorio",
        "Juan [confirming]: taps [confirm_yes] Sí, confirmo",
        "Juan is now [confirmed]",
    ]
    assert juan.render_transcript() == juan.transcript
    assert botkit_sim.render_transcript(states=True).endswith("Juan is now [confirmed]\n")


@pytest.mark.bot("bots.pizza")
async def test_the_closest_marker_names_the_bot_and_media_renders(botkit_user: MakeUser) -> None:
    ana = botkit_user(JUAN, "Ana")
    await ana.says("hola")
    await ana.picks("napolitana")
    await ana.taps("grande")
    await ana.says("2")
    await ana.shares_location(-34.6037, -58.3816, name="Obelisco")
    await ana.taps("confirm")
    lines = ana.transcript.splitlines()
    assert lines[:2] == ["Ana: hola", f"bot: [image] {pizza.MENU_PHOTO.caption}"]
    assert "Ana: [location] Obelisco (-34.6037, -58.3816)" in lines
    assert "  [confirm] Confirmar" in lines
    assert ana.state == "ordered"
