"""What the benchmarks share: free loopback ports, starting, probing and stopping servers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
# the PostgreSQL server of the benchmarks' databases (each run makes its own, and drops it)
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Starts a server from the project root, its stderr appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=out
        )


def wait_ready(url: str, timeout: float = 20.0) -> None:
    """Returns once `url` answers anything; exits the benchmark if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminates a server, killing it if it does not stop within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def with_database(name: str) -> str:
    """The URL of database `name` on the benchmarks' PostgreSQL server."""
    return urlunsplit(urlsplit(POSTGRES)._replace(path=f"/{name}"))


def admin(*statements: str) -> None:
    """Runs statements on the benchmarks' PostgreSQL server (creating, dropping databases)."""

    async def run() -> None:
        db = await asyncpg.connect(POSTGRES)
        try:
            for statement in statements:
                await db.execute(statement)
        finally:
            await db.close()

    asyncio.run(run())
