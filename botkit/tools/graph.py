"""A conversation's state diagram drawn from its declarations, as Mermaid or Graphviz DOT text.

Pure: a function of a ConversationSpec to text. Every declared route is an edge labelled with
what it matches (button id, row id, payload pattern, text words or regex, media, location,
trigger, status); a route without `to=` is a self-loop; a route declared for every state starts
at the "any state" node. Fallbacks are dashed self-loops ("prompt again" where a state has a
prompt and no on.fallback). Moves made only with ctx.goto(...) cannot be seen from declarations.
"""

from __future__ import annotations

from dataclasses import dataclass

from botkit.conversation.dsl import MEDIA_KINDS, STATUSES, ConversationSpec, Route

ANY = "_any_state"
WRAP = 32  # characters on a line of a Graphviz edge label
GOTO_NOTE = "moves made only with ctx.goto(...) are not declared and cannot be drawn"


@dataclass(frozen=True, slots=True)
class Edge:
    """One arrow of the diagram."""

    source: str
    dest: str
    label: str
    dashed: bool = False


def describe(route: Route) -> str:
    """What a route matches, for people: ``button confirm_yes``, ``text /^\\d+$/``."""
    if route.regex is not None:
        return f"text /{route.regex.pattern}/"
    if route.kind == "text":
        return (
            "text " + " | ".join(f'"{word}"' for word in route.keys) if route.keys else "text (any)"
        )
    if route.kind == "media" and route.keys == MEDIA_KINDS:
        return "media (any)"
    if route.kind == "status" and route.keys == STATUSES:
        return "status (any)"
    if route.delay is not None:  # on.timeout, on.window_closing
        when = "before the window closes" if route.kind == "window_closing" else "quiet"
        return f"{route.kind} ({_duration(route.delay)} {when})"
    return " ".join((route.kind, " | ".join(route.keys))).strip()


def _duration(seconds: float) -> str:
    """``30 min``, ``1 h``, ``90 s``: a timer's duration, for people."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def edges(spec: ConversationSpec) -> list[Edge]:
    """The declared moves, then the fallback self-loops, in declaration order."""
    found: list[Edge] = []
    for route, _ in spec.routes:
        if route.kind == "fallback":
            continue
        sources = route.states if route.states is not None else (ANY,)
        for source in sources:
            dest = route.dest if route.dest is not None else source
            found.append(Edge(source, dest, describe(route)))
    for name, state in spec.states.items():
        declared = spec.tables[name].any.get("fallback")
        if declared is not None:
            found.append(Edge(name, name, f"fallback: {declared[1].__name__}", dashed=True))
        elif state.prompt is not None:
            found.append(Edge(name, name, "fallback: prompt again", dashed=True))
    return found


def mermaid(spec: ConversationSpec) -> str:
    """The diagram as Mermaid ``stateDiagram-v2`` text."""
    lines = ["stateDiagram-v2", f"    %% {spec.name}: {GOTO_NOTE}"]
    lines += [f"    state {_any_used(spec)}"] if _any_used(spec) else []
    lines.append(f"    [*] --> {spec.initial}")
    for edge in edges(spec):
        lines.append(f"    {edge.source} --> {edge.dest}: {_mermaid_text(edge.label)}")
    lines += [f"    {name} --> [*]" for name, state in spec.states.items() if state.final]
    return "\n".join(lines) + "\n"


def dot(spec: ConversationSpec) -> str:
    """The diagram as Graphviz DOT text (for `dot -Tsvg` or `-Tpng`)."""
    lines = [
        f"digraph {_dot_id(spec.name)} {{",
        f"  // {GOTO_NOTE}",
        "  rankdir=LR;",
        "  nodesep=0.5; ranksep=0.9;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  __start [shape=point, label=""];',
    ]
    for name, state in spec.states.items():
        extra = ", peripheries=2" if state.final else ""
        lines.append(f"  {_dot_id(name)} [label={_dot_id(name)}{extra}];")
    if _any_used(spec):
        lines.append(f'  {ANY} [label="any state", style="rounded,dashed"];')
    lines.append(f"  __start -> {_dot_id(spec.initial)};")
    for (source, dest, dashed), labels in _parallel(edges(spec)).items():
        style = ", style=dashed" if dashed else ""
        if source == dest:  # a state's two loops on two sides, each label beside its own loop
            side = "n" if dashed else "s"
            style += f", tailport={side}, headport={side}"
        label = "\\n".join(_dot_id(line)[1:-1] for text in labels for line in _wrapped(text))
        lines.append(f'  {_dot_id(source)} -> {_dot_id(dest)} [label="{label}"{style}];')
    return "\n".join([*lines, "}"]) + "\n"


def _parallel(found: list[Edge]) -> dict[tuple[str, str, bool], list[str]]:
    """Edges between the same two states, in the same style, as one arrow with every label
    (separate arrows drew their labels on top of each other)."""
    grouped: dict[tuple[str, str, bool], list[str]] = {}
    for edge in found:
        grouped.setdefault((edge.source, edge.dest, edge.dashed), []).append(edge.label)
    return grouped


def _wrapped(label: str, width: int = WRAP) -> list[str]:
    """A long label's alternatives (`a | b | c`) over several lines of about `width`."""
    lines: list[str] = []
    for part in label.split(" | "):
        if lines and len(lines[-1]) + len(part) + 3 <= width:
            lines[-1] += f" | {part}"
        else:
            lines.append(part)
    return lines


def _any_used(spec: ConversationSpec) -> str:
    used = any(r.states is None and r.kind != "fallback" for r, _ in spec.routes)
    return f'"any state" as {ANY}' if used else ""


def _mermaid_text(text: str) -> str:
    # Mermaid ends a label at ';' and reads '#' as the start of an entity code.
    return text.replace("#", "#35;").replace(";", "#59;")


def _dot_id(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
