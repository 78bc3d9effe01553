"""What a handler gets: the event, the user, their data, the 24-hour window, and send/goto."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from botkit.exceptions import BotkitError, WindowClosedError
from botkit.types import JSON, JSONObject
from botkit.wire.events import (
    ButtonTap,
    InboundMessage,
    Input,
    QuickReplyTap,
    RowPick,
    StatusUpdate,
    TextInput,
)
from botkit.wire.handoff import handoff_timeout
from botkit.wire.messages import Message, Template, is_message
from botkit.wire.timer import NAME, SCHEDULED, TimerEvent, TimerInput
from botkit.wire.trigger import TriggerEvent, TriggerInput
from botkit.wire.window import Window

if TYPE_CHECKING:
    from botkit.conversation.dsl import ConversationSpec, State


class Hold:
    """The policy "keep the message until the user writes again", for a closed window."""

    _instance: Hold | None = None

    def __new__(cls) -> Hold:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "HOLD"


HOLD = Hold()
STAY = "\x00stay"  # Context.target when the handler chose to stay

Event: TypeAlias = InboundMessage | TriggerEvent | StatusUpdate | TimerEvent
ContextInput: TypeAlias = Input | TriggerInput | StatusUpdate | TimerInput
Fallback: TypeAlias = "Template | Hold | Callable[[Context], Template | Hold | None]"


@dataclass(frozen=True, slots=True)
class User:
    """Who the conversation is with, and on which business number."""

    phone_number_id: str
    wa_id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """A message a handler sent, with what to do if the window is closed when it is delivered."""

    message: Message
    fallback: Template | Hold | None = None
    held: bool = False
    instead_of: str | None = None  # the type of the free-form message a template replaced


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A reminder a handler set (`due_at`, this machine's clock) or cancelled (None)."""

    name: str
    due_at: float | None
    data: JSONObject


@dataclass(frozen=True, slots=True)
class WindowView:
    """The user's 24-hour window as a handler sees it: the stored value, at the handler's time."""

    value: Window
    now: float

    @property
    def open(self) -> bool:
        """Whether a free-form message may be sent now."""
        return self.value.is_open(self.now)

    @property
    def closes_at(self) -> float | None:
        """When the window the user's latest message opened ends (None: they never wrote)."""
        return self.value.closes_at

    @property
    def refused(self) -> bool:
        """Whether the provider refused a message since the user last wrote."""
        return self.value.refused


class Sending:
    """What `ctx.send(...)` returns: the send, which happens when it is awaited.

    A coroutine not awaited only warns, when it is collected; this one is counted at the end
    of the handler (Context.unawaited_sends), so that a forgotten `await` fails the event.
    """

    __slots__ = ("_coroutine", "awaited")

    def __init__(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._coroutine = coroutine
        self.awaited = False

    def __await__(self) -> Generator[Any, None, None]:
        self.awaited = True
        return self._coroutine.__await__()

    def close(self) -> None:
        """Drops the send without running it (and without a "never awaited" warning)."""
        self._coroutine.close()


class Context:
    """What a handler gets: the event, the user, their persistent data, and `send`/`goto`."""

    def __init__(
        self,
        spec: ConversationSpec,
        event: Event,
        state: str,
        data: dict[str, JSON],
        window: WindowView | None = None,
    ) -> None:
        self.spec = spec
        self.event = event
        self.user = _user(event)
        self.state = state
        self.data = data
        self.window = window or _own_window(event)
        self.queued: list[Queued] = []
        self.target: str | None = None
        self.route_fallback: Fallback | None = None
        # the handler's name, once one is found for the input (for the log and the metrics)
        self.handler: str | None = None
        self.scheduled: list[Scheduled] = []
        self._sendings: list[Sending] = []
        self.handoff_reason: str | None = None  # set by handoff(): people answer from now on
        self.handoff_timeout: tuple[float | None, str | None] = (None, None)  # (seconds, state)

    @property
    def sent(self) -> list[Message]:
        """The messages this handler sent so far (templates in place of refused free-form ones)."""
        return [queued.message for queued in self.queued]

    @property
    def input(self) -> ContextInput:
        """What arrived: a TextInput, ButtonTap, RowPick, ..., a TriggerInput or a StatusUpdate."""
        return self.event if isinstance(self.event, StatusUpdate) else self.event.input

    @property
    def trigger_data(self) -> JSONObject:
        """The data of the trigger being handled (empty for any other input)."""
        return self.input.data if isinstance(self.input, TriggerInput) else {}

    @property
    def timer_data(self) -> JSONObject:
        """The data of the reminder being handled (empty for any other input)."""
        return self.input.data if isinstance(self.input, TimerInput) else {}

    def schedule(
        self,
        name: str,
        *,
        after: timedelta | float | None = None,
        at: datetime | float | None = None,
        data: JSONObject | None = None,
    ) -> None:
        """Sets the reminder `name` for this user, `after` from now or `at` a time (a datetime
        with its timezone, or Unix seconds), replacing one of the same name; an `@on.timer(name)`
        handler runs it then, in order with the user's messages. Written when the handler's
        changes commit; a handler that fails sets nothing."""
        self._check_timer(name)
        if (after is None) == (at is None):
            raise BotkitError(f"schedule({name!r}): give after= or at=, one of them")
        if after is not None:
            seconds = after.total_seconds() if isinstance(after, timedelta) else float(after)
            due_at = self.window.now + seconds
        elif isinstance(at, datetime):
            if at.tzinfo is None:
                raise BotkitError(f"schedule({name!r}, at=...): give the datetime a timezone")
            due_at = at.timestamp()
        else:
            due_at = float(at)  # type: ignore[arg-type]
        self.scheduled.append(Scheduled(name, due_at, dict(data or {})))

    def cancel(self, name: str) -> None:
        """Cancels this user's reminder `name`, if it is set (when the handler's changes commit)."""
        self._check_timer(name)
        self.scheduled.append(Scheduled(name, None, {}))

    def _check_timer(self, name: str) -> None:
        if not isinstance(name, str) or not NAME.match(name):
            raise BotkitError(
                f"a reminder's name must be 1 to 64 letters, digits, '_', '.' or '-', not {name!r}"
            )
        declared = {route.keys[0] for route in self.spec.timed(SCHEDULED)}
        if name not in declared:
            raise BotkitError(
                f"{self.spec.name}: no @on.timer({name!r}) handler is declared; declared "
                f"reminders: {', '.join(sorted(declared)) or 'none'}"
            )

    @property
    def text(self) -> str | None:
        """The text the user typed, when the input is text."""
        return self.input.body if isinstance(self.input, TextInput) else None

    @property
    def texts(self) -> tuple[str, ...]:
        """The texts the user typed, one by one: several for a burst (Conversation.coalesce,
        whose `text` joins them by newlines), one for a single text, none for other input."""
        found = self.input
        if not isinstance(found, TextInput):
            return ()
        return found.parts or (found.body,)

    @property
    def choice(self) -> str | None:
        """The id of the button or row tapped, or the quick-reply payload."""
        tap = self.input
        if isinstance(tap, ButtonTap | RowPick):
            return tap.id
        return tap.payload if isinstance(tap, QuickReplyTap) else None

    def send(self, message: Message, *, fallback: Fallback | None = None) -> Sending:
        """Queues a message to this user, delivered after the handler's changes commit.

        Write `await ctx.send(...)`: a send not awaited fails the event when the handler
        returns. A free-form message outside the 24-hour window is replaced by the fallback
        template (this one, else the trigger's, else the state's), held until the user writes
        (fallback=HOLD), or refused with WindowClosedError when no fallback is declared.
        """
        sending = Sending(self._send(message, fallback))
        self._sendings.append(sending)
        return sending

    def unawaited_sends(self) -> int:
        """How many `ctx.send(...)` calls were not awaited; they are dropped (nothing is sent)."""
        missed = [sending for sending in self._sendings if not sending.awaited]
        for sending in missed:
            sending.close()
        self._sendings.clear()
        return len(missed)

    async def _send(self, message: Message, fallback: Fallback | None) -> None:
        if not is_message(message):
            raise TypeError(
                f"send() takes a message builder such as Text(...) or Buttons(...), "
                f"not {type(message).__name__}"
            )
        policy = self._resolve(fallback or self.route_fallback or self._state_fallback(self.state))
        self.queued.append(self._queue(message, policy))

    async def send_prompt(self, state: str) -> None:
        """Sends `state`'s prompt, with that state's fallback (used on entering a state)."""
        message = self.prompt(state)
        if message is not None:
            own = self._state_fallback(state)
            policy = self._resolve(self.route_fallback or own)
            self.queued.append(self._queue(message, policy))

    async def handoff(
        self,
        *,
        reason: str = "",
        timeout: timedelta | float | None = None,  # noqa: ASYNC109 (the handoff's, not the call's)
        resume_to: State | str | None = None,
    ) -> None:
        """Hands the conversation to people once this handler is done: until a resume, the
        user's messages go to BOTKIT_HANDOFF_URL and no handler runs (docs/guide/handoff.md).

        With `timeout` (a timedelta or seconds), the bot resumes it by itself when no message
        has passed either way for that long, in `resume_to` (default: the state the user is in
        when this handler is done). HandoffError for a bad timeout or an undeclared state.
        """
        if not isinstance(reason, str):
            raise TypeError(f"handoff(reason=...) takes a string, not {type(reason).__name__}")
        target = resume_to if resume_to is None or isinstance(resume_to, str) else resume_to.name
        self.handoff_timeout = handoff_timeout(timeout, target, list(self.spec.states))
        self.handoff_reason = reason

    def goto(self, state: State | str) -> None:
        """Moves to `state` when the handler returns, instead of its declared destination."""
        name = state if isinstance(state, str) else state.name
        if name not in self.spec.states:
            raise BotkitError(
                f"{self.spec.name}: goto({name!r}): no such state; states are "
                f"{', '.join(self.spec.states)}"
            )
        self.target = name

    def stay(self) -> None:
        """Stays in the current state when the handler returns, sending no prompt.

        For a handler whose input can be refused (a validation failing): the declared `to=`
        is where valid input goes, and `stay()` keeps the user where they are.
        """
        self.target = STAY

    def prompt(self, state: State | str | None = None) -> Message | None:
        """The prompt of `state` (default: the current state), evaluated for this context."""
        name = self.state if state is None else state if isinstance(state, str) else state.name
        source = self.spec.states[name].prompt
        if source is None or is_message(source):
            return source  # type: ignore[return-value]
        return source(self)  # type: ignore[operator]

    def _state_fallback(self, state: str) -> Fallback | None:
        found = self.spec.states.get(state)
        return found.fallback if found is not None else None

    def _resolve(self, fallback: Fallback | None) -> Template | Hold | None:
        if fallback is None or isinstance(fallback, Template | Hold):
            return fallback
        resolved = fallback(self)
        if resolved is not None and not isinstance(resolved, Template | Hold):
            raise TypeError(f"a fallback must give a Template or HOLD, not {resolved!r}")
        return resolved

    def _queue(self, message: Message, policy: Template | Hold | None) -> Queued:
        if message.type == "template" or self.window.open:
            return Queued(message, policy)
        if isinstance(policy, Template):
            return Queued(policy, instead_of=message.type)
        if isinstance(policy, Hold):
            return Queued(message, policy, held=True)
        raise WindowClosedError(self.user.wa_id, self.window.closes_at, refused=self.window.refused)


def _user(event: Event) -> User:
    if isinstance(event, InboundMessage):
        return User(event.phone_number_id, event.contact.wa_id, event.contact.name)
    if isinstance(event, StatusUpdate):
        return User(event.phone_number_id, event.recipient_id)
    return User(event.phone_number_id, event.wa_id)


def _own_window(event: Event) -> WindowView:
    """The window an event alone tells of: an inbound message opens it as it is sent."""
    if isinstance(event, InboundMessage):
        sent_at = float(event.timestamp)
        return WindowView(Window(sent_at, 1), sent_at)
    return WindowView(Window(), 0.0)
