"""A lean HTTP/1.1 transport for httpx: asyncio connections kept alive, responses parsed by httptools.

The sender posts thousands of small JSON bodies a second to one host. Behind httpx, aiohttp
spent more of the worker's time than botkit itself (bench/webhook.py, py-spy); this transport
does only what those posts need: HTTP/1.1 with keep-alive, bodies framed by Content-Length,
chunks or the close, interim 1xx answers skipped, TLS, a bounded pool, httpx's timeouts (the
read timeout bounds the whole exchange) and exceptions. No proxies, no HTTP/2, no streaming:
each response is read whole before it is returned.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import cast

import certifi
import httptools
import httpx

_Origin = tuple[bytes, bytes, int]  # scheme, host, port
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its response parsed as it arrives."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._keep_alive = False
        self._status = 0
        self._framed = True  # the body's end is known (Content-Length or chunked), not the close
        self._head_only = False  # a HEAD request: the headers are the whole response
        self.received = False  # whether any byte of the current response came
        self.closed = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"unreadable HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self._status and not self._framed:  # a body ended by the close
            self._done()
        self._fail(httpx.RemoteProtocolError("the server closed the connection"))

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        # read here: once the message is complete, the parser has reset its flags
        self._keep_alive = self._parser.should_keep_alive()
        self._status = self._parser.get_status_code()
        self._framed = _framed(self._headers)
        if self._head_only and self._status >= 200:
            self._keep_alive = False  # the parser would wait for a body the server never sends
            self._done()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # informational (100 Continue...): the answer follows
            if self._status == 101:
                self._fail(httpx.RemoteProtocolError("the server switched protocols"))
                self.close()
            self._headers, self._body, self._status = [], [], 0
            return
        self._done()

    # -- used by the transport

    async def exchange(
        self, head: bytes, body: bytes, within: float | None, *, head_only: bool = False
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Writes a request and waits for its whole response (`within` bounds the exchange)."""
        if self._transport is None or self.closed:
            raise httpx.RemoteProtocolError("the connection is closed")
        self._headers, self._body, self._status, self.received = [], [], 0, False
        self._head_only = head_only
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self._transport.write(body)
        try:
            async with asyncio.timeout(within):
                await self._waiter
        except TimeoutError:
            self.close()
            raise httpx.ReadTimeout("no complete response in time") from None
        finally:
            self._waiter = None
        if not self._keep_alive:
            self.close()
        return self._status, self._headers, b"".join(self._body)

    def _done(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over a pool of at most `max_connections` connections."""

    def __init__(
        self,
        *,
        max_connections: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._ssl = ssl_context
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts = request.extensions.get("timeout", {})
        origin = _origin(request.url)
        body = await request.aread()
        head = _head(request)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None
        try:
            status, headers, content = await self._exchange(
                origin, head, body, timeouts, _retriable(request)
            )
        finally:
            self._slots.release()
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _exchange(
        self,
        origin: _Origin,
        head: bytes,
        body: bytes,
        timeouts: dict[str, float | None],
        retriable: bool,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        read = timeouts.get("read")
        connection = self._reuse(origin)
        if connection is not None:
            try:
                return await self._use(origin, connection, head, body, read)
            except httpx.RemoteProtocolError:
                if connection.received or not retriable:
                    raise
                # The server closed an idle connection as we reused it, or after acting on the
                # request without answering: only a request that may run twice goes again.
        connection = await self._connect(origin, timeouts.get("connect"))
        return await self._use(origin, connection, head, body, read)

    async def _use(
        self,
        origin: _Origin,
        connection: _Connection,
        head: bytes,
        body: bytes,
        within: float | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One exchange; the connection goes back to the pool if it is still good."""
        try:
            answer = await connection.exchange(
                head, body, within, head_only=head.startswith(b"HEAD ")
            )
        except BaseException:  # failed or cancelled mid-exchange: its state is unknown
            connection.close()
            raise
        if self._closed:  # aclose() came while this request was in flight
            connection.close()
        elif not connection.closed:
            self._idle.setdefault(origin, []).append(connection)
        return answer

    def _reuse(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, origin: _Origin, within: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == b"https":
            context = self._ssl or _default_ssl()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                _, connection = await loop.create_connection(
                    _Connection,
                    host.decode("ascii"),
                    port,
                    ssl=context,
                    server_hostname=host.decode("ascii") if context else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host.decode()}:{port} in time") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host.decode()}:{port}: {exc}") from exc
        return connection

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


def _framed(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a response says where its body ends (RFC 9112 6.3): chunked as the last transfer
    coding, or a Content-Length without transfer codings; otherwise the close ends it."""
    codings = [value for name, value in headers if name.lower() == b"transfer-encoding"]
    if codings:
        return codings[-1].rsplit(b",", 1)[-1].strip().lower() == b"chunked"
    return any(name.lower() == b"content-length" for name, _ in headers)


_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


def _retriable(request: httpx.Request) -> bool:
    """Whether sending the request twice does what sending it once does: an idempotent method,
    or a key the server deduplicates on (GoSendAPI's Idempotency-Key)."""
    return request.method in _IDEMPOTENT_METHODS or "idempotency-key" in request.headers


def _origin(url: httpx.URL) -> _Origin:
    scheme = url.raw_scheme
    if scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"{url.scheme!r} URLs are not supported (http, https)")
    return scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme]


def _head(request: httpx.Request) -> bytes:
    lines: Sequence[bytes] = [
        b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path),
        *(b"%s: %s" % (name, value) for name, value in request.headers.raw),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


_ssl_context: ssl.SSLContext | None = None


def _default_ssl() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context(cafile=certifi.where())
    return _ssl_context


__all__ = ["LeanTransport"]
