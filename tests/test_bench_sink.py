"""bench/sink.py: the benchmarks' provider accepts, dedupes and paces as the benchmarks rely on."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bench.sink import SinkApp, sink_app
from botkit.types import ManualClock

BASE = "http://gosendapi.test"
KEY = "gsk_test_0123456789abcdef"
PHONE = "555123456789"
OTHER_PHONE = "555000000001"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def post(
    api: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    key: str | None = KEY,
    idempotency_key: str | None = None,
) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return await api.post("/v1/messages", json=body, headers=headers)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def assert_rate_limited(response: httpx.Response, wait: float) -> None:
    """The documented 429: retry_after_seconds in the body, Retry-After in whole seconds."""
    assert_error(response, 429, "RATE_LIMITED")
    assert response.json()["retry_after_seconds"] == pytest.approx(wait)
    assert response.headers["Retry-After"] == str(max(1, math.ceil(wait)))


def limited_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
def sink() -> SinkApp:
    return sink_app()


@pytest.fixture
async def sink_api(sink: SinkApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sink)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.mark.anyio
async def test_sink_accepts_and_dedupes_on_idempotency_key(sink_api: httpx.AsyncClient) -> None:
    a1 = await post(sink_api, {"anything": 1}, idempotency_key="a")
    a2 = await post(sink_api, {"anything": 2}, idempotency_key="a")
    b = await post(sink_api, {}, idempotency_key="b")
    plain = [await post(sink_api, {}) for _ in range(2)]
    assert a1.status_code == a2.status_code == b.status_code == 200
    assert a1.json()["id"] == a2.json()["id"] == a1.json()["messages"][0]["id"]
    ids = {a1.json()["id"], b.json()["id"], *(r.json()["id"] for r in plain)}
    assert len(ids) == 4
    stats = (await sink_api.get("/_fake/stats")).json()
    assert (stats["messages"], stats["requests"], stats["duplicate_keys"]) == (4, 5, 1)
    assert (await sink_api.get("/_fake/keys")).json() == {"keys": {"a": 2, "b": 1}}


@pytest.mark.anyio
async def test_sink_checks_key_prefix_and_content_type_only(sink_api: httpx.AsyncClient) -> None:
    assert_error(await post(sink_api, {}, key=None), 401, "INVALID_API_KEY")
    assert_error(await post(sink_api, {}, key="sk_x"), 401, "MALFORMED_API_KEY")
    plain = await sink_api.post("/v1/messages", content=b"{}", headers={"X-API-Key": KEY})
    assert_error(plain, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert (await post(sink_api, {"type": "reaction", "to": "+1"})).status_code == 200
    stats = (await sink_api.get("/_fake/stats")).json()
    assert (stats["messages"], stats["requests"], stats["rejected"]) == (1, 4, 3)
    assert_error(await sink_api.get("/v1/elsewhere"), 404, "NOT_FOUND")


@pytest.mark.anyio
async def test_sink_reset_clears(sink_api: httpx.AsyncClient) -> None:
    await post(sink_api, {}, idempotency_key="a")
    assert (await sink_api.post("/_fake/reset")).status_code == 200
    assert (await sink_api.get("/_fake/stats")).json()["requests"] == 0
    assert (await sink_api.get("/_fake/keys")).json() == {"keys": {}}
    assert (await post(sink_api, {}, idempotency_key="a")).status_code == 200
    assert (await sink_api.get("/_fake/keys")).json() == {"keys": {"a": 1}}


@pytest.mark.anyio
async def test_sink_takes_custom_prefixes() -> None:
    transport = httpx.ASGITransport(app=sink_app(api_key_prefixes=("bench_",)))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as api:
        assert (await post(api, {}, key="bench_1")).status_code == 200
        assert_error(await post(api, {}, key=KEY), 401, "MALFORMED_API_KEY")


@pytest.mark.anyio
async def test_the_sink_answers_429_past_n_messages_a_second_from_one_number(
    clock: ManualClock,
) -> None:
    sink = sink_app(rate_per_number=2, clock=clock)
    body = {"phone_number_id": PHONE}
    async with limited_client(sink) as api:
        start = clock.now()
        assert (await post(api, body, idempotency_key="a")).status_code == 200
        assert (await post(api, body, idempotency_key="b")).status_code == 200
        assert_rate_limited(await post(api, body, idempotency_key="c"), 1.0)
        other = {"phone_number_id": OTHER_PHONE}
        assert (await post(api, other, idempotency_key="d")).status_code == 200
        assert (await post(api, body, idempotency_key="a")).status_code == 200  # a duplicate
        clock.advance(1.0)
        assert (await post(api, body, idempotency_key="c")).status_code == 200
        stats = (await api.get("/_fake/stats")).json()
        keys = (await api.get("/_fake/keys")).json()["keys"]
    assert stats == {
        "messages": 4,
        "requests": 6,
        "duplicate_keys": 1,
        "rejected": 0,
        "rate_limited": 1,
        "first_message_at": start,
        "last_message_at": start + 1.0,
    }
    assert keys == {"a": 2, "b": 1, "c": 1, "d": 1}  # the refused attempt of c left no mark


@pytest.mark.anyio
async def test_the_sink_reset_clears_the_rate_window(clock: ManualClock) -> None:
    sink = sink_app(rate_per_number=1, clock=clock)
    async with limited_client(sink) as api:
        assert (await post(api, {"phone_number_id": PHONE})).status_code == 200
        assert (await post(api, {"phone_number_id": PHONE})).status_code == 429
        await api.post("/_fake/reset")
        assert sink.first_message_at is sink.last_message_at is None
        assert (await post(api, {"phone_number_id": PHONE})).status_code == 200
        assert (await api.get("/_fake/stats")).json()["rate_limited"] == 0


def test_a_rate_per_number_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_number"):
        sink_app(rate_per_number=0)
