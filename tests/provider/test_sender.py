"""Tests for botkit.provider.sender: the request, message ids, error mapping, the concurrency bound."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest

from botkit.exceptions import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from botkit.fake.provider import FakeGoSendAPI
from botkit.provider.ratelimit import RateLimiter
from botkit.provider.sender import Exchange, Sender
from botkit.types import ManualClock

pytestmark = pytest.mark.anyio

BASE_URL = "https://gosend.test/v1"
API_KEY = "gsk_test_0123456789abcdef"
PHONE_NUMBER_ID = "555123456789"
USER = "5491140123456"
KEY = "bk1_test_key_1"

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def sender_for(handler: Handler, **options: Any) -> Sender:
    """A Sender whose requests go to `handler` through httpx's MockTransport."""
    transport = httpx.MockTransport(handler)
    return Sender(base_url=BASE_URL, api_key=API_KEY, transport=transport, **options)


def answering(status: int, **response: Any) -> Handler:
    """A handler that answers every request with the same response."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, **response)

    return handler


async def send_text(sender: Sender, *, to: str = USER, key: str = KEY) -> str | None:
    """Sends one text message."""
    return await sender.send(
        phone_number_id=PHONE_NUMBER_ID,
        to=to,
        type="text",
        payload={"body": "hola"},
        idempotency_key=key,
    )


async def failure(handler: Handler) -> ProviderError:
    """The ProviderError a text send raises against `handler`."""
    async with sender_for(handler) as sender:
        with pytest.raises(ProviderError) as caught:
            await send_text(sender)
    return caught.value


# -- the request ---------------------------------------------------------------------------


@pytest.mark.parametrize("base_url", [BASE_URL, BASE_URL + "/"])
async def test_posts_the_message_with_key_headers_and_body(base_url: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "wamid.1"})

    transport = httpx.MockTransport(handler)
    async with Sender(base_url=base_url, api_key=API_KEY, transport=transport) as sender:
        payload = {"preview_url": False, "body": "¡Hola, Juan!"}
        await sender.send(
            phone_number_id=PHONE_NUMBER_ID,
            to=USER,
            type="text",
            payload=payload,
            idempotency_key=KEY,
        )

    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "https://gosend.test/v1/messages"
    assert request.headers["X-API-Key"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == KEY
    assert request.headers["User-Agent"] == "botkit"
    assert json.loads(request.content) == {
        "phone_number_id": PHONE_NUMBER_ID,
        "to": USER,
        "type": "text",
        "text": {"preview_url": False, "body": "¡Hola, Juan!"},
    }


async def test_the_payload_goes_under_the_name_of_its_type() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "wamid.1"})

    template = {"name": "turno_recordatorio", "language": {"code": "es_AR"}}
    async with sender_for(handler) as sender:
        await sender.send(
            phone_number_id=PHONE_NUMBER_ID,
            to=USER,
            type="template",
            payload=template,
            idempotency_key=KEY,
        )

    assert seen == [
        {"phone_number_id": PHONE_NUMBER_ID, "to": USER, "type": "template", "template": template}
    ]


# -- the message id ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"id": "wamid.A"},
        {"message_id": "wamid.A"},
        {"wamid": "wamid.A"},
        {"messaging_product": "whatsapp", "messages": [{"id": "wamid.A"}]},
    ],
    ids=["id", "message_id", "wamid", "messages[0].id"],
)
@pytest.mark.parametrize("status", [200, 201])
async def test_reads_the_message_id_wherever_the_provider_puts_it(
    body: dict[str, Any], status: int
) -> None:
    async with sender_for(answering(status, json=body)) as sender:
        assert await send_text(sender) == "wamid.A"


@pytest.mark.parametrize(
    "response",
    [
        {"json": {}},
        {"json": {"messages": []}},
        {"json": {"messages": [{"status": "accepted"}]}},
        {"json": {"id": 12345}},
        {"json": ["wamid.A"]},
        {"content": b""},
        {"content": b"<html>accepted</html>"},
    ],
    ids=[
        "empty-object",
        "empty-messages",
        "messages-without-id",
        "id-not-a-string",
        "a-list",
        "no-body",
        "not-json",
    ],
)
async def test_no_message_id_when_the_body_has_none(response: dict[str, Any]) -> None:
    async with sender_for(answering(200, **response)) as sender:
        assert await send_text(sender) is None


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body_seconds", "header", "expected"),
    [
        (7, "3", 7.0),
        (3, "7", 7.0),
        (2.5, None, 2.5),
        (None, "4", 4.0),
        (None, None, 1.0),
    ],
    ids=["body-longer", "header-longer", "body-only", "header-only", "neither"],
)
async def test_429_waits_the_longer_of_body_and_header(
    body_seconds: float | None, header: str | None, expected: float
) -> None:
    body: dict[str, Any] = {"statusCode": 429, "message": "slow down"}
    if body_seconds is not None:
        body["retry_after_seconds"] = body_seconds
    headers = {"Retry-After": header} if header is not None else {}

    error = await failure(answering(429, json=body, headers=headers))

    assert isinstance(error, RateLimitedError)
    assert error.status == 429
    assert error.retry_after == expected
    assert "slow down" in str(error)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_transient(status: int) -> None:
    body = {"statusCode": status, "message": "upstream trouble", "error": "Server Error"}

    error = await failure(answering(status, json=body))

    assert type(error) is TransientProviderError
    assert error.status == status
    assert "upstream trouble" in str(error)


async def test_5xx_with_a_body_that_is_not_json_is_still_transient() -> None:
    error = await failure(answering(502, content=b"<html>Bad Gateway</html>"))

    assert type(error) is TransientProviderError
    assert error.status == 502


@pytest.mark.parametrize(
    "failure_class", [httpx.ConnectError, httpx.ReadTimeout], ids=["connect", "read-timeout"]
)
async def test_network_failure_is_transient_and_chained(
    failure_class: type[httpx.TransportError],
) -> None:
    raised: list[httpx.TransportError] = []

    def handler(request: httpx.Request) -> httpx.Response:
        raised.append(failure_class("connection refused", request=request))
        raise raised[0]

    async with sender_for(handler) as sender:
        with pytest.raises(TransientProviderError) as caught:
            await send_text(sender)

    assert caught.value.__cause__ is raised[0]
    assert caught.value.status is None
    assert not isinstance(caught.value, RateLimitedError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 415, 422])
async def test_other_4xx_is_permanent_with_status_code_and_message(status: int) -> None:
    body = {
        "statusCode": status,
        "message": "the provider says no",
        "error": "Refused",
        "code": "SOME_MACHINE_CODE",
        "details": {"field": "to"},
    }

    error = await failure(answering(status, json=body))

    assert isinstance(error, PermanentProviderError)
    assert not isinstance(error, TransientProviderError)
    assert error.status == status
    assert error.code == "SOME_MACHINE_CODE"
    assert error.details == {"field": "to"}
    assert "the provider says no" in str(error)


async def test_permanent_error_without_a_code_or_json_body() -> None:
    error = await failure(answering(401, content=b"unauthorized, go away"))

    assert isinstance(error, PermanentProviderError)
    assert error.status == 401
    assert error.code is None
    assert "unauthorized, go away" in str(error)


# -- concurrency ---------------------------------------------------------------------------


async def test_never_more_than_concurrency_requests_in_flight() -> None:
    in_flight = 0
    most = 0
    served = 0
    release = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most, served
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        served += 1
        return httpx.Response(200, json={"id": request.headers["Idempotency-Key"]})

    results: list[str | None] = []

    async def one(sender: Sender, index: int) -> None:
        results.append(await send_text(sender, key=f"key-{index}"))

    async with sender_for(handler, concurrency=3) as sender, anyio.create_task_group() as tasks:
        for index in range(10):
            tasks.start_soon(one, sender, index)
        await anyio.wait_all_tasks_blocked()
        assert in_flight == 3  # the bound is reached, and held while the transport blocks
        release.set()

    assert most == 3
    assert served == 10
    assert sorted(results) == sorted(f"key-{index}" for index in range(10))


# -- against the fake GoSendAPI ------------------------------------------------------------


def fake_sender(fake: FakeGoSendAPI, api_key: str = API_KEY) -> Sender:
    """A Sender talking to the fake provider in process."""
    transport = httpx.ASGITransport(app=fake.app)
    return Sender(base_url="http://gosendapi.fake/v1", api_key=api_key, transport=transport)


async def test_a_valid_text_reaches_the_fake_provider_with_its_key() -> None:
    fake = FakeGoSendAPI(clock=ManualClock(), enforce_window=False)

    async with fake_sender(fake) as sender:
        message_id = await send_text(sender)

    [sent] = fake.messages
    assert message_id == sent.message_id
    assert (sent.phone_number_id, sent.to, sent.type) == (PHONE_NUMBER_ID, USER, "text")
    assert sent.body["text"] == {"body": "hola"}
    assert sent.idempotency_key == KEY
    [request] = fake.requests
    assert request.headers["idempotency-key"] == KEY
    assert request.status == 200


async def test_the_fake_provider_refuses_a_formatted_phone_number() -> None:
    fake = FakeGoSendAPI(clock=ManualClock(), enforce_window=False)

    async with fake_sender(fake) as sender:
        with pytest.raises(PermanentProviderError) as caught:
            await send_text(sender, to="+54 9 11 4012-3456")

    assert caught.value.status == 400
    assert caught.value.code == "INVALID_PHONE_NUMBER"
    assert "E.164" in str(caught.value)
    assert fake.messages == []


async def test_the_fake_provider_refuses_a_malformed_api_key() -> None:
    fake = FakeGoSendAPI(clock=ManualClock(), enforce_window=False)

    async with fake_sender(fake, api_key="sk_live_oops") as sender:
        with pytest.raises(PermanentProviderError) as caught:
            await send_text(sender)

    assert (caught.value.status, caught.value.code) == (401, "MALFORMED_API_KEY")
    assert fake.messages == []


# -- pacing --------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock for the limiter that moves only when it sleeps."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock or ManualClock(0.0)

    def monotonic(self) -> float:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)


def paced(
    time: FakeTime, *, per_number: float, per_key: float, headroom: float = 0.0
) -> RateLimiter:
    """A limiter on fake time (exact rates unless a headroom is given)."""
    return RateLimiter(
        per_number=per_number,
        per_key=per_key,
        monotonic=time.monotonic,
        sleep=time.sleep,
        headroom=headroom,
    )


async def test_sends_are_paced_by_the_limiter() -> None:
    time = FakeTime()
    arrived: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        arrived.append(time.monotonic())
        return httpx.Response(200, json={"id": "wamid.1"})

    limiter = paced(time, per_number=10, per_key=100)
    async with sender_for(handler, limiter=limiter) as sender:
        for index in range(21):
            await send_text(sender, key=f"key-{index}")

    assert arrived == pytest.approx([index / 10 for index in range(21)])


async def test_a_send_waiting_for_its_rate_holds_no_connection_slot() -> None:
    gate = anyio.Event()
    served: list[str] = []
    time = FakeTime()

    async def held(seconds: float) -> None:
        await gate.wait()  # until the test opens it; then the time has come
        await time.sleep(seconds)

    def handler(request: httpx.Request) -> httpx.Response:
        served.append(json.loads(request.content)["phone_number_id"])
        return httpx.Response(200, json={"id": "wamid.1"})

    limiter = RateLimiter(per_number=1, per_key=0, monotonic=time.monotonic, sleep=held)
    async with sender_for(handler, concurrency=1, limiter=limiter) as sender:

        async def send_from(number: str, key: str) -> None:
            await sender.send(
                phone_number_id=number, to=USER, type="text", payload={}, idempotency_key=key
            )

        async with anyio.create_task_group() as tasks:
            await send_from(PHONE_NUMBER_ID, "first")
            tasks.start_soon(send_from, PHONE_NUMBER_ID, "second")  # waits for its token
            await anyio.wait_all_tasks_blocked()
            await send_from("555000000001", "other")  # the only slot is free for another number
            assert served == [PHONE_NUMBER_ID, "555000000001"]
            gate.set()

    assert served == [PHONE_NUMBER_ID, "555000000001", PHONE_NUMBER_ID]


async def test_a_paced_sender_still_maps_429() -> None:
    body = {"statusCode": 429, "message": "slow down", "retry_after_seconds": 3}
    limiter = paced(FakeTime(), per_number=80, per_key=100)

    async with sender_for(answering(429, json=body), limiter=limiter) as sender:
        with pytest.raises(RateLimitedError) as caught:
            await send_text(sender)

    assert (caught.value.status, caught.value.retry_after) == (429, 3.0)


async def test_the_fake_provider_past_its_rate_answers_a_429_the_sender_maps() -> None:
    fake = FakeGoSendAPI(clock=ManualClock(), enforce_window=False, rate_per_number=2)

    async with fake_sender(fake) as sender:
        await send_text(sender, key="k1")
        await send_text(sender, key="k2")
        with pytest.raises(RateLimitedError) as caught:
            await send_text(sender, key="k3")

    assert caught.value.retry_after == 1.0
    assert caught.value.code == "RATE_LIMITED"
    assert len(fake.messages) == 2


async def test_a_sender_paced_at_the_providers_rate_never_sees_a_429() -> None:
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, enforce_window=False, rate_per_number=5)
    limiter = paced(FakeTime(clock), per_number=5, per_key=100, headroom=0.02)
    transport = httpx.ASGITransport(app=fake.app)

    async with Sender(
        base_url="http://gosendapi.fake/v1", api_key=API_KEY, transport=transport, limiter=limiter
    ) as sender:
        for index in range(30):
            await send_text(sender, key=f"key-{index}")

    assert fake.rate_limited == 0
    assert len(fake.messages) == 30
    start = fake.messages[0].at
    assert [sent.at - start for sent in fake.messages] == pytest.approx(
        [index / 4.9 for index in range(30)]  # 2 % under the provider's 5/s
    )


# -- the exchange: what the outbox logs of each attempt ---------------------------------------


@pytest.mark.parametrize("status", [200, 400, 429, 503])
async def test_an_exchange_gets_the_status_and_latency_whatever_the_answer(status: int) -> None:
    exchange = Exchange()
    async with sender_for(answering(status, json={"id": "wamid.1"})) as sender:
        try:
            await sender.send(
                phone_number_id=PHONE_NUMBER_ID, to=USER, type="text", payload={"body": "hola"},
                idempotency_key=KEY, exchange=exchange,
            )  # fmt: skip
        except ProviderError as exc:
            assert exc.status == status
    assert exchange.status == status
    assert exchange.latency is not None and 0 <= exchange.latency < 5


async def test_an_exchange_without_an_answer_has_no_status_but_a_latency() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    exchange = Exchange()
    async with sender_for(handler) as sender:
        with pytest.raises(TransientProviderError):
            await sender.send(
                phone_number_id=PHONE_NUMBER_ID, to=USER, type="text", payload={"body": "hola"},
                idempotency_key=KEY, exchange=exchange,
            )  # fmt: skip
    assert exchange.status is None and exchange.latency is not None
