"""The Forwarder against a real HTTP receiver: botkit's fake desk served by uvicorn on
loopback, through the default transport (what a deployed bot uses)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn

from botkit.exceptions import PermanentProviderError, TransientProviderError
from botkit.fake.desk import FakeDesk
from botkit.provider.sender import Exchange
from botkit.runtime.forward import Forwarder
from botkit.store.base import OutboxItem
from botkit.types import ManualClock

pytestmark = pytest.mark.anyio

SECRET = "desk-secret"
ITEM = OutboxItem(7, "bk1_forward", "botkit.handoff", {"wa_id": "5491140123456", "n": 1}, 0)


@pytest.fixture
async def desk() -> AsyncIterator[tuple[FakeDesk, str]]:
    found = FakeDesk(SECRET)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(found.app, log_level="warning", lifespan="off")
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[sock])
        yield found, f"http://127.0.0.1:{sock.getsockname()[1]}/handoff"
    finally:
        await server.shutdown(sockets=[sock])
        sock.close()


async def test_a_delivery_is_signed_and_keyed(desk: tuple[FakeDesk, str]) -> None:
    found, url = desk
    forwarder = Forwarder(url, SECRET, ManualClock(1_767_225_600))
    exchange = Exchange()
    try:
        await forwarder.post(ITEM, exchange)
    finally:
        await forwarder.aclose()
    [delivery] = found.deliveries
    assert (delivery.signed, delivery.idempotency_key, delivery.body) == (
        True,
        "bk1_forward",
        {"wa_id": "5491140123456", "n": 1},
    )
    assert exchange.status == 200 and exchange.latency is not None


async def test_a_wrong_secret_is_refused_for_good(desk: tuple[FakeDesk, str]) -> None:
    found, url = desk
    forwarder = Forwarder(url, "not-the-secret", ManualClock(1_767_225_600))
    try:
        with pytest.raises(PermanentProviderError, match="answered 401"):
            await forwarder.post(ITEM, Exchange())
    finally:
        await forwarder.aclose()
    assert [d.signed for d in found.deliveries] == [False]


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientProviderError), (429, TransientProviderError), (410, PermanentProviderError)],
)
async def test_what_the_receiver_answers_decides_the_retry(
    desk: tuple[FakeDesk, str], status: int, error: type[Exception]
) -> None:
    found, url = desk
    found.fail_next(status)
    forwarder = Forwarder(url, SECRET, ManualClock(1_767_225_600))
    try:
        with pytest.raises(error, match=f"answered {status}"):
            await forwarder.post(ITEM, Exchange())
    finally:
        await forwarder.aclose()


async def test_no_receiver_is_a_network_failure_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    forwarder = Forwarder(f"http://127.0.0.1:{port}/handoff", SECRET, ManualClock(0))
    try:
        with pytest.raises(TransientProviderError, match="ConnectError"):
            await forwarder.post(ITEM, Exchange())
    finally:
        await forwarder.aclose()
