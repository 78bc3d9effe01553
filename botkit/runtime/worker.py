"""The worker process: the web server's child that runs the dispatcher and outbox, on the other core.

`botkit run` acknowledges webhooks in the uvicorn process and processes them in this child, so
handlers and sends never compete with acknowledgements for the GIL (bench/webhook.py). The
child reads its wake-ups from stdin and exits when stdin closes, so it never outlives its
parent. The store is the only thing the two share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence

log = logging.getLogger(__name__)

WAKE = b"\n"
RESTART_DELAY = 1.0


class WorkerProcess:
    """Starts, wakes, supervises (restarts) and stops the worker child of a web server."""

    def __init__(self, command: Sequence[str], *, stop_timeout: float = 15.0) -> None:
        self.command = list(command)
        self.stop_timeout = stop_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._started = asyncio.Event()

    async def run(self) -> None:
        """Keeps a child running until stopped; a child that dies is restarted after a pause."""
        while not self._stopping:
            # A session of its own: Ctrl-C in a terminal signals the whole process group, and
            # the child must stop when the parent closes its stdin, after the parent's shutdown.
            self._process = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, start_new_session=True
            )
            self._started.set()
            if self._stopping and self._process.stdin is not None:  # stop() came during the spawn
                self._process.stdin.close()
            code = await self._process.wait()
            if not self._stopping:
                log.error("worker process exited with %s; restarting in %.0fs", code, RESTART_DELAY)
                await asyncio.sleep(RESTART_DELAY)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WorkerProcess]:
        """Runs (and restarts) the child for the block; stops it at the end."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.run(), name="botkit-worker-process")
            await self.started()
            try:
                yield self
            finally:
                await self.stop()

    @property
    def alive(self) -> bool:
        """Whether a child is running now."""
        return self._process is not None and self._process.returncode is None

    async def started(self) -> None:
        """Waits until the first child has been started."""
        await self._started.wait()

    def wake(self) -> None:
        """Tells the child there are new events (dropped when a wake-up is already pending)."""
        stdin = self._process.stdin if self._process is not None else None
        if stdin is None or stdin.is_closing():
            return
        if stdin.transport.get_write_buffer_size() == 0:
            stdin.write(WAKE)

    async def stop(self) -> None:
        """Closes the child's stdin (it finishes its round and exits), then waits for it."""
        self._stopping = True
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=self.stop_timeout)
        except TimeoutError:
            log.warning("worker process did not stop in %.0fs; terminating it", self.stop_timeout)
            process.terminate()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()


def worker_command(target: str, log_level: str = "info") -> list[str]:
    """The command line of the child that runs `target`'s workers."""
    return [sys.executable, "-m", "botkit.tools.cli", "worker", target, "--log-level", log_level]


async def read_wakeups(on_wake: Callable[[], None]) -> None:
    """In the child: calls `on_wake()` for each wake-up on stdin; returns when stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        on_wake()
