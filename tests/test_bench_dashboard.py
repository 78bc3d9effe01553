"""bench/dashboard: the renderer of docs/grafana/botkit.json keeps every panel where Grafana puts
it and asks Prometheus every target's expression, with the dashboard's variables filled in.
(That every metric the dashboard names is one botkit serves: tests/web/test_metrics.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from bench.dashboard.layout import (
    DASHBOARD,
    legend,
    load,
    panel,
    promql,
    rate_interval,
)
from bench.dashboard.load import FLOW, Load, status_event
from bench.dashboard.render import drawn, page, window
from bench.envelopes import received
from botkit.wire.events import InboundMessage, StatusUpdate, parse_body
from botkit.wire.signing import SIGNATURE_HEADER, verify
from tests.web.test_metrics import metric_names

RAW = json.loads(DASHBOARD.read_text())
SECRET = "whsec_load"


def raw_panels() -> list[dict[str, Any]]:
    """The dashboard's panels as its JSON has them, those in rows included."""
    return [found for top in RAW["panels"] for found in (top, *top.get("panels", []))]


def test_every_target_expression_and_legend_is_kept() -> None:
    kept = [(t.expr, t.legend) for found in load() for t in found.targets]
    raw = [
        (t["expr"], t.get("legendFormat", "")) for p in raw_panels() for t in p.get("targets", [])
    ]
    assert kept == raw
    assert len(kept) >= 20


def test_every_panel_keeps_its_title_kind_and_grid_position() -> None:
    for found, raw in zip(load(), raw_panels(), strict=True):
        assert (found.title, found.kind) == (raw["title"], raw["type"])
        assert (found.x, found.y, found.w, found.h) == tuple(raw["gridPos"][k] for k in "xywh")


def test_panels_fill_the_24_columns_without_overlapping() -> None:
    cells: set[tuple[int, int]] = set()
    for found in load():
        assert found.x >= 0 and found.x + found.w <= 24, found.title
        mine = {
            (x, y)
            for x in range(found.x, found.x + found.w)
            for y in range(found.y, found.y + found.h)
        }
        assert not cells & mine, found.title
        cells |= mine


def test_units_stacking_and_thresholds_come_from_the_field_config() -> None:
    by_title = {found.title: found for found in load()}
    assert by_title["Webhook requests by outcome"].unit == "reqps"
    assert by_title["Webhook requests by outcome"].stacked
    assert not by_title["Acknowledgement latency"].stacked
    assert by_title["Workers up"].thresholds == ((None, "red"), (1, "green"))


def test_promql_fills_in_every_instance_and_the_rate_interval() -> None:
    for found in load():
        for target in found.targets:
            expr = promql(target.expr, "8s")
            assert "$" not in expr
            assert 'instance=~".*"' in expr
            assert ("[8s]" in expr) == ("$__rate_interval" in target.expr)


def test_an_unknown_variable_or_panel_kind_is_an_error_not_a_gap() -> None:
    with pytest.raises(ValueError, match="variable"):
        promql('up{job="$job"}', "8s")
    with pytest.raises(ValueError, match="'table'"):
        panel({"type": "table", "title": "T", "gridPos": {"x": 0, "y": 0, "w": 1, "h": 1}})


def test_rate_interval_is_grafanas() -> None:
    assert rate_interval(2, 2) == "8s"  # four scrapes
    assert rate_interval(1, 10) == "11s"  # a step and a scrape
    assert window(1000.0, 1080.0, 2).step == 2
    assert window(0.0, 3600.0, 2).step == 12  # about 300 points


def test_legends_fill_labels_or_show_them_as_grafana_does() -> None:
    labels = {"conversation": "Clinic", "handler": "pick"}
    assert legend("{{conversation}}.{{handler}}", labels) == "Clinic.pick"
    assert legend("{{ status }} {{code}}", {"status": "read", "code": ""}) == "read"
    assert legend("", {"instance": "a:1"}) == '{instance="a:1"}'
    assert legend("", {}) == "Value"


def test_the_renderer_asks_prometheus_every_target_of_every_panel() -> None:
    asked: list[dict[str, list[str]]] = []

    def prometheus(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        asked.append(parse_qs(request.url.query.decode()))
        series = {"metric": {"outcome": "accepted"}, "values": [[1000, "2.5"], [1002, "NaN"]]}
        return httpx.Response(200, json={"status": "success", "data": {"result": [series]}})

    when = window(1000.0, 1060.0, 2)
    with httpx.Client(transport=httpx.MockTransport(prometheus), base_url="http://p") as api:
        panels = [drawn(api, found, when) for found in load()]
    queries = [query["query"][0] for query in asked]
    assert queries == [promql(t.expr, "8s") for found in load() for t in found.targets]
    assert {(q["start"][0], q["end"][0], q["step"][0]) for q in asked} == {
        ("1000.0", "1060.0", "2")
    }
    requests = next(p for p in panels if p["title"] == "Webhook requests by outcome")
    assert requests["series"] == [{"name": "accepted", "points": [[1000.0, 2.5]]}]  # NaN dropped
    assert (requests["kind"], requests["w"], requests["unit"]) == ("timeseries", 12, "reqps")


def test_the_rendered_queries_name_the_metrics_that_test_metrics_checks_are_served() -> None:
    rendered = metric_names(" ".join(t.expr for found in load() for t in found.targets))
    assert rendered == metric_names(DASHBOARD.read_text())


def test_the_page_inlines_uplot_and_the_panels(tmp_path: Path) -> None:
    (tmp_path / "uPlot.min.css").write_text(".u-legend{}")
    (tmp_path / "uPlot.iife.min.js").write_text("var uPlot=function(){};")
    found = [{"kind": "stat", "title": "</script>", "series": []}]
    html = page(found, window(0.0, 60.0, 2), tmp_path)
    assert "var uPlot=function(){};" in html and ".u-legend{}" in html
    assert '"title": "<\\/script>"' in html  # the data cannot end the script early
    assert "/*DATA*/" not in html


@pytest.mark.anyio
async def test_the_load_posts_signed_webhooks_and_counts_their_answers() -> None:
    posted: list[bytes] = []

    def bot(request: httpx.Request) -> httpx.Response:
        posted.append(request.content)
        signed = verify([SECRET], request.content, request.headers.get(SIGNATURE_HEADER))
        return httpx.Response(200 if signed else 401)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(bot), base_url="http://bot") as client,
        httpx.AsyncClient(base_url="http://fake") as fake,
    ):
        load = Load(client, fake, SECRET)
        await load.send(received(7, "evt_1", "wamid.1", FLOW[1]), redeliver=True)
        await load.post(b"{}", None)
    assert load.answers == {200: 2, 401: 1}
    assert posted[0] == posted[1]  # a redelivery: the same bytes
    [event] = parse_body(posted[0])
    assert isinstance(event, InboundMessage)


def test_a_status_event_is_one_botkit_reads() -> None:
    sent = {"message_id": "wamid.out.1", "phone_number_id": "555123456789", "to": "5491100000007"}
    [event] = parse_body(json.dumps(status_event(sent, "read")))
    assert isinstance(event, StatusUpdate)
    assert (event.message_id, event.status, event.wa_id) == ("wamid.out.1", "read", "5491100000007")
