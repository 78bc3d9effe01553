"""Group commit: writes submitted at once share one transaction; each caller gets its own result.

A writer may `linger` a moment for company before writing, when writes come often and fewer
than `company` are waiting (a group that small would cost a transaction for little).

A writer task takes what is queued (up to `batch` items), writes it in one call, and answers
each item's caller with that item's result or error: one item that cannot be written fails
alone (the write function isolates it). If the writer task ever ends, every caller waiting
and every later one gets a StoreError at once: no caller waits for a writer that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from botkit.exceptions import StoreError

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")

_STOP = object()


class GroupCommit(Generic[I, R]):
    """Batches `submit`ted items into calls of `write(items) -> results` (a result may be an
    exception, raised to that item's caller only)."""

    def __init__(
        self,
        name: str,
        write: Callable[[Sequence[I]], Awaitable[Sequence[R | BaseException]]],
        *,
        batch: int = 512,
        queue: int = 4096,
        linger: float = 0.0,
        company: int | None = None,
    ) -> None:
        self.name = name
        self._write = write
        self._batch = batch
        self._linger = linger  # seconds a write waits for company, when writes come often
        self._company = batch // 4 if company is None else company  # ... and fewer wait
        self._last_write = float("-inf")
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._writing: list[tuple[I, asyncio.Future[R]]] = []  # the batch being written

    def start(self) -> None:
        """Starts the writer task; it ends with `aclose()` (or on a bug, failing every caller)."""
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=self.name)
        self._task.add_done_callback(self._ended)

    async def submit(self, item: I) -> R:
        """Queues `item` for the next group commit and waits for its own result."""
        task = self._task  # aclose() may clear the attribute while this caller waits
        if self._closing or task is None or task.done():
            raise StoreError(f"{self.name}: the store is not open (or is closing)")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        if task.done():  # it ended while this caller waited for room in the queue
            self._fail_queued("the store's writer stopped")
        return await future

    async def aclose(self) -> None:
        """Writes what is queued, then ends the writer; later submits are refused."""
        self._closing = True
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            await self._queue.put(_STOP)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self._fail_queued("the store was closed")

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if self._busy() and self._queue.qsize() < self._company:
                await asyncio.sleep(self._linger)
            batch, stop = self._take(first)
            if batch:
                await self._commit(batch)
            for _ in range(len(batch) + stop):
                self._queue.task_done()
            if stop:
                return

    def _busy(self) -> bool:
        """Whether writes come often (the last one ended under ten lingers ago): then a
        moment's wait gathers more of them into one transaction; when idle, it would only
        add latency."""
        loop = asyncio.get_running_loop()
        return self._linger > 0 and loop.time() - self._last_write < 10 * self._linger

    def _take(self, first: Any) -> tuple[list[tuple[I, asyncio.Future[R]]], bool]:
        """The next batch, up to the stop marker if it comes first."""
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < self._batch and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    async def _commit(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        self._writing = batch
        try:
            results: Sequence[R | BaseException] = await self._write([item for item, _ in batch])
        except Exception as exc:  # every caller learns of it; nothing was written
            log.exception("%s: a group commit failed", self.name)
            failure = StoreError(f"could not write to the store: {exc}")
            results = [failure] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._writing = []
        self._last_write = asyncio.get_running_loop().time()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: the writer task died", self.name, exc_info=task.exception())
        self._closing = True
        for _, future in self._writing:  # cancelled in the middle of a write: outcome unknown
            if not future.done():
                future.set_exception(StoreError(f"{self.name}: the store's writer stopped"))
        self._fail_queued("the store's writer stopped")

    def _fail_queued(self, why: str) -> None:
        while not self._queue.empty():
            entry = self._queue.get_nowait()
            self._queue.task_done()
            if entry is not _STOP and not entry[1].done():
                entry[1].set_exception(StoreError(f"{self.name}: {why}; nothing was written"))
