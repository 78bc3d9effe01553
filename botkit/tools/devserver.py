"""`botkit dev`: a bot on the fake GoSendAPI with a web simulator (a WhatsApp-like chat) and its JSON API.

`DevBot` composes the bot like the Simulator does (the real webhook app, the fake provider, a
manual clock that starts at the real time, one SQLite file) and rebuilds the runtime on the same
database when the bot's module file changes, so users keep their states. `create_dev_app` serves
the page (botkit/tools/static, no build step), the JSON API under /api/ and server-sent events at
/api/events that tell the page when to fetch again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from botkit.config import Settings
from botkit.conversation.template import TemplateSpec
from botkit.exceptions import BotkitError, HandoffError
from botkit.fake.provider import Delivery, FakeGoSendAPI, SentMessage
from botkit.logsafe import shown
from botkit.runtime.bot import find_bot, import_target
from botkit.runtime.runtime import Runtime
from botkit.store.base import FAILED
from botkit.tools import devdesk
from botkit.tools.simulator import SentView, template_wording
from botkit.types import JSON, JSONObject, ManualClock
from botkit.web.app import create_app
from botkit.wire.events import (
    ButtonTap,
    InboundMessage,
    LocationInput,
    QuickReplyTap,
    RowPick,
    TextInput,
    parse_body,
)
from botkit.wire.session_data import handlers_view
from botkit.wire.window import Window

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
DEV_PHONE_NUMBER_ID = "555123456789"
DEV_SECRET = "whsec_botkit_devserver"
DEV_API_KEY = "gsk_test_botkit_devserver"
DEFAULT_USER = ("5491140123456", "Juan")
FAULTS = (503, 429, 403)
WATCH_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
STREAM_SLICE_SECONDS = 1.0  # how soon an event stream notices that the server stops


class DevError(BotkitError):
    """A request the dev server cannot carry out; answered 400 with the message."""


@dataclass
class DevUser:
    """A simulated user: number, name, what the chat shows and what crossed the wire."""

    wa_id: str
    name: str
    timeline: list[JSON] = field(default_factory=list)
    exchanges: list[JSON] = field(default_factory=list)
    last_delivery: Delivery | None = None
    refused_at: float | None = None  # when the provider last answered 403 to a send to them


class DevBot:
    """The bot under development: webhook app, fake provider and manual clock on one database."""

    def __init__(
        self,
        target: str,
        database: str | Path,
        *,
        clock: ManualClock | None = None,
        phone_number_id: str = DEV_PHONE_NUMBER_ID,
    ) -> None:
        self.target = target
        self.database = str(database)
        self.clock = clock or ManualClock(time.time())
        self.phone_number_id = phone_number_id
        self.fake = FakeGoSendAPI(
            clock=self.clock, webhook_url="http://bot/webhook", webhook_secret=DEV_SECRET
        )
        self.users: dict[str, DevUser] = {}
        self.notes: list[JSON] = []
        self.version = 0
        self.changed = asyncio.Condition()
        self._burst_wait: asyncio.Task[None] | None = None  # see _let_burst_end
        self.lock = asyncio.Lock()
        self.reloads = 0
        self.closing = False  # set when the server stops: event streams end
        self.stream_slice = STREAM_SLICE_SECONDS
        self.listeners = 0  # open event streams
        self.reload_error: str | None = None
        self._module, self._attr = import_target(target)
        self.bot = find_bot(self._module, self._attr)
        self._stack: contextlib.AsyncExitStack | None = None
        self.person_keys: set[str] = set()  # the keys of the messages sent as the person
        self._seen_messages = 0
        self._seen_requests = 0
        self._errors: list[str] = []
        self.mtime = self.module_mtime()

    # -- life cycle --

    async def start(self) -> None:
        """Opens the store and runs the bot's workers."""
        settings = Settings(
            base_url="http://provider/v1",
            api_key=DEV_API_KEY,
            webhook_secrets=(DEV_SECRET,),
            phone_number_id=self.phone_number_id,
            database=self.database,
        )
        runtime = Runtime(
            self.bot,
            settings,
            clock=self.clock,
            transport=httpx.ASGITransport(app=self.fake.app),
            on_error=self._handler_failed,
        )
        app = create_app(runtime)
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(app.router.lifespan_context(app))
        self.runtime, self._stack = runtime, stack
        self.fake.webhook_transport = httpx.ASGITransport(app=app)

    async def stop(self) -> None:
        """Stops the workers and closes the store."""
        if self._burst_wait is not None:
            self._burst_wait.cancel()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def aclose(self) -> None:
        """Stops the bot and the fake's webhook client."""
        await self.stop()
        await self.fake.aclose()

    def module_path(self) -> Path | None:
        """The bot module's source file."""
        found = getattr(self._module, "__file__", None)
        return Path(found) if found else None

    def module_mtime(self) -> float:
        """The modification time of the module file (0 when it has none)."""
        path = self.module_path()
        try:
            return path.stat().st_mtime if path else 0.0
        except OSError:
            return 0.0

    async def reload(self) -> bool:
        """Re-imports the module and rebuilds the runtime on the same database; False on error."""
        async with self.lock:
            self.mtime = self.module_mtime()
            try:
                _drop_bytecode(self.module_path())  # an edit within the same second looks unchanged
                module = importlib.reload(self._module)
                bot = find_bot(module, self._attr)
            except Exception as exc:  # a syntax error in the edited bot must not stop the server
                self.reload_error = f"{type(exc).__name__}: {exc}"
                self._note(
                    f"reload failed, still running the previous version: {self.reload_error}"
                )
                log.warning("reload of %s failed: %s", self.target, self.reload_error)
                return False
            await self.stop()
            self._module, self.bot, self.reload_error = module, bot, None
            await self.start()
            self.reloads += 1
            self._note(f"reloaded {self.target}; users keep their states")
            log.info("reloaded %s", self.target)
        await self.publish()
        return True

    async def watch(self, every: float = WATCH_SECONDS) -> None:
        """Reloads the bot whenever its module file's mtime changes (runs until cancelled)."""
        while True:
            await asyncio.sleep(every)
            if self.module_mtime() != self.mtime:
                await self.reload()

    # -- live updates --

    def end_streams(self) -> None:
        """Ends the open event streams within a slice, so that the server can stop promptly.

        Safe from a signal handler: it only sets a flag that each stream checks.
        """
        self.closing = True

    async def publish(self) -> None:
        """Tells every listener that something changed."""
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    async def wait_change(self, seen: int, within: float) -> int:
        """Waits until the version passes `seen` (or `within` seconds); returns the version."""
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait_for(lambda: self.version > seen), within)
            return self.version

    # -- users and actions --

    def user(self, wa_id: str, name: str | None = None) -> DevUser:
        """The user with this number, created on first use."""
        wa_id = wa_id.strip().lstrip("+")
        if not wa_id.isdigit() or not 8 <= len(wa_id) <= 15:
            raise DevError(
                f"{wa_id!r} is not a WhatsApp number: 8 to 15 digits, e.g. 5491140123456"
            )
        found = self.users.get(wa_id)
        if found is None:
            found = self.users[wa_id] = DevUser(wa_id, name or f"User {wa_id[-4:]}")
        elif name:
            found.name = name
        return found

    def known(self, wa_id: str) -> DevUser:
        """An existing user."""
        found = self.users.get(wa_id)
        if found is None:
            raise DevError(f"no user {wa_id}; create it first")
        return found

    async def send(
        self, user: DevUser, message: JSONObject, shown: JSONObject, context_id: str | None = None
    ) -> None:
        """The user sends a Meta message part; the chat shows `shown`.

        When no handler of the user's state takes it, the chat says so, and what the state
        takes (the bot answers with the state's prompt, as it does for any such input).
        """
        async with self.lock:
            user.timeline.append({"from": "user", "at": self.clock.now(), **shown})
            state = await self._state(user)
            people = await devdesk.handed_off(self, user)  # then the message goes to them
            delivery = await self.fake.receive(
                wa_id=user.wa_id,
                name=user.name,
                message=message,
                phone_number_id=self.phone_number_id,
                context_id=context_id,
            )
            user.last_delivery = delivery
            self._inbound(user, delivery, "webhook event")
            if not people:
                self._untaken(user, state, delivery)
            await self._settle()
        self._let_burst_end()

    def _let_burst_end(self) -> None:
        """In a conversation with `coalesce`, lets the burst's interval pass on the real clock
        after the latest text (the dev server's clock moves only when told): each text starts
        the wait again, and its end fires what is due then, the burst's timer among it."""
        interval = self.bot.conversation.spec.coalesce
        if interval is None:
            return
        if self._burst_wait is not None:
            self._burst_wait.cancel()
        self._burst_wait = asyncio.create_task(self._burst_ends(interval))

    async def _burst_ends(self, interval: float) -> None:
        await asyncio.sleep(interval)
        async with self.lock:
            due = await self.runtime.store.timers.next_due()
            if due is None or due > interval:  # nothing gathered, or the clock moved past it
                return
            self.clock.advance(due)
            await self._settle()

    async def _state(self, user: DevUser) -> str:
        found = await self.runtime.store.sessions.get(self.phone_number_id, user.wa_id)
        return found.session.state if found.session else self.bot.conversation.spec.initial

    def _untaken(self, user: DevUser, state: str, delivery: Delivery) -> None:
        """A line in the chat when no handler of `state` takes the delivered message."""
        try:
            events = parse_body(delivery.body)
        except ValueError:
            return
        spec = self.bot.conversation.spec
        for event in events:
            if isinstance(event, InboundMessage) and spec.find(state, event.input) is None:
                takes = ", ".join(spec.takes(state)) or "nothing"
                self._note(
                    f"no handler in state {state} takes {_input_words(event.input)}; the bot "
                    f"answers with the state's prompt, if it has one. {state} takes: {takes}",
                    user,
                )

    async def tap(self, user: DevUser, message_id: str, button_id: str) -> None:
        """Taps a reply button of a message."""
        view = self._view(user, message_id)
        if button_id not in view.button_ids:
            raise DevError(f"message {message_id} offers no button {button_id!r}")
        title = view.button_titles[view.button_ids.index(button_id)]
        reply: JSONObject = {
            "type": "button_reply",
            "button_reply": {"id": button_id, "title": title},
        }
        part: JSONObject = {"type": "interactive", "interactive": reply}
        await self.send(user, part, {"kind": "tap", "text": title, "id": button_id}, message_id)

    async def pick(self, user: DevUser, message_id: str, row_id: str) -> None:
        """Picks a row of a list message."""
        view = self._view(user, message_id)
        if row_id not in view.row_ids:
            raise DevError(f"message {message_id} offers no row {row_id!r}")
        row = view.rows[view.row_ids.index(row_id)]
        reply: JSONObject = {"id": row_id, "title": row.get("title")}
        if row.get("description") is not None:
            reply["description"] = row.get("description")
        part: JSONObject = {
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": reply},
        }
        shown: JSONObject = {"kind": "pick", "text": str(row.get("title")), "id": row_id}
        await self.send(user, part, shown, message_id)

    async def tap_payload(self, user: DevUser, payload: str, message_id: str | None = None) -> None:
        """Taps a template's quick-reply button; the message carries the button's text.

        The text is the one the conversation declares (`TemplateSpec(buttons=...)`), else the
        payload. With `message_id`, that template must offer the payload.
        """
        offering = [
            view
            for view in map(SentView, self.fake.messages_to(user.wa_id))
            if payload in view.quick_reply_payloads
            and (message_id is None or view.message_id == message_id)
        ]
        if message_id is not None and not offering:
            raise DevError(f"message {message_id} offers no quick reply {payload!r}")
        templates = self.bot.conversation.templates
        text = (
            template_wording(offering[-1], templates).button_text(payload) if offering else payload
        )
        part: JSONObject = {"type": "button", "button": {"payload": payload, "text": text}}
        await self.send(user, part, {"kind": "tap", "text": text, "id": payload}, message_id)

    async def redeliver(self, user: DevUser) -> None:
        """Delivers the user's last webhook event again, byte for byte."""
        if user.last_delivery is None:
            raise DevError(f"{user.wa_id} has no event to deliver again")
        async with self.lock:
            again = await self.fake.redeliver(user.last_delivery)
            self._inbound(user, again, "webhook event (delivered again)")
            self._note(f"delivered {user.wa_id}'s last event again: {again.response}", user)
            await self._settle()

    async def trigger(self, user: DevUser, name: str, data: JSONObject) -> None:
        """Fires a declared trigger for the user."""
        async with self.lock:
            try:
                event_id = await self.bot.trigger(user.wa_id, name, data)
            except BotkitError as exc:
                raise DevError(str(exc)) from exc
            payload: JSONObject = {"trigger": name, "data": data, "event_id": event_id}
            user.exchanges.append(_exchange(self.clock.now(), "in", "trigger", payload, None))
            self._note(f"trigger {name} fired with {json.dumps(data, ensure_ascii=False)}", user)
            await self._settle()

    async def advance(self, hours: float) -> None:
        """Moves the clock forward; the bot catches up (retries and windows), and timers that
        come due on the way fire at their own time, in order."""
        if not 0 < hours <= 24 * 365:
            raise DevError(f"hours must be more than 0 and at most a year, not {hours}")
        async with self.lock:
            left = hours * 3600
            timers = self.runtime.store.timers
            while (due := await timers.next_due()) is not None and due <= left:
                self.clock.advance(due)
                left -= due
                await self._settle()
            self.clock.advance(left)
            self._note(f"clock +{hours:g} h")
            await self._settle()

    async def fail_next(self, status: int) -> None:
        """Makes the provider answer `status` to the next send."""
        if status not in FAULTS:
            raise DevError(f"status must be one of {', '.join(map(str, FAULTS))}, not {status}")
        self.fake.fail_next(status, retry_after=30 if status == 429 else None)
        self._note(f"the provider will answer {status} to the next send")
        await self.publish()

    async def reset(self, user: DevUser) -> None:
        """Forgets the user's conversation state and data, and clears the chat."""
        async with self.lock:
            await asyncio.to_thread(
                _forget_session, self.database, self.phone_number_id, user.wa_id
            )
            user.timeline.clear()
            user.exchanges.clear()
            user.last_delivery = None
            self._note(f"{user.wa_id} reset: back to {self.bot.conversation.spec.initial}", user)
        await self.publish()

    # -- what the page shows --

    async def snapshot(self, wa_id: str | None) -> JSONObject:
        """Everything the page shows, for one user (the first one when none is named)."""
        user = self.users.get(wa_id or "") or next(iter(self.users.values()), None)
        spec = self.bot.conversation.spec
        state: JSONObject = {
            "bot": self.bot.name,
            "target": self.target,
            "now": self.clock.now(),
            "version": self.version,
            "reloads": self.reloads,
            "reload_error": self.reload_error,
            "states": list(spec.states),
            "triggers": {name: list(keys) for name, keys in spec.triggers.items()},
            "faults": list(FAULTS),
            "users": [{"wa_id": u.wa_id, "name": u.name} for u in self.users.values()],
            "notes": self.notes[-20:],
            "user": await self._user_snapshot(user) if user else None,
        }
        return state

    async def _user_snapshot(self, user: DevUser) -> JSONObject:
        found = await self.runtime.store.sessions.get(self.phone_number_id, user.wa_id)
        session, window = found.session, found.window
        now = self.clock.now()
        return {
            "wa_id": user.wa_id,
            "name": user.name,
            "state": session.state if session else self.bot.conversation.spec.initial,
            "data": handlers_view(session.data) if session else {},  # as ctx.data
            "handoff": devdesk.handoff_view(session.data) if session else None,
            "window": {
                "open": window.is_open(now),
                "closes_at": window.closes_at,
                "refused": window.refused,
                "closed_at": _closed_at(window, now, user.refused_at),
            },
            "timeline": user.timeline,
            "exchanges": user.exchanges[-30:],
            "timers": [
                {"name": t.name, "due_at": t.due_at, "data": t.payload.get("data", {})}
                for t in await self.runtime.store.inspect.timers(user.wa_id)
                if t.phone_number_id == self.phone_number_id
            ],
        }

    # -- internals --

    def _view(self, user: DevUser, message_id: str) -> SentView:
        for sent in self.fake.messages_to(user.wa_id):
            if sent.message_id == message_id:
                return SentView(sent)
        raise DevError(f"{user.wa_id} received no message {message_id!r}")

    def _inbound(self, user: DevUser, delivery: Delivery, title: str) -> None:
        answer: JSONObject = {"status": delivery.status_code, "body": delivery.response}
        user.exchanges.append(_exchange(self.clock.now(), "in", title, delivery.envelope, answer))

    async def settle(self) -> None:
        """Lets the bot catch up, collects what the provider got, and tells the pages."""
        await self._settle()

    def note(self, text: str, *only: DevUser) -> None:
        """A grey line in the chats of `only` these users (else everyone's) and the log."""
        self._note(text, *only)

    async def _settle(self) -> None:
        try:
            await self.runtime.settle(autojump=self.clock)
        finally:
            await self._collect()
            for error in self._errors:
                self._note(f"a handler raised {error}")
            self._errors.clear()
        await self.publish()

    async def _collect(self) -> None:
        """Moves what the provider got since last time into the users' chats and wire logs."""
        templates = self.bot.conversation.templates
        for sent in self.fake.messages[self._seen_messages :]:
            item = _bot_item(sent, templates)
            if devdesk.is_person(self, sent.idempotency_key):
                item["from"] = "person"  # a person's reply, shown apart from the bot's
            self.user(sent.to).timeline.append(item)
        self._seen_messages = len(self.fake.messages)
        for request in self.fake.requests[self._seen_requests :]:
            body = _json_or_none(request.body)
            to = body.get("to") if isinstance(body, dict) else None
            if isinstance(to, str) and to in self.users:
                if request.status == 403:
                    self.users[to].refused_at = request.at
                if request.status >= 400:
                    key = request.headers.get("idempotency-key")
                    then = await self._what_followed(to, key) if request.status == 403 else None
                    refused = _refusal_words(request.status, body, request.response, then)
                    self._note_at(request.at, refused, self.users[to])
                answer: JSONObject = {"status": request.status, "body": request.response}
                payload: JSONObject = {
                    "idempotency_key": request.headers.get("idempotency-key"),
                    "body": body,
                }
                title = f"{request.method} {request.path}"
                self.users[to].exchanges.append(
                    _exchange(request.at, "out", title, payload, answer)
                )
        self._seen_requests = len(self.fake.requests)

    async def _what_followed(self, wa_id: str, key: str | None) -> str | None:
        """What botkit did with a send the provider refused for a closed window."""
        if key is None:
            return None
        # the store keeps the row and changes its key: KEY-fb as its fallback, KEY-held held
        found = {r.idempotency_key: r for r in await self.runtime.store.inspect.outbox(wa_id)}
        if f"{key}-fb" in found:
            return "botkit sent the fallback template instead"
        if f"{key}-held" in found:
            return "botkit holds the message until the user writes again (fallback=HOLD)"
        if key in found and found[key].status == FAILED:
            return "no fallback (a Template or HOLD) applies, so the send failed"
        return None

    def _note(self, text: str, *only: DevUser) -> None:
        """A line in the log and in the chats: of `only` these users, else of everyone."""
        self._note_at(self.clock.now(), text, *only)

    def _note_at(self, at: float, text: str, *only: DevUser) -> None:
        entry: JSONObject = {"at": at, "text": text}
        self.notes.append(entry)
        for user in only or tuple(self.users.values()):
            user.timeline.append({"from": "system", **entry})

    def _handler_failed(self, event_id: str, error: BaseException) -> None:
        self._errors.append(f"{type(error).__name__}: {error} (event {event_id})")


def _closed_at(window: Window, now: float, refused_at: float | None) -> float | None:
    """When a closed window closed: the provider's refusal, else 24 h after the last message."""
    if window.is_open(now):
        return None
    if window.refused and refused_at is not None:
        return refused_at
    return window.closes_at


def _exchange(at: float, direction: str, title: str, payload: JSON, answer: JSON) -> JSONObject:
    return {"at": at, "direction": direction, "title": title, "payload": payload, "answer": answer}


def _bot_item(sent: SentMessage, templates: Mapping[str, TemplateSpec]) -> JSONObject:
    item: JSONObject = {
        "from": "bot",
        "at": sent.at,
        "message_id": sent.message_id,
        "type": sent.type,
        "body": sent.body,
    }
    if sent.type == "template":  # as the user reads it, with the wording the bot declares
        item["template"] = template_wording(SentView(sent), templates).as_json()
    return item


def _input_words(user_input: object) -> str:
    """An input as the chat names it: text 'hola', button 'confirm_yes', a location..."""
    if isinstance(user_input, TextInput):
        return f"the text {shown(user_input.body, 60)}"
    if isinstance(user_input, ButtonTap):
        return f"button {user_input.id!r}"
    if isinstance(user_input, RowPick):
        return f"row {user_input.id!r}"
    if isinstance(user_input, QuickReplyTap):
        return f"payload {user_input.payload!r}"
    if isinstance(user_input, LocationInput):
        return "a location"
    return f"this {type(user_input).__name__}"


def _refusal_words(status: int, body: JSON, answer: JSON, then: str | None) -> str:
    """A refused send as one chat line: what, the provider's answer, and what botkit did next."""
    kind = body.get("type") if isinstance(body, dict) else None
    article = "an" if isinstance(kind, str) and kind[:1] in ("a", "e", "i", "o", "u") else "a"
    what = f"{article} {kind} message" if isinstance(kind, str) else "a message"
    error = answer if isinstance(answer, dict) else {}
    said = " ".join(str(error[k]) for k in ("code", "message") if error.get(k))
    reason = f"{status} {said}".strip()
    if status == 403:
        then = f"the window is closed: {then or 'botkit applies the fallback of the send'}"
    elif status == 429 or status >= 500:
        then = "botkit retries it with the same idempotency key"
    else:
        then = "the send failed and is not retried"
    return f"the provider refused {what}: {reason}; {then}"


def _json_or_none(body: bytes) -> JSON:
    try:
        parsed: JSON = json.loads(body)
    except ValueError:
        return None
    return parsed


def _drop_bytecode(source: Path | None) -> None:
    if source is not None and source.suffix == ".py":
        with contextlib.suppress(OSError, ValueError):
            Path(importlib.util.cache_from_source(str(source))).unlink(missing_ok=True)


def _forget_session(database: str, phone_number_id: str, wa_id: str) -> None:
    """Deletes one session row and the user's timers (the dev server's reset; the store has
    no such operation)."""
    path = database.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection, connection:
        for table in ("sessions", "timers"):
            connection.execute(
                f"DELETE FROM {table} WHERE phone_number_id = ? AND wa_id = ?",
                (phone_number_id, wa_id),
            )


# --- the HTTP side ---

Action = Callable[[DevBot, Request, JSONObject], Awaitable[str | None]]


async def _body(request: Request) -> JSONObject:
    raw = await request.body()
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise DevError(f"the body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise DevError("the body must be a JSON object")
    return parsed


def _text(body: JSONObject, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DevError(f"{key!r} is required (a non-empty string)")
    return value


def _number(body: JSONObject, key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DevError(f"{key!r} is required (a number)")
    return float(value)


def _wa_id(request: Request) -> str:
    return str(request.path_params["wa_id"])


async def _create_user(dev: DevBot, request: Request, body: JSONObject) -> str:
    name = body.get("name")
    return dev.user(_text(body, "wa_id"), name if isinstance(name, str) else None).wa_id


async def _say(dev: DevBot, request: Request, body: JSONObject) -> str:
    user, text = dev.known(_wa_id(request)), _text(body, "text")
    await dev.send(user, {"type": "text", "text": {"body": text}}, {"kind": "text", "text": text})
    return user.wa_id


async def _tap(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(_wa_id(request))
    await dev.tap(user, _text(body, "message_id"), _text(body, "id"))
    return user.wa_id


async def _pick(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(_wa_id(request))
    await dev.pick(user, _text(body, "message_id"), _text(body, "id"))
    return user.wa_id


async def _payload(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(_wa_id(request))
    message_id = body.get("message_id")
    if message_id is not None and not isinstance(message_id, str):
        raise DevError("'message_id' must be a string when given")
    await dev.tap_payload(user, _text(body, "payload"), message_id)
    return user.wa_id


async def _location(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(_wa_id(request))
    latitude, longitude = _number(body, "latitude"), _number(body, "longitude")
    part: JSONObject = {
        "type": "location",
        "location": {"latitude": latitude, "longitude": longitude},
    }
    await dev.send(user, part, {"kind": "location", "text": f"Location {latitude}, {longitude}"})
    return user.wa_id


async def _trigger(dev: DevBot, request: Request, body: JSONObject) -> str:
    user, data = dev.known(_wa_id(request)), body.get("data") or {}
    if not isinstance(data, dict):
        raise DevError("'data' must be a JSON object")
    await dev.trigger(user, _text(body, "name"), data)
    return user.wa_id


async def _redeliver(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(_wa_id(request))
    await dev.redeliver(user)
    return user.wa_id


async def _reset(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(_wa_id(request))
    await dev.reset(user)
    return user.wa_id


async def _advance(dev: DevBot, request: Request, body: JSONObject) -> str | None:
    await dev.advance(_number(body, "hours"))
    return request.query_params.get("user")


async def _fail(dev: DevBot, request: Request, body: JSONObject) -> str | None:
    await dev.fail_next(int(_number(body, "status")))
    return request.query_params.get("user")


async def _reload(dev: DevBot, request: Request, body: JSONObject) -> str | None:
    if not await dev.reload():
        raise DevError(f"reload failed: {dev.reload_error}")
    return request.query_params.get("user")


def _action(dev: DevBot, action: Action) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            wa_id = await action(dev, request, await _body(request))
        except (DevError, HandoffError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        await dev.publish()
        return JSONResponse(await dev.snapshot(wa_id))

    return endpoint


def _events(dev: DevBot) -> Callable[[Request], Awaitable[Response]]:
    async def stream() -> AsyncIterator[str]:
        seen, quiet = dev.version, 0.0
        dev.listeners += 1
        try:
            yield f"event: hello\ndata: {seen}\n\n"
            while not dev.closing:
                version = await dev.wait_change(seen, dev.stream_slice)
                if version != seen:
                    seen, quiet = version, 0.0
                    yield f"event: changed\ndata: {version}\n\n"
                    continue
                quiet += dev.stream_slice
                if quiet >= HEARTBEAT_SECONDS:
                    quiet = 0.0
                    yield ": heartbeat\n\n"
        finally:
            dev.listeners -= 1

    async def endpoint(request: Request) -> Response:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return endpoint


def _routes(dev: DevBot) -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def state(request: Request) -> Response:
        return JSONResponse(await dev.snapshot(request.query_params.get("user")))

    actions: dict[str, Action] = {
        "/api/users": _create_user,
        "/api/users/{wa_id}/say": _say,
        "/api/users/{wa_id}/tap": _tap,
        "/api/users/{wa_id}/pick": _pick,
        "/api/users/{wa_id}/payload": _payload,
        "/api/users/{wa_id}/location": _location,
        "/api/users/{wa_id}/trigger": _trigger,
        "/api/users/{wa_id}/redeliver": _redeliver,
        "/api/users/{wa_id}/reset": _reset,
        "/api/clock/advance": _advance,
        "/api/provider/fail": _fail,
        "/api/reload": _reload,
        **devdesk.desk_actions(),
    }
    return [
        Route("/", index, methods=["GET"]),
        Route("/favicon.ico", _favicon, methods=["GET"]),  # what browsers ask for on their own
        Route("/api/state", state, methods=["GET"]),
        Route("/api/events", _events(dev), methods=["GET"]),
        Route("/api/media/{media_id}", _media(dev), methods=["GET"]),  # the pictures the bot sent
        *(Route(path, _action(dev, act), methods=["POST"]) for path, act in actions.items()),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def _media(dev: DevBot) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        found = dev.fake.media(str(request.path_params["media_id"]))
        if found is None:
            error = {"error": "no such media: the bot did not upload it, or it expired"}
            return JSONResponse(error, 404)
        content, mime = found
        return Response(content, media_type=mime, headers={"Cache-Control": "max-age=3600"})

    return endpoint


async def _favicon(request: Request) -> Response:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


def create_dev_app(dev: DevBot, *, watch_every: float | None = WATCH_SECONDS) -> Starlette:
    """The dev server: the page, the JSON API and live events; its lifespan runs the bot.

    With `watch_every` (seconds), the bot's module file is checked that often and reloaded
    when it changes; None turns reloading off.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await dev.start()
        dev.user(*DEFAULT_USER)
        try:
            async with asyncio.TaskGroup() as group:
                watcher = group.create_task(dev.watch(watch_every)) if watch_every else None
                yield
                if watcher is not None:
                    watcher.cancel()
        finally:
            await dev.aclose()

    return Starlette(routes=_routes(dev), lifespan=lifespan)


__all__ = ["DevBot", "create_dev_app"]
