"""Draws the dashboard from a Prometheus: each panel's targets evaluated with query_range over a
time range, laid out by gridPos in a page (page.html, uPlot from npm), screenshotted by Chromium.

Run:  python -m bench.dashboard.render --prometheus URL --start T0 --end T1 --scrape 2 \
          --uplot node_modules/uplot/dist --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.dashboard.layout import Panel, Target, legend, load, promql, rate_interval

PAGE = Path(__file__).with_name("page.html")
CHROMIUM = os.environ.get("BOTKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
WIDTH = 1600  # px: the page's width, Grafana's 24 columns across it


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """The time range drawn, the step of its points and the range of its rates."""

    start: float
    end: float
    step: float
    rate_interval: str


def window(start: float, end: float, scrape: float) -> Window:
    """About 300 points across, never closer than the scrapes (Grafana's $__interval, roughly)."""
    step = max(scrape, math.ceil((end - start) / 300))
    return Window(start, end, step, rate_interval(scrape, step))


def evaluate(api: httpx.Client, target: Target, when: Window) -> list[dict[str, Any]]:
    """The target's series over the window: [{name, points: [[unix time, value], ...]}]."""
    params: dict[str, str | float] = {
        "query": promql(target.expr, when.rate_interval),
        "start": when.start,
        "end": when.end,
        "step": when.step,
    }
    answer = api.get("/api/v1/query_range", params=params).raise_for_status().json()
    if answer["status"] != "success":
        raise RuntimeError(f"Prometheus refused {params['query']!r}: {answer}")
    return [
        {
            "name": legend(target.legend, found["metric"]),
            "points": [[float(t), float(v)] for t, v in found["values"] if math.isfinite(float(v))],
        }
        for found in answer["data"]["result"]
    ]


def drawn(api: httpx.Client, panel: Panel, when: Window) -> dict[str, Any]:
    """What page.html draws of one panel: its layout and its evaluated series."""
    series = [found for target in panel.targets for found in evaluate(api, target, when)]
    return {**dataclasses.asdict(panel), "series": series}


def page(panels: list[dict[str, Any]], when: Window, uplot: Path) -> str:
    """The page: page.html with uPlot and the panels' data inlined."""
    data = {"panels": panels, "start": when.start, "end": when.end, "width": WIDTH}
    return (
        PAGE.read_text()
        .replace("/*UPLOT_CSS*/", (uplot / "uPlot.min.css").read_text())
        .replace("/*UPLOT_JS*/", (uplot / "uPlot.iife.min.js").read_text())
        .replace("/*DATA*/null", json.dumps(data).replace("</", "<\\/"))
    )


def screenshot(html: Path, out: Path) -> None:
    """Chromium opens the page, waits until every panel is drawn, and saves it as a PNG."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": WIDTH, "height": 900})
            tab.goto(html.as_uri())
            tab.wait_for_function("window.drawn === true", timeout=20_000)
            tab.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main() -> None:
    """Evaluates every panel of docs/grafana/botkit.json, then draws and screenshots them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:9090")
    parser.add_argument("--start", type=float, required=True, help="unix time")
    parser.add_argument("--end", type=float, required=True, help="unix time")
    parser.add_argument("--scrape", type=float, default=2.0, help="Prometheus' scrape interval, s")
    parser.add_argument("--uplot", type=Path, required=True, help="uPlot's dist/ folder (npm)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    when = window(args.start, args.end, args.scrape)
    with httpx.Client(base_url=args.prometheus, timeout=30.0) as api:
        panels = [drawn(api, panel, when) for panel in load()]
    with tempfile.TemporaryDirectory(prefix="botkit-dashboard-") as folder:
        html = Path(folder) / "dashboard.html"
        html.write_text(page(panels, when, args.uplot))
        screenshot(html, args.out)
    empty = [found["title"] for found in panels if found["kind"] != "row" and not found["series"]]
    print(f"render: {len(panels)} panels drawn into {args.out}; no data: {', '.join(empty) or '-'}")


if __name__ == "__main__":
    main()
