"""Static checks of a conversation: what its declarations get wrong before it meets a user.

`check(Conversation)` returns Problems, each one line `Conversation.state: what; how to fix`:
unreachable states, dead ends not marked final, prompt ids no handler takes, handlers for ids no
prompt offers (warning), WhatsApp limits broken by a prompt, templates whose body parameters
differ from their declaration, triggers and reminders with no template fallback for a closed
window, and timer handlers that can never run or send too close to the window's end.

Callable prompts and fallbacks are evaluated with synthetic contexts: empty user data, the
conversation's declared `examples`, and the data each trigger's handler leaves after running on
made-up data (`sample_<key>` per required key); a prompt must work with one of them. Templates
are declared on the conversation class:
``templates = {"appointment_reminder": TemplateSpec(body=3, quick_replies=1)}``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botkit.conversation.context import Context, Fallback, Hold, WindowView
from botkit.conversation.dsl import Conversation, ConversationSpec, Route
from botkit.conversation.template import TemplateSpec
from botkit.exceptions import MessageError, WindowClosedError
from botkit.types import JSON
from botkit.wire.messages import Buttons, List, Message, Template
from botkit.wire.timer import SCHEDULED, TIMEOUT, WINDOW_CLOSING
from botkit.wire.trigger import TriggerEvent
from botkit.wire.window import Window

if TYPE_CHECKING:
    from botkit.tools.lock import Lost

SAMPLE_WA_ID = "15550000001"
LAST_CALL_MARGIN = (
    300.0  # seconds: a send queued later than this before the window ends may miss it
)
SAMPLE_NUMBER_ID = "100000000000001"
CLOSED = WindowView(Window(), now=0.0)  # a user who never wrote
OPEN = WindowView(Window(last_inbound_at=0.0, inbound_seq=1), now=0.0)


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding; warnings do not fail `botkit check`."""

    conversation: str
    state: str
    text: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = "warning: " if self.warning else ""
        return f"{prefix}{self.conversation}.{self.state}: {self.text}"


@dataclass(slots=True)
class _Offers:
    """What a state's prompts and fallbacks were seen to offer, and whether all could be seen."""

    buttons: set[str] = field(default_factory=set)
    rows: set[str] = field(default_factory=set)
    payloads: set[str] = field(default_factory=set)
    complete: bool = True


def check(conversation: type[Conversation]) -> list[Problem]:
    """Every problem found in `conversation`, errors and warnings, in a stable order."""
    checker = _Checker(conversation)
    return checker.run()


def lock_problems(
    conversation: type[Conversation], lost: Sequence[Lost], lock: Path
) -> list[Problem]:
    """An error for each state the lock file remembers that is neither declared nor migrated."""
    name = conversation.spec.name
    initial = conversation.spec.initial
    return [
        Problem(
            name,
            gone.state,
            f"state {gone.state!r} (in {lock}, version {gone.version}) is gone and users "
            f"stored in it would start over; add migrations = {{{gone.state!r}: "
            f"{initial!r}}} (or Migration({initial!r}, Text(...))) to {name}",
        )
        for gone in lost
    ]


class _Checker:
    def __init__(self, conversation: type[Conversation]) -> None:
        self.cls = conversation
        self.spec: ConversationSpec = conversation.spec
        self.name = self.spec.name
        self.templates: dict[str, TemplateSpec] = dict(getattr(conversation, "templates", {}))
        self.examples: list[dict[str, JSON]] = [dict(d) for d in conversation.examples]
        self.problems: list[Problem] = []
        self.offers = {state: _Offers() for state in self.spec.states}
        self.reported: set[str] = set()

    def run(self) -> list[Problem]:
        self._structure()
        self._triggers_fallbacks()
        self._timers()
        self._bursts()
        self._evaluate(list(self._samples()))
        self._offered_ids()
        self._unoffered_handlers()
        self._unawaited_sends()
        return self.problems

    def _add(self, state: str, text: str, *, warning: bool = False) -> None:
        problem = Problem(self.name, state, text, warning)
        if str(problem) not in self.reported:
            self.reported.add(str(problem))
            self.problems.append(problem)

    # -- the graph -------------------------------------------------------------------------

    def _structure(self) -> None:
        reachable = _reachable(self.spec)
        for name, state in self.spec.states.items():
            if name not in reachable:
                self._add(
                    name,
                    f"unreachable from the initial state {self.spec.initial!r}; add a route "
                    f"with to={name} into it, or remove it (ctx.goto moves are not seen)",
                )
            elif not state.final and len(self.spec.states) > 1 and not _exits(self.spec, name):
                # a one-state bot (an echo) has nowhere to go: staying is its design
                self._add(
                    name,
                    "no way out: no route leaves this state; add a route with to=... from it, "
                    "or mark it State(final=True)",
                )

    def _triggers_fallbacks(self) -> None:
        for route, _ in self.spec.routes:
            if route.kind != "trigger" or route.fallback is not None:
                continue
            for dest in _destinations(self.spec, route):
                if self.spec.states[dest].fallback is None:
                    self._add(
                        dest,
                        f"trigger {route.keys[0]!r} can message a user whose 24-hour window is "
                        f"closed, and neither the trigger nor state {dest!r} has a fallback; add "
                        "fallback=Template(...) or fallback=HOLD to the on.trigger or the State",
                    )

    def _timers(self) -> None:
        """Timer handlers only in unreachable states; reminders that can fire into a closed
        window with nothing to send instead; last calls that leave no time to deliver."""
        reachable = _reachable(self.spec)
        for route, _ in self.spec.routes:
            if route.kind not in (TIMEOUT, WINDOW_CLOSING, SCHEDULED):
                continue
            sources = _sources(self.spec, route)
            if not any(state in reachable for state in sources):
                self._add(
                    sources[0],
                    f"on.{route.kind} handler {route.handler} can never run: none of its states "
                    f"({', '.join(sources)}) can be reached from {self.spec.initial!r}",
                )
            if route.kind == SCHEDULED and route.fallback is None:
                for state in _destinations(self.spec, route):
                    if self.spec.states[state].fallback is None:
                        self._add(
                            state,
                            f"reminder {route.keys[0]!r} can message a user whose 24-hour "
                            f"window is closed, and neither the on.timer nor state {state!r} "
                            "has a fallback; add fallback=Template(...) or fallback=HOLD",
                        )
            if route.kind == WINDOW_CLOSING and (route.delay or 0) < LAST_CALL_MARGIN:
                self._add(
                    sources[0],
                    f"on.window_closing handler {route.handler} runs {route.delay:g} s before "
                    "the window ends: its messages may reach WhatsApp after it closed; give "
                    f"before= at least {LAST_CALL_MARGIN // 60:g} minutes",
                    warning=True,
                )

    def _bursts(self) -> None:
        """In a conversation that gathers bursts, text handlers of words or a regex: they see
        a burst's texts joined, so "hola" then "menu" is not "menu"."""
        if self.spec.coalesce is None:
            return
        for route, _ in self.spec.routes:
            if route.kind == "text" and (route.keys or route.regex is not None):
                self._add(
                    _sources(self.spec, route)[0],
                    f"on.text handler {route.handler} matches {route.label.partition(':')[2]}, "
                    f"but coalesce gathers texts that come within {self.spec.coalesce:g} s: a "
                    "burst's texts are matched joined by newlines; match in one on.text "
                    "handler that reads ctx.texts, or leave coalesce off",
                    warning=True,
                )

    # -- evaluation ------------------------------------------------------------------------

    def _samples(self) -> Iterator[tuple[dict[str, JSON], str]]:
        yield {}, "with empty user data"
        for number, data in enumerate(self.examples, 1):
            yield dict(data), f"with example data {number}"
        for route, handler in self.spec.routes:
            if route.kind == "trigger":
                yield from self._after_trigger(route, handler)

    def _after_trigger(self, route: Route, handler: Any) -> Iterator[tuple[dict[str, JSON], str]]:
        name = route.keys[0]
        for state in _sources(self.spec, route):
            try:
                ctx = self._run_trigger(handler, state, name, route)
            except WindowClosedError:
                self._add(
                    state,
                    f"trigger {name!r} handler {handler.__name__} sends a free-form message "
                    "with no fallback for a closed window; add fallback=Template(...) or "
                    "fallback=HOLD to the on.trigger",
                )
                return
            except Exception as exc:
                self._add(
                    state,
                    f"trigger {name!r} handler {handler.__name__} raised {_named(exc)} on "
                    "sample data; check it by hand",
                    warning=True,
                )
                return
            for message in ctx.sent:
                self._template(ctx.state, message, f"sent by trigger {name!r}")
            for dest in _destinations(self.spec, route):
                self._fallback(dest, route.fallback, ctx, f"trigger {name!r}'s fallback")
            yield dict(ctx.data), f"after trigger {name!r}"
            return  # the first source state is enough: the handler does not see the state

    def _run_trigger(self, handler: Any, state: str, name: str, route: Route) -> Context:
        """The context a trigger handler leaves, run on empty data, else on each example's."""
        first: Exception | None = None
        for data in ({}, *self.examples):
            ctx = self._context(state, dict(data), CLOSED, name, route)
            try:
                _call(handler, self.cls(), ctx)
            except WindowClosedError:
                raise
            except Exception as exc:
                first = first or exc
                continue
            return ctx
        raise first or RuntimeError("unreachable")

    def _evaluate(self, samples: list[tuple[dict[str, JSON], str]]) -> None:
        # A prompt may need data the handlers on the way to its state leave: it only has to
        # work with one sample (empty data, an example, the data after a trigger).
        for name, state in self.spec.states.items():
            failed: list[tuple[Exception, str]] = []
            for data, label in samples:
                ctx = self._context(name, dict(data), OPEN)
                try:
                    prompt = ctx.prompt(name)
                except MessageError as exc:
                    self._add(name, f"the prompt breaks a WhatsApp limit ({label}): {exc}; fix it")
                    self.offers[name].complete = False
                except Exception as exc:
                    failed.append((exc, label))
                else:
                    self._offer(name, prompt, "the prompt")
                closed = self._context(name, dict(data), CLOSED)
                self._fallback(name, state.fallback, closed, label)
            if len(failed) == len(samples):
                error, label = failed[0]
                self._add(
                    name,
                    f"evaluating the prompt {label} raised {_named(error)}; make it work with "
                    "the data it can get, declare examples = [{...}] of the data it needs, or "
                    "check it by hand",
                    warning=True,
                )
                self.offers[name].complete = False

    def _fallback(self, state: str, fallback: Fallback | None, ctx: Context, label: str) -> None:
        if fallback is None or isinstance(fallback, Hold):
            return
        try:
            resolved = fallback if isinstance(fallback, Template) else fallback(ctx)
        except MessageError as exc:
            self._add(state, f"the fallback breaks a WhatsApp limit ({label}): {exc}; fix it")
            return
        except Exception as exc:
            self._add(
                state,
                f"evaluating the fallback {label} raised {_named(exc)}; check it by hand",
                warning=True,
            )
            return
        if isinstance(resolved, Template):
            self._offer(state, resolved, "the fallback template")

    def _offer(self, state: str, message: Message | None, what: str) -> None:
        offers = self.offers[state]
        if isinstance(message, Buttons):
            offers.buttons.update(message.button_ids)
        elif isinstance(message, List):
            offers.rows.update(message.row_ids)
        elif isinstance(message, Template):
            offers.payloads.update(message.quick_reply_payloads)
            self._template(state, message, what)

    def _template(self, state: str, message: Message, where: str) -> None:
        if not isinstance(message, Template):
            return
        declared = self.templates.get(message.name)
        if declared is None:
            self._add(
                state,
                f"template {message.name!r} ({where}) is not declared; add "
                f'templates = {{"{message.name}": TemplateSpec(text="...", buttons=[...])}} '
                f"to {self.name}",
                warning=True,
            )
            return
        body, replies = len(message.body_parameters), len(message.quick_reply_payloads)
        if body != declared.body:
            self._add(
                state,
                f"template {message.name!r} ({where}) has {body} body parameters, declared "
                f"{declared.body}; pass {declared.body}, or fix the declaration",
            )
        if replies != declared.quick_replies:
            self._add(
                state,
                f"template {message.name!r} ({where}) has {replies} quick replies, declared "
                f"{declared.quick_replies}; pass {declared.quick_replies}, or fix the declaration",
            )
        header = declared.header_parameters
        given = len(message.header_parameters)
        if header is not None and given != header:
            self._add(
                state,
                f"template {message.name!r} ({where}) has {given} header parameters, declared "
                f"{header} in its header {declared.header!r}; pass {header}, or fix the "
                "declaration",
            )

    # -- ids -------------------------------------------------------------------------------

    def _offered_ids(self) -> None:
        for name, offers in self.offers.items():
            table = self.spec.tables[name]
            for kind, ids in (("button", offers.buttons), ("row", offers.rows)):
                for key in sorted(ids):
                    if (kind, key) not in table.exact:
                        self._add(
                            name,
                            f"{kind} {key!r} is offered by the prompt but no handler in {name} "
                            f"takes it; add @on.{kind}({key!r}, states=[{name}], to=...) or "
                            f"remove the {kind}",
                        )
            for payload in sorted(offers.payloads):
                if not _takes_payload(self.spec, name, payload):
                    self._add(
                        name,
                        f"quick reply {payload!r} is offered by a template but no handler in "
                        f"{name} takes it; add @on.payload({payload!r}, states=[{name}], to=...)",
                    )

    def _unoffered_handlers(self) -> None:
        for route, handler in self.spec.routes:
            if route.kind not in ("button", "row"):
                continue
            states = route.states or tuple(self.spec.states)
            if not all(self.offers[s].complete for s in states):
                continue
            offered = set().union(*(getattr(self.offers[s], f"{route.kind}s") for s in states))
            where = states[0] if route.states and len(states) == 1 else handler.__name__
            for key in route.keys:
                if key not in offered:
                    self._add(
                        where,
                        f"{handler.__name__} handles {route.kind} {key!r}, which no prompt of "
                        f"{', '.join(states)} offers; offer it, or remove the id",
                        warning=True,
                    )

    def _unawaited_sends(self) -> None:
        seen: set[str] = set()
        for route, handler in self.spec.routes:
            if route.handler in seen:
                continue
            seen.add(route.handler)
            for line in _sends_not_awaited(handler):
                self._add(
                    route.handler,
                    f"line {line} calls ctx.send(...) without await: the event would fail and "
                    "nothing be sent; write `await ctx.send(...)`",
                )

    def _context(
        self,
        state: str,
        data: dict[str, JSON],
        window: WindowView,
        trigger: str = "botkit_check",
        route: Route | None = None,
    ) -> Context:
        sample: dict[str, JSON] = {
            key: f"sample_{key}" for key in (route.requires if route else ())
        }
        event = TriggerEvent.create(
            wa_id=SAMPLE_WA_ID, phone_number_id=SAMPLE_NUMBER_ID, name=trigger, data=sample
        )
        ctx = Context(self.spec, event, state, data, window)
        ctx.route_fallback = route.fallback if route else None
        return ctx


def _reachable(spec: ConversationSpec) -> set[str]:
    seen = {spec.initial}
    todo = [spec.initial]
    while todo:
        state = todo.pop()
        for route, _ in spec.routes:
            if route.dest is not None and route.dest not in seen and _applies(route, state):
                seen.add(route.dest)
                todo.append(route.dest)
    return seen


def _exits(spec: ConversationSpec, state: str) -> bool:
    return any(r.dest not in (None, state) and _applies(r, state) for r, _ in spec.routes)


def _applies(route: Route, state: str) -> bool:
    return route.states is None or state in route.states


def _sources(spec: ConversationSpec, route: Route) -> tuple[str, ...]:
    return route.states if route.states is not None else tuple(spec.states)


def _destinations(spec: ConversationSpec, route: Route) -> tuple[str, ...]:
    return (route.dest,) if route.dest is not None else _sources(spec, route)


def _takes_payload(spec: ConversationSpec, state: str, payload: str) -> bool:
    table = spec.tables[state]
    if ("payload", payload) in table.exact:
        return True
    return any(fnmatchcase(payload, pattern) for _, pattern, _ in table.patterns)


def _call(handler: Any, conversation: Conversation, ctx: Context) -> None:
    try:
        result = handler(conversation, ctx)
        if inspect.isawaitable(result):
            asyncio.run(_wait(result))
    finally:
        ctx.unawaited_sends()  # reported from the handler's source (_unawaited_sends)


async def _wait(awaitable: Any) -> None:
    await awaitable


def _sends_not_awaited(handler: Any) -> list[int]:
    """The lines where the handler's source calls `<ctx>.send(...)` as a statement of its own
    (or returns it) instead of awaiting it; a send passed on (to asyncio.gather) is not flagged."""
    try:
        lines, first = inspect.getsourcelines(handler)
    except (OSError, TypeError):  # no source (made at run time): the run itself will tell
        return []
    tree = ast.parse(textwrap.dedent("".join(lines)))
    function = tree.body[0] if tree.body else None
    if not isinstance(function, ast.AsyncFunctionDef | ast.FunctionDef):
        return []
    args = function.args.posonlyargs + function.args.args
    if len(args) < 2:
        return []
    ctx = args[1].arg
    dropped = [node.value for node in ast.walk(function) if isinstance(node, ast.Expr | ast.Return)]
    return sorted(
        node.lineno + first - 1
        for node in dropped
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "send"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == ctx
    )


def _named(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
