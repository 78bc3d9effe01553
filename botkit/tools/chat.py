"""`botkit chat`: a terminal conversation with a bot, run in-process through the Simulator.

The bot runs as in the tests: the real webhook app over a temporary SQLite file, the fake
GoSendAPI and a manual clock, so nothing leaves the machine. Lines come from stdin (a terminal
or a pipe); the bot's messages are printed with numbered choices, and typing a number taps
the choice of the latest message that offers any.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from botkit.conversation.context import ContextInput
from botkit.conversation.template import TemplateSpec
from botkit.exceptions import BotkitError
from botkit.runtime.bot import Bot
from botkit.runtime.burst import Burst
from botkit.tools.simulator import (
    SentView,
    Simulator,
    SimulatorError,
    TemplateWording,
    template_wording,
)
from botkit.types import JSON, JSONObject, ManualClock
from botkit.wire.burst import BURST_KEY
from botkit.wire.events import ButtonTap, QuickReplyTap, RowPick

DEFAULT_USER = "5491140123456"
DEFAULT_NAME = "Juan"
INDENT = "     "
_NOUNS = {"button": "the tap", "row": "the pick of row", "payload": "the quick reply"}
MEDIA = ("image", "video", "audio", "document", "sticker")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
NUMBER = re.compile(r"\+?\d{6,15}")
HELP = """\
commands:
  TEXT                   send TEXT as a text message
  N                      tap choice [N] of the latest message that offers choices
  /say TEXT              send TEXT even when it is a number
  /location LAT LON [NAME]  share a location
  /tap ID                tap the reply button ID (or a template quick reply with payload ID)
  /pick ID               pick the list row ID
  /advance 25h           move the clock forward (also 30m, 90s, 1h30m)
  (empty line)           with texts gathered for a burst (coalesce): let its interval pass
  /trigger NAME {json}   fire a declared trigger for the current user
  /state                 the user's state, data, 24-hour window and pending timers
  /user NUMBER [NAME]    switch to (or create) another user
  /reset                 start over: a fresh database, every user back to the initial state
  /help                  this list
  /quit                  leave (end of input does too)"""

Reader = Callable[[str], str | None]
"""Returns the next input line (shown `prompt` when interactive), or None at end of input."""


class ChatError(BotkitError):
    """A chat command that cannot be done as typed; the session goes on."""


@dataclass(frozen=True, slots=True)
class Choice:
    """Something a message offers to tap: a reply button, a list row or a quick reply."""

    kind: str  # "button", "row" or "payload"
    id: str


def choices(view: SentView) -> list[Choice]:
    """The choices a message offers, in the order they are numbered."""
    return [
        *(Choice("button", i) for i in view.button_ids),
        *(Choice("row", i) for i in view.row_ids),
        *(Choice("payload", p) for p in view.quick_reply_payloads),
    ]


def render(view: SentView, templates: Mapping[str, TemplateSpec] | None = None) -> list[str]:
    """A message as printed lines: text, numbered choices, or a one-line card.

    A template reads with the wording its conversation declares in `templates`, if any.
    """
    if view.type == "text":
        return (view.text or "").splitlines() or [""]
    if view.type == "interactive":
        return _interactive(view)
    if view.type == "template":
        return _template(view, template_wording(view, templates or {}))
    if view.type == "location":
        return [_location(view.payload)]
    if view.type in MEDIA:
        return [_media(view.type, view.payload)]
    return [f"[{view.type}] {json.dumps(view.payload, ensure_ascii=False)}"]


def _interactive(view: SentView) -> list[str]:
    header = _text_of(view.payload.get("header"))
    footer = _text_of(view.payload.get("footer"))
    lines = [f"*{header}*"] if header else []
    lines += (view.text or "").splitlines()
    lines += [f"_{footer}_"] if footer else []
    pairs = zip(view.button_titles, view.button_ids, strict=True)
    lines += [f"[{n}] {title} ({id_})" for n, (title, id_) in enumerate(pairs, 1)]
    return lines + _list(view.payload.get("action"))


def _list(action: JSON) -> list[str]:
    if not isinstance(action, dict) or not isinstance(action.get("sections"), list):
        return []
    lines = [f"≡ {action.get('button', 'List')}"]
    number = 0
    for section in action["sections"]:  # type: ignore[union-attr]
        if not isinstance(section, dict):
            continue
        if section.get("title"):
            lines.append(str(section["title"]))
        for row in section.get("rows") or []:  # type: ignore[union-attr]
            number += 1
            row = row if isinstance(row, dict) else {}
            about = f" · {row['description']}" if row.get("description") else ""
            lines.append(f"  [{number}] {row.get('title')} ({row.get('id')}){about}")
    return lines


def _template(view: SentView, shown: TemplateWording) -> list[str]:
    lines = [f"template {shown.name} ({shown.language})"]
    if shown.header:
        lines.append(f"*{shown.header}*")
    if shown.declared:
        lines += shown.text.splitlines()
        return lines + [f"[{n}] {t} ({p})" for n, (p, t) in enumerate(shown.buttons, 1)]
    filled = view.template_parameters
    if filled:
        lines.append("  ".join(f"{{{{{n}}}}}={p}" for n, p in enumerate(filled, 1)))
    return lines + [f"[{n}] quick reply ({p})" for n, (p, _) in enumerate(shown.buttons, 1)]


def _location(part: JSONObject) -> str:
    where = ", ".join(str(part[k]) for k in ("name", "address") if part.get(k))
    at = f"({part.get('latitude')}, {part.get('longitude')})"
    return f"[location] {where} {at}" if where else f"[location] {at}"


def _media(kind: str, part: JSONObject) -> str:
    source = f"link {part['link']}" if part.get("link") else f"id {part.get('id')}"
    extra = [f"{part[k]!s}" for k in ("filename", "caption") if part.get(k)]
    return " · ".join([f"[{kind}] {source}", *extra])


def _text_of(value: JSON, key: str = "text") -> str:
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""


def parse_duration(text: str) -> float:
    """Seconds in a duration like 25h, 30m, 90s or 1h30m."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise ChatError(f"cannot read the duration {text!r}: write e.g. 25h, 30m, 90s or 1h30m")
    return sum(float(n) * UNITS[u] for n, u in parts)


def when(moment: float) -> str:
    """A timestamp as UTC text."""
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float) -> str:
    """A duration as text: 23h 59m, 5m 3s."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


class Chat:
    """One chat session: the current user, the messages printed so far, the commands."""

    def __init__(self, sim: Simulator, out: TextIO, *, wa_id: str, name: str | None) -> None:
        self.sim = sim
        self.out = out
        self.user = sim.user(wa_id, name)
        self.shown: dict[str, int] = {}
        self.commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "say": self._say,
            "location": self._location,
            "tap": self._tap,
            "pick": self._pick,
            "advance": self._advance,
            "trigger": self._trigger,
            "state": self._state,
            "user": self._user,
            "help": self._help,
        }

    @property
    def prompt(self) -> str:
        """What is shown before the user's input."""
        return f"{self.user.name or self.user.wa_id}> "

    def print(self, *lines: str) -> None:
        """Writes lines and flushes (the reader may be a pipe)."""
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    async def handle(self, line: str) -> str:
        """Does what one input line says; "quit" or "reset" when the loop must act."""
        line = line.strip()
        if line in ("/quit", "/exit"):
            return "quit"
        if line == "/reset":
            return "reset"
        try:
            if line:
                await self._dispatch(line)
            elif self._gathering():  # Enter: the burst's interval passes (Conversation.coalesce)
                await self._advance(f"{self.sim.bot.conversation.spec.coalesce:g}s")
        except (ChatError, SimulatorError) as exc:  # the user's mistake: the message says it all
            self.print(f"! {exc}")
        except Exception as exc:  # a handler's exception (WindowClosedError, a bug): say it, go on
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.print(f"! {type(exc).__name__}: {first}")
        return "continue"

    async def _dispatch(self, line: str) -> None:
        if line.startswith("/"):
            name, _, rest = line[1:].partition(" ")
            command = self.commands.get(name)
            if command is None:
                raise ChatError(f"unknown command /{name}: /help lists them")
            await command(rest.strip())
        elif line.isdigit() and self._newest_offers_choices():
            await self._number(int(line))
        else:
            await self._step(self.user.says(line))
            if self._gathering() == 1:  # a burst began: say why the bot is quiet, once
                interval = self.sim.bot.conversation.spec.coalesce or 0
                self.print(
                    f"{INDENT}· gathering a burst: texts within {interval:g} s are one turn; "
                    "type more, or Enter to let the time pass"
                )

    def _gathering(self) -> int:
        """How many texts the current user has gathered for a burst (Conversation.coalesce)."""
        session = self.user.session
        burst = None if session is None else Burst.from_json(session.data.get(BURST_KEY))
        return 0 if burst is None else len(burst.parts)

    async def _step(self, action: Awaitable[object]) -> None:
        before = self.user.state
        try:
            await action
        finally:
            self.show_new()
        if self.user.state != before:
            self.print(f"{INDENT}· state {before} → {self.user.state}")

    def show_new(self) -> None:
        """Prints the current user's messages not printed yet."""
        messages = self.user.messages
        for view in messages[self.shown.get(self.user.wa_id, 0) :]:
            first, *rest = render(view, self.sim.bot.conversation.templates)
            self.print(f"bot: {first}", *(INDENT + line for line in rest))
        self.shown[self.user.wa_id] = len(messages)

    def _newest_offers_choices(self) -> bool:
        """A number taps only when the bot's latest message offers choices; else it is text."""
        messages = self.user.messages
        return bool(messages) and bool(choices(messages[-1]))

    async def _number(self, number: int) -> None:
        offered = next((c for v in reversed(self.user.messages) if (c := choices(v))), [])
        if not offered:
            raise ChatError(
                f"no message offers choices to tap with {number}; /say {number} sends it"
            )
        if not 1 <= number <= len(offered):
            raise ChatError(f"no choice [{number}]: the latest choices are 1 to {len(offered)}")
        choice = offered[number - 1]
        await self._choose(choice)

    async def _choose(self, choice: Choice) -> None:
        state = self.user.state
        handled = self._handles(state, choice)
        if choice.kind == "button":
            await self._step(self.user.taps(choice.id))
        elif choice.kind == "row":
            await self._step(self.user.picks(choice.id))
        else:
            await self._step(self.user.taps_payload(choice.id))
        if not handled:  # the bot said nothing, or sent its prompt again: say why
            taken = ", ".join(self._taps_taken(state)) or "none"
            self.print(
                f"{INDENT}· nothing handled {_NOUNS[choice.kind]} {choice.id!r} in state "
                f"{state}; the taps it takes: {taken}"
            )

    def _handles(self, state: str, choice: Choice) -> bool:
        """Whether a handler (or the state's fallback) takes this tap in `state`."""
        tap: ContextInput
        if choice.kind == "button":
            tap = ButtonTap(choice.id, choice.id)
        elif choice.kind == "row":
            tap = RowPick(choice.id, choice.id, None)
        else:
            tap = QuickReplyTap(choice.id, choice.id)
        return self.sim.bot.conversation.spec.find(state, tap) is not None

    def _taps_taken(self, state: str) -> list[str]:
        """The button ids, row ids and payloads (or patterns) `state` has handlers for."""
        table = self.sim.bot.conversation.spec.tables[state]
        taken = [key for kind, key in table.exact if kind in _NOUNS]
        return taken + [pattern for _, pattern, _ in table.patterns]

    async def _location(self, rest: str) -> None:
        parts = rest.split(maxsplit=2)
        try:
            latitude, longitude = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            raise ChatError(
                "/location needs a latitude and a longitude: /location -34.6 -58.38 [name]"
            ) from None
        name = parts[2] if len(parts) > 2 else None
        await self._step(self.user.shares_location(latitude, longitude, name))

    async def _say(self, text: str) -> None:
        if not text:
            raise ChatError("/say needs a text: /say 42")
        await self._step(self.user.says(text))

    async def _tap(self, choice: str) -> None:
        if not choice:
            raise ChatError("/tap needs a button id: /tap confirm_yes")
        payloads = {p for view in self.user.messages for p in view.quick_reply_payloads}
        buttons = {b for view in self.user.messages for b in view.button_ids}
        kind = "payload" if choice in payloads and choice not in buttons else "button"
        await self._choose(Choice(kind, choice))

    async def _pick(self, row: str) -> None:
        if not row:
            raise ChatError("/pick needs a row id: /pick lab")
        await self._choose(Choice("row", row))

    async def _advance(self, text: str) -> None:
        seconds = parse_duration(text)
        await self._step(self.sim.advance(seconds=seconds))
        self.print(f"{INDENT}· clock {when(self.sim.clock.now())} (+{text})")

    async def _trigger(self, rest: str) -> None:
        name, _, raw = rest.partition(" ")
        if not name:
            raise ChatError('/trigger needs a name: /trigger remind {"name": "Juan"}')
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ChatError(f"the trigger data is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ChatError("the trigger data must be a JSON object: {...}")
        await self._step(self.sim.trigger(self.user.wa_id, name, data))

    async def _state(self, _: str) -> None:
        data = json.dumps(self.user.data, ensure_ascii=False, sort_keys=True)
        self.print(
            f"user:   {self.user.wa_id} ({self.user.name or 'no name'})",
            f"state:  {self.user.state}",
            f"data:   {data}",
            f"window: {self._window()}",
            f"timers: {await self._timers()}",
            f"clock:  {when(self.sim.clock.now())}",
        )

    async def _timers(self) -> str:
        now = self.sim.clock.now()
        found = await self.sim.runtime.store.inspect.timers(self.user.wa_id)
        shown = [f"{t.name} at {when(t.due_at)} (in {span(t.due_at - now)})" for t in found]
        return ", ".join(shown) or "none"

    def _window(self) -> str:
        window = self.user.window
        now = self.sim.clock.now()
        end = window.closes_at
        if end is None:
            return "closed (the user has never written)"
        if window.is_open(now):
            return f"open until {when(end)} (in {span(end - now)})"
        if window.refused and end > now:
            return "closed (the provider refused a message; a message from the user opens it)"
        return f"closed since {when(end)} (a message from the user opens it)"

    async def _user(self, rest: str) -> None:
        number, _, name = rest.partition(" ")
        number = number.lstrip("+")
        if not NUMBER.fullmatch(number):
            raise ChatError(f"/user needs a phone number of 6 to 15 digits, got {number!r}")
        known = number in self.sim.users
        self.user = self.sim.user(number, name.strip() or None)
        if name.strip():
            self.user.name = name.strip()
        self.print(f"{INDENT}· now {'back as' if known else 'talking as'} {self.prompt[:-2]}")
        self.show_new()

    async def _help(self, _: str) -> None:
        self.print(HELP)


async def converse(
    bot: Bot,
    read: Reader,
    out: TextIO,
    *,
    wa_id: str = DEFAULT_USER,
    name: str | None = DEFAULT_NAME,
    echo: bool = False,
) -> int:
    """Runs a chat until `read` returns None or /quit; returns the exit code (0).

    With `echo`, each line read is printed after the prompt, so that the output of a piped
    session reads as a transcript.
    """
    clock = ManualClock()  # one clock for the whole chat: /reset does not turn time back
    users = {wa_id: name}
    current = wa_id
    out.write(f"botkit chat: {bot.name}, no network (fake provider, temporary database). ")
    out.write("/help lists the commands.\n")
    while True:
        async with Simulator(bot, clock=clock) as sim:
            for number, known in users.items():
                sim.user(number, known)
            session = Chat(sim, out, wa_id=current, name=users[current])
            if not await _session(session, read, echo):
                return 0
            users = {user.wa_id: user.name for user in sim.users.values()}
            current = session.user.wa_id
        session.print(f"{INDENT}· reset: a fresh database, every user starts over; the clock stays")


async def _session(chat: Chat, read: Reader, echo: bool) -> bool:
    """Reads and handles lines; True on /reset, False at the end of the chat."""
    while (line := read(chat.prompt)) is not None:
        if echo:
            chat.print(chat.prompt + line.rstrip("\n"))
        outcome = await chat.handle(line)
        if outcome != "continue":
            return outcome == "reset"
    return False


def lines_reader(lines: Iterable[str]) -> Reader:
    """A reader over given lines (for scripts and tests)."""
    remaining = iter(lines)
    return lambda prompt: next(remaining, None)


def stdin_reader(stdin: TextIO) -> Reader:
    """A reader of stdin: with a prompt and line editing on a terminal, plain from a pipe."""
    if not stdin.isatty():
        return lambda prompt: stdin.readline() or None
    with contextlib.suppress(ImportError):  # line editing and history for input(), where available
        import readline  # noqa: F401

    def read(prompt: str) -> str | None:
        try:
            return input(prompt)
        except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt: leave quietly
            print()
            return None

    return read


async def chat(bot: Bot, *, wa_id: str = DEFAULT_USER, name: str | None = DEFAULT_NAME) -> int:
    """The `botkit chat` command over the process's stdin and stdout."""
    interactive = sys.stdin.isatty()
    return await converse(
        bot, stdin_reader(sys.stdin), sys.stdout, wa_id=wa_id, name=name, echo=not interactive
    )
