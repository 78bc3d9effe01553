"""Tests for botkit.tools.cli: configuration errors, loading a bot, and the newcomer's first run.

The end-to-end test starts the real command in a subprocess, as the README tells a newcomer
to: `botkit run bots.clinic` with no GoSendAPI key, then a user's message through the built-in
fake provider, then the clinic's list among the fake's messages.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import bots.clinic
from botkit.config import LogSettings, Settings
from botkit.exceptions import BotkitError
from botkit.runtime.bot import Bot
from botkit.runtime.worker import worker_command
from botkit.store.sqlite import SqliteStore
from botkit.tools.cli import (
    build_app,
    load_bot,
    load_conversation,
    log_level,
    main,
    provider_banner,
)

from .processes import Deployment

JUAN = "5491140123456"
SERVICE_ROWS = ["general", "specialist", "lab"]
INBOUND = {"wa_id": JUAN, "name": "Juan", "text": "hola"}


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GOSENDAPI_* or BOTKIT_* variable, and sys.path restored after main() prepends '.'."""
    for name in list(os.environ):
        if name.startswith(("GOSENDAPI_", "BOTKIT_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))


def list_rows(message: dict[str, Any]) -> list[str]:
    """The row ids of a list message as /_fake/messages shows it; [] for anything else."""
    interactive = message.get("body", {}).get("interactive", {})
    if interactive.get("type") != "list":
        return []
    return [row["id"] for section in interactive["action"]["sections"] for row in section["rows"]]


# --- configuration errors ----------------------------------------------------------------


@pytest.mark.usefixtures("bare_env")
def test_run_require_provider_with_nothing_set_names_every_missing_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["run", "bots.clinic", "--require-provider"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("botkit: error: ")
    assert "GOSENDAPI_API_KEY" in err
    assert "GOSENDAPI_WEBHOOK_SECRET" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("bare_env")
def test_run_with_a_malformed_key_says_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GOSENDAPI_API_KEY", "sk_live_123")
    monkeypatch.setenv("GOSENDAPI_WEBHOOK_SECRET", "whsec_1")
    assert main(["run", "bots.clinic"]) == 2
    err = capsys.readouterr().err
    assert "botkit: error:" in err and "gsk_test_" in err


@pytest.mark.usefixtures("bare_env")
def test_run_with_a_bot_that_cannot_be_imported_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "nope.module"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("botkit: error: ")
    assert "'nope'" in err or "'nope.module'" in err


@pytest.mark.usefixtures("bare_env")
def test_run_no_workers_with_the_built_in_fake_is_refused_and_says_what_to_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "bots.clinic", "--no-workers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("botkit: error: --no-workers")
    assert "GOSENDAPI_API_KEY" in err and "botkit fake-api" in err
    assert "Traceback" not in err


def test_run_takes_either_workers_or_no_workers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "bots.clinic", "--workers", "inline", "--no-workers"])
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.usefixtures("bare_env")
def test_worker_without_a_provider_key_says_what_to_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker", "bots.clinic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("botkit: error: botkit worker sends replies to GoSendAPI")
    assert "GOSENDAPI_BASE_URL" in err


def test_the_worker_child_is_woken_through_stdin_and_the_option_is_hidden(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert worker_command("bots.clinic")[-1] == "--wakeups-from-stdin"
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    out = capsys.readouterr().out
    assert "SIGTERM" in out and "stdin" not in out


def test_botkit_help_describes_every_command_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    commands = ["run", "worker", "graph", "check", "new", "chat", "dev", "fake-api", "events"]
    commands += ["sends", "conversations"]
    listed = re.findall(r"^    (\S+) +\S.*$", out, flags=re.MULTILINE)
    assert listed == commands  # each with its help on the same line, none wrapped
    for name in commands:
        assert f"`botkit {name}" in out  # the description says what each is for
    assert "built-in fake provider" in out


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve-everything"])
    assert caught.value.code == 2
    assert "usage: botkit" in capsys.readouterr().err


# --- loading a bot -------------------------------------------------------------------------


def test_load_bot_finds_the_only_bot_in_a_module() -> None:
    assert load_bot("bots.clinic") is bots.clinic.bot


def test_load_bot_takes_an_attribute() -> None:
    found = load_bot("bots.clinic:bot")
    assert found is bots.clinic.bot
    assert isinstance(found, Bot)


def test_load_bot_of_a_missing_module_names_it() -> None:
    with pytest.raises(BotkitError, match=r"cannot import 'nope\.module'"):
        load_bot("nope.module")


def test_load_bot_of_a_missing_attribute_names_it_and_what_the_module_has() -> None:
    with pytest.raises(BotkitError) as caught:
        load_bot("bots.clinic:missing")
    assert str(caught.value) == "bots.clinic has no attribute 'missing' (it has: bot, Clinic)"


def test_load_bot_takes_a_file_path_as_the_module_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = Path(bots.clinic.__file__).parents[1]
    monkeypatch.chdir(root)
    assert load_bot("bots/clinic.py") is bots.clinic.bot
    assert load_bot("./bots/clinic.py:bot") is bots.clinic.bot
    assert load_bot(f"{root}/bots/clinic.py") is bots.clinic.bot
    assert load_conversation("bots/clinic.py:Clinic") is bots.clinic.Clinic


def test_load_bot_of_a_missing_file_names_the_module_it_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(Path(bots.clinic.__file__).parents[1])
    with pytest.raises(BotkitError, match=r"cannot import 'bots/nope\.py' \(module bots\.nope\)"):
        load_bot("bots/nope.py")


def test_load_bot_of_a_file_outside_the_folder_says_to_run_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(bots.clinic.__file__).parents[1])
    with pytest.raises(BotkitError, match=r"outside the current folder; run from the folder"):
        load_bot(str(tmp_path / "clinic.py"))


def test_a_bot_importing_a_missing_package_is_told_which_and_that_it_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_a_package.py").write_text("import botkit_no_such_package\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BotkitError) as caught:
        load_bot("needs_a_package")
    assert str(caught.value) == (
        "cannot import 'needs_a_package': the bot was found, but its own import of "
        "'botkit_no_such_package' failed (No module named 'botkit_no_such_package'); install "
        "botkit_no_such_package in this environment, or fix the bot's import"
    )
    assert "folder that holds it" not in str(caught.value)


def test_load_bot_of_an_attribute_that_is_not_a_bot_says_so() -> None:
    with pytest.raises(BotkitError, match=r"bots\.clinic:Clinic is not a botkit\.Bot"):
        load_bot("bots.clinic:Clinic")


def test_load_bot_of_a_module_without_a_bot_asks_for_an_attribute() -> None:
    with pytest.raises(BotkitError, match=r"defines 0 Bot objects.*botkit\.config:ATTRIBUTE"):
        load_bot("botkit.config")


# --- the start-up banner ------------------------------------------------------------------


def test_the_banner_with_a_real_key_says_where_it_sends_from_which_number_and_the_webhook() -> None:
    env = {
        "GOSENDAPI_API_KEY": "gsk_live_0123456789",
        "GOSENDAPI_WEBHOOK_SECRET": "whsec_a,whsec_b",
        "GOSENDAPI_PHONE_NUMBER_ID": "15550001111",
        "BOTKIT_DATABASE": "postgresql://bot:s3cret@db/bot",
    }
    banner = provider_banner("Clinic", Settings.from_env(env), "http://0.0.0.0:8000")
    lines = banner.splitlines()
    assert lines[0] == (
        "botkit: Clinic on http://0.0.0.0:8000 with GoSendAPI at "
        "https://cloud.gosendapi.com/v1 (live key)"
    )
    assert "POST http://0.0.0.0:8000/webhook" in lines[1] and "2 secrets" in lines[1]
    assert "phone_number_id 15550001111" in lines[2]
    assert "off (BOTKIT_API_TOKEN is not set)" in lines[3]
    assert lines[4].endswith("PostgreSQL")
    for secret in ("gsk_live_0123456789", "whsec_a", "s3cret"):
        assert secret not in banner


def test_the_banner_without_a_number_says_what_proactive_sends_need() -> None:
    env = {"GOSENDAPI_API_KEY": "gsk_test_1", "GOSENDAPI_WEBHOOK_SECRET": "whsec_1"}
    env["BOTKIT_API_TOKEN"] = "tok"
    banner = provider_banner("Clinic", Settings.from_env(env), "http://127.0.0.1:8000")
    assert "(sandbox key)" in banner
    assert "proactive sends need GOSENDAPI_PHONE_NUMBER_ID" in banner
    assert "POST http://127.0.0.1:8000/conversations/{wa_id}/trigger" in banner


# --- the fake-provider app, in process ----------------------------------------------------


@pytest.mark.anyio
async def test_without_a_key_the_app_answers_a_user_through_the_built_in_fake(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"BOTKIT_DATABASE": str(tmp_path / "dev.db")})
    app = build_app(bots.clinic.bot, settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bot") as client,
    ):
        health = await client.get("/healthz")
        assert health.json()["provider"] == "fake"
        endpoints = (await client.get("/")).json()["endpoints"]
        assert "_fake/inbound" in endpoints["/provider/..."]
        answer = await client.post("/provider/_fake/inbound", json=INBOUND)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 1, "duplicates": 0}
        messages: list[dict[str, Any]] = []
        for _ in range(500):  # the workers run on the event loop: give them turns, bounded
            messages = (await client.get("/provider/_fake/messages")).json()
            if messages:
                break
            await asyncio.sleep(0.01)
    assert [list_rows(m) for m in messages] == [SERVICE_ROWS]
    assert messages[0]["to"] == JUAN


# --- the newcomer's path, for real ----------------------------------------------------------


@pytest.mark.slow
def test_botkit_run_answers_a_newcomers_hola_with_the_clinic_list(tmp_path: Path) -> None:
    with Deployment(tmp_path, {"BOTKIT_DATABASE": str(tmp_path / "run.db")}) as deployment:
        web = deployment.web("bots.clinic", workers=True)  # no GOSENDAPI_* set: the built-in fake
        with httpx.Client(base_url=web.url, timeout=5.0) as client:
            assert client.get("/healthz").json()["provider"] == "fake"

            answer = client.post("/provider/_fake/inbound", json=INBOUND)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"accepted": 1, "duplicates": 0}

            def the_list() -> list[dict[str, Any]]:
                sent = client.get("/provider/_fake/messages").json()
                return [m for m in sent if list_rows(m) == SERVICE_ROWS]

            [reply] = deployment.wait_until(the_list, what="the clinic's list", process=web)
    assert reply["to"] == JUAN
    assert reply["phone_number_id"] == "555123456789"
    assert "built-in fake GoSendAPI" in web.output()


@pytest.mark.slow
def test_botkit_run_warns_at_start_about_a_webhook_secret_without_whsec(tmp_path: Path) -> None:
    env = {"BOTKIT_DATABASE": str(tmp_path / "run.db"), "GOSENDAPI_WEBHOOK_SECRET": "gsk_oops"}
    with Deployment(tmp_path, env) as deployment:
        web = deployment.web("bots.clinic", workers=True)
        output = web.output()
    assert "botkit: warning: GOSENDAPI_WEBHOOK_SECRET does not start with whsec_" in output
    assert "gsk_oops" not in output


@pytest.mark.usefixtures("bare_env")
def test_run_with_a_database_that_cannot_be_reached_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GOSENDAPI_API_KEY", "gsk_test_1")
    monkeypatch.setenv("GOSENDAPI_WEBHOOK_SECRET", "whsec_1")
    monkeypatch.setenv("BOTKIT_DATABASE", "postgresql://bot:s3cret@127.0.0.1:1/botkit")
    assert main(["run", "bots.clinic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("botkit: error: cannot connect to PostgreSQL at ")
    assert "postgresql://bot:***@127.0.0.1:1/botkit" in err and "s3cret" not in err
    assert "Traceback" not in err and err.count("\n") == 1


# --- database paths that cannot be used: one line naming the path, nothing created ------


def run_on(database: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`botkit run bots.hello` on `database`: its exit code must be 2; its one line."""
    os.environ["BOTKIT_DATABASE"] = database  # bare_env's monkeypatch restores it
    assert main(["run", "bots.hello"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.mark.usefixtures("bare_env")
def test_run_on_a_database_in_a_missing_folder_says_to_create_it_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    err = run_on(f"sqlite:///{missing}/x.db", capsys)
    assert err == (
        f"botkit: error: database {missing}/x.db: the folder {missing} does not exist; "
        f"create it (mkdir -p {missing}) or set BOTKIT_DATABASE to a file in an existing folder\n"
    )
    assert not missing.exists()


@pytest.mark.usefixtures("bare_env")
def test_run_on_a_file_that_is_not_a_database_names_it_and_creates_nothing_beside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "clinic.py"
    source.write_text("print('a bot')\n")
    err = run_on(str(source), capsys)
    assert err.startswith(f"botkit: error: database {source} is not a SQLite database")
    assert [p.name for p in tmp_path.iterdir()] == ["clinic.py"]
    assert source.read_text() == "print('a bot')\n"


@pytest.mark.usefixtures("bare_env")
def test_run_on_another_applications_sqlite_database_names_it_and_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "app.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.close()
    err = run_on(str(other), capsys)
    assert err.startswith(f"botkit: error: database {other} is a SQLite database of something")
    assert [p.name for p in tmp_path.iterdir()] == ["app.db"]


@pytest.mark.usefixtures("bare_env")
def test_run_on_a_path_that_cannot_be_opened_names_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # /proc takes no new files, even from root
    err = run_on("/proc/botkit-forbidden.db", capsys)
    assert err.startswith("botkit: error: database /proc/botkit-forbidden.db: cannot ")
    assert "check that this user may write in /proc" in err


# --- a port another process holds: one line, before any banner ----------------------------


@pytest.mark.usefixtures("bare_env")
@pytest.mark.parametrize("command", ["run", "dev"])
def test_a_port_in_use_is_one_line_before_any_banner(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.environ["BOTKIT_DATABASE"] = str(tmp_path / "run.db")  # bare_env's monkeypatch restores it
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        dev_database = ["--database", str(tmp_path / "dev.db")] if command == "dev" else []
        code = main([command, "bots.hello", "--port", str(port), *dev_database])
    assert code == 2
    assert capsys.readouterr().err == (
        f"botkit: error: port {port} is in use: stop the other process or pass --port\n"
    )


# --- a database another botkit process works on: one line, before any banner --------------


@pytest.mark.usefixtures("bare_env")
@pytest.mark.parametrize("command", ["run", "dev"])
def test_a_database_another_process_works_on_is_one_line_before_any_banner(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "bot.db"
    os.environ["BOTKIT_DATABASE"] = str(database)  # bare_env's monkeypatch restores it
    other = SqliteStore(database, worker=True)  # as a first `botkit dev` on the file
    with asyncio.Runner() as runner:
        runner.run(other.open())
        try:
            code = main(
                [command, "bots.hello", "--port", "0", "--database", str(database)][
                    : None if command == "dev" else 4
                ]
            )
        finally:
            runner.run(other.aclose())
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"botkit: error: database {database} is in use: another botkit process")
    assert "Traceback" not in err and err.count("\n") == 1


# --- each bot its own database by default ------------------------------------------------


@pytest.mark.usefixtures("bare_env")
def test_without_botkit_database_each_bot_runs_on_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as other:  # the port in use stops each run right after its database
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        assert main(["run", "bots.clinic", "--port", port]) == 2
        assert main(["run", "bots.pizza", "--port", port]) == 2
    capsys.readouterr()
    made = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db")
    assert made == ["botkit-clinic.db", "botkit-pizza.db"]


# -- the log's settings --------------------------------------------------------------------


def test_the_log_level_is_the_flag_else_botkit_log_level_for_serving_else_the_default() -> None:
    debug = LogSettings(level="debug")
    assert log_level("run", "error", debug) == "error"
    assert log_level("run", None, debug) == log_level("worker", None, debug) == "debug"
    assert log_level("run", None, LogSettings()) == "info"
    # the chat and the simulator keep their quiet levels, whatever a deployment's .env says
    assert log_level("chat", None, debug) == "critical"
    assert log_level("dev", None, debug) == "warning"


@pytest.mark.usefixtures("bare_env")
def test_a_bad_log_setting_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTKIT_LOG_FORMAT", "yaml")
    assert main(["check", "bots.hello"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("botkit: error: ") and "BOTKIT_LOG_FORMAT must be one of text, json" in err
    )
