"""Tests for botkit.web.metrics (GET /metrics) and botkit.metrics: a scripted conversation in the
Simulator (the real webhook app on a SQLite file, the fake GoSendAPI), then a scrape, read here
with a parser of the text format of its own, and the counters that must have moved."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from botkit import Bot, Context, Conversation, Simulator, State, Template, Text, on
from botkit.config import Settings
from botkit.fake.provider import FakeGoSendAPI
from botkit.metrics import Metrics
from botkit.runtime.runtime import Runtime
from botkit.types import ManualClock
from botkit.web.app import create_app

pytestmark = pytest.mark.anyio

ANA = "5491140123456"
BEN = "5491140123457"
HOUR = 3600.0
REMINDER = Template.of("reminder", "es")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
DOCS = Path(__file__).resolve().parents[2] / "docs"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Counter(Conversation):
    """Greets, asks, and fails on "boom"; a trigger that falls back to a template."""

    idle = State(initial=True)
    asked = State(prompt=Text("¿Y ahora?"))

    @on.text(states=[idle], to=asked)
    async def hello(self, ctx: Context) -> None:
        if ctx.text == "boom":
            raise RuntimeError("boom")
        await ctx.send(Text("hola"))

    @on.text(states=[asked], to=idle)
    async def bye(self, ctx: Context) -> None:
        await ctx.send(Text("chau"))

    @on.trigger("remind", states=[idle, asked])
    async def remind(self, ctx: Context) -> None:
        await ctx.send(Text("¿Seguís ahí?"), fallback=REMINDER)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The scrape's samples: (name, labels) -> value."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match is not None, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        found[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return found


class Scrape:
    """One GET /metrics, read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = samples(text)

    def __call__(self, name: str, **labels: str) -> float:
        """A sample's value (0 when the series does not exist yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(app: object, **headers: str) -> Scrape:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(Bot(Counter), database=tmp_path / "bot.db") as sim:
        yield sim


async def test_a_scripted_conversation_moves_the_counters_it_should(sim: Simulator) -> None:
    before = await scrape(sim.app)
    assert before("botkit_webhook_requests_total", outcome="accepted") == 0
    assert before("botkit_store_up") == 1
    ana = sim.user(ANA, "Ana")
    delivery = await ana.says("hola")  # a turn in idle: hello sends one text
    await sim.redeliver(delivery)  # the provider again: a duplicate
    await ana.says("chau")  # a turn in asked: bye sends one text
    with pytest.raises(RuntimeError, match="boom"):
        await sim.user(BEN).says("boom")  # hello fails: a handler error
    await sim.status(ana.messages[0], "delivered")
    await sim.status(ana.messages[1], "failed", code=131026)

    after = await scrape(sim.app)
    assert after("botkit_webhook_requests_total", outcome="accepted") == 5
    assert after("botkit_webhook_requests_total", outcome="duplicate") == 1
    assert after("botkit_webhook_events_total", outcome="duplicate") == 1
    assert after("botkit_webhook_ack_duration_seconds_count") == 6
    assert after("botkit_events_processed_total", kind="message", outcome="done") == 2
    assert after("botkit_events_processed_total", kind="message", outcome="failed") == 1
    assert after("botkit_events_processed_total", kind="status", outcome="done") == 2
    turns = "botkit_turn_duration_seconds_count"
    # Ana's hola, Ben's boom, and the two statuses (after chau Ana is idle again)
    assert after(turns, conversation="Counter", state="idle") == 4
    assert after(turns, conversation="Counter", state="asked") == 1  # chau
    assert after("botkit_handler_errors_total", conversation="Counter", handler="hello") == 1
    assert after("botkit_handler_errors_total", conversation="Counter", handler="bye") == 0
    assert after("botkit_sends_total", type="text", outcome="sent") == 3  # hola, prompt, chau
    assert after("botkit_send_duration_seconds_count") == 3
    assert after("botkit_delivery_statuses_total", status="delivered", code="") == 1
    assert after("botkit_delivery_statuses_total", status="failed", code="131026") == 1
    assert after("botkit_inbox_pending_events") == 0
    assert after("botkit_outbox_pending_sends") == 0
    assert after("botkit_inbox_oldest_pending_age_seconds") == 0
    assert ANA not in after.text and BEN not in after.text  # no user in any label


async def test_retries_rate_limits_and_fallbacks_are_counted_by_reason(sim: Simulator) -> None:
    ana = sim.user(ANA, "Ana")
    sim.fail_next(500)
    sim.fail_next(429, retry_after=1)
    await ana.says("hola")  # hello's text: a 500, then a 429, then sent
    first = await scrape(sim.app)
    assert first("botkit_send_retries_total", reason="5xx") == 1
    assert first("botkit_send_retries_total", reason="429") == 1
    assert first("botkit_send_retries_total", reason="network") == 0
    assert first("botkit_sends_total", type="text", outcome="retry") == 1
    assert first("botkit_sends_total", type="text", outcome="rate_limited") == 1
    assert first("botkit_sends_total", type="text", outcome="sent") == 2  # hola and the prompt

    await sim.advance(hours=25)  # Ana's window closes: the reminder goes as its template
    await sim.trigger(ANA, "remind")
    second = await scrape(sim.app)
    assert second("botkit_template_fallbacks_total", reason="closed_window") == 1
    assert second("botkit_sends_total", type="template", outcome="sent") == 1
    assert second("botkit_events_processed_total", kind="trigger", outcome="done") == 1

    await ana.says("hola")  # the window opens again; the provider still refuses the next text
    sim.fail_next(403)
    await sim.trigger(ANA, "remind")
    third = await scrape(sim.app)
    assert third("botkit_template_fallbacks_total", reason="403") == 1
    assert third("botkit_sends_total", type="text", outcome="fallback") == 1
    assert third("botkit_sends_total", type="template", outcome="sent") == 2


async def test_metrics_want_the_token_when_one_is_configured(tmp_path: Path) -> None:
    settings = Settings(database=str(tmp_path / "bot.db"), metrics_token="s3cret-scrape")
    app = create_app(Runtime(Bot(Counter), settings, clock=ManualClock()))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bot") as client,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape"}):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401, headers
            assert "BOTKIT_METRICS_TOKEN" in response.json()["detail"]
        found = await scrape(app, Authorization="Bearer s3cret-scrape")
        assert found("botkit_store_up") == 1


async def test_metrics_off_count_nothing_and_answer_404(tmp_path: Path) -> None:
    settings = Settings(database=str(tmp_path / "bot.db"), metrics=False)
    runtime = Runtime(Bot(Counter), settings, clock=ManualClock())
    assert not runtime.metrics.enabled and runtime.metrics.registry is None
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bot") as client,
    ):
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert "BOTKIT_METRICS=off" in response.json()["detail"]
        assert "GET /metrics" not in (await client.get("/")).json()["endpoints"]


def test_label_values_past_the_limit_are_counted_as_other() -> None:
    metrics = Metrics()
    for code in range(250):  # a provider sending codes no one knows
        metrics.delivery_status("failed", str(code))
    metrics.delivery_status("failed", "not a code")
    metrics.delivery_status("exploded", None)
    text = metrics.render([]).decode()
    found = Scrape(text)
    series = [key for key in found.samples if key[0] == "botkit_delivery_statuses_total"]
    assert len(series) == 201  # 200 bound, then one for all the rest
    assert found("botkit_delivery_statuses_total", status="failed", code="199") == 1
    assert found("botkit_delivery_statuses_total", status="other", code="other") == 52
    assert sum(found.samples[key] for key in series) == 252


def test_two_runtimes_in_one_process_keep_their_own_figures() -> None:
    one, two = Metrics(), Metrics()
    one.send("text", "sent")
    assert Scrape(one.render([]).decode())("botkit_sends_total", type="text", outcome="sent") == 1
    assert Scrape(two.render([]).decode())("botkit_sends_total", type="text", outcome="sent") == 0


async def test_the_fake_provider_setup_of_botkit_run_serves_metrics(tmp_path: Path) -> None:
    """`botkit run` without a key: the workers in the web process, one registry."""
    fake = FakeGoSendAPI(clock=ManualClock())
    settings = dataclasses.replace(Settings(database=str(tmp_path / "bot.db")))
    runtime = Runtime(Bot(Counter), settings, transport=httpx.ASGITransport(app=fake.app))
    app = create_app(runtime)
    async with app.router.lifespan_context(app):
        found = await scrape(app)
    assert found("botkit_webhook_requests_total", outcome="401") == 0
    assert "botkit_worker_up" not in found.text  # no worker child here


def metric_names(text: str) -> set[str]:
    """botkit metric names in a text, histogram series named by their metric."""
    found = set(re.findall(r"\bbotkit_[a-z_]+[a-z]", text))
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in found}


async def test_the_docs_and_the_dashboard_name_every_metric_and_only_those(
    sim: Simulator,
) -> None:
    await sim.user(ANA).says("hola")  # every labelled family has a series
    served = {
        line.split()[2]
        for line in (await scrape(sim.app)).text.splitlines()
        if line.startswith("# HELP") and not line.split()[2].endswith("_created")
    }
    served.add("botkit_worker_up")  # served only beside a worker child (test_metrics_processes.py)
    documented = metric_names((DOCS / "operating.md").read_text())
    dashboard = metric_names((DOCS / "grafana" / "botkit.json").read_text())
    assert documented == served
    assert dashboard <= served, dashboard - served
    assert len(dashboard) >= len(served) - 2
