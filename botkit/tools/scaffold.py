"""`botkit new NAME`: a project of one's own, outside botkit's repository, that works at once.

It writes NAME/ with a bot module (`bot.py`), its tests (the pytest plugin, a golden
transcript written here by running the bot in the Simulator, so that the tests pass on the
first run), a `pyproject.toml` that points pytest at the bot, a Dockerfile, an example `.env`,
`.gitignore`/`.dockerignore` and a README of two commands. Nothing is overwritten: a folder
that exists and is not empty is refused.
"""

from __future__ import annotations

import asyncio
import importlib.util
import keyword
import re
import sys
from pathlib import Path

from botkit.exceptions import BotkitError
from botkit.tools.simulator import Simulator

_NAME = re.compile(r"[a-z][a-z0-9_-]*")
WA_ID = "5491140000001"  # the user of the generated test and transcript

BOT = '''"""{title}: a greeting and one question with two buttons. Make it yours."""

from __future__ import annotations

from botkit import Bot, Button, Buttons, Context, Conversation, State, Text, on

ASK = Buttons("Do you want news from us?", [Button("yes", "Yes"), Button("no", "No")])


class {cls}(Conversation):
    start = State(initial=True)
    asking = State(prompt=ASK)  # entering a state sends its prompt
    done = State()

    @on.text(states=[start, done], to=asking)
    async def greet(self, ctx: Context) -> None:
        await ctx.send(Text(f"Hi {{ctx.user.name or 'there'}}!"))

    @on.button("yes", "no", states=[asking], to=done)
    async def answer(self, ctx: Context) -> None:
        ctx.data["news"] = ctx.choice == "yes"  # kept per user
        await ctx.send(Text("Noted, thanks!"))


bot = Bot({cls})
'''

TEST = '''"""{title}'s conversation, tested as a user would have it (no network, no account)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio  # the bot is `bot` (pyproject.toml: botkit_bot)


async def test_a_user_is_greeted_asked_and_remembered(user, snapshot) -> None:
    ana = user("{wa_id}", "Ana")
    await ana.says("hello")
    await ana.taps("yes")
    assert (ana.state, ana.data) == ("done", {{"news": True}})
    # the whole conversation, as a golden file (pytest --snapshot-update rewrites it)
    assert ana.transcript == snapshot("greeting")
'''

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["botkit"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
botkit_bot = "bot"
"""

README = """# {title}

A WhatsApp bot built with botkit.

```sh
botkit run bot      # serves it on http://127.0.0.1:8000 (SQLite, the built-in fake provider)
pytest              # its tests: whole conversations in the Simulator, no network
```

`botkit dev bot` opens the web simulator; `botkit chat bot` talks to it in the terminal;
`botkit check bot` reviews the conversation. Copy `.env.example` to `.env` and fill it in to
talk to the real GoSendAPI. `docker build -t {name} . && docker run -p 8000:8000 --env-file .env
-v {name}-data:/data {name}` runs it in a container.
"""

ENV = """# Copy to .env and fill in. Without GOSENDAPI_API_KEY, botkit answers through its built-in fake.
GOSENDAPI_API_KEY=
GOSENDAPI_WEBHOOK_SECRET=
GOSENDAPI_PHONE_NUMBER_ID=
# BOTKIT_DATABASE=/data/botkit.db
# BOTKIT_LOG_FORMAT=json   (the container's default; text for a terminal)
"""

DOCKERFILE = """FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 BOTKIT_DATABASE=/data/botkit.db PORT=8000
ENV BOTKIT_LOG_FORMAT=json
WORKDIR /app
COPY pyproject.toml ./
RUN pip install "botkit[postgres]"
COPY bot.py ./
RUN useradd --system --uid 10001 botkit && mkdir -p /data && chown botkit /data
USER botkit
VOLUME ["/data"]
EXPOSE 8000
CMD ["sh", "-c", "exec botkit run bot --host 0.0.0.0 --port \\"$PORT\\" --require-provider"]
"""

GITIGNORE = """.venv/
__pycache__/
*.db
*.db-*
*.db.*
.env
"""


def new_project(name: str, where: Path) -> Path:
    """Writes project `name` into where/name; returns its folder. BotkitError for a name that
    is not a project name, or a folder that exists and is not empty."""
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise BotkitError(
            f"{name!r} is not a project name: lowercase letters, digits, '-' and '_', "
            "starting with a letter (e.g. shop, my-bot)"
        )
    folder = where / name
    if folder.exists() and any(folder.iterdir()):
        raise BotkitError(f"{folder} exists and is not empty: choose another name or folder")
    title = name.replace("-", " ").replace("_", " ").title()
    cls = title.replace(" ", "")
    files = {
        "bot.py": BOT.format(title=title, cls=cls),
        "tests/test_bot.py": TEST.format(title=title, wa_id=WA_ID),
        "pyproject.toml": PYPROJECT.format(name=name),
        "README.md": README.format(title=title, name=name),
        ".env.example": ENV,
        "Dockerfile": DOCKERFILE,
        ".gitignore": GITIGNORE,
        ".dockerignore": GITIGNORE + ".git/\n",
    }
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    transcript = asyncio.run(_transcript(folder / "bot.py"))
    (folder / "tests" / "snapshots").mkdir()
    (folder / "tests" / "snapshots" / "greeting.txt").write_text(transcript, encoding="utf-8")
    return folder


async def _transcript(module_file: Path) -> str:
    """The generated test's conversation, run in the Simulator: its golden transcript."""
    spec = importlib.util.spec_from_file_location("_botkit_new_bot", module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and the DSL look their module up
    try:
        spec.loader.exec_module(module)
        async with Simulator(module) as sim:
            ana = sim.user(WA_ID, "Ana")
            await ana.says("hello")
            await ana.taps("yes")
            return ana.transcript
    finally:
        sys.modules.pop(spec.name, None)


__all__ = ["new_project"]
