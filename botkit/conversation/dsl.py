"""The decorator DSL for conversations, run on transitions' AsyncMachine (the only transitions importer).

A conversation is a class: its `State` attributes are the states, and its methods decorated
with `on.button`, `on.row`, `on.payload`, `on.text`, `on.media`, `on.location`,
`on.contacts`, `on.unsupported`, `on.stale` and `on.fallback` are the handlers (and `on.trigger`,
`on.status`, `on.timeout`, `on.window_closing` and `on.timer`, for what is not the user's). Every mistake that can be
seen in the declaration is a DefinitionError when the class is created.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any, ClassVar, ParamSpec, TypeAlias, TypeVar, cast

from transitions.extensions.asyncio import AsyncMachine

from botkit.conversation.context import STAY, Context, ContextInput, Fallback, Hold, User
from botkit.conversation.migration import Migration, check_migrations
from botkit.conversation.template import TemplateSpec
from botkit.exceptions import BotkitError, DefinitionError
from botkit.types import JSONObject
from botkit.wire.events import (
    ButtonTap,
    ContactsInput,
    LocationInput,
    MediaInput,
    QuickReplyTap,
    RowPick,
    StatusUpdate,
    TextInput,
    UnsupportedInput,
)
from botkit.wire.messages import Message, Template, Text, is_message
from botkit.wire.timer import NAME, SCHEDULED, TIMEOUT, WINDOW_CLOSING, TimerInput
from botkit.wire.trigger import TriggerInput
from botkit.wire.window import WINDOW_SECONDS

Handler: TypeAlias = Callable[[Any, "Context"], Awaitable[None] | None]
PromptSource: TypeAlias = "Message | Callable[[Context], Message | None]"
StateRef: TypeAlias = "State | str"
F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")

STALE = "stale"  # the kind of on.stale's routes: a tap on an older prompt than the current one
STALE_HANDLER = "(stale)"  # the handler named in the log line of a default stale answer
STALE_TEXT = Text("Esa opción ya no está disponible.")  # Conversation.stale_text's default
MAX_COALESCE = 60.0  # seconds: the longest burst interval (Conversation.coalesce)
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
STATUSES = ("sent", "delivered", "read", "failed")
USER_INPUTS = ("button", "row", "payload", "text", "media", "location", "contacts", "unsupported")
_ROUTES_ATTR = "__botkit_routes__"
_NOT_USER_INPUT = ("trigger", "status", SCHEDULED, TIMEOUT, WINDOW_CLOSING, STALE)
_TIMED = (TIMEOUT, WINDOW_CLOSING)  # timers of the conversation's own, one per handler
_ANY_INPUT = {
    "text": "any text",
    "location": "a location",
    "contacts": "contacts",
    "unsupported": "an unsupported message",
}


class State:
    """A state of a conversation; `prompt` is the message that asks its question."""

    __slots__ = ("fallback", "final", "initial", "name", "prompt")

    def __init__(
        self,
        *,
        initial: bool = False,
        prompt: PromptSource | None = None,
        final: bool = False,
        fallback: Fallback | None = None,
    ) -> None:
        if prompt is not None and not callable(prompt) and not is_message(prompt):
            raise DefinitionError(
                f"State(prompt=...) takes a message such as Text(...) or a function of the "
                f"context returning one, not {type(prompt).__name__}"
            )
        _check_fallback("State(fallback=...)", fallback)
        self.initial = initial
        self.prompt = prompt
        self.final = final
        self.fallback = fallback
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"State({self.name!r})"


@dataclass(frozen=True, slots=True)
class Route:
    """One decorator: which inputs, in which states, lead where."""

    kind: str
    keys: tuple[str, ...]
    states: tuple[str, ...] | None
    dest: str | None
    regex: re.Pattern[str] | None = None
    requires: tuple[str, ...] = ()
    fallback: Fallback | None = None
    handler: str = ""
    delay: float | None = None  # on.timeout's `after`, on.window_closing's `before` (seconds)

    @property
    def label(self) -> str:
        """What the route matches, e.g. ``button:confirm_yes`` or ``text:/^\\d+$/``."""
        if self.regex is not None:
            return f"{self.kind}:/{self.regex.pattern}/"
        return f"{self.kind}:{'|'.join(self.keys) or '*'}"

    @property
    def trigger(self) -> str:
        """The transitions trigger name: the label and the handler, unique in a conversation."""
        return f"{self.label}@{self.handler}"


def _names_the_handler(method: Callable[P, R]) -> Callable[P, R]:
    """Defers a decorator's DefinitionError to the function it decorates, to name it.

    `@on.media("gif")` is evaluated before the function exists; its error is raised when it
    is applied, as ``Clinic.photo: on.media: unknown kind 'gif'; ...``.
    """

    @functools.wraps(method)
    def deferring(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except DefinitionError as exc:
            error = str(exc)

        def refuse(func: object) -> object:
            where = str(getattr(func, "__qualname__", "")).rpartition("<locals>.")[2]
            raise DefinitionError(f"{where}: {error}" if where else error)

        return cast(R, refuse)

    return deferring


class _On:
    """The handler decorators: ``@on.button("confirm_yes", states=[confirming], to=confirmed)``."""

    @_names_the_handler
    def button(
        self, *ids: str, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles a tap on a reply button with one of `ids`."""
        return _decorator("button", _keys("on.button", ids), states, to)

    @_names_the_handler
    def row(
        self, *ids: str, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles the pick of a list row with one of `ids`."""
        return _decorator("row", _keys("on.row", ids), states, to)

    @_names_the_handler
    def payload(
        self, *payloads: str, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles a template quick-reply tap: exact payloads or patterns like ``confirm_yes_apt_*``."""
        return _decorator("payload", _keys("on.payload", payloads), states, to)

    @_names_the_handler
    def text(
        self,
        *words: str,
        regex: str | None = None,
        states: Sequence[StateRef] | None = None,
        to: StateRef | None = None,
    ) -> Callable[[F], F]:
        """Handles text: any text, one of `words` (case and outer spaces ignored), or a `regex` search."""
        if words and regex is not None:
            raise DefinitionError("on.text: give words or regex=, not both")
        compiled = _compile(regex) if regex is not None else None
        keys = tuple(word.strip().casefold() for word in words)
        return _decorator("text", keys, states, to, compiled)

    @_names_the_handler
    def media(
        self, *kinds: str, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles media of the given kinds (default: all of image, video, audio, document, sticker)."""
        unknown = [kind for kind in kinds if kind not in MEDIA_KINDS]
        if unknown:
            raise DefinitionError(
                f"on.media: unknown kind {unknown[0]!r}; kinds are {', '.join(MEDIA_KINDS)}"
            )
        return _decorator("media", tuple(kinds) or MEDIA_KINDS, states, to)

    @_names_the_handler
    def location(
        self, *, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles a shared location."""
        return _decorator("location", (), states, to)

    @_names_the_handler
    def contacts(
        self, *, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles shared contact cards."""
        return _decorator("contacts", (), states, to)

    @_names_the_handler
    def unsupported(
        self, *, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles a kind of message botkit does not know (the raw payload is on ctx.input.raw)."""
        return _decorator("unsupported", (), states, to)

    @_names_the_handler
    def trigger(
        self,
        name: str,
        *,
        states: Sequence[StateRef] | None = None,
        to: StateRef | None = None,
        requires: Sequence[str] = (),
        fallback: Fallback | None = None,
    ) -> Callable[[F], F]:
        """Handles a proactive trigger (POST /conversations/{wa_id}/trigger, bot.trigger()).

        `requires` names the data keys a request must carry; `fallback` is the template (or
        HOLD) for messages sent while the user's 24-hour window is closed.
        """
        _check_fallback(f"on.trigger({name!r}, fallback=...)", fallback)
        keys = _keys("on.trigger", (name,))
        extra = (tuple(requires), fallback)
        return _decorator("trigger", keys, states, to, None, extra)

    @_names_the_handler
    def timeout(
        self,
        *,
        after: timedelta | float,
        states: Sequence[StateRef] | None = None,
        to: StateRef | None = None,
    ) -> Callable[[F], F]:
        """Handles the user's silence: fires `after` (a timedelta, or seconds) since they last
        wrote in (or entered) one of `states`; leaving those states cancels it."""
        return _decorator(TIMEOUT, (), states, to, delay=_seconds("on.timeout(after=...)", after))

    @_names_the_handler
    def window_closing(
        self,
        *,
        before: timedelta | float,
        states: Sequence[StateRef] | None = None,
        to: StateRef | None = None,
    ) -> Callable[[F], F]:
        """Handles the 24-hour window's approaching end: fires `before` (a timedelta, or
        seconds) it closes, while the user is in one of `states` (free-form sends still go)."""
        delay = _seconds("on.window_closing(before=...)", before)
        return _decorator(WINDOW_CLOSING, (), states, to, delay=delay)

    @_names_the_handler
    def timer(
        self,
        name: str,
        *,
        states: Sequence[StateRef] | None = None,
        to: StateRef | None = None,
        fallback: Fallback | None = None,
    ) -> Callable[[F], F]:
        """Handles a reminder a handler scheduled with `ctx.schedule(name, ...)`; `fallback` is
        the template (or HOLD) for its messages when the 24-hour window is closed."""
        _check_fallback(f"on.timer({name!r}, fallback=...)", fallback)
        if not isinstance(name, str) or not NAME.match(name):
            raise DefinitionError(
                f"on.timer: name {name!r} must be 1 to 64 letters, digits, '_', '.' or '-'"
            )
        return _decorator(SCHEDULED, (name,), states, to, None, ((), fallback))

    @_names_the_handler
    def status(
        self, *statuses: str, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles delivery statuses of the bot's messages: sent, delivered, read, failed (default: all)."""
        unknown = [status for status in statuses if status not in STATUSES]
        if unknown:
            raise DefinitionError(
                f"on.status: unknown status {unknown[0]!r}; statuses are {', '.join(STATUSES)}"
            )
        return _decorator("status", tuple(statuses) or STATUSES, states, to)

    @_names_the_handler
    def stale(
        self, *, states: Sequence[StateRef] | None = None, to: StateRef | None = None
    ) -> Callable[[F], F]:
        """Handles a stale tap: a reply button or list row of an older prompt than the current
        one (ctx.input is the tap); then the state's prompt is sent again, unless the handler
        moved the state or called ctx.stay(). Without one, `stale_text` and the prompt go."""
        return _decorator(STALE, (), states, to)

    @_names_the_handler
    def fallback(self, *, states: Sequence[StateRef] | None = None) -> Callable[[F], F]:
        """Handles any input no other handler takes; without one, the state's prompt is sent again."""
        return _decorator("fallback", (), states, None)


on = _On()


@dataclass(slots=True)
class _Table:
    """The routes of one state, indexed for lookup."""

    exact: dict[tuple[str, str], tuple[Route, Handler]] = field(default_factory=dict)
    patterns: list[tuple[Route, str, Handler]] = field(default_factory=list)
    regexes: list[tuple[Route, Handler]] = field(default_factory=list)
    any: dict[str, tuple[Route, Handler]] = field(default_factory=dict)
    seen: dict[tuple[str, str], tuple[Route, Handler]] = field(default_factory=dict)


@dataclass(slots=True)
class ConversationSpec:
    """Everything derived from a conversation class: states, routing tables, the machine."""

    name: str
    states: dict[str, State]
    initial: str
    routes: list[tuple[Route, Handler]]
    tables: dict[str, _Table]
    machine: Any
    version: str
    triggers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    migrations: dict[str, Migration] = field(default_factory=dict)
    models: list[_Model] = field(default_factory=list)
    timers: dict[str, list[Route]] = field(default_factory=dict)  # by kind, for every turn
    stale_taps: bool = False  # taps on older prompts are told apart (docs/guide/stale-taps.md)
    coalesce: float | None = None  # seconds a burst of texts gathers (docs/guide/bursts.md)
    # (trigger, source) -> (dest, whether entering sends its prompt): the machine's moves that
    # run no callback but the prompt, made without its event machinery (see _direct_moves)
    direct: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    def find(self, state: str, user_input: ContextInput) -> tuple[Route, Handler] | None:
        """The route and handler for an input in `state`; for user inputs, else the fallback."""
        table = self.tables[state]
        found = _lookup(table, user_input)
        if found is not None or isinstance(user_input, TriggerInput | StatusUpdate | TimerInput):
            return found
        return table.any.get("fallback")

    def timed(self, kind: str) -> list[Route]:
        """The routes of `kind` (on.timeout's, on.window_closing's or on.timer's)."""
        return self.timers.get(kind, [])

    def takes(self, state: str) -> list[str]:
        """What a user can send in `state` that a handler takes, in words (for the simulators).

        E.g. ``["button 'confirm_yes'", "payload 'confirm_yes_*'", "any text"]``; triggers and
        statuses are not user inputs and are left out, as is the fallback.
        """
        table = self.tables[state]
        taken = [f"{kind} {key!r}" for kind, key in table.exact if kind not in _NOT_USER_INPUT]
        taken += [f"payload {pattern!r}" for _, pattern, _ in table.patterns]
        taken += [
            f"text matching {route.regex.pattern!r}" for route, _ in table.regexes if route.regex
        ]
        taken += [_ANY_INPUT[kind] for kind in table.any if kind in _ANY_INPUT]
        return taken

    async def run(self, conversation: Conversation, ctx: Context) -> bool:
        """Runs the handler for ctx.input and moves the state, sending the new state's prompt.

        Returns False when nothing handles the input: a trigger or status not declared for
        the current state. A user input always has an answer (default: the prompt again).
        """
        found = self.find(ctx.state, ctx.input)
        if found is None:
            if isinstance(ctx.input, TriggerInput | StatusUpdate | TimerInput):
                return False
            await ctx.send_prompt(ctx.state)
            return True
        await self._handle(conversation, ctx, *found)
        return True

    async def run_stale(self, conversation: Conversation, ctx: Context) -> bool:
        """Answers a stale tap (botkit.runtime.stale): the state's on.stale handler, else the
        conversation's `stale_text`; then the state's prompt again, unless the handler moved
        the state (its `to=` or ctx.goto) or chose ctx.stay()."""
        found = self.tables[ctx.state].any.get(STALE)
        if found is None:
            ctx.handler = STALE_HANDLER
            await ctx.send(type(conversation).stale_text)
        else:
            await self._handle(conversation, ctx, *found)
            if ctx.target is not None or found[0].dest is not None:
                return True
        await ctx.send_prompt(ctx.state)
        return True

    async def _handle(
        self, conversation: Conversation, ctx: Context, route: Route, handler: Handler
    ) -> None:
        """Runs `handler` for ctx.input and moves the state as it (or its route) says."""
        ctx.handler = route.handler
        ctx.route_fallback = route.fallback
        try:
            result = handler(conversation, ctx)
            if inspect.isawaitable(result):
                await result
        finally:
            missed = ctx.unawaited_sends()
        if missed:
            raise BotkitError(
                f"{self.name}.{route.handler} called ctx.send(...) without await "
                f"({missed} {'time' if missed == 1 else 'times'}, in state {ctx.state!r}); "
                "the event fails and nothing is sent: write `await ctx.send(...)`"
            )
        if ctx.target == STAY:
            return
        trigger = f"to_{ctx.target}" if ctx.target is not None else None
        if trigger is None and route.dest is not None:
            trigger = route.trigger
        if trigger is not None:
            await self._move(ctx, trigger)

    async def _move(self, ctx: Context, trigger: str) -> None:
        direct = self.direct.get((trigger, ctx.state))
        if direct is not None:  # what transitions would do, read from its own tables
            dest, prompts = direct
            if prompts:
                await ctx.send_prompt(dest)
            ctx.state = dest
            return
        # Models are attached to the machine once and reused: attaching (add_model) binds
        # every trigger to the model, too costly to repeat per event (bench/webhook.py).
        model = self.models.pop() if self.models else self._attach()
        self.machine.set_state(ctx.state, model=model)
        try:
            await model.trigger(trigger, ctx=ctx)
            ctx.state = model.state
        finally:
            self.models.append(model)

    def _attach(self) -> _Model:
        model = _Model()
        self.machine.add_model(model, initial=self.initial)
        return model


class _Model:
    """A user's model, attached to the conversation's machine for one event."""

    state: str
    trigger: Callable[..., Awaitable[bool]]  # set by transitions when the model is attached


class Conversation:
    """Base class of conversations; subclasses declare States and decorated handlers.

    `migrations` says where users stored in a state the code no longer has go (old name ->
    new state name, or `Migration(to, message)`; conversation/migration.py).
    `templates` declares the approved templates it sends (name -> TemplateSpec), which
    `botkit check` compares with the templates it builds. `examples` gives user data as the
    handlers leave it on the way (e.g. ``[{"pizza": "napolitana", "size": "grande"}]``), for
    `botkit check` to evaluate prompts that read it: a prompt must work with one sample.
    `stale_taps = True` (or any `on.stale` handler) tells taps on an older prompt than the
    current one apart from the current one's; `stale_text` is what such a tap gets before the
    current prompt, when its state has no `on.stale` handler (docs/guide/stale-taps.md).
    `coalesce` (a timedelta or seconds, up to a minute) gathers a user's consecutive texts
    that come within it into one input for a text handler (docs/guide/bursts.md).
    """

    spec: ClassVar[ConversationSpec]
    version: ClassVar[str | None] = None
    templates: ClassVar[dict[str, TemplateSpec]] = {}
    examples: ClassVar[Sequence[JSONObject]] = ()
    migrations: ClassVar[Mapping[str, str | Migration]] = {}
    stale_taps: ClassVar[bool] = False
    stale_text: ClassVar[Message] = STALE_TEXT
    coalesce: ClassVar[timedelta | float | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.spec = _build_spec(cls)


# -- building the spec --------------------------------------------------------------------


def _build_spec(cls: type[Conversation]) -> ConversationSpec:
    if not isinstance(cls.stale_taps, bool):
        raise DefinitionError(
            f"{cls.__name__}.stale_taps takes True or False, not {type(cls.stale_taps).__name__}"
        )
    if not is_message(cls.stale_text):
        raise DefinitionError(
            f"{cls.__name__}.stale_text takes a message such as Text(...), "
            f"not {type(cls.stale_text).__name__}"
        )
    states = _collect_states(cls)
    initial = _initial(cls.__name__, states)
    routes = _collect_routes(cls, states)
    tables = {name: _Table() for name in states}
    for route, handler in routes:
        for state in route.states or tuple(states):
            _index(cls.__name__, state, tables[state], route, handler)
    version = cls.version or _fingerprint(states, routes)
    machine = _machine(cls.__name__, states, initial, routes)
    triggers: dict[str, tuple[str, ...]] = {}
    for route, _ in routes:
        if route.kind == "trigger":
            known = triggers.get(route.keys[0], ())
            triggers[route.keys[0]] = (*known, *(k for k in route.requires if k not in known))
    migrations = check_migrations(cls.__name__, states, cls.migrations)
    spec = ConversationSpec(
        cls.__name__, states, initial, routes, tables, machine, version, triggers, migrations
    )
    for route, _ in routes:
        if route.kind in (*_TIMED, SCHEDULED):
            spec.timers.setdefault(route.kind, []).append(route)
    spec.stale_taps = cls.stale_taps or any(route.kind == STALE for route, _ in routes)
    spec.coalesce = _coalesce(cls)
    spec.direct = _direct_moves(machine)
    return spec


def _coalesce(cls: type[Conversation]) -> float | None:
    """The conversation's burst interval in seconds (None: each text is a turn of its own)."""
    raw = cls.coalesce
    if raw is None:
        return None
    where = f"{cls.__name__}.coalesce"
    seconds = _seconds(where, raw)
    if not 0 < seconds <= MAX_COALESCE:
        raise DefinitionError(
            f"{where} is {seconds:g}s; give more than 0 and at most {MAX_COALESCE:g}s (a longer "
            "silence is an inactivity timeout: on.timeout)"
        )
    return seconds


def _collect_states(cls: type) -> dict[str, State]:
    states: dict[str, State] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, State):
                states[name] = value
    if not states:
        raise DefinitionError(
            f"{cls.__name__}: declares no states; add e.g. `idle = State(initial=True)`"
        )
    return states


def _initial(owner: str, states: dict[str, State]) -> str:
    initial = [name for name, state in states.items() if state.initial]
    if len(initial) != 1:
        found = ", ".join(initial) or "none"
        raise DefinitionError(
            f"{owner}: exactly one state must be State(initial=True); found {found}"
        )
    return initial[0]


def _collect_routes(cls: type, states: dict[str, State]) -> list[tuple[Route, Handler]]:
    routes: list[tuple[Route, Handler]] = []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            for raw in getattr(value, _ROUTES_ATTR, ()):
                routes.append((_resolve(cls.__name__, name, raw, states, value), value))
    return routes


def _resolve(
    owner: str, handler: str, raw: _Declared, states: dict[str, State], func: object = None
) -> Route:
    where = f"{owner}.{handler}"
    _check_async(where, raw, func)
    known = getattr(func, "__globals__", {})
    names = (
        tuple(_state_name(where, "states=[...]", s, states, known) for s in raw.states)
        if raw.states is not None
        else None
    )
    dest = _state_name(where, "to=", raw.dest, states, known) if raw.dest is not None else None
    for name in (*(names or ()), *((dest,) if dest else ())):
        if name not in states:
            raise DefinitionError(
                f"{where}: state {name!r} is not declared in {owner}; declared states: "
                f"{', '.join(states)}"
            )
    if raw.delay is not None:
        _check_delay(where, raw, names or tuple(states))
    return Route(
        raw.kind, raw.keys, names, dest, raw.regex, raw.requires, raw.fallback, handler, raw.delay
    )


def _check_delay(where: str, raw: _Declared, states: tuple[str, ...]) -> None:
    """A timer's duration must be positive (a window's end comes within 24 hours)."""
    argument = "after" if raw.kind == TIMEOUT else "before"
    delay = raw.delay or 0.0
    in_states = f"in state {states[0]!r}" if len(states) == 1 else f"in states {', '.join(states)}"
    if delay <= 0:
        raise DefinitionError(
            f"{where}: on.{raw.kind}({argument}=...) {in_states} must be a positive duration, "
            f"not {delay:g} s"
        )
    if raw.kind == WINDOW_CLOSING and delay >= WINDOW_SECONDS:
        raise DefinitionError(
            f"{where}: on.window_closing(before=...) {in_states} must be under 24 hours (the "
            f"window's length), not {delay:g} s"
        )


def _check_async(where: str, raw: _Declared, func: object) -> None:
    """A plain `def` handler would run, but an `await ctx.send(...)` in it cannot be written."""
    if inspect.iscoroutinefunction(func):
        return
    what = "a generator" if inspect.isgeneratorfunction(func) else "a plain function"
    what = what if inspect.isfunction(func) else type(func).__name__
    states = ", ".join(map(str, (_ref(s) for s in raw.states))) if raw.states else "every state"
    raise DefinitionError(
        f"{where}: a handler must be `async def` (it is {what}); it handles on.{raw.kind} in "
        f"{states}: write `async def {where.rpartition('.')[2]}(self, ctx: Context) -> None:` "
        "and `await ctx.send(...)` in it"
    )


def _ref(state: StateRef) -> str:
    return state if isinstance(state, str) else state.name or repr(state)


def _index(owner: str, state: str, table: _Table, route: Route, handler: Handler) -> None:
    if route.kind in ("location", "contacts", "unsupported", "fallback", STALE) or (
        route.kind == "text" and not route.keys and route.regex is None
    ):
        _claim(owner, state, table.any, route.kind, route, handler)
    elif route.regex is not None:
        _claim(owner, state, table.seen, ("text regex", route.regex.pattern), route, handler)
        table.regexes.append((route, handler))
    elif route.kind in _TIMED:  # one timer per handler: its key is the handler's name
        _claim(owner, state, table.exact, (route.kind, route.handler), route, handler)
    else:
        for key in route.keys:
            if route.kind == "payload" and "*" in key:
                _claim(owner, state, table.seen, ("payload pattern", key), route, handler)
                table.patterns.append((route, key, handler))
            else:
                _claim(owner, state, table.exact, (route.kind, key), route, handler)


def _claim(
    owner: str,
    state: str,
    slots: dict[Any, tuple[Route, Handler]],
    key: Any,
    route: Route,
    handler: Handler,
) -> None:
    if key in slots:
        other = slots[key][1].__name__
        what = " ".join(key) if isinstance(key, tuple) else f"{key} input"
        raise DefinitionError(
            f"{owner}: state {state!r} has two handlers for {what!r}: {other} and "
            f"{handler.__name__}; keep one, or limit one with states=[...]"
        )
    slots[key] = (route, handler)


# transitions logs every state change at INFO, two lines a message: at a service's INFO level
# they would drown its own lines. Its warnings still show; a level set before this is kept.
if logging.getLogger("transitions").level == logging.NOTSET:
    logging.getLogger("transitions").setLevel(logging.WARNING)


class _Machine(AsyncMachine):
    """transitions' AsyncMachine, without a gather for an empty list of callbacks.

    A transition runs about ten lists of callbacks (before, after, on_enter, on_exit, ...),
    most of them empty here; each went through `asyncio.gather()`: about a tenth of a turn's
    time (bench/webhook.py). A list with callbacks still runs as transitions runs it.
    """

    @staticmethod
    async def await_all(
        callables: list[Callable[..., Coroutine[Any, Any, bool | None]]],
    ) -> list[bool | None]:
        if not callables:
            return []
        return list(await AsyncMachine.await_all(callables))


def _machine(
    owner: str, states: dict[str, State], initial: str, routes: list[tuple[Route, Handler]]
) -> Any:
    machine = _Machine(
        model=None,
        states=[_machine_state(name, state) for name, state in states.items()],
        initial=initial,
        auto_transitions=True,
        send_event=True,
        name=owner,
    )
    for route, _ in routes:
        if route.dest is not None:
            machine.add_transition(route.trigger, list(route.states or states), route.dest)
    return machine


def _direct_moves(machine: Any) -> dict[tuple[str, str], tuple[str, bool]]:
    """The moves that can skip transitions' event machinery, read from the machine's tables.

    transitions runs a trigger through an EventData, a queue check, about ten callback lists
    and the model's state attribute: a third of a turn's time (bench/turn.py). For a
    (trigger, source) with one unconditional transition whose only callback is the
    destination's prompt, and a machine with no callbacks of its own, the outcome is the same
    as setting the state and sending that prompt, which `_move` does. Anything else (a
    condition, a callback, a machine-wide hook) goes through transitions as before.
    """
    hooks = ("before_state_change", "after_state_change", "prepare_event", "finalize_event")
    if any(getattr(machine, hook, None) for hook in (*hooks, "on_exception", "on_final")):
        return {}
    direct: dict[tuple[str, str], tuple[str, bool]] = {}
    for name, event in machine.events.items():
        for source, transitions in event.transitions.items():
            if len(transitions) != 1:
                continue
            [move] = transitions
            if move.conditions or move.before or move.after or move.prepare or move.dest is None:
                continue
            left, entered = machine.get_state(source), machine.get_state(move.dest)
            if left.on_exit or any(c is not _prompt_on_enter for c in entered.on_enter):
                continue
            direct[(name, source)] = (move.dest, bool(entered.on_enter))
    return direct


def _machine_state(name: str, state: State) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if state.prompt is not None:
        spec["on_enter"] = [_prompt_on_enter]
    return spec


async def _prompt_on_enter(event_data: Any) -> None:
    ctx: Context = event_data.kwargs["ctx"]
    await ctx.send_prompt(event_data.state.name)


def _check_fallback(where: str, fallback: object) -> None:
    if fallback is None or isinstance(fallback, Template | Hold) or callable(fallback):
        return
    raise DefinitionError(
        f"{where} takes a Template, HOLD, or a function of the context returning one, "
        f"not {type(fallback).__name__}"
    )


def _fingerprint(states: dict[str, State], routes: list[tuple[Route, Handler]]) -> str:
    text = repr((list(states), [(r.kind, r.keys, r.states, r.dest, h.__name__) for r, h in routes]))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- decorators and lookup ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Declared:
    """A decorator's arguments, before the class exists and its States have names."""

    kind: str
    keys: tuple[str, ...]
    states: tuple[StateRef, ...] | None
    dest: StateRef | None
    regex: re.Pattern[str] | None
    requires: tuple[str, ...] = ()
    fallback: Fallback | None = None
    delay: float | None = None


def _decorator(
    kind: str,
    keys: tuple[str, ...],
    states: Sequence[StateRef] | StateRef | None,
    to: StateRef | None,
    regex: re.Pattern[str] | None = None,
    extra: tuple[tuple[str, ...], Fallback | None] = ((), None),
    *,
    delay: float | None = None,
) -> Callable[[F], F]:
    if isinstance(states, str | State):
        states = [states]
    if states is not None and not states:
        raise DefinitionError(
            f"on.{kind}: states=[] matches no state; omit states= to handle it in every state"
        )
    names = tuple(states) if states is not None else None
    declared = _Declared(kind, keys, names, to, regex, *extra, delay=delay)

    def register(func: F) -> F:
        if not callable(func):
            raise DefinitionError(f"on.{kind} decorates a handler function, not {func!r}")
        routes = getattr(func, _ROUTES_ATTR, ())
        setattr(func, _ROUTES_ATTR, (*routes, declared))
        return func

    return register


def _seconds(where: str, duration: object) -> float:
    """A duration in seconds, from a timedelta or a number (its sign is checked later, where
    the error can name the conversation and the states)."""
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        return float(duration)
    raise DefinitionError(f"{where} takes a timedelta or seconds, not {duration!r}")


def _keys(where: str, keys: Iterable[str]) -> tuple[str, ...]:
    keys = tuple(keys)
    if not keys:
        raise DefinitionError(f"{where}() needs at least one id, e.g. {where}('confirm_yes', ...)")
    for key in keys:
        if not isinstance(key, str) or not key or key != key.strip():
            raise DefinitionError(
                f"{where}: id {key!r} must be a non-empty string without outer spaces"
            )
    return keys


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DefinitionError(f"on.text(regex={pattern!r}): {exc}") from exc


def _state_name(
    where: str, role: str, state: StateRef, states: dict[str, State], known: dict[str, Any]
) -> str:
    if isinstance(state, State):
        if not state.name:
            raise DefinitionError(_unnamed(where, role, state, states, known))
        return state.name
    if isinstance(state, str):
        return state
    raise DefinitionError(f"{where}: {role} takes States or state names, not {state!r}")


def _unnamed(
    where: str, role: str, state: State, states: dict[str, State], known: dict[str, Any]
) -> str:
    """Says which State of a handler's `states=`/`to=` is not a class attribute, and where."""
    owner = where.partition(".")[0]
    found = next((name for name, value in known.items() if value is state), None)
    what = f"State {found!r}" if found else "a State"
    fix = f"`{found} = State(...)`" if found else "`name = State(...)`"
    return (
        f"{where}: {role} uses {what} defined outside {owner}; a State must be a class "
        f"attribute of the conversation: declare {fix} in {owner}'s body (declared states: "
        f"{', '.join(states)})"
    )


def _lookup(table: _Table, user_input: ContextInput) -> tuple[Route, Handler] | None:
    if isinstance(user_input, TriggerInput):
        return table.exact.get(("trigger", user_input.name))
    if isinstance(user_input, TimerInput):
        return table.exact.get((user_input.kind, user_input.name))
    if isinstance(user_input, StatusUpdate):
        return table.exact.get(("status", user_input.status))
    if isinstance(user_input, ButtonTap):
        return table.exact.get(("button", user_input.id))
    if isinstance(user_input, RowPick):
        return table.exact.get(("row", user_input.id))
    if isinstance(user_input, QuickReplyTap):
        return _lookup_payload(table, user_input.payload)
    if isinstance(user_input, TextInput):
        return _lookup_text(table, user_input.body)
    if isinstance(user_input, MediaInput):
        return table.exact.get(("media", user_input.kind))
    if isinstance(user_input, LocationInput):
        return table.any.get("location")
    if isinstance(user_input, ContactsInput):
        return table.any.get("contacts")
    if isinstance(user_input, UnsupportedInput):
        return table.any.get("unsupported")
    return None


def _lookup_payload(table: _Table, payload: str) -> tuple[Route, Handler] | None:
    found = table.exact.get(("payload", payload))
    if found is not None:
        return found
    for route, pattern, handler in table.patterns:
        if fnmatchcase(payload, pattern):
            return route, handler
    return None


def _lookup_text(table: _Table, body: str) -> tuple[Route, Handler] | None:
    found = table.exact.get(("text", body.strip().casefold()))
    if found is not None:
        return found
    for route, handler in table.regexes:
        if route.regex is not None and route.regex.search(body):
            return route, handler
    return table.any.get("text")


__all__ = ["Context", "Conversation", "State", "User", "on"]
