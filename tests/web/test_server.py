"""Tests for botkit.web.server: the deadlines, the connection cap and the in-flight limit.

A real uvicorn server, configured by `server_config` with deadlines of a few tenths of a
second, serves a small app on a loopback socket; the tests talk raw HTTP/1.1 to it, as an
attacker or a slow client would, and read what it does to the connection. (The same edge,
against a real `botkit run` and a flood of 1,300 connections: tests/tools/test_edge.py.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from botkit.config import Settings
from botkit.exceptions import BotkitError
from botkit.web.server import InFlightLimit, listen, server_config

pytestmark = pytest.mark.anyio

HEAD = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\n"
TIMEOUT = 0.3  # the header and body deadlines of these tests
SLACK = 1.0  # how late a deadline may fire on a busy machine


@dataclass
class Served:
    """A server on 127.0.0.1:port, and the bodies its app received (or `None`: a disconnect)."""

    port: int
    bodies: list[bytes | None]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def echo_app(scope: Scope, receive: Receive, send: Send, bodies: list[bytes | None]) -> None:
    """Answers a request with its body, once it has all of it."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            bodies.append(None)
            return
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    bodies.append(body)
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def settings() -> Settings:
    return Settings(header_timeout=TIMEOUT, body_timeout=TIMEOUT)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    bodies: list[bytes | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await echo_app(scope, receive, send, bodies)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = server_config(
        app, settings, host="127.0.0.1", port=0, log_level="warning", open_files=100_000
    )
    config.lifespan = "off"
    config.timeout_graceful_shutdown = 1  # an app still reading a body does not hold the stop
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield Served(sock.getsockname()[1], bodies)
    finally:
        await server.shutdown(sockets=[sock])


async def closed_after(reader: asyncio.StreamReader) -> tuple[float, bytes]:
    """How long until the server closes the connection, and what it sent before."""
    started = time.monotonic()
    received = await asyncio.wait_for(reader.read(), timeout=TIMEOUT + SLACK)
    return time.monotonic() - started, received


async def drip(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """Sends `data` a byte every `every` seconds, until done or the connection breaks."""
    for byte in data:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every)


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    waited, received = await closed_after(reader)
    assert TIMEOUT * 0.8 <= waited < TIMEOUT + SLACK
    assert received == b""
    writer.close()


async def test_a_head_dripped_a_byte_at_a_time_is_closed_at_the_header_timeout(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    dripping = asyncio.create_task(drip(writer, HEAD, every=TIMEOUT / 10))

    waited, received = await closed_after(reader)

    assert TIMEOUT * 0.8 <= waited < TIMEOUT + SLACK  # bytes kept coming: the deadline held
    assert received == b""
    assert served.bodies == []  # the app never saw it
    dripping.cancel()
    writer.close()


async def test_a_body_that_does_not_come_in_time_is_answered_408_and_closed(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(HEAD + b"he")  # 2 of the 5 bytes announced

    waited, received = await closed_after(reader)

    assert TIMEOUT * 0.8 <= waited < TIMEOUT + SLACK
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close" in received
    await asyncio.sleep(0.05)
    assert served.bodies == []  # the edge reads a body before the app runs: it never did
    writer.close()


async def test_a_kept_alive_connection_may_wait_between_requests_longer_than_the_header_timeout(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    for body in (b"hello", b"again"):
        writer.write(HEAD + body)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert await reader.readexactly(5) == body
        await asyncio.sleep(TIMEOUT * 2)  # idle: within the keep-alive, not a head's deadline
    assert served.bodies == [b"hello", b"again"]
    writer.close()


async def test_a_slow_head_after_a_response_is_closed_at_the_header_timeout(
    served: Served,
) -> None:
    reader, writer = await served.connect()
    writer.write(HEAD + b"hello")
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(5)
    dripping = asyncio.create_task(drip(writer, HEAD, every=TIMEOUT / 10))

    waited, received = await closed_after(reader)

    assert waited < TIMEOUT + SLACK
    assert received == b""
    dripping.cancel()
    writer.close()


@pytest.mark.parametrize("settings", [Settings(header_timeout=30.0, max_connections=3)])
async def test_past_the_cap_the_connection_that_waited_longest_is_closed(
    served: Served,
) -> None:
    idle = [await served.connect() for _ in range(3)]
    await asyncio.sleep(0.05)

    reader, writer = await served.connect()  # the fourth: the oldest idle one makes room
    writer.write(HEAD + b"hello")

    assert (await asyncio.wait_for(idle[0][0].read(), TIMEOUT + SLACK)) == b""
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK\r\n")
    for other_reader, _ in idle[1:]:  # the others stay: one closed per connection over
        assert not other_reader.at_eof()
    for _, other_writer in [*idle, (reader, writer)]:
        other_writer.close()


async def test_the_cap_stays_under_the_open_file_limit(settings: Settings) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    many = dataclasses.replace(settings, max_connections=100_000)
    config = server_config(
        app, many, host="127.0.0.1", port=0, log_level="warning", open_files=1024
    )
    config.load()
    assert config.http_protocol_class.edge.max_connections == 1024 - 256  # type: ignore[attr-defined]
    assert config.limit_concurrency is None  # idle connections count against nothing


async def test_requests_past_the_in_flight_limit_get_503_and_a_retry_after() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = InFlightLimit(slow, limit=1)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = asyncio.create_task(client.get("/"))
        await entered.wait()
        second = await client.get("/")
        release.set()
        assert (await first).status_code == 200
    assert second.status_code == 503
    assert second.headers["retry-after"] == "1"
    assert limited.in_flight == 0


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    await echo_app(scope, receive, send, [])


async def test_a_request_counts_against_the_limit_only_once_its_body_is_in() -> None:
    limited = InFlightLimit(_echo, limit=1)
    transport = httpx.ASGITransport(app=limited)
    never = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"{"
        await never.wait()

    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        slow = [asyncio.create_task(client.post("/", content=slow_body())) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert limited.buffered == 3  # their bytes, held while they arrive
        fast = await client.post("/", content=b"hola")
        assert (fast.status_code, fast.content) == (200, b"hola")
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
    assert limited.in_flight == 0


async def test_bodies_arriving_past_the_byte_budget_get_503() -> None:
    limited = InFlightLimit(_echo, buffered=10)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/", content=b"x" * 10)).status_code == 200
        refused = await client.post("/", content=b"x" * 11)
    assert refused.status_code == 503
    assert limited.buffered == 0


@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_past_max_body_is_left_to_the_app_whole(declared: bool) -> None:
    limited = InFlightLimit(_echo, max_body=10)
    transport = httpx.ASGITransport(app=limited)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"abcdef"

    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        if declared:
            answer = await client.post("/", content=b"abcdef" * 5)
        else:
            answer = await client.post("/", content=chunks())
    assert (answer.status_code, answer.content) == (200, b"abcdef" * 5)


def test_listen_binds_a_free_port_and_names_one_in_use_or_a_host_it_cannot_bind() -> None:
    with listen("127.0.0.1", 0) as bound:
        port = bound.getsockname()[1]
        bound.listen()
        with pytest.raises(BotkitError) as caught:
            listen("127.0.0.1", port)
    assert str(caught.value) == f"port {port} is in use: stop the other process or pass --port"
    with pytest.raises(BotkitError, match=r"^cannot listen on no-such-host\.invalid:8000: "):
        listen("no-such-host.invalid", 8000)
