"""`botkit fake-api` as a real process on a free loopback port, for tests that talk HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import httpx


@contextlib.asynccontextmanager
async def fake_api_process() -> AsyncIterator[str]:
    """Starts `botkit fake-api` (uvicorn) and yields its base URL once it answers; stops it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "botkit.tools.cli", "fake-api", "--port", str(port)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"{base}/_fake/messages")
                    break
                await asyncio.sleep(0.05)
        yield base
    finally:
        process.terminate()
        await process.wait()
