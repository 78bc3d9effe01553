"""The panels of a Grafana dashboard as the renderer draws them: kind, title, grid position,
unit, stacking, thresholds and PromQL targets with their legends."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "botkit.json"
KINDS = ("row", "stat", "timeseries")
# the dashboard's variables: every instance, and the range of its rates
_INSTANCE = re.compile(r"\$(instance\b|\{instance\})")
_RATE_INTERVAL = re.compile(r"\$(__rate_interval\b|\{__rate_interval\})")
_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Target:
    """One PromQL query of a panel, and its legendFormat ("" when Grafana names the series)."""

    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel: where it sits on Grafana's 24-column grid and what it draws."""

    kind: str
    title: str
    x: int
    y: int
    w: int
    h: int
    unit: str
    stacked: bool
    thresholds: tuple[tuple[float | None, str], ...]
    targets: tuple[Target, ...]


def load(path: Path = DASHBOARD) -> list[Panel]:
    """Every panel of the dashboard at `path`, those inside collapsed rows included."""
    return panels(json.loads(path.read_text()))


def panels(dashboard: dict[str, Any]) -> list[Panel]:
    """Every panel of a parsed dashboard; an unknown kind is an error, never a skipped panel."""
    found: list[Panel] = []
    for raw in dashboard["panels"]:
        found.append(panel(raw))
        found.extend(panel(inner) for inner in raw.get("panels", []))
    return found


def panel(raw: dict[str, Any]) -> Panel:
    """One panel from its JSON."""
    kind = raw["type"]
    if kind not in KINDS:
        raise ValueError(f"panel {raw.get('title')!r} is a {kind!r}: draws only {KINDS}")
    grid, defaults = raw["gridPos"], raw.get("fieldConfig", {}).get("defaults", {})
    steps = defaults.get("thresholds", {}).get("steps", [])
    return Panel(
        kind=kind,
        title=raw.get("title", ""),
        x=grid["x"],
        y=grid["y"],
        w=grid["w"],
        h=grid["h"],
        unit=defaults.get("unit", "short"),
        stacked=defaults.get("custom", {}).get("stacking", {}).get("mode", "none") != "none",
        thresholds=tuple((step["value"], step["color"]) for step in steps),
        targets=tuple(Target(t["expr"], t.get("legendFormat", "")) for t in raw.get("targets", [])),
    )


def promql(expr: str, rate_interval: str) -> str:
    """A target's expression as Prometheus takes it: every instance, rates over `rate_interval`."""
    expr = _RATE_INTERVAL.sub(rate_interval, _INSTANCE.sub(".*", expr))
    if "$" in expr:
        raise ValueError(f"a dashboard variable this renderer does not know, in {expr!r}")
    return expr


def rate_interval(scrape_seconds: float, step_seconds: float) -> str:
    """Grafana's $__rate_interval: the larger of four scrapes and a step plus a scrape."""
    return f"{max(4 * scrape_seconds, step_seconds + scrape_seconds):g}s"


def legend(fmt: str, labels: dict[str, str]) -> str:
    """A series' name: legendFormat with its {{label}}s filled, else the labels as Grafana shows them."""
    if fmt:
        return _LEGEND_LABEL.sub(lambda match: labels.get(match.group(1), ""), fmt).strip()
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{{{inner}}}" if inner else "Value"
