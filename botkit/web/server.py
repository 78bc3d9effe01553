"""The HTTP server at the edge: uvicorn, made to close the connections that only hold a place.

uvicorn on its own times out only idle keep-alive connections: a connection that never sends
a byte, or that drips a request head a byte at a time (slowloris), stays open for ever, and
its `limit_concurrency` counts those connections, so that a thousand idle sockets made every
webhook answer 503. Here, as a payment provider's webhook endpoint does:

- a connection has `header_timeout` seconds from its opening to send a complete request head,
  and as long again from its first byte after a response (between requests it may stay idle
  for KEEP_ALIVE_SECONDS); then it is closed;
- a request has `body_timeout` seconds from its head to send its body, or is answered 408 and
  closed;
- past `max_connections` open at once, the connection that has waited longest for a request
  head is closed, so that an idle flood makes room for a new delivery instead of refusing it
  (the cap stays under the process's open-file limit, which `serve` raises to its maximum);
- only requests count against a limit, not connections, and only once their body has
  arrived: past MAX_REQUESTS_IN_FLIGHT being answered at once, a request gets 503 (the
  provider retries), which bounds the bodies held in memory; bodies still arriving hold at
  most MAX_BUFFERED_BYTES together, so that slow senders hold no place (InFlightLimit).

It relies on uvicorn's internals: EdgeProtocol extends HttpToolsProtocol through its parser
callbacks (`on_headers_complete`, `on_message_complete`), `on_response_complete`, its
`transport`, `cycle`, `pipeline` and `connections` attributes, and the cycle's `disconnected`
and `message_event`. pyproject.toml pins the uvicorn versions it was tested with, and
tests/web/test_server.py checks each deadline against a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import resource
import socket
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from botkit.config import MAX_BODY_BYTES, Settings
from botkit.exceptions import BotkitError

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 5.0  # an idle connection between two requests, then closed
MAX_REQUESTS_IN_FLIGHT = 1024  # answered at once; more get 503
MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # of bodies still arriving, all together; more: 503
RESERVED_FILES = 256  # open files kept for the store, logs and the worker child, not sockets

TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\nconnection: close\r\n\r\nthe request body came too slowly"
)


class Edge:
    """What the connections of one server share: the limits, and the connections waiting for
    a request head, oldest first (the ones to close when there are too many)."""

    def __init__(self, settings: Settings, max_connections: int) -> None:
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.max_connections = max_connections
        self.waiting: dict[EdgeProtocol, None] = {}  # insertion-ordered: the oldest first

    def make_room(self, connections: set[Any]) -> None:
        """Closes the longest-waiting connection if more than the cap are open (one for each
        new connection: those closed leave `connections` only later, in connection_lost)."""
        if len(connections) > self.max_connections and self.waiting:
            oldest = next(iter(self.waiting))
            oldest.close("more connections than BOTKIT_MAX_CONNECTIONS")


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with deadlines for the request head and body (see the
    module's docstring); a subclass made by `protocol_for` carries its server's Edge."""

    edge: ClassVar[Edge]
    _head_deadline: asyncio.TimerHandle | None = None
    _body_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_head()
        self._arm_head_deadline()  # from the opening: a new connection speaks at once
        self.edge.make_room(self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadlines()
        self.edge.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and self in self.edge.waiting:
            self._arm_head_deadline()  # the first byte after a response: a new request begins
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._cancel(self._head_deadline)
        self._head_deadline = None
        self.edge.waiting.pop(self, None)
        super().on_headers_complete()
        self._body_deadline = self.loop.call_later(self.edge.body_timeout, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._cancel(self._body_deadline)
        self._body_deadline = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or not (self.cycle is None or self.cycle.response_complete):
            return  # closed, or a pipelined request already runs
        self._cancel(self._body_deadline)  # answered without its whole body: the head deadline
        self._body_deadline = None  # now bounds the rest of it
        self._wait_for_head()

    def close(self, reason: str) -> None:
        """Closes the connection (whatever it was doing) and forgets it."""
        log.debug("closing a connection: %s", reason)
        self._cancel_deadlines()
        self.edge.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.close()

    def _wait_for_head(self) -> None:
        self.edge.waiting[self] = None

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(
            self.edge.header_timeout, self.close, "no complete request head in time"
        )

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_started and not self.transport.is_closing():
            cycle.disconnected = True  # the app reading the body gets http.disconnect
            cycle.message_event.set()
            self.transport.write(TIMEOUT_408)
        self.close("the request body came too slowly")

    def _cancel_deadlines(self) -> None:
        self._cancel(self._head_deadline)
        self._cancel(self._body_deadline)
        self._head_deadline = self._body_deadline = None

    @staticmethod
    def _cancel(deadline: asyncio.TimerHandle | None) -> None:
        if deadline is not None:
            deadline.cancel()


def protocol_for(edge: Edge) -> type[EdgeProtocol]:
    """The protocol class of one server (uvicorn makes a connection's protocol from a class)."""

    class ServerProtocol(EdgeProtocol):
        pass

    ServerProtocol.edge = edge
    return ServerProtocol


class InFlightLimit:
    """Bounds the requests being answered and the bytes of bodies still arriving.

    A request counts against `limit` only once its body has arrived whole: this wrapper reads
    it first (at most `max_body` bytes; past that, the app reads on and answers its own 413),
    so that connections sending their bodies slowly (a slow POST) take no place a real
    delivery needs. What they hold is their bytes, which are few (all bodies still arriving
    together at most `buffered`, else 503), and `body_timeout` ends them. The app then gets
    the body in one message."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int = MAX_REQUESTS_IN_FLIGHT,
        *,
        max_body: int = MAX_BODY_BYTES,
        buffered: int = MAX_BUFFERED_BYTES,
    ) -> None:
        self.app = app
        self.limit = limit
        self.max_body = max_body
        self.max_buffered = buffered
        self.in_flight = 0  # requests being answered (their bodies arrived)
        self.buffered = 0  # bytes of bodies still arriving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        read = await self._read(scope, receive, send)
        if read is None:  # answered 503, or the client went away
            return
        if self.in_flight >= self.limit:
            await _busy(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, _replay(*read, receive), send)
        finally:
            self.in_flight -= 1

    async def _read(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[list[bytes], bool] | None:
        """The body's chunks and whether they are all of it (not: past `max_body`, or
        declared so, the rest left to the app); None once answered or disconnected."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return [], False  # the app refuses it by its header, reading nothing
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect
                    return None
                chunk = message.get("body", b"")
                if self.buffered + len(chunk) > self.max_buffered:
                    await _busy(send)
                    return None
                self.buffered += len(chunk)
                size += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks, True
                if size > self.max_body:
                    return chunks, False
        finally:
            self.buffered -= size


def _replay(chunks: list[bytes], complete: bool, receive: Receive) -> Receive:
    """A receive that gives the chunks read (in one message when complete), then the real
    one's messages (the rest of the body, a disconnect)."""
    pending: list[Message] = (
        [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
        if complete
        else [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    )
    pending.reverse()

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


async def _busy(send: Send) -> None:
    body = b"too many requests in flight; retry later"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def raise_open_files_limit() -> int:
    """Raises this process's soft limit of open files to its hard limit; returns the limit.

    The soft limit is often 1,024: with it, a thousand idle sockets would make accept() fail
    for everyone else before any deadline closes them.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):  # a kernel maximum below it: keep the soft limit
            return soft
        return wanted
    return soft


def connection_cap(settings: Settings, open_files: int) -> int:
    """BOTKIT_MAX_CONNECTIONS, lowered to fit under the open-file limit."""
    room = max(open_files - RESERVED_FILES, 64)
    if settings.max_connections > room:
        log.warning(
            "BOTKIT_MAX_CONNECTIONS is %d but this process may open %d files: at most %d "
            "connections are kept (raise `ulimit -n` for more)",
            settings.max_connections,
            open_files,
            room,
        )
    return min(settings.max_connections, room)


def server_config(
    app: ASGIApp, settings: Settings, *, host: str, port: int, log_level: str, open_files: int
) -> uvicorn.Config:
    """uvicorn's configuration for `app` at the edge (the module's docstring says why)."""
    edge = Edge(settings, connection_cap(settings, open_files))
    return uvicorn.Config(
        InFlightLimit(app, max_body=settings.max_body_bytes),
        host=host,
        port=port,
        log_level=log_level,
        # uvicorn's lines (an access line repeats the request's path) go through the process's
        # own handler, whose formatter escapes and bounds them (botkit.logsafe)
        log_config=None,
        access_log=settings.log.access,
        http=protocol_for(edge),
        ws="none",  # no WebSocket route: an upgrade request is an ordinary request
        timeout_keep_alive=int(KEEP_ALIVE_SECONDS),
        limit_concurrency=None,  # it counts idle connections: an idle flood made it 503
    )


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, before_exit: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.before_exit = before_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.before_exit is not None:
            self.before_exit()
        super().handle_exit(sig, frame)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, for `serve`: bound before anything is printed, so that a
    port another process holds is one line (a BotkitError), not a banner and a traceback."""
    # as uvicorn binds a host it is given (an IPv6 address has colons; a name is IPv4)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not a live listener's port
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BotkitError(
                f"port {port} is in use: stop the other process or pass --port"
            ) from None
        raise BotkitError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(
    app: ASGIApp,
    settings: Settings,
    *,
    host: str,
    port: int,
    log_level: str,
    before_exit: Callable[[], None] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serves `app` on host:port until SIGINT or SIGTERM (`before_exit` runs at the signal);
    on `sock` when given (from `listen`)."""
    open_files = raise_open_files_limit()
    config = server_config(
        app, settings, host=host, port=port, log_level=log_level, open_files=open_files
    )
    # Everything imported and built so far lives as long as the process: out of the garbage
    # collector's sight, a full collection walks only what requests made since (a large
    # body's thousands of events set one off: 20-80 ms holding the event loop otherwise,
    # 3-13 ms with it; bench/parse.py --loop)
    gc.freeze()
    _Server(config, before_exit).run(sockets=None if sock is None else [sock])


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, sock: socket.socket) -> AsyncIterator[None]:
    """Serves `app` on a bound socket (`listen`) in the running event loop, for the block: no
    lifespan, no signal handlers (the process's own stop it). A worker's GET /metrics."""
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)  # what Server._serve sets before startup
    await server.startup(sockets=[sock])
    task = asyncio.create_task(server.main_loop(), name="botkit-metrics-server")
    try:
        yield
    finally:
        server.should_exit = True
        await task
        await server.shutdown(sockets=[sock])


__all__ = [
    "Edge",
    "EdgeProtocol",
    "InFlightLimit",
    "listen",
    "protocol_for",
    "serve",
    "server_config",
    "serving",
]
