"""The worker process: `botkit worker`, on its own or as the child of `botkit run`.

`botkit run` acknowledges webhooks in the uvicorn process and processes them in a child
(`WorkerProcess`), so handlers and sends never compete with acknowledgements for the GIL
(bench/webhook.py). That child reads its wake-ups from stdin and exits when stdin closes, so
it never outlives its parent. Run on its own, `botkit worker` reads no stdin: the store wakes
it (or it polls), and it stops at SIGTERM or SIGINT. Either way the store is the only thing
it shares with the web processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from botkit.metrics import Metrics, process_exited

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
        self.metrics = Metrics.off()  # the runtime's, which counts restarts

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
            process_exited(self._process.pid)  # its figures stay; its live gauges go
            if not self._stopping:
                self.metrics.worker_restarted()
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
    """The command line of the child that runs `target`'s workers, woken through its stdin."""
    cli = [sys.executable, "-m", "botkit.tools.cli"]
    return [*cli, "worker", target, "--log-level", log_level, "--wakeups-from-stdin"]


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event that SIGTERM or SIGINT sets, for the block; after it the signals act as usual
    again, so that a second one, during a graceful stop, stops the process at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, stop.set)
    try:
        yield stop
    finally:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)


async def until_stopped(stop: asyncio.Event, *, wakeups: Callable[[], None] | None = None) -> None:
    """In a worker process: returns when `stop` is set; with `wakeups` (the child of `botkit
    run`), calls it for each wake-up on stdin, and returns also when stdin closes."""
    if wakeups is None:
        await stop.wait()
        return
    async with asyncio.TaskGroup() as group:
        stopped = group.create_task(stop.wait())
        reading = group.create_task(read_wakeups(wakeups))
        await asyncio.wait([stopped, reading], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        reading.cancel()


async def read_wakeups(on_wake: Callable[[], None]) -> None:
    """In the child: calls `on_wake()` for each wake-up on stdin; returns when stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while await reader.read(4096):
            on_wake()
    finally:
        pipe.close()
