"""One user's slow handler against everyone else's reply latency.

Run:  .venv/bin/python bench/isolation.py [--users 200]

Starts `botkit run bench.slowbot` (the clinic, with a handler that sleeps 5 s on "dormir")
against the benchmarks' sink, then measures the reply latency of `--users` users saying
"hola" (from the webhook POST to the reply reaching the provider) twice: alone, and while one
user's handler sleeps 5 s. One user's trouble stays that user's: both should be alike, and
the sleeping user's own reply comes after its 5 s. bench/webhook.py prints the same line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from envelopes import received
from processes import free_port, start, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botkit.wire.idempotency import idempotency_key  # noqa: E402
from botkit.wire.signing import sign  # noqa: E402

SECRET = "whsec_bench_isolation"
HOLA = {"type": "text", "text": {"body": "hola"}}
DORMIR = {"type": "text", "text": {"body": "dormir"}}


async def post(
    client: httpx.AsyncClient, user: int, event_id: str, part: dict[str, object]
) -> float:
    """Posts one signed event; returns when it was posted (Unix seconds)."""
    body = json.dumps(received(user, event_id, f"wamid.{event_id}", part)).encode()
    headers = {"X-GoSendAPI-Signature": sign(SECRET, body), "Content-Type": "application/json"}
    posted = time.time()
    response = await client.post("/webhook", content=body, headers=headers)
    response.raise_for_status()
    return posted


async def reply_latencies(bot: str, sink: str, first_user: int, users: int) -> list[float]:
    """Each of `users` users says "hola" at once; the seconds until each reply reached the sink."""
    async with httpx.AsyncClient(base_url=bot, timeout=30) as client:
        events = {f"iso_{first_user + n}": first_user + n for n in range(users)}
        posted = await asyncio.gather(*(post(client, u, e, HOLA) for e, u in events.items()))
    keys = {idempotency_key(event_id, 0): at for event_id, at in zip(events, posted, strict=True)}
    return [seconds - keys[key] for key, seconds in await arrivals(sink, keys)]


async def arrivals(
    sink: str, keys: dict[str, float], within: float = 60.0
) -> list[tuple[str, float]]:
    """When each key reached the sink, once all have."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=sink, timeout=10) as client:
        while time.monotonic() < deadline:
            times = (await client.get("/_fake/times")).json()["times"]
            if all(key in times for key in keys):
                return [(key, float(times[key])) for key in keys]
            await asyncio.sleep(0.05)
    raise SystemExit("the replies did not all arrive")


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"


async def measure(bot: str, sink: str, users: int) -> tuple[list[float], list[float], float]:
    """(latencies alone, latencies beside a sleeping handler, the sleeper's own reply time)."""
    await reply_latencies(bot, sink, 1_000_000, 20)  # warm up: connections, models, caches
    alone = await reply_latencies(bot, sink, 2_000_000, users)
    async with httpx.AsyncClient(base_url=bot, timeout=30) as client:
        slept_at = await post(client, 3_000_000, "iso_sleeper", DORMIR)
    await asyncio.sleep(0.2)  # the sleeper's handler is running
    beside = await reply_latencies(bot, sink, 4_000_000, users)
    [(_, woke)] = await arrivals(sink, {idempotency_key("iso_sleeper", 0): slept_at})
    return alone, beside, woke - slept_at


def line(alone: list[float], beside: list[float], sleeper: float) -> str:
    """The benchmark's isolation line."""
    return (
        f"(b) isolation, reply latency of {len(alone)} users: alone {summary(alone)};"
        f" while one handler sleeps 5 s {summary(beside)} (the sleeper's reply after {sleeper:.1f} s)"
    )


def run(folder: Path, users: int) -> tuple[list[float], list[float], float]:
    """Starts the sink and `botkit run bench.slowbot`, measures, stops them."""
    sink_port, bot_port = free_port(), free_port()
    sink = start([sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(sink_port)],
                 {}, folder / "isolation-sink.log")  # fmt: skip
    bot = start(
        [sys.executable, "-m", "botkit.tools.cli", "run", "bench.slowbot", "--port",
         str(bot_port), "--log-level", "warning"],
        {
            "GOSENDAPI_API_KEY": "gsk_test_bench",
            "GOSENDAPI_BASE_URL": f"http://127.0.0.1:{sink_port}/v1",
            "GOSENDAPI_WEBHOOK_SECRET": SECRET,
            "BOTKIT_DATABASE": str(folder / "isolation.db"),
            "BOTKIT_RATE_PER_NUMBER": "0",
            "BOTKIT_RATE_PER_KEY": "0",
        },
        folder / "isolation-bot.log",
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{sink_port}/_fake/stats")
        wait_ready(f"http://127.0.0.1:{bot_port}/healthz")
        sink_url, bot_url = f"http://127.0.0.1:{sink_port}", f"http://127.0.0.1:{bot_port}"
        return asyncio.run(measure(bot_url, sink_url, users))
    finally:
        stop(bot)
        stop(sink)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="botkit-isolation-") as tmp:
        print(line(*run(Path(tmp), args.users)))


if __name__ == "__main__":
    main()
