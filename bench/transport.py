"""Sender transport benchmark: httpx's default pool vs httpx-aiohttp, posting to the fake sink.

Run:  .venv/bin/python bench/transport.py [--requests 3000]

Starts `botkit fake-api --sink` on loopback and posts the same message body through
botkit's Sender with each transport, at 1, 8 and 32 requests in flight, and prints
requests/s. The Sender's default transport is chosen from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
from httpx_aiohttp import AiohttpTransport
from processes import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botkit.provider.sender import Sender, default_transport  # noqa: E402


async def measure(
    base_url: str, transport: httpx.AsyncBaseTransport, total: int, inflight: int
) -> float:
    sender = Sender(
        base_url=base_url, api_key="gsk_test_bench", transport=transport, concurrency=inflight
    )
    payload = {"body": "¡Hola! ¿Qué turno querés reservar?"}
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            await sender.send(
                phone_number_id="555123456789",
                to="5491140123456",
                type="text",
                payload=payload,
                idempotency_key=f"bench-{inflight}-{id(transport)}-{n}",
            )

    async with sender:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return total / (time.perf_counter() - started)


async def run(base_url: str, total: int) -> None:
    print(f"{'transport':<28}{'in flight':>10}{'requests/s':>14}")
    for inflight in (1, 8, 32):
        transports: dict[str, httpx.AsyncBaseTransport] = {
            "httpx default (httpcore)": httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
            ),
            "httpx-aiohttp": AiohttpTransport(
                limits=httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
            ),
            "botkit LeanTransport": default_transport(inflight),
        }
        for name, transport in transports.items():
            rate = await measure(base_url, transport, total, inflight)
            print(f"{name:<28}{inflight:>10}{rate:>14.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_fake/stats", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(run(f"http://127.0.0.1:{port}/v1", args.requests))
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
