"""An attacker for black-box tests of the edge: idle, slowloris and slow-body connections.

`Flood` runs in a thread of its own (an asyncio loop), so that a test can post webhooks with
an ordinary client meanwhile. Each of its connections is one task that connects, then either
sends nothing (idle), drips a request head a byte a second and never ends it (slowloris),
or sends a whole head and then drips its body a byte a second (a slow POST),
and, when the server closes it (a read returns EOF), counts how long it lived and connects
again: the flood holds its size for as long as it runs, as an attacker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time
from dataclasses import dataclass, field

# A request head that is never finished: the headers go on a byte at a time.
SLOW_HEAD = b"POST /webhook HTTP/1.1\r\nHost: botkit\r\nContent-Type: application/json\r\n" + (
    b"X-Padding: " + b"a" * 10_000
)

# A request whose head is whole and whose body comes a byte at a time.
SLOW_BODY_HEAD = (
    b"POST /webhook HTTP/1.1\r\nHost: botkit\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


def raise_open_files_limit(needed: int) -> None:
    """Raises this process's soft limit of open files to its hard limit (the flood's sockets
    would otherwise make connect() fail at the default 1,024); fails a test that cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        raise RuntimeError(f"this test needs {needed} open files; the hard limit is {hard}")


@dataclass
class Flood:
    """`idle` connections that send nothing, `slow` ones that drip a head, and `slow_bodies`
    that drip a body, to host:port."""

    host: str
    port: int
    idle: int
    slow: int
    slow_bodies: int = 0
    drip_every: float = 1.0
    lifetimes: list[float] = field(default_factory=list)  # seconds, of those the server closed
    open_now: int = 0  # connections established and not yet closed
    refused: int = 0  # connect() attempts that failed
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stopping: asyncio.Event | None = None

    def __enter__(self) -> Flood:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(30.0)

    def wait_until_open(self, count: int, within: float = 30.0) -> None:
        """Returns once `count` connections are open at once; raises if they never are."""
        deadline = time.monotonic() + within
        while self.open_now < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.open_now} of {count} connections opened")
            time.sleep(0.01)

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        ready.set()
        try:
            self._loop.run_until_complete(self._all())
        finally:
            self._loop.close()

    async def _all(self) -> None:
        assert self._stopping is not None
        kinds = ["idle"] * self.idle + ["head"] * self.slow + ["body"] * self.slow_bodies
        tasks = [asyncio.create_task(self._hold(kind)) for kind in kinds]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _hold(self, kind: str) -> None:
        """One connection at a time, again and again, until the flood stops."""
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.refused += 1
                await asyncio.sleep(0.1)
                continue
            opened = time.monotonic()
            self.open_now += 1
            try:
                await self._until_closed(reader, writer, kind)
                self.lifetimes.append(time.monotonic() - opened)
            finally:
                self.open_now -= 1
                writer.close()

    async def _until_closed(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kind: str
    ) -> None:
        """Returns when the server closes the connection (EOF or reset)."""
        read = asyncio.create_task(_eof(reader))
        try:
            dripped = b""
            if kind == "head":
                dripped = SLOW_HEAD
            elif kind == "body":
                with contextlib.suppress(OSError):
                    writer.write(SLOW_BODY_HEAD)
                dripped = b"{" * 100_000
            for byte in dripped:
                done, _ = await asyncio.wait({read}, timeout=self.drip_every)
                if done:
                    break
                with contextlib.suppress(OSError):
                    writer.write(bytes([byte]))
            with contextlib.suppress(OSError):
                await read
        finally:
            read.cancel()


async def _eof(reader: asyncio.StreamReader) -> None:
    """Reads (a 408, say) until the server closes the connection."""
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass
