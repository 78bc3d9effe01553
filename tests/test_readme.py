"""The README's curl commands, run as written against `botkit run bots.clinic` with the built-in fake."""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

import bots.clinic
from botkit.config import Settings
from botkit.tools.cli import build_app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]  # the README's sections moved to docs/
TOKEN = "tok_readme"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def shell_blocks(text: str) -> Iterator[str]:
    """The ```sh blocks of a Markdown text, continuation lines joined."""
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        yield block.replace("\\\n", " ")


def curl_commands(section: str) -> list[list[str]]:
    """The curl commands of section `section` (of the README, or of the docs page it moved to,
    whose title it is), split as a shell would."""
    for page in PAGES:
        text = "\n" + page.read_text(encoding="utf-8")
        if text.startswith(f"\n# {section}\n"):  # a page of its own: its title
            text = "\n#" + text[1:]
        if f"\n## {section}\n" in text:
            break
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    commands = []
    for block in shell_blocks(text[start:end]):
        for line in block.splitlines():
            words = shlex.split(line.replace("$BOTKIT_API_TOKEN", TOKEN), comments=True)
            if words[:1] == ["curl"]:
                commands.append(words)
    return commands


def request_of(words: list[str]) -> httpx.Request:
    """The request a curl command of the README makes (-s, -H and -d are all it uses)."""
    headers, body, url = {}, None, None
    rest = iter(words[1:])
    for word in rest:
        if word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(rest).encode()
        elif word != "-s":
            url = "http://" + word
    assert url is not None, words
    method = "POST" if body is not None else "GET"
    return httpx.Request(method, url, headers=headers, content=body)


async def run_all(tmp_path: Path, section: str, ready: str | None = None) -> list[httpx.Response]:
    env = {"BOTKIT_DATABASE": str(tmp_path / "botkit.db"), "BOTKIT_API_TOKEN": TOKEN}
    app = build_app(bots.clinic.bot, Settings.from_env(env))
    answers = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client,
    ):
        for words in curl_commands(section):
            request = request_of(words)
            if ready and request.url.path.endswith(ready):
                await until_sent(client)
            answers.append(await client.send(request))
        await until_sent(client)
        answers.append(await client.get("http://localhost:8000/provider/_fake/messages"))
    return answers


async def until_sent(client: httpx.AsyncClient) -> None:
    for _ in range(500):  # the workers run on the event loop: give them turns, bounded
        if (await client.get("http://localhost:8000/provider/_fake/messages")).json():
            return
        await asyncio.sleep(0.01)


async def test_the_quickstart_commands_work_as_written(tmp_path: Path) -> None:
    inbound, messages, health, _ = await run_all(tmp_path, "Quickstart", ready="/_fake/messages")
    assert inbound.json() == {"accepted": 1, "duplicates": 0}
    sent: list[dict[str, Any]] = messages.json()
    assert [m["to"] for m in sent] == ["5491140123456"]
    assert sent[0]["body"]["interactive"]["type"] == "list"  # the list of services
    assert health.json()["status"] == "ok"
    assert health.json()["provider"] == "fake"


async def test_the_trigger_example_works_as_written_with_the_built_in_fake(
    tmp_path: Path,
) -> None:
    [command] = curl_commands("Proactive triggers")
    assert unquote(command[2]).endswith("+54 9 11 4012-3456/trigger")
    trigger, messages = await run_all(tmp_path, "Proactive triggers")
    assert trigger.status_code == 202, trigger.text
    [reminder] = messages.json()
    assert reminder["to"] == "5491140123456"
    assert reminder["phone_number_id"] == "555123456789"  # the fake's own business number
    assert reminder["type"] == "template"  # the user never wrote: the window is closed
