"""Conversations in tests: users who type, tap and pick, against the real webhook app and a fake GoSendAPI.

async with Simulator(bot) as sim:
    juan = sim.user("5491140123456", name="Juan")
    await juan.says("hola")
    assert juan.last_message.row_ids == ["general", "specialist", "lab"]
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import httpx

from botkit.config import Settings
from botkit.conversation.template import TemplateSpec
from botkit.exceptions import BotkitError
from botkit.fake.desk import FakeDesk
from botkit.fake.provider import Delivery, FakeGoSendAPI, SentMessage
from botkit.runtime.bot import Bot, find_bot
from botkit.runtime.runtime import Runtime
from botkit.store.base import OutboxRecord, Session
from botkit.types import JSON, JSONObject, ManualClock
from botkit.web.app import create_app
from botkit.wire.handoff import MARK_KEY, HandoffMark
from botkit.wire.session_data import handlers_view
from botkit.wire.window import Window

SIM_PHONE_NUMBER_ID = "555123456789"
SIM_SECRET = "whsec_simulator"
SIM_API_KEY = "gsk_test_simulator"
SIM_API_TOKEN = "botkit-simulator-token"
SIM_HANDOFF_SECRET = "botkit-simulator-handoff-secret"
SIM_HANDOFF_URL = "http://desk/handoff"


class SimulatorError(BotkitError):
    """A simulated user did something the conversation so far does not allow."""


class SentView:
    """A message the provider accepted, seen as the user sees it."""

    def __init__(self, sent: SentMessage) -> None:
        self.sent = sent
        self.type = sent.type
        self.body: JSONObject = sent.body
        part = sent.body.get(sent.type)
        self.payload: JSONObject = part if isinstance(part, dict) else {}

    @property
    def message_id(self) -> str:
        """The provider's id of this message (what a tap's context.id names)."""
        return self.sent.message_id

    @property
    def idempotency_key(self) -> str | None:
        """The Idempotency-Key it was sent with."""
        return self.sent.idempotency_key

    @property
    def text(self) -> str | None:
        """The text body: of a text message, or of an interactive message's body."""
        body = self.payload.get("body")
        if isinstance(body, str):
            return body
        text = _get(body, "text") if isinstance(body, dict) else None
        return text if isinstance(text, str) else None

    @property
    def button_ids(self) -> list[str]:
        """The ids of its reply buttons."""
        return [str(_get(b, "reply", "id")) for b in self._action_list("buttons")]

    @property
    def button_titles(self) -> list[str]:
        """The titles of its reply buttons."""
        return [str(_get(b, "reply", "title")) for b in self._action_list("buttons")]

    @property
    def rows(self) -> list[JSONObject]:
        """Its list rows, across sections."""
        rows: list[JSONObject] = []
        for section in self._action_list("sections"):
            found = section.get("rows") if isinstance(section, dict) else None
            rows.extend(row for row in found or [] if isinstance(row, dict))  # type: ignore[union-attr]
        return rows

    @property
    def row_ids(self) -> list[str]:
        """The ids of its list rows, in order."""
        return [str(row.get("id")) for row in self.rows]

    @property
    def is_template(self) -> bool:
        """Whether it went out as a template (a proactive message, or a closed window's fallback)."""
        return self.type == "template"

    @property
    def template_parameters(self) -> list[str]:
        """The body parameters of a template, in order, as text."""
        return self._parameters("body")

    @property
    def template_header_parameters(self) -> list[str]:
        """The header parameters of a template, as text."""
        return self._parameters("header")

    def _parameters(self, kind: str) -> list[str]:
        found: list[str] = []
        for component in self.payload.get("components") or []:  # type: ignore[union-attr]
            if isinstance(component, dict) and component.get("type") == kind:
                for parameter in component.get("parameters") or []:  # type: ignore[union-attr]
                    if isinstance(parameter, dict):
                        found.append(_parameter_text(parameter))
        return found

    @property
    def quick_reply_payloads(self) -> list[str]:
        """The payloads of a template's quick-reply buttons, by index."""
        found: list[str] = []
        for component in self.payload.get("components") or []:  # type: ignore[union-attr]
            if isinstance(component, dict) and component.get("sub_type") == "quick_reply":
                for parameter in component.get("parameters") or []:  # type: ignore[union-attr]
                    if isinstance(parameter, dict):
                        found.append(str(parameter.get("payload", "")))
        return found

    @property
    def template_name(self) -> str | None:
        """The template's name, when it is a template."""
        name = self.payload.get("name") if self.type == "template" else None
        return name if isinstance(name, str) else None

    def _action_list(self, name: str) -> list[JSONObject]:
        action = self.payload.get("action")
        found = action.get(name) if isinstance(action, dict) else None
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    def __repr__(self) -> str:
        return f"<{self.type} {self.text or self.template_name or ''!r}>"


def _get(value: JSON, *path: str) -> JSON:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _parameter_text(parameter: JSONObject) -> str:
    """A template parameter as the user reads it (a currency or date: its fallback value)."""
    kind = str(parameter.get("type"))
    if kind == "text":
        return str(parameter.get("text", ""))
    value = parameter.get(kind)
    if isinstance(value, dict) and "fallback_value" in value:
        return str(value["fallback_value"])
    return f"[{kind}]"


@dataclass(frozen=True, slots=True)
class TemplateWording:
    """A template message as the user reads it: header, body and quick-reply buttons.

    With the wording its conversation declares (`TemplateSpec(text=..., buttons=...)`), the
    parameters fill the placeholders; without, the body is the parameters joined by " | " and
    each button shows its payload.
    """

    name: str
    language: str
    header: str | None
    text: str
    buttons: tuple[tuple[str, str], ...]  # (payload, text) by button index
    declared: bool

    def button_text(self, payload: str) -> str:
        """The text of the quick-reply button carrying `payload` (the payload when unknown)."""
        return next((text for p, text in self.buttons if p == payload), payload)

    def as_json(self) -> JSONObject:
        """For the dev server's page."""
        buttons: list[JSON] = [{"payload": p, "text": t} for p, t in self.buttons]
        return {
            "name": self.name,
            "language": self.language,
            "header": self.header,
            "text": self.text,
            "buttons": buttons,
            "declared": self.declared,
        }


def template_wording(view: SentView, templates: Mapping[str, TemplateSpec]) -> TemplateWording:
    """How a template message reads, with the wording its conversation declared if any."""
    name = view.template_name or ""
    spec = templates.get(name)
    payloads = view.quick_reply_payloads
    language = _get(view.payload, "language", "code")
    if spec is None:
        body = " | ".join(view.template_parameters)
        buttons = tuple((p, p) for p in payloads)
        return TemplateWording(name, str(language), None, body, buttons, False)
    header, body = spec.render(view.template_parameters, view.template_header_parameters)
    buttons = tuple((p, spec.button_text(i, p)) for i, p in enumerate(payloads))
    declared = spec.text is not None or bool(spec.buttons)
    return TemplateWording(name, str(language), header, body, buttons, declared)


class SimUser:
    """A WhatsApp user in the simulator."""

    def __init__(self, sim: Simulator, wa_id: str, name: str | None) -> None:
        self.sim = sim
        self.wa_id = wa_id
        self.name = name
        self.session: Session | None = None
        self.window = Window()

    @property
    def state(self) -> str:
        """The conversation state after the last step."""
        return self.session.state if self.session else self.sim.initial_state

    @property
    def data(self) -> JSONObject:
        """The persistent data after the last step (as handlers see it)."""
        if self.session is None:
            return {}
        return handlers_view(self.session.data)

    @property
    def handoff(self) -> HandoffMark | None:
        """Since when, why and from which state people answer this user (None: the bot)."""
        if self.session is None:
            return None
        return HandoffMark.from_json(self.session.data.get(MARK_KEY))

    @property
    def messages(self) -> list[SentView]:
        """Every message the provider accepted for this user, in order."""
        return [SentView(m) for m in self.sim.fake.messages_to(self.wa_id)]

    @property
    def last_message(self) -> SentView:
        """The latest message this user received."""
        messages = self.messages
        if not messages:
            raise SimulatorError(f"{self.wa_id} has received no message yet")
        return messages[-1]

    async def says(self, text: str) -> Delivery:
        """Types a text message."""
        return await self.sends({"type": "text", "text": {"body": text}})

    async def taps(self, button_id: str, *, on: SentView | None = None) -> Delivery:
        """Taps the reply button `button_id` of message `on` (default: the latest message
        that offers it; an older one is how a test taps a stale prompt)."""
        view = self._offering(button_id, lambda v: v.button_ids, "button", on)
        title = view.button_titles[view.button_ids.index(button_id)]
        reply: JSONObject = {
            "type": "button_reply",
            "button_reply": {"id": button_id, "title": title},
        }
        return await self.sends(
            {"type": "interactive", "interactive": reply}, context_id=view.message_id
        )

    async def picks(self, row_id: str, *, on: SentView | None = None) -> Delivery:
        """Picks the list row `row_id` of list `on` (default: the latest list that offers it)."""
        view = self._offering(row_id, lambda v: v.row_ids, "row", on)
        row = view.rows[view.row_ids.index(row_id)]
        reply: JSONObject = {"id": row_id, "title": row.get("title")}
        if row.get("description") is not None:
            reply["description"] = row.get("description")
        part: JSONObject = {"type": "list_reply", "list_reply": reply}
        return await self.sends(
            {"type": "interactive", "interactive": part}, context_id=view.message_id
        )

    async def reads(self, view: SentView | None = None) -> Delivery:
        """Reads a message (default: the latest): the provider reports it read."""
        return await self.sim.status(view or self.last_message, "read")

    @property
    def templates(self) -> list[SentView]:
        """The messages this user received as templates."""
        return [view for view in self.messages if view.is_template]

    async def taps_payload(self, payload: str, text: str = "") -> Delivery:
        """Taps a template quick-reply button carrying `payload`.

        The message carries the button's text, as WhatsApp's does: `text`, else the text the
        conversation declares for that button (`TemplateSpec(buttons=...)`), else the payload.
        """
        if not text:
            templates = self.sim.bot.conversation.templates
            offering = [v for v in self.templates if payload in v.quick_reply_payloads]
            found = template_wording(offering[-1], templates) if offering else None
            text = found.button_text(payload) if found else payload
        return await self.sends({"type": "button", "button": {"payload": payload, "text": text}})

    async def shares_location(
        self, latitude: float, longitude: float, name: str | None = None, address: str | None = None
    ) -> Delivery:
        """Shares a location."""
        location: JSONObject = {"latitude": latitude, "longitude": longitude}
        location.update({k: v for k, v in (("name", name), ("address", address)) if v is not None})
        return await self.sends({"type": "location", "location": location})

    async def sends_media(
        self, kind: str, media_id: str, *, mime_type: str = "image/jpeg", caption: str | None = None
    ) -> Delivery:
        """Sends an image, video, audio, document or sticker by media id."""
        media: JSONObject = {"id": media_id, "mime_type": mime_type}
        if caption is not None:
            media["caption"] = caption
        return await self.sends({"type": kind, kind: media})

    async def sends(self, message: JSONObject, *, context_id: str | None = None) -> Delivery:
        """Sends any Meta message part (e.g. {"type": "text", "text": {...}}) and waits for the bot."""
        delivery = await self.sim.fake.receive(
            wa_id=self.wa_id,
            name=self.name,
            message=message,
            phone_number_id=self.sim.phone_number_id,
            context_id=context_id,
        )
        await self.sim.after(delivery, self)
        return delivery

    def _offering(self, choice: str, ids: Any, what: str, on: SentView | None = None) -> SentView:
        if on is not None:
            if choice not in ids(on):
                offers = ", ".join(ids(on)) or "none"
                raise SimulatorError(
                    f"{self.wa_id}: {on!r} offers no {what} {choice!r}; it offers: {offers}"
                )
            return on
        for view in reversed(self.messages):
            if choice in ids(view):
                return view
        offered = sorted({i for view in self.messages for i in ids(view)})
        raise SimulatorError(
            f"{self.wa_id}: no message offered a {what} {choice!r}; offered: {', '.join(offered) or 'none'}"
        )

    async def refresh(self) -> None:
        """Reads the user's session from the store."""
        found = await self.sim.runtime.store.sessions.get(self.sim.phone_number_id, self.wa_id)
        self.session, self.window = found.session, found.window

    @property
    def transcript(self) -> str:
        """This conversation as text: what the user sent and the bot answered, in order.

        Buttons show as `[id] title`, list rows as `(id) title · description`, templates with
        their name, language, parameters and quick replies; `--- 25h later ---` marks time that
        passed. No message ids or timestamps, so a transcript is the same on every run.
        """
        return _render(self.sim, self.wa_id)

    def render_transcript(self, *, states: bool = False) -> str:
        """The transcript; with `states`, each message of the user shows the state it arrived in
        (`Juan [choosing_service]: picks (lab) Laboratorio`) and a last line the state now."""
        return _render(self.sim, self.wa_id, states)


class Simulator:
    """The whole bot in-process: real webhook app, real SQLite file, fake GoSendAPI, manual clock."""

    def __init__(
        self,
        bot: Bot | ModuleType,
        *,
        database: str | Path | None = None,
        clock: ManualClock | None = None,
        phone_number_id: str = SIM_PHONE_NUMBER_ID,
    ) -> None:
        self.bot = _find_bot(bot)
        self.clock = clock or ManualClock()
        self.phone_number_id = phone_number_id
        self._database = database
        self._stack = contextlib.AsyncExitStack()
        self.users: dict[str, SimUser] = {}
        self._errors: list[BaseException] = []

    @property
    def initial_state(self) -> str:
        """The conversation's initial state."""
        return self.bot.conversation.spec.initial

    async def __aenter__(self) -> Simulator:
        stack = self._stack
        database = self._database
        if database is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="botkit-sim-"))
            database = Path(folder) / "sim.db"
        self.fake = FakeGoSendAPI(
            clock=self.clock, webhook_url="http://bot/webhook", webhook_secret=SIM_SECRET
        )
        settings = Settings(
            base_url="http://provider/v1",
            api_key=SIM_API_KEY,
            webhook_secrets=(SIM_SECRET,),
            phone_number_id=self.phone_number_id,
            database=str(database),
            api_token=SIM_API_TOKEN,
            handoff_url=SIM_HANDOFF_URL,
            handoff_secret=SIM_HANDOFF_SECRET,
        )
        self.desk = FakeDesk(SIM_HANDOFF_SECRET)  # where handed-off users' messages go
        self.runtime = Runtime(
            self.bot,
            settings,
            clock=self.clock,
            transport=httpx.ASGITransport(app=self.fake.app),
            on_error=self._handler_failed,
            handoff_transport=httpx.ASGITransport(app=self.desk.app),
        )
        self.app = create_app(self.runtime)
        self.fake.webhook_transport = httpx.ASGITransport(app=self.app)
        # Records what the bot hears (transcripts) and injects duplicate or late deliveries.
        self.fake.webhook_transport = self._tap = _Tap(self.fake.webhook_transport, self)
        await stack.enter_async_context(self.app.router.lifespan_context(self.app))
        stack.push_async_callback(self.fake.aclose)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def user(self, wa_id: str, name: str | None = None) -> SimUser:
        """A user (the same object for the same number)."""
        if wa_id not in self.users:
            self.users[wa_id] = SimUser(self, wa_id, name)
        return self.users[wa_id]

    async def after(self, delivery: Delivery, user: SimUser | None = None) -> None:
        """Checks the webhook acknowledged, waits for the bot to finish, refreshes users.

        A handler that raised makes the step raise the same exception (WindowClosedError, a
        bug in the bot), so that a test sees it where it happened.
        """
        if delivery.status_code != 200:
            raise SimulatorError(
                f"the webhook answered {delivery.status_code}: {delivery.response}"
            )
        await self._settled(user)

    async def _settled(self, user: SimUser | None = None) -> None:
        await self.settle()
        for each in [user] if user else self.users.values():
            if each is not None:
                await each.refresh()
        if self._errors:
            error = self._errors[0]
            self._errors.clear()
            raise error

    def _handler_failed(self, event_id: str, error: BaseException) -> None:
        self._errors.append(error)

    async def advance(self, *, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        """Moves the clock forward (windows close, retries come due) and lets the bot catch up;
        timers that come due on the way fire at their own time, in order."""
        left = hours * 3600 + minutes * 60 + seconds
        while (due := await self.runtime.store.timers.next_due()) is not None and due <= left:
            self.clock.advance(due)  # to the next timer: it fires as it would have then
            left -= due
            await self._settled()
        self.clock.advance(left)
        await self._settled()

    async def trigger(
        self,
        wa_id: str,
        name: str,
        data: JSONObject | None = None,
        *,
        phone_number_id: str | None = None,
    ) -> str:
        """Fires a declared trigger for a user, as POST /conversations/{wa_id}/trigger does."""
        event_id = await self.bot.trigger(wa_id, name, data or {}, phone_number_id=phone_number_id)
        await self._settled(self.users.get(wa_id))
        return event_id

    async def handoff(
        self,
        wa_id: str,
        *,
        reason: str = "",
        timeout: timedelta | float | None = None,  # noqa: ASYNC109 (the handoff's, not the call's)
        resume_to: str | None = None,
    ) -> str:
        """Hands a user to people, as POST /conversations/{wa_id}/handoff does (with `timeout`,
        the bot resumes by itself after that long with no message either way)."""
        event_id = await self.bot.handoff(
            wa_id, reason=reason, timeout=timeout, resume_to=resume_to
        )
        await self._settled(self.users.get(wa_id))
        return event_id

    async def reply(self, wa_id: str, text: str, *, fallback: JSONObject | None = None) -> str:
        """A person answers a user, as POST /conversations/{wa_id}/messages does."""
        event_id = await self.bot.reply(wa_id, text, fallback=fallback)
        await self._settled(self.users.get(wa_id))
        return event_id

    async def resume(self, wa_id: str, *, state: str) -> str:
        """Hands a user back to the bot in `state`, as POST /conversations/{wa_id}/resume."""
        event_id = await self.bot.resume(wa_id, state=state)
        await self._settled(self.users.get(wa_id))
        return event_id

    async def status(self, view: SentView, status: str, *, code: int | None = None) -> Delivery:
        """The provider reports a delivery status for a message (failed with `code`, e.g. 131047)."""
        errors: list[JSONObject] = []
        if code is not None:
            errors.append({"code": code, "title": "simulated failure", "message": f"error {code}"})
        delivery = await self.fake.send_status(view.message_id, status, errors=errors)
        await self.after(delivery)
        return delivery

    async def settle(self) -> None:
        """Waits until every event is processed and every send attempted (retries jump the clock)."""
        await self.runtime.settle(autojump=self.clock)

    async def redeliver(self, delivery: Delivery) -> Delivery:
        """Delivers the same webhook body again, as the provider does after a timeout."""
        again = await self.fake.redeliver(delivery)
        await self.after(again)
        return again

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None) -> None:
        """Makes the provider answer `status` to the next `times` sends."""
        self.fake.fail_next(status, times=times, retry_after=retry_after)

    @property
    def sent(self) -> Sequence[SentMessage]:
        """Every message the provider accepted."""
        return self.fake.messages

    async def outbox(self, wa_id: str | None = None) -> list[OutboxRecord]:
        """The bot's outbox rows (attempts, errors, statuses)."""
        return await self.runtime.store.inspect.outbox(wa_id)

    @property
    def heard(self) -> list[Heard]:
        """Every webhook POST the bot received, in order (redeliveries and statuses included)."""
        return list(self._tap.heard)

    @property
    def transcript(self) -> str:
        """Every user's conversation as text, in order (see `SimUser.transcript`)."""
        return _render(self, None)

    def render_transcript(self, *, states: bool = False) -> str:
        """Every user's transcript; `states` as in `SimUser.render_transcript`."""
        return _render(self, None, states)

    def duplicate_next(self, times: int = 1) -> None:
        """Delivers each of the next `times` user messages twice, as after a webhook timeout."""
        self._tap.duplicates += times

    def out_of_order(self, user: SimUser | str) -> None:
        """Holds the user's next message and delivers it after the one that follows it.

        The held step returns at once (nothing happened yet); the next step delivers the newer
        message first, then the older one.
        """
        self._tap.reversing.add(user if isinstance(user, str) else user.wa_id)


def _find_bot(target: Bot | ModuleType) -> Bot:
    return target if isinstance(target, Bot) else find_bot(target)


# --- Added for the testing kit: what the webhook heard, faults on the way in, transcripts. ---


@dataclass(frozen=True, slots=True)
class Heard:
    """One webhook POST the bot received: its envelope, when, and how many sends came before it."""

    envelope: JSONObject
    at: float
    sent_before: int
    state: str | None = None  # the sender's conversation state when it arrived


class _Tap(httpx.AsyncBaseTransport):
    """The webhook transport, recording what it carries and injecting inbound faults."""

    def __init__(self, inner: httpx.AsyncBaseTransport, sim: Simulator) -> None:
        self.inner = inner
        self.sim = sim
        self.heard: list[Heard] = []
        self.duplicates = 0
        self.reversing: set[str] = set()
        self.held: dict[str, httpx.Request] = {}
        self.started = sim.clock.now()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Delivers, twice or later than a newer message when a fault is armed."""
        sender = _inbound_sender(request.content)
        if sender is None:
            return await self._forward(request)
        if sender in self.reversing and sender not in self.held:
            self.held[sender] = request
            return httpx.Response(200, json={"accepted": 0, "held": 1})
        response = await self._forward(request)
        if sender in self.held:
            self.reversing.discard(sender)
            await (await self._forward(self.held.pop(sender))).aread()
        if self.duplicates:
            self.duplicates -= 1
            await (await self._forward(request)).aread()
        return response

    async def _forward(self, request: httpx.Request) -> httpx.Response:
        envelope = json.loads(request.content)
        if isinstance(envelope, dict):
            sent_before = len(self.sim.fake.messages)
            state = self._state_of(_inbound_sender(request.content))
            self.heard.append(Heard(envelope, self.sim.clock.now(), sent_before, state))
        copy = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        return await self.inner.handle_async_request(copy)

    def _state_of(self, wa_id: str | None) -> str | None:
        if wa_id is None:
            return None
        user = self.sim.users.get(wa_id)
        return user.state if user is not None else self.sim.initial_state

    async def aclose(self) -> None:
        """Closes the wrapped transport."""
        await self.inner.aclose()


def _inbound_sender(body: bytes) -> str | None:
    """The wa_id of a user's message in a webhook body; None for statuses and the rest."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    sender = _get(envelope, "data", "message", "from")
    return sender if isinstance(sender, str) else None


def _render(sim: Simulator, wa_id: str | None, states: bool = False) -> str:
    """The conversation as text: the user's messages and the bot's, in order, `wa_id` or all."""
    heard = [h for h in sim._tap.heard if _message_of(h) is not None]
    heard = [h for h in heard if wa_id is None or _sender_of(h) == wa_id]
    sent = [(i, m) for i, m in enumerate(sim.fake.messages) if wa_id is None or m.to == wa_id]
    lines: list[str] = []
    clock = _Elapsed(sim._tap.started)
    seen: set[str] = set()
    queue = list(heard)
    for index, message in [*sent, (len(sim.fake.messages), None)]:
        while queue and queue[0].sent_before <= index:
            first = queue.pop(0)
            lines += clock.mark(first.at) + _render_heard(sim, first, seen, states)
        if message is not None:
            to = "" if wa_id is not None else f" to {_label(sim, message.to)}"
            view, templates = SentView(message), sim.bot.conversation.templates
            lines += clock.mark(message.at) + _render_sent(view, f"bot{to}", templates)
    if states:
        users = [u for u in sim.users.values() if wa_id is None or u.wa_id == wa_id]
        lines += [f"{_label(sim, u.wa_id)} is now [{u.state}]" for u in users]
    return "\n".join(lines) + "\n" if lines else ""


class _Elapsed:
    """Time markers between transcript lines: only gaps of a minute or more, rounded to minutes."""

    def __init__(self, started: float) -> None:
        self.last = started

    def mark(self, at: float) -> list[str]:
        gap, self.last = at - self.last, max(at, self.last)
        minutes = round(gap / 60)
        if minutes < 1:
            return []
        hours, minutes = divmod(minutes, 60)
        text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
        return [f"--- {text} later ---"]


def _message_of(heard: Heard) -> JSONObject | None:
    message = _get(heard.envelope, "data", "message")
    return message if isinstance(message, dict) else None


def _sender_of(heard: Heard) -> str:
    return str(_get(heard.envelope, "data", "message", "from"))


def _label(sim: Simulator, wa_id: str) -> str:
    user = sim.users.get(wa_id)
    return user.name if user is not None and user.name else wa_id


def _render_heard(sim: Simulator, heard: Heard, seen: set[str], states: bool) -> list[str]:
    message = _message_of(heard) or {}
    event_id = str(heard.envelope.get("id"))
    again = "  (delivered again)" if event_id in seen else ""
    seen.add(event_id)
    state = f" [{heard.state}]" if states else ""
    return [f"{_label(sim, _sender_of(heard))}{state}: {_describe_inbound(message)}{again}"]


def _describe_inbound(message: JSONObject) -> str:
    kind = str(message.get("type"))
    part = message.get(kind)
    part = part if isinstance(part, dict) else {}
    if kind == "text":
        return str(part.get("body", ""))
    if kind == "interactive":
        for reply, verb, mark in (
            ("button_reply", "taps", "[{}]"),
            ("list_reply", "picks", "({})"),
        ):
            chosen = part.get(reply)
            if isinstance(chosen, dict):
                return f"{verb} {mark.format(chosen.get('id'))} {chosen.get('title')}"
    if kind == "button":
        payload, text = part.get("payload"), part.get("text")
        label = f" {text}" if text and text != payload else ""
        return f"taps quick reply [{payload}]{label}" if label else f"taps quick reply {payload}"
    if kind == "location":
        return f"[location] {_place(part)}"
    caption = part.get("caption")
    return f"[{kind}]" + (f" {caption}" if caption else "")


def _place(part: JSONObject) -> str:
    where = ", ".join(str(part[k]) for k in ("name", "address") if part.get(k))
    point = f"({part.get('latitude')}, {part.get('longitude')})"
    return f"{where} {point}" if where else point


def _render_sent(view: SentView, who: str, templates: Mapping[str, TemplateSpec]) -> list[str]:
    if view.is_template:
        return _render_template(template_wording(view, templates), who)
    if view.type == "interactive":
        return _render_interactive(view, who)
    if view.type == "text":
        return _indented(f"{who}: {view.text}")
    if view.type == "location":
        return [f"{who}: [location] {_place(view.payload)}"]
    return _render_media(view, who)


def _render_template(shown: TemplateWording, who: str) -> list[str]:
    header = f"*{shown.header}*\n" if shown.header else ""
    lines = _indented(f"{who}: template {shown.name} ({shown.language}): {header}{shown.text}")
    if not shown.declared:
        return lines + [f"  quick reply: {p}" for p, _ in shown.buttons]
    return lines + [f"  quick reply: [{p}] {t}" for p, t in shown.buttons]


def _render_interactive(view: SentView, who: str) -> list[str]:
    header = _get(view.payload, "header", "text")
    title = f"*{header}*\n" if isinstance(header, str) else ""
    lines = _indented(f"{who}: {title}{view.text}")
    footer = _get(view.payload, "footer", "text")
    if isinstance(footer, str):
        lines.append(f"  _{footer}_")
    lines += [f"  [{i}] {t}" for i, t in zip(view.button_ids, view.button_titles, strict=True)]
    button = _get(view.payload, "action", "button")
    if isinstance(button, str):
        lines.append(f"  list {button!r}:")
    for section in view._action_list("sections"):
        if section.get("title"):
            lines.append(f"    {section.get('title')}")
        for row in section.get("rows") or []:  # type: ignore[union-attr]
            if isinstance(row, dict):
                more = f" · {row['description']}" if row.get("description") else ""
                lines.append(f"      ({row.get('id')}) {row.get('title')}{more}")
    return lines


def _render_media(view: SentView, who: str) -> list[str]:
    found = [view.payload[k] for k in ("link", "filename", "caption") if view.payload.get(k)]
    return _indented(f"{who}: [{view.type}] " + " ".join(str(f) for f in found))


def _indented(text: str) -> list[str]:
    first, *rest = text.rstrip().split("\n")
    return [first, *(f"  {line}" for line in rest)]
