"""Tests for botkit.tracing and its hooks: one inbound event is one trace, from the webhook to
each send, through the real webhook app (SQLite file, fake GoSendAPI), and across a web
process and a worker that share only the store; with traces off, no span and no trace context.

Spans are read from OpenTelemetry's own SDK (a TracerProvider with its in-memory exporter),
given to the runtime with `Tracing.of`, so that no test touches the global provider.
Bodies are signed with `hmac` here, not with botkit.wire.signing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from botkit import Bot, Context, Conversation, State, Template, Text, on
from botkit.config import Settings
from botkit.exceptions import ConfigError
from botkit.fake.provider import FakeGoSendAPI
from botkit.runtime.runtime import Runtime
from botkit.tracing import Tracing
from botkit.types import ManualClock
from botkit.web.app import create_app
from botkit.wire.idempotency import idempotency_key
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_test_traces"
PHONE_NUMBER_ID = "555123456789"
JUAN = "5491140123456"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"
TOKEN = "tok_traces"  # the provider's span, in the request's traceparent


class Shop(Conversation):
    """Two replies to a first message, one to the next; "boom" fails; a trigger."""

    start = State(initial=True)
    open = State()

    @on.text(states=[start], to=open)
    async def greet(self, ctx: Context) -> None:
        if ctx.text == "boom":
            raise RuntimeError("boom")
        await ctx.send(Text("¡Hola!"))
        await ctx.send(Text("¿Qué buscás?"))

    @on.text(states=[open], to=open)
    async def answer(self, ctx: Context) -> None:
        await ctx.send(Text("Anotado"))

    @on.trigger("restock", states=[start, open])
    async def restock(self, ctx: Context) -> None:
        await ctx.send(Template.of("reminder", "es"))  # the user may never have written


def body(event_id: str, text: str) -> bytes:
    message = {"from": JUAN, "id": f"wamid.{event_id}", "timestamp": "1779199200",
               "type": "text", "text": {"body": text}}  # fmt: skip
    envelope = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "created_at": "2026-05-19T14:00:05Z",
        "phone_number_id": PHONE_NUMBER_ID,
        "data": {"contact": {"wa_id": JUAN, "profile": {"name": "Juan"}}, "message": message},
    }
    return json.dumps(envelope).encode()


def signature(content: bytes) -> str:
    """The header GoSendAPI sends: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest()


def settings_for(database: Path | str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": "http://provider/v1",
        "api_key": "gsk_test_traces",
        "webhook_secrets": (SECRET,),
        "phone_number_id": PHONE_NUMBER_ID,
        "database": str(database),
        "api_token": TOKEN,
    }
    return Settings(**{**values, **changes})


class Spans:
    """A TracerProvider whose finished spans are kept in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracing = Tracing.of(self.provider)

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]

    def all(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@dataclass
class Rig:
    """A running bot's webhook app, and the fake provider it replies to."""

    runtime: Runtime
    fake: FakeGoSendAPI
    client: httpx.AsyncClient

    async def post(self, event_id: str, text: str, **headers: str) -> httpx.Response:
        content = body(event_id, text)
        sent = {"Content-Type": "application/json", "X-GoSendAPI-Signature": signature(content)}
        response = await self.client.post("/webhook", content=content, headers=sent | headers)
        assert response.status_code == 200, response.text
        return response


@contextlib.asynccontextmanager
async def running(
    database: Path | str,
    *,
    tracing: Tracing | None,
    workers: bool = True,
    mode: str = "auto",
    window: bool = True,
) -> AsyncIterator[Rig]:
    """The bot's app with its lifespan running; `tracing`, else BOTKIT_TRACING=`mode`;
    `window`: the provider has seen Juan write (it refuses free-form messages otherwise)."""
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock)
    if window:
        fake.open_window(PHONE_NUMBER_ID, JUAN, clock.now())
    runtime = Runtime(
        Bot(Shop),
        settings_for(database, tracing=mode),
        clock=clock,
        transport=httpx.ASGITransport(app=fake.app),
        workers=workers,
        tracing=tracing,
    )
    app = create_app(runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client,
    ):
        yield Rig(runtime, fake, client)


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def traceparents(database: Path) -> tuple[list[str | None], list[str | None]]:
    """The trace contexts stored on the inbox rows and on the outbox rows, in order."""
    with contextlib.closing(sqlite3.connect(f"{database}-inbox")) as inbox:
        events = [row[0] for row in inbox.execute("SELECT traceparent FROM inbox ORDER BY seq")]
    with contextlib.closing(sqlite3.connect(database)) as main:
        sends = [row[0] for row in main.execute("SELECT traceparent FROM outbox ORDER BY seq")]
    return events, sends


# --- one inbound event, one trace ---------------------------------------------------------


async def test_an_event_is_one_trace_from_the_webhook_through_its_turn_to_each_send(
    tmp_path: Path,
) -> None:
    spans = Spans()
    async with running(tmp_path / "bot.db", tracing=spans.tracing) as rig:
        await rig.post("evt_1", "hola", traceparent=f"00-{TRACE_ID}-{CALLER}-01")
        await rig.runtime.settle()
        assert [m.body["text"]["body"] for m in rig.fake.messages_to(JUAN)] == [  # type: ignore[index]
            "¡Hola!",
            "¿Qué buscás?",
        ]

    [webhook] = spans.named("botkit.webhook")
    [inbox] = spans.named("botkit.inbox")
    [turn] = spans.named("botkit.turn")
    sends = spans.named("botkit.send")
    assert len(sends) == 2
    # one trace, the provider's, and each span the child of the one before
    assert {span.context.trace_id for span in spans.all()} == {int(TRACE_ID, 16)}
    assert parent_of(webhook) == int(CALLER, 16)
    assert parent_of(inbox) == webhook.context.span_id
    assert parent_of(turn) == inbox.context.span_id
    assert [parent_of(send) for send in sends] == [turn.context.span_id] * 2
    assert [webhook.kind, inbox.kind, turn.kind, sends[0].kind] == [
        SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT,
    ]  # fmt: skip

    assert webhook.attributes is not None and inbox.attributes is not None
    assert webhook.attributes["http.response.status_code"] == 200
    assert webhook.attributes["botkit.accepted"] == 1
    assert inbox.attributes["botkit.event_id"] == "evt_1"
    assert inbox.attributes["botkit.duplicate"] is False
    assert dict(turn.attributes or {}) == {
        "botkit.event_id": "evt_1",
        "botkit.event.kind": "message",
        "botkit.conversation": "Shop",
        "botkit.business": PHONE_NUMBER_ID,
        "botkit.user": "54911****3456",
        "botkit.message_id": "wamid.evt_1",
        "botkit.state_before": "start",
        "botkit.state_after": "open",
        "botkit.handler": "greet",
        "botkit.sent": 2,
        "botkit.outcome": "done",
        "botkit.attempt": 1,
    }
    for n, send in enumerate(sends):
        attributes = send.attributes or {}
        assert attributes["botkit.idempotency_key"] == idempotency_key("evt_1", n)
        assert attributes["botkit.event_id"] == "evt_1"
        assert attributes["botkit.outcome"] == "sent"
        assert attributes["http.response.status_code"] == 200
        assert str(attributes["botkit.provider_message_id"]).startswith("wamid.")
    # the trace context crossed the store: the inbox span's on the event, the turn's on the sends
    events, stored_sends = traceparents(tmp_path / "bot.db")
    assert events == [f"00-{TRACE_ID}-{inbox.context.span_id:016x}-01"]
    assert stored_sends == [f"00-{TRACE_ID}-{turn.context.span_id:016x}-01"] * 2


async def test_each_event_is_a_trace_of_its_own(tmp_path: Path) -> None:
    spans = Spans()
    async with running(tmp_path / "bot.db", tracing=spans.tracing) as rig:
        await rig.post("evt_1", "hola")  # no traceparent: a new trace
        await rig.runtime.settle()
        await rig.post("evt_2", "zapatillas")
        await rig.runtime.settle()

    turns = spans.named("botkit.turn")
    assert [(t.attributes or {}).get("botkit.event_id") for t in turns] == ["evt_1", "evt_2"]
    traces = [turn.context.trace_id for turn in turns]
    assert traces[0] != traces[1]
    for trace_id, sent in zip(traces, (2, 1), strict=True):
        names = sorted(s.name for s in spans.all() if s.context.trace_id == trace_id)
        assert names == sorted(
            ["botkit.webhook", "botkit.inbox", "botkit.turn"] + ["botkit.send"] * sent
        )
    [first, *_] = spans.named("botkit.webhook")
    assert first.parent is None  # the root of its trace


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A SQLite file, or the test run's PostgreSQL database (emptied)."""
    if request.param == "sqlite":
        return tmp_path / "bot.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_a_worker_elsewhere_continues_the_webhooks_trace_from_the_store(
    database: Path | str,
) -> None:
    """A web replica stores the event; a worker, with a TracerProvider of its own (another
    process: they share only the database), takes the turn and sends in the same trace."""
    web, worker = Spans(), Spans()
    async with running(database, tracing=web.tracing, workers=False) as rig:
        await rig.post("evt_1", "hola", traceparent=f"00-{TRACE_ID}-{CALLER}-01")
    assert web.named("botkit.turn") == [] and web.named("botkit.send") == []
    [inbox] = web.named("botkit.inbox")

    async with running(database, tracing=worker.tracing) as rig:
        await rig.runtime.settle()
        assert len(rig.fake.messages_to(JUAN)) == 2

    [turn] = worker.named("botkit.turn")
    assert turn.context.trace_id == int(TRACE_ID, 16)
    assert parent_of(turn) == inbox.context.span_id
    assert [parent_of(send) for send in worker.named("botkit.send")] == [turn.context.span_id] * 2


async def test_a_failed_turn_is_an_error_span_with_its_error(tmp_path: Path) -> None:
    spans = Spans()
    async with running(tmp_path / "bot.db", tracing=spans.tracing) as rig:
        await rig.post("evt_1", "boom")
        await rig.runtime.settle()

    [turn] = spans.named("botkit.turn")
    assert turn.status.status_code == StatusCode.ERROR
    attributes = turn.attributes or {}
    assert attributes["botkit.outcome"] == "failed"
    assert attributes["botkit.error"] == "RuntimeError: boom"
    assert attributes["botkit.state_after"] == "start"
    assert spans.named("botkit.send") == []


async def test_a_send_the_provider_refuses_is_an_error_span_with_its_status_and_code(
    tmp_path: Path,
) -> None:
    spans = Spans()
    async with running(tmp_path / "bot.db", tracing=spans.tracing, window=False) as rig:
        await rig.post("evt_1", "hola")  # the provider has not seen Juan write: it refuses
        await rig.runtime.settle()

    [first, _] = spans.named("botkit.send")
    attributes = first.attributes or {}
    assert attributes["http.response.status_code"] == 403
    assert attributes["botkit.provider_code"] == "WINDOW_CLOSED"
    assert attributes["botkit.outcome"] == "failed"
    assert "window closed" in str(attributes["botkit.error"])
    assert first.status.status_code == StatusCode.ERROR


async def test_a_redelivery_is_marked_a_duplicate_and_makes_no_turn(tmp_path: Path) -> None:
    spans = Spans()
    async with running(tmp_path / "bot.db", tracing=spans.tracing) as rig:
        await rig.post("evt_1", "hola")
        await rig.runtime.settle()
        await rig.post("evt_1", "hola")
        await rig.runtime.settle()

    assert [(s.attributes or {})["botkit.duplicate"] for s in spans.named("botkit.inbox")] == [
        False,
        True,
    ]
    assert len(spans.named("botkit.turn")) == 1
    assert [
        (s.attributes or {}).get("botkit.duplicates") for s in spans.named("botkit.webhook")
    ] == [0, 1]


async def test_a_store_that_is_down_makes_the_webhook_and_inbox_spans_errors(
    postgres_url: str,
) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    database = f"postgresql://{parts.username}@127.0.0.1:{proxy.port}{parts.path}"
    spans = Spans()
    try:
        async with running(database, tracing=spans.tracing, workers=False) as rig:
            await proxy.cut()  # the database restarts
            down = await rig.client.post(
                "/webhook",
                content=body("evt_1", "hola"),
                headers={"X-GoSendAPI-Signature": signature(body("evt_1", "hola"))},
            )
            assert down.status_code == 503
            await proxy.restore()
    finally:
        await proxy.aclose()

    [webhook] = spans.named("botkit.webhook")
    [inbox] = spans.named("botkit.inbox")
    assert (webhook.attributes or {})["http.response.status_code"] == 503
    assert webhook.status.status_code == StatusCode.ERROR
    assert inbox.status.status_code == StatusCode.ERROR
    assert [event.name for event in inbox.events] == ["exception"]
    assert str((inbox.events[0].attributes or {})["exception.type"]).endswith("StoreError")


async def test_a_trigger_request_is_a_trace_of_its_own_from_the_inbox(tmp_path: Path) -> None:
    spans = Spans()
    async with running(tmp_path / "bot.db", tracing=spans.tracing) as rig:
        response = await rig.client.post(
            f"/conversations/{JUAN}/trigger",
            json={"trigger": "restock", "data": {}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 202, response.text
        await rig.runtime.settle()

    assert spans.named("botkit.webhook") == []
    [inbox] = spans.named("botkit.inbox")
    [turn] = spans.named("botkit.turn")
    [sent] = spans.named("botkit.send")
    assert inbox.parent is None  # the root: no span was current (no web instrumentation)
    assert (inbox.attributes or {})["botkit.event.kind"] == "trigger"
    assert parent_of(turn) == inbox.context.span_id
    assert parent_of(sent) == turn.context.span_id
    assert (turn.attributes or {})["botkit.handler"] == "restock"


# --- off ----------------------------------------------------------------------------------


async def test_with_traces_off_no_span_is_made_and_no_trace_context_stored(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"BOTKIT_TRACING": "off", "OTEL_TRACES_EXPORTER": "otlp"})
    assert settings.tracing == "off"
    async with running(tmp_path / "bot.db", tracing=None, mode="off") as rig:
        assert rig.runtime.tracing is None
        await rig.post("evt_1", "hola", traceparent=f"00-{TRACE_ID}-{CALLER}-01")
        await rig.runtime.settle()
        assert len(rig.fake.messages_to(JUAN)) == 2

    assert traceparents(tmp_path / "bot.db") == ([None], [None, None])


_GLOBAL_PROVIDER = """
import asyncio, sys
from pathlib import Path
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.test_tracing import running

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def main(folder: Path) -> None:
    for mode in ("off", "auto"):
        async with running(folder / f"{mode}.db", tracing=None, mode=mode) as rig:
            await rig.post("evt_1", "hola")
            await rig.runtime.settle()
        print(mode, sorted({span.name for span in exporter.get_finished_spans()}))
        exporter.clear()

asyncio.run(main(Path(sys.argv[1])))
"""


def test_off_makes_no_span_even_with_a_global_provider_which_auto_uses(tmp_path: Path) -> None:
    """In a process of its own: OpenTelemetry's global provider is set once per process."""
    done = subprocess.run(
        [sys.executable, "-c", _GLOBAL_PROVIDER, str(tmp_path)], capture_output=True, text=True,
        cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "off []",
        "auto ['botkit.inbox', 'botkit.send', 'botkit.turn', 'botkit.webhook']",
    ]
    assert traceparents(tmp_path / "off.db") == ([None], [None, None])
    events, sends = traceparents(tmp_path / "auto.db")
    assert None not in events + sends


def test_auto_is_on_when_the_environment_names_an_exporter_and_off_otherwise() -> None:
    assert Tracing.configured("auto", {}) is None  # no TracerProvider set in this process
    assert Tracing.configured("auto", {"OTEL_TRACES_EXPORTER": "otlp"}) is not None
    assert Tracing.configured("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) is not None
    assert Tracing.configured("auto", {"OTEL_TRACES_EXPORTER": "none"}) is None
    disabled = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    assert Tracing.configured("auto", disabled) is None
    assert Tracing.configured("on", {}) is not None
    assert Tracing.configured("off", {"OTEL_TRACES_EXPORTER": "otlp"}) is None


def test_on_without_opentelemetry_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry: ImportError
    assert Tracing.configured("auto", {"OTEL_TRACES_EXPORTER": "otlp"}) is None
    with pytest.raises(ConfigError, match=r"install botkit\[otel\].*BOTKIT_TRACING=off"):
        Tracing.configured("on", {})


def test_a_mode_that_is_not_one_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="BOTKIT_TRACING must be one of auto, on, off; not 'yes'"):
        Settings.from_env({"BOTKIT_TRACING": "yes"})


def test_importing_botkit_and_its_web_app_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, botkit, botkit.web.app, botkit.runtime.runtime, botkit.tracing\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.stdout.strip() == "[]"
