"""botkit.lock: `botkit check` fails when a state the bot had is gone without a migration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAD = """
from botkit import Bot, Context, Conversation, Migration, State, Text, on


class Flow(Conversation):
    idle = State(initial=True, final=True)
"""
V1 = (
    HEAD
    + """    waitlist = State(final=True)

    @on.text(states=[idle], to=waitlist)
    async def wait(self, ctx: Context) -> None: ...


bot = Bot(Flow)
"""
)
V2_LOST = (
    HEAD
    + """
    @on.text(states=[idle])
    async def hello(self, ctx: Context) -> None: ...


bot = Bot(Flow)
"""
)
V2_MIGRATED = V2_LOST.replace(
    "    idle = State(initial=True, final=True)\n",
    "    migrations = {'waitlist': Migration('idle', Text('Cerramos la lista'))}\n"
    "    idle = State(initial=True, final=True)\n",
)


def check(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "botkit.tools.cli", "check", "flowbot", *extra]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "flowbot.py").write_text(V1)
    return tmp_path


def test_write_lock_remembers_the_states_with_the_version(folder: Path) -> None:
    done = check(folder, "--write-lock")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "botkit.lock remembers idle, waitlist" in done.stderr
    lock = json.loads((folder / "botkit.lock").read_text())
    states = lock["conversations"]["flowbot.Flow"]
    assert sorted(states) == ["idle", "waitlist"]
    assert lock["format"] == 1
    again = check(folder, "--write-lock")
    assert "remembers no new state" in again.stderr


def test_a_state_gone_without_a_migration_fails_the_check(folder: Path) -> None:
    check(folder, "--write-lock")
    (folder / "flowbot.py").write_text(V2_LOST)
    done = check(folder, "--write-lock")
    assert done.returncode == 1
    assert done.stdout.startswith("Flow.waitlist: state 'waitlist' (in botkit.lock, version ")
    assert "is gone and users stored in it would start over; add migrations = " in done.stdout
    assert "{'waitlist': 'idle'}" in done.stdout
    lock = json.loads((folder / "botkit.lock").read_text())
    assert "waitlist" in lock["conversations"]["flowbot.Flow"]  # a failed check writes nothing


def test_a_migration_passes_and_the_lock_keeps_the_old_state(folder: Path) -> None:
    check(folder, "--write-lock")
    (folder / "flowbot.py").write_text(V2_MIGRATED)
    done = check(folder, "--write-lock")
    assert done.returncode == 0, done.stdout + done.stderr
    lock = json.loads((folder / "botkit.lock").read_text())
    assert sorted(lock["conversations"]["flowbot.Flow"]) == ["idle", "waitlist"]


def test_without_a_lock_file_nothing_is_said(folder: Path) -> None:
    (folder / "flowbot.py").write_text(V2_LOST)
    done = check(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (folder / "botkit.lock").exists()


def test_a_broken_lock_file_is_one_line_naming_it(folder: Path) -> None:
    (folder / "other.lock").write_text("{not json")
    done = check(folder, "--lock", "other.lock")
    assert done.returncode != 0
    assert "other.lock: not JSON" in done.stderr
    assert "Traceback" not in done.stderr
    (folder / "other.lock").write_text('{"conversations": {"flowbot.Flow": ["idle"]}}')
    done = check(folder, "--lock", "other.lock")
    assert "other.lock: expected {" in done.stderr and "Traceback" not in done.stderr
