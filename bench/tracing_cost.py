"""What traces cost per event, on the two hot paths: POST /webhook (verify, store in a memory
store, answer) and a worker's turn (one text event, one reply queued).

Each path runs three ways: `bare` is the work without the tracing hook (the endpoint's
`_respond`, `take_turn` itself), `off` the hook with traces off (BOTKIT_TRACING=off, or no
OpenTelemetry: `tracing is None`), `on` with OpenTelemetry's SDK recording every span into an
exporter that drops them (what the spans cost botkit, not an exporter's network).

Run:  .venv/bin/python bench/tracing_cost.py [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from botkit import Context, Conversation, Settings, State, Text, on
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.ingest import Ingest
from botkit.runtime.turn import take_turn
from botkit.store import MemoryStore
from botkit.store.base import InboxItem, InboxLane
from botkit.tracing import Tracing
from botkit.types import ManualClock
from botkit.web.webhook import WebhookEndpoint
from botkit.wire.signing import sign
from botkit.wire.window import Window

SECRET = "whsec_bench"
PN = "555123456789"
USER = "5491140123456"


class Echo(Conversation):
    """One reply per message."""

    start = State(initial=True)

    @on.text(states=[start], to=start)
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(ctx.text or ""))


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def traced() -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Drop()))
    return Tracing.of(provider)


def envelope(n: int) -> dict[str, Any]:
    message = {"from": USER, "id": f"wamid.{n}", "timestamp": "1779199200", "type": "text",
               "text": {"body": "hola"}}  # fmt: skip
    return {"id": f"evt_{n}", "type": "whatsapp.message.received", "phone_number_id": PN,
            "data": {"contact": {"wa_id": USER}, "message": message}}  # fmt: skip


async def per_event(work: Callable[[int], Awaitable[object]], events: int) -> float:
    """Microseconds per `await work(n)`, best of three runs of `events` each."""
    best = float("inf")
    for run in range(3):
        started = time.perf_counter()
        for n in range(run * events, (run + 1) * events):
            await work(n)
        best = min(best, time.perf_counter() - started)
    return best / events * 1e6


async def webhook(tracing: Tracing | None, bare: bool, events: int) -> float:
    store = MemoryStore(clock=ManualClock())
    await store.open()
    settings = Settings(webhook_secrets=(SECRET,))
    endpoint = WebhookEndpoint(Ingest(store, Echo.spec, tracing=tracing), settings, None, tracing)
    bodies = [json.dumps(envelope(n)).encode() for n in range(3 * events)]
    headers = [[(b"x-gosendapi-signature", sign(SECRET, b).encode())] for b in bodies]

    async def post(n: int) -> object:
        scope = {"type": "http", "method": "POST", "headers": headers[n]}
        chunks = [{"type": "http.request", "body": bodies[n], "more_body": False}]

        async def receive() -> Any:
            return chunks.pop()

        async def send(message: Any) -> None:
            pass

        if bare:
            return await endpoint._respond(scope, receive)
        return await endpoint(scope, receive, send)

    try:
        return await per_event(post, events)
    finally:
        await store.aclose()


async def turn(tracing: Tracing | None, bare: bool, events: int) -> float:
    store = MemoryStore(clock=ManualClock())
    clock = ManualClock()
    dispatcher = Dispatcher(store, Echo(), clock, tracing=tracing)
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def take(n: int) -> object:
        item = InboxItem(n, n, f"evt_{n}", "message", PN, USER, envelope(n), trace)
        lane = InboxLane(PN, USER, "T", (item,), None, Window(), 1)
        if bare:
            return await take_turn(dispatcher.conversation, lane, clock.now())
        return await dispatcher.take(lane)

    return await per_event(take, events)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    for name, path in (("webhook", webhook), ("turn", turn)):
        bare = await path(None, True, args.events)
        off = await path(None, False, args.events)
        on_ = await path(traced(), False, args.events)
        print(
            f"{name:<8}: bare {bare:6.2f} µs, off {off:6.2f} µs ({off - bare:+5.2f}), "
            f"on {on_:6.2f} µs ({on_ - bare:+6.2f}) per event"
        )


if __name__ == "__main__":
    asyncio.run(main())
