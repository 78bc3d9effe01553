"""The pytest plugin: a simulated bot, its users and golden transcripts as fixtures.

Loaded by the `pytest11` entry point named `botkit`. Which bot: `@pytest.mark.bot("bots.clinic")`
on a test, class or module (`pytestmark`), else `botkit_bot = "bots.clinic"` in the test module,
else the `botkit_bot` ini option; a conftest may also override the `botkit_bot` fixture.

    pytestmark = [pytest.mark.anyio, pytest.mark.bot("bots.clinic")]

    async def test_booking(sim, user, snapshot):
        juan = user("5491140123456", "Juan")
        await juan.says("hola")
        assert juan.transcript == snapshot("booking")   # tests/snapshots/booking.txt

`pytest --snapshot-update` writes the files instead of comparing. `sim` and `user` are aliases of
`botkit_sim` and `botkit_user`, for projects whose conftest already uses those names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from botkit.tools.simulator import Simulator, SimUser

UPDATE_OPTION = "--snapshot-update"
SNAPSHOT_FOLDER = "snapshots"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Registers --snapshot-update and the botkit_bot ini option."""
    group = parser.getgroup("botkit")
    group.addoption(
        UPDATE_OPTION,
        action="store_true",
        default=False,
        help="write botkit snapshot files (snapshots/NAME.txt) instead of comparing with them",
    )
    parser.addini("botkit_bot", "the bot module the `sim` fixture runs, e.g. bots.clinic")


def pytest_configure(config: pytest.Config) -> None:
    """Registers the `bot` marker."""
    config.addinivalue_line(
        "markers", "bot(module): the bot module (dotted name) the botkit `sim` fixture runs"
    )


class Snapshot:
    """A golden text file; `text == snapshot` compares, or writes it under --snapshot-update."""

    def __init__(self, path: Path, update: bool) -> None:
        self.path = path
        self.update = update

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return NotImplemented
        if self.update:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(other, encoding="utf-8")
            return True
        return self.read() == other

    __hash__ = None  # type: ignore[assignment]

    def read(self) -> str:
        """The file's text; fails the test, saying how to create it, when it does not exist."""
        if not self.path.is_file():
            pytest.fail(
                f"snapshot {self.path} does not exist; run `pytest {UPDATE_OPTION}` "
                "to create it from this run, then review and commit it",
                pytrace=False,
            )
        return self.path.read_text(encoding="utf-8")

    def __repr__(self) -> str:
        return f"Snapshot({str(self.path)!r})"


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """Shows a line diff when a text does not match its snapshot file."""
    if op != "==" or not isinstance(left, str) or not isinstance(right, Snapshot):
        return None
    diff = difflib.unified_diff(
        right.read().splitlines(),
        left.splitlines(),
        fromfile=str(right.path),
        tofile="this run",
        lineterm="",
    )
    return [
        f"text == {right!r}: differs from the file (run `pytest {UPDATE_OPTION}` to accept it)",
        *diff,
    ]


@pytest.fixture
def botkit_bot(request: pytest.FixtureRequest) -> str:
    """The dotted name of the bot module: the `bot` marker, `botkit_bot` in the module, the ini."""
    marker = request.node.get_closest_marker("bot")
    if marker is not None:
        if len(marker.args) != 1 or not isinstance(marker.args[0], str):
            raise pytest.UsageError('use the marker as @pytest.mark.bot("package.module")')
        return marker.args[0]
    found = getattr(request.module, "botkit_bot", None) if request.module else None
    name = found if isinstance(found, str) else str(request.config.getini("botkit_bot") or "")
    if not name:
        pytest.fail(
            'botkit: which bot? Mark the test or module with @pytest.mark.bot("bots.mybot"), '
            'set botkit_bot = "bots.mybot" in the test module, or botkit_bot in [tool.pytest.ini_options]',
            pytrace=False,
        )
    return name


@pytest.fixture
async def botkit_sim(botkit_bot: str) -> AsyncIterator[Simulator]:
    """The bot in an entered Simulator (real webhook app, SQLite, fake GoSendAPI, manual clock)."""
    async with Simulator(importlib.import_module(botkit_bot)) as simulator:
        yield simulator


@pytest.fixture
def botkit_user(botkit_sim: Simulator) -> Callable[..., SimUser]:
    """A factory of users: `juan = user("5491140123456", "Juan")`."""

    def make(wa_id: str, name: str | None = None) -> SimUser:
        return botkit_sim.user(wa_id, name)

    return make


@pytest.fixture
def sim(botkit_sim: Simulator) -> Simulator:
    """The bot in an entered Simulator (alias of `botkit_sim`)."""
    return botkit_sim


@pytest.fixture
def user(botkit_user: Callable[..., SimUser]) -> Callable[..., SimUser]:
    """A factory of users (alias of `botkit_user`)."""
    return botkit_user


@pytest.fixture
def snapshot(request: pytest.FixtureRequest) -> Callable[[str], Snapshot]:
    """`snapshot("booking")`: the file snapshots/booking.txt beside the test file."""
    folder = request.path.parent / SNAPSHOT_FOLDER
    update = bool(request.config.getoption(UPDATE_OPTION))

    def make(name: str) -> Snapshot:
        return Snapshot(folder / f"{name}.txt", update)

    return make
