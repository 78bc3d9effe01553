"""Tests for botkit.tools.graph and `botkit graph`: the diagram drawn from a conversation's declarations."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bots.clinic
import bots.pizza
from botkit.conversation.context import Context
from botkit.conversation.dsl import Conversation, State, on
from botkit.runtime.bot import Bot
from botkit.tools.cli import main
from botkit.tools.graph import dot, mermaid
from botkit.wire.messages import Text

CLINIC = """\
stateDiagram-v2
    %% Clinic: moves made only with ctx.goto(...) are not declared and cannot be drawn
    state "any state" as _any_state
    [*] --> idle
    idle --> choosing_service: text (any)
    confirmed --> choosing_service: text (any)
    choosing_service --> confirming: row general | specialist | lab
    confirming --> confirmed: payload confirm_yes_apt_*
    confirming --> confirmed: button confirm_yes
    confirming --> choosing_service: button reschedule
    confirming --> confirming: timeout (30 min quiet)
    _any_state --> _any_state: text "persona" | "hablar con una persona" | "humano"
    _any_state --> confirming: trigger remind
    choosing_service --> choosing_service: fallback: prompt again
    confirming --> confirming: fallback: prompt again
"""


class Survey(Conversation):
    start = State(initial=True)
    age = State(prompt=Text("¿Cuántos años tenés?"))
    photo = State()
    done = State(final=True)

    @on.text("hola", "hi", states=[start], to=age)
    async def hello(self, ctx: Context) -> None: ...

    @on.text(regex=r"^\d+$", states=[age], to=photo)
    async def number(self, ctx: Context) -> None: ...

    @on.fallback(states=[age])
    async def not_a_number(self, ctx: Context) -> None: ...

    @on.media("image", states=[photo], to=done)
    @on.location(states=[photo], to=done)
    async def proof(self, ctx: Context) -> None: ...

    @on.status("read", states=[done])
    async def seen(self, ctx: Context) -> None: ...


def test_the_clinic_as_mermaid() -> None:
    assert mermaid(bots.clinic.Clinic.spec) == CLINIC


def test_every_kind_of_route_is_labelled_and_final_states_end() -> None:
    text = mermaid(Survey.spec)
    assert "state " not in text  # no route for every state: no "any state" node
    assert text.splitlines()[2:] == [
        "    [*] --> start",
        '    start --> age: text "hola" | "hi"',
        r"    age --> photo: text /^\d+$/",
        "    photo --> done: location",
        "    photo --> done: media image",
        "    done --> done: status read",
        "    age --> age: fallback: not_a_number",
        "    done --> [*]",
    ]


def test_dot_marks_the_start_final_states_and_dashed_fallbacks() -> None:
    text = dot(Survey.spec)
    assert '__start -> "start";' in text
    assert '"done" [label="done", peripheries=2];' in text
    assert (
        '"age" -> "age" [label="fallback: not_a_number", style=dashed, tailport=n, headport=n];'
    ) in text
    assert r'"age" -> "photo" [label="text /^\\d+$/"];' in text


def test_dot_draws_parallel_routes_as_one_arrow_and_wraps_long_labels() -> None:
    text = dot(bots.pizza.bot.conversation.spec)
    assert text.count('"confirming" -> "idle"') == 1  # two labels on one arrow, not stacked
    assert '"confirming" -> "idle" [label="text \\"cancelar\\"\\nbutton cancel"];' in text
    rows = "row muzzarella | napolitana\\nfugazzeta | cuatro_quesos\\ncalabresa | rucula"
    assert f'"choosing" -> "sizing" [label="{rows}"];' in text
    # a state's solid and dashed loops apart, on its two sides
    assert '"locating" -> "locating" [label="text (any)", tailport=s, headport=s];' in text
    assert (
        '"locating" -> "locating" [label="fallback: prompt again", style=dashed, tailport=n, '
        "headport=n];"
    ) in text


def test_botkit_graph_prints_mermaid(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["graph", "bots.clinic"]) == 0
    assert capsysbinary.readouterr().out.decode() == CLINIC


def test_botkit_graph_writes_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "clinic.mmd"
    assert main(["graph", "bots.clinic", "--output", str(out)]) == 0
    assert out.read_text() == CLINIC


def test_botkit_graph_svg_without_graphviz_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["graph", "bots.clinic", "--format", "svg"]) == 1
    err = capsys.readouterr().err
    assert "Graphviz" in err and "apt-get install graphviz" in err
    assert "Mermaid output is available" in err


def test_botkit_graph_png_refuses_to_write_binary_to_a_terminal() -> None:
    main_fd, terminal = pty.openpty()
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "botkit.tools.cli", "graph", "bots.pizza", "--format", "png"]
    with os.fdopen(main_fd, "rb", buffering=0) as screen, os.fdopen(terminal, "wb") as slave:
        done = subprocess.run(command, cwd=root, stdout=slave, stderr=subprocess.PIPE, timeout=60)
        written = select.select([screen], [], [], 0)[0]  # before the terminal side closes
    assert done.returncode == 2
    assert written == []  # not a byte reached the terminal
    err = done.stderr.decode()
    assert "stdout is a terminal" in err
    assert "--output pizza.png" in err and "> pizza.png" in err


def test_botkit_graph_png_to_a_pipe_is_not_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # stops before running dot
    assert main(["graph", "bots.clinic", "--format", "png"]) == 1
    err = capsys.readouterr().err
    assert "terminal" not in err and "Graphviz" in err


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_botkit_graph_svg_with_graphviz(tmp_path: Path) -> None:
    out = tmp_path / "clinic.svg"
    assert main(["graph", "bots.clinic", "--format", "svg", "--output", str(out)]) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "confirm_yes" in svg


Box = tuple[float, float, float, float]


def _layout(dot_text: str) -> list[dict[str, Any]]:
    """The edges as Graphviz lays them out (dot -Tjson), with their drawing operations."""
    laid = subprocess.run(
        ["dot", "-Tjson"], input=dot_text, capture_output=True, text=True, check=True, timeout=60
    )
    edges: list[dict[str, Any]] = json.loads(laid.stdout).get("edges", [])
    return edges


def _label_box(edge: dict[str, Any]) -> Box | None:
    """The box around an edge's label lines (centred, 10 pt): x0, y0, x1, y1."""
    lines = [op for op in edge.get("_ldraw_", []) if op["op"] == "T"]
    if not lines:
        return None
    left = min(op["pt"][0] - op["width"] / 2 for op in lines)
    right = max(op["pt"][0] + op["width"] / 2 for op in lines)
    low, high = min(op["pt"][1] for op in lines), max(op["pt"][1] for op in lines)
    return left, low - 2, right, high + 9


def _curve(edge: dict[str, Any]) -> list[tuple[float, float]]:
    """Points along an edge's Bézier curve."""
    points: list[tuple[float, float]] = []
    for op in edge.get("_draw_", []):
        if op["op"] not in ("b", "B"):
            continue
        control = op["points"]
        for k in range(0, len(control) - 3, 3):
            (x0, y0), (x1, y1), (x2, y2), (x3, y3) = control[k : k + 4]
            for step in range(21):
                t, u = step / 20, 1 - step / 20
                x = u**3 * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t**3 * x3
                y = u**3 * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t**3 * y3
                points.append((x, y))
    return points


def _text(edge: dict[str, Any]) -> str:
    return " / ".join(op["text"] for op in edge.get("_ldraw_", []) if op["op"] == "T")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("bot", [bots.clinic.bot, bots.pizza.bot], ids=["clinic", "pizza"])
def test_no_label_is_drawn_over_another_or_across_a_loop(bot: Bot) -> None:
    """The pizza graph drew a state's two loops on one side, one's label across the other."""
    edges = _layout(dot(bot.conversation.spec))
    boxes = [(i, box) for i, edge in enumerate(edges) if (box := _label_box(edge)) is not None]
    assert len(boxes) > 5
    crossing = [
        (_text(edges[i]), _text(edges[j]))
        for n, (i, a) in enumerate(boxes)
        for j, b in boxes[n + 1 :]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]
    loops = [edge for edge in edges if edge["tail"] == edge["head"]]
    crossing += [
        (_text(edges[i]), f"the loop {_text(loop)}")
        for i, (x0, y0, x1, y1) in boxes
        for loop in loops
        if loop is not edges[i] and any(x0 < x < x1 and y0 < y < y1 for x, y in _curve(loop))
    ]
    assert crossing == []
