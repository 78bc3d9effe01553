"""Tests for botkit.provider.transport: the sender's HTTP/1.1 transport, against real TCP servers.

Each server here is a small asyncio function on loopback that answers as scripted (keep-alive,
chunked, closing, garbage, silence), and counts the connections it accepted, so that what
the transport does on the wire is seen from the other side.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from botkit.provider.sender import Sender
from botkit.provider.transport import LeanTransport
from tests.fake_api import fake_api_process

pytestmark = pytest.mark.anyio

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id":"w1"}'


@dataclass
class Seen:
    """What a scripted server saw."""

    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)


Answer = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]  # -> keep the connection open


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[bytes, dict[bytes, bytes], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for header in lines:
        name, _, value = header.partition(b": ")
        headers[name.lower()] = value
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return line, headers, body


@contextlib.asynccontextmanager
async def serving(
    answer: Answer, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, Seen]]:
    """A server on loopback that answers each request with `answer(request number, writer)`."""
    seen = Seen()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        seen.open_now += 1
        seen.most_open = max(seen.most_open, seen.open_now)
        try:
            while (request := await _read_request(reader)) is not None:
                seen.requests.append(request)
                if not await answer(len(seen.requests), writer):
                    break
        finally:
            seen.open_now -= 1
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    async with server:
        yield f"{scheme}://127.0.0.1:{port}", seen


async def ok(number: int, writer: asyncio.StreamWriter) -> bool:
    writer.write(OK)
    await writer.drain()
    return True


def post(url: str, body: bytes = b'{"x":1}', **timeouts: float) -> httpx.Request:
    extensions = {"timeout": timeouts} if timeouts else {}
    return httpx.Request(
        "POST",
        url,
        headers={"Content-Type": "application/json", "Idempotency-Key": "k1"},
        content=body,
        extensions=extensions,
    )


async def send(transport: LeanTransport, request: httpx.Request) -> httpx.Response:
    response = await transport.handle_async_request(request)
    await response.aread()
    return response


# --- what goes out, what comes back -----------------------------------------------------------


async def test_the_request_arrives_whole_and_the_response_comes_back() -> None:
    async with serving(ok) as (url, seen):
        transport = LeanTransport()
        response = await send(transport, post(f"{url}/v1/messages?a=1", b'{"to":"549"}'))
        await transport.aclose()
    assert (response.status_code, response.json()) == (200, {"id": "w1"})
    assert response.headers["content-type"] == "application/json"
    [(line, headers, body)] = seen.requests
    assert line == b"POST /v1/messages?a=1 HTTP/1.1"
    assert headers[b"host"] == url.removeprefix("http://").encode()
    assert headers[b"idempotency-key"] == b"k1"
    assert (headers[b"content-length"], body) == (b"12", b'{"to":"549"}')


async def test_a_chunked_response_is_read_whole() -> None:
    async def chunked(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"cod\r\n9\r\ne":"bad"}\r\n0\r\n\r\n'
        )
        await writer.drain()
        return True

    async with serving(chunked) as (url, _):
        transport = LeanTransport()
        response = await send(transport, post(url))
        again = await send(transport, post(url))  # the connection is still good
        await transport.aclose()
    assert (response.status_code, response.json()) == (400, {"code": "bad"})
    assert again.status_code == 400


async def test_a_body_over_64_kib_goes_out_whole() -> None:
    async with serving(ok) as (url, seen):
        transport = LeanTransport()
        await send(transport, post(url, b"x" * 300_000))
        await transport.aclose()
    assert len(seen.requests[0][2]) == 300_000


# --- connections ------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection() -> None:
    async with serving(ok) as (url, seen):
        transport = LeanTransport()
        for _ in range(20):
            assert (await send(transport, post(url))).status_code == 200
        await transport.aclose()
    assert seen.connections == 1


async def test_never_more_than_max_connections_open() -> None:
    async def slow(number: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.01)
        return await ok(number, writer)

    async with serving(slow) as (url, seen):
        transport = LeanTransport(max_connections=3)
        responses = await asyncio.gather(*(send(transport, post(url)) for _ in range(30)))
        await transport.aclose()
    assert [r.status_code for r in responses] == [200] * 30
    assert seen.most_open <= 3
    assert seen.connections <= 3


async def test_connection_close_from_the_server_opens_a_new_connection() -> None:
    async def closing(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length"))
        await writer.drain()
        return False

    async with serving(closing) as (url, seen):
        transport = LeanTransport()
        for _ in range(3):
            assert (await send(transport, post(url))).status_code == 200
        await transport.aclose()
    assert seen.connections == 3


async def test_an_idle_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def one_then_close(number: int, writer: asyncio.StreamWriter) -> bool:
        await ok(number, writer)
        return False  # closes without saying so: the client learns it on reuse

    async with serving(one_then_close) as (url, seen):
        transport = LeanTransport()
        await send(transport, post(url))
        await asyncio.sleep(0.05)
        assert (await send(transport, post(url))).status_code == 200
        await transport.aclose()
    assert seen.connections == 2


async def test_a_connection_closed_mid_response_is_an_error_not_retried() -> None:
    async def half(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK[:40])
        await writer.drain()
        return False

    async with serving(half) as (url, seen):
        transport = LeanTransport()
        with pytest.raises(httpx.RemoteProtocolError, match="closed the connection"):
            await send(transport, post(url))
        await transport.aclose()
    assert len(seen.requests) == 1


async def test_a_response_that_is_not_http_is_a_protocol_error() -> None:
    async def garbage(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        return True

    async with serving(garbage) as (url, _):
        transport = LeanTransport()
        with pytest.raises(httpx.RemoteProtocolError, match="unreadable HTTP response"):
            await send(transport, post(url))
        await transport.aclose()


# --- timeouts and failures ----------------------------------------------------------------------


async def test_no_answer_within_the_read_timeout_is_a_read_timeout() -> None:
    async def silent(number: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async with serving(silent) as (url, _):
        transport = LeanTransport()
        with pytest.raises(httpx.ReadTimeout):
            await send(transport, post(url, read=0.05))
        await transport.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with serving(ok) as (url, _):
        pass  # the port is free again
    transport = LeanTransport()
    with pytest.raises(httpx.ConnectError, match="cannot connect"):
        await send(transport, post(url))


async def test_waiting_too_long_for_a_free_connection_is_a_pool_timeout() -> None:
    async def slow(number: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.5)
        return await ok(number, writer)

    async with serving(slow) as (url, _):
        transport = LeanTransport(max_connections=1)
        first = asyncio.create_task(send(transport, post(url)))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await send(transport, post(url, pool=0.05))
        assert (await first).status_code == 200
        await transport.aclose()


async def test_only_http_and_https_urls() -> None:
    with pytest.raises(httpx.UnsupportedProtocol, match="'ftp'"):
        await send(LeanTransport(), post("ftp://example.com/x"))


def test_at_least_one_connection() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LeanTransport(max_connections=0)


# --- TLS, as GoSendAPI serves ----------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    async with serving(ok, tls=server_side) as (url, seen):
        transport = LeanTransport(ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert (await send(transport, post(url))).status_code == 200
        assert (await send(transport, post(url))).status_code == 200
        await transport.aclose()
    assert seen.connections == 1


async def test_https_with_an_untrusted_certificate_is_a_connect_error(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    async with serving(ok, tls=server_side) as (url, seen):
        transport = LeanTransport()  # the system's CAs do not know this certificate
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await send(transport, post(url))
        await transport.aclose()
    assert seen.requests == []


# --- the sender on it, against the fake GoSendAPI over real HTTP ------------------------------


@pytest.fixture
async def fake_api() -> AsyncIterator[str]:
    """`botkit fake-api` on a free loopback port (a real uvicorn process)."""
    async with fake_api_process() as base:
        yield base


async def test_the_sender_on_the_default_transport_talks_to_the_fake_api(fake_api: str) -> None:
    async with Sender(base_url=f"{fake_api}/v1", api_key="gsk_test_transport") as sender:
        sent = await asyncio.gather(
            *(
                sender.send(
                    phone_number_id="555123456789",
                    to="5491140123456",
                    type="template",  # no 24-hour window needed
                    payload={"name": f"reminder_{n}", "language": {"code": "es_AR"}},
                    idempotency_key=f"key-{n}",
                )
                for n in range(40)
            )
        )
        again = await sender.send(
            phone_number_id="555123456789",
            to="5491140123456",
            type="template",
            payload={"name": "reminder_0", "language": {"code": "es_AR"}},
            idempotency_key="key-0",
        )
    assert all(isinstance(message_id, str) for message_id in sent)
    assert len(set(sent)) == 40
    assert again == sent[0]  # the same key: the provider's same answer
    async with httpx.AsyncClient() as client:
        messages = (await client.get(f"{fake_api}/_fake/messages")).json()
    assert len(messages["messages"] if isinstance(messages, dict) else messages) == 40


async def test_a_cancelled_request_closes_its_connection() -> None:
    async def slow(number: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.2 if number == 1 else 0)
        return await ok(number, writer)

    async with serving(slow) as (url, seen):
        transport = LeanTransport(max_connections=1)
        pending = asyncio.create_task(send(transport, post(url)))
        await asyncio.sleep(0.05)
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        # the next request does not read the cancelled one's late answer
        response = await send(transport, post(url, b'{"n":2}'))
        await transport.aclose()
    assert response.status_code == 200
    assert seen.connections == 2


def test_on_uvloop_as_under_botkit_run() -> None:
    # `botkit run` and its worker run on uvloop, whose transports are not asyncio's classes.
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[list[int], int]:
        async with serving(ok) as (url, seen):
            transport = LeanTransport(max_connections=2)
            responses = await asyncio.gather(*(send(transport, post(url)) for _ in range(10)))
            await transport.aclose()
        return [r.status_code for r in responses], seen.connections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        statuses, connections = runner.run(scenario())
    assert statuses == [200] * 10
    assert connections <= 2


# --- framing and retries --------------------------------------------------------------------


async def test_an_interim_100_continue_is_skipped_for_the_real_answer() -> None:
    async def with_continue(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b'{"id":"req%d"}' % number
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        return True

    async with serving(with_continue) as (url, seen):
        transport = LeanTransport()
        answers = [(await send(transport, post(url))).json() for _ in range(3)]
        await transport.aclose()
    assert answers == [{"id": "req1"}, {"id": "req2"}, {"id": "req3"}]  # never one behind
    assert seen.connections == 1


async def test_a_body_that_ends_with_the_connection_is_read_whole() -> None:
    async def http10(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nupstream down")
        await writer.drain()
        return False

    async with serving(http10) as (url, seen):
        transport = LeanTransport()
        first = await send(transport, post(url))
        second = await send(transport, post(url))
        await transport.aclose()
    assert (first.status_code, first.text) == (502, "upstream down")
    assert second.status_code == 502
    assert seen.connections == 2


async def test_a_head_request_ends_with_its_headers() -> None:
    async def head(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")  # no body for HEAD
        await writer.drain()
        return True

    async with serving(head) as (url, _):
        transport = LeanTransport()
        response = await send(transport, httpx.Request("HEAD", url))
        after = await send(transport, httpx.Request("HEAD", url))
        await transport.aclose()
    assert (response.status_code, response.content) == (200, b"")
    assert after.status_code == 200


async def test_a_post_without_a_key_is_not_sent_twice_when_the_server_drops_it() -> None:
    async def drops_the_second(number: int, writer: asyncio.StreamWriter) -> bool:
        if number == 1:
            return await ok(number, writer)
        return False  # acted on it (maybe), answered nothing

    async with serving(drops_the_second) as (url, seen):
        transport = LeanTransport()
        await send(transport, post(url))
        unkeyed = httpx.Request("POST", url, content=b"upload")
        with pytest.raises(httpx.RemoteProtocolError):
            await send(transport, unkeyed)
        await transport.aclose()
    assert [body for _, _, body in seen.requests] == [b'{"x":1}', b"upload"]


async def test_a_post_with_an_idempotency_key_goes_again_on_a_new_connection() -> None:
    async def drops_the_second(number: int, writer: asyncio.StreamWriter) -> bool:
        if number == 2:
            return False
        return await ok(number, writer)

    async with serving(drops_the_second) as (url, seen):
        transport = LeanTransport()
        await send(transport, post(url))
        assert (await send(transport, post(url))).status_code == 200
        await transport.aclose()
    assert len(seen.requests) == 3
    assert seen.connections == 2


async def test_a_request_in_flight_at_aclose_leaves_no_connection_open() -> None:
    async def slow(number: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.1)
        return await ok(number, writer)

    async with serving(slow) as (url, seen):
        transport = LeanTransport()
        pending = asyncio.create_task(send(transport, post(url)))
        await asyncio.sleep(0.02)
        await transport.aclose()
        assert (await pending).status_code == 200
        await asyncio.sleep(0.05)
        assert seen.open_now == 0


async def test_a_reset_in_a_body_ended_by_the_close_is_an_error_not_a_short_body() -> None:
    async def resets(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"messages":[{"id":"wam'
        )
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with no linger: a reset (RST), not an orderly close (FIN)
        return False

    async with serving(resets) as (url, _):
        transport = LeanTransport()
        with pytest.raises(httpx.RemoteProtocolError):
            await send(transport, post(url))
        await transport.aclose()


async def test_a_non_chunked_transfer_coding_ends_with_the_close() -> None:
    async def identity(number: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nall of it")
        await writer.drain()
        return False

    async with serving(identity) as (url, _):
        transport = LeanTransport()
        response = await send(transport, post(url))
        await transport.aclose()
    assert (response.status_code, response.text) == (200, "all of it")
