"""One sqlite3 connection on a thread of its own: each call is a whole transaction, one hop.

The store needs "run this function, which runs a transaction of many statements, in the
connection's thread": one thread hop per transaction, so that a transaction never spans
event-loop iterations and takes the time SQLite needs, not the time a busy loop takes to come
back to it (bench/webhook.py). aiosqlite's public API hops once per statement; its private
`_execute` did the one-hop call (bench/sqlite_calls.py compares them). This is that, owned.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from botkit.exceptions import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")
LOCK_WAIT = 10.0  # seconds a transaction waits for another process's write before failing

_Call = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class Connection:
    """A sqlite3 connection used only from its own thread; `run` calls a function there.

    Calls run one at a time, in the order they were made. A caller cancelled while its call
    runs does not stop it (SQLite cannot be interrupted between statements safely): the call
    finishes, and its result is dropped.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Starts the thread, which makes the connection (`connect()`) and then serves calls."""
        if self._thread is not None:
            raise StoreError(f"{self.name}: already open")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        thread = threading.Thread(
            target=self._serve, args=(connect, loop, ready), name=self.name, daemon=True
        )
        thread.start()
        await ready  # the thread has ended when connect() failed
        self._thread = thread

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work(connection)` in the connection's thread and returns what it returns."""
        if self._thread is None:
            raise StoreError(f"{self.name}: the SQLite store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((work, future, loop))
        return await future

    async def close(self) -> None:
        """Finishes the calls already made, closes the connection, ends the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._calls.put(None)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        threading.Thread(target=_join, args=(thread, loop, done), daemon=True).start()
        await done

    def _serve(
        self,
        connect: Callable[[], sqlite3.Connection],
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
    ) -> None:
        try:
            db = connect()
        except BaseException as exc:
            _post(loop, _fail, ready, exc)
            return
        _post(loop, _succeed, ready, None)
        try:
            while (call := self._calls.get()) is not None:
                work, future, caller = call
                try:
                    result = work(db)
                except BaseException as exc:
                    _post(caller, _fail, future, exc)
                else:
                    _post(caller, _succeed, future, result)
        finally:
            db.close()


def _join(
    thread: threading.Thread, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]
) -> None:
    thread.join()
    _post(loop, _succeed, done, None)


def _post(
    loop: asyncio.AbstractEventLoop,
    settle: Callable[[asyncio.Future[Any], Any], None],
    future: asyncio.Future[Any],
    value: Any,
) -> None:
    """Settles `future` on its loop; a loop already closed has nobody left to tell."""
    try:
        loop.call_soon_threadsafe(settle, future, value)
    except RuntimeError:
        log.debug("%r: the caller's event loop is closed; result dropped", future)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# How a transaction takes its write lock. BEGIN IMMEDIATE would lock every attached file, so
# the web process and the worker begin deferred and lock only their own file, with a write
# that changes nothing (SQLite takes a file's write lock at the first statement writing to it).
MAIN = "DELETE FROM main.botkit_meta WHERE rowid = -1"
INBOX = "DELETE FROM incoming.inbox WHERE seq = -1"
BOTH = ""  # BEGIN IMMEDIATE: migrations only


def transaction(
    db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], lock: str = MAIN
) -> T:
    """Runs `work` in a transaction holding `lock` (MAIN, INBOX or BOTH); rolls back on error."""
    begin(db, lock)
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def apart(
    db: sqlite3.Connection,
    items: Sequence[Item],
    write: Callable[[Sequence[Item], sqlite3.Connection], list[Any]],
    lock: str,
) -> list[Any]:
    """Writes `items` in one transaction (one result per item); if SQLite refuses one of them
    (a constraint, a value it cannot take), writes each in a transaction of its own, so that
    the item that cannot be written fails alone (its result is the error). When the file
    fails (busy past the wait, I/O, disk full), every item gets that error at once: writing
    them one by one would only fail them one by one, holding the writer meanwhile."""
    try:
        return transaction(db, lambda conn: write(items, conn), lock)
    except sqlite3.OperationalError as exc:
        return [exc] * len(items)
    except sqlite3.Error as exc:
        if len(items) == 1:
            return [exc]
    results: list[Any] = []
    for item in items:
        try:
            results += transaction(db, lambda conn: write([item], conn), lock)  # noqa: B023
        except sqlite3.Error as exc:
            results.append(exc)
    return results


def begin(db: sqlite3.Connection, lock: str, within: float = LOCK_WAIT) -> None:
    """Begins a transaction holding `lock`, retried every few hundred microseconds while
    another connection holds it.

    SQLite's own busy handler backs off to 50-100 ms sleeps, which turn a short wait into a
    long acknowledgement tail (bench/webhook.py).
    """
    deadline = time.monotonic() + within
    pause = 0.0001
    while True:
        try:
            if lock == BOTH:
                db.execute("BEGIN IMMEDIATE")
            else:
                db.execute("BEGIN")
                db.execute(lock)
            return
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # also BUSY_SNAPSHOT...
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.001)
