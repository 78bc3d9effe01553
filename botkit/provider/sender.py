"""The GoSendAPI client on httpx: one POST per message, errors mapped once to botkit's exceptions."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from botkit import codec
from botkit.exceptions import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from botkit.metrics import Metrics
from botkit.provider.ratelimit import RateLimiter
from botkit.provider.transport import LeanTransport
from botkit.types import JSON

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 1.0
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
USER_AGENT = "botkit"


def default_transport(concurrency: int) -> httpx.AsyncBaseTransport:
    """botkit's lean HTTP/1.1 transport: the fastest behind httpx here (bench/transport.py)."""
    return LeanTransport(max_connections=concurrency)


@dataclass(slots=True)
class Exchange:
    """What the last request of a send got, filled in by `Sender.send` for its log line and
    span: the HTTP status (None: no answer), the seconds from taking a connection to the answer
    read (rate-limit pacing left out), and the provider's error code of a refusal."""

    status: int | None = None
    latency: float | None = None
    code: str | None = None


class Sender:
    """Posts messages to GoSendAPI with an idempotency key; at most `concurrency` in flight.

    With a `limiter`, each message first waits for its number's and the key's rate limits.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 16,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        # Requests go straight to the transport: AsyncClient's redirects, auth, cookies and
        # hooks are nothing GoSendAPI needs, and cost a third of each send (bench/transport.py).
        self._transport = transport or default_transport(concurrency)
        self._timeout = httpx.Timeout(timeout).as_dict()
        self._url = httpx.URL(base_url.rstrip("/") + "/messages")
        self._media_url = httpx.URL(base_url.rstrip("/") + "/media")
        self._api_key = api_key
        self._headers = [
            ("X-API-Key", api_key),
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),  # AsyncClient sent python-httpx/...; say who calls
        ]
        self._slots = asyncio.Semaphore(concurrency)
        self.limiter = limiter
        self.metrics = metrics or Metrics.off()

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the transport (its connection pool)."""
        await self._transport.aclose()

    async def _post(
        self, request: httpx.Request, exchange: Exchange | None = None
    ) -> httpx.Response:
        """One request through the transport, its response read and closed."""
        request.extensions["timeout"] = self._timeout
        async with self._slots:
            started = time.perf_counter()
            try:
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:  # network, protocol, decoding: all worth a retry
                raise TransientProviderError(f"{exc.__class__.__name__}: {exc}") from exc
            finally:
                if exchange is not None:
                    exchange.latency = time.perf_counter() - started
        if exchange is not None:
            exchange.status = response.status_code
        return response

    async def send(
        self,
        *,
        phone_number_id: str,
        to: str,
        type: str,
        payload: JSON,
        idempotency_key: str,
        exchange: Exchange | None = None,
    ) -> str | None:
        """Sends one message; returns the provider's message id (None if it gave none).

        Raises RateLimitedError (429), TransientProviderError (5xx, network) or
        PermanentProviderError (other 4xx). An `exchange` is filled in with the request's
        status and latency, whatever the outcome.
        """
        body = {"phone_number_id": phone_number_id, "to": to, "type": type, type: payload}
        if self.limiter is not None:  # before taking a slot: a paced send holds no connection
            waited = time.perf_counter()
            await self.limiter.acquire(phone_number_id)
            self.metrics.rate_limit_wait(time.perf_counter() - waited)
        headers = [*self._headers, ("Idempotency-Key", idempotency_key)]
        request = httpx.Request("POST", self._url, headers=headers, content=codec.dumps(body))
        started = time.perf_counter()
        try:
            response = await self._post(request, exchange)
        finally:
            self.metrics.send_seconds(time.perf_counter() - started)
        return _message_id(response) if response.is_success else _raise_for(response, exchange)

    async def upload_media(
        self, *, phone_number_id: str, content: bytes, mime_type: str, filename: str
    ) -> str:
        """Uploads a file (POST /v1/media, multipart) and returns its media id."""
        if self.limiter is not None:
            await self.limiter.acquire_request()  # a request against the key, not a message
        fields = {"phone_number_id": phone_number_id, "type": mime_type}
        request = httpx.Request(
            "POST",
            self._media_url,
            headers={"X-API-Key": self._api_key},
            data=fields,
            files={"file": (filename, content, mime_type)},
        )
        response = await self._post(request)
        if not response.is_success:
            _raise_for(response)
        media_id = _message_id(response)
        if media_id is None:
            raise PermanentProviderError(
                "the media upload answered no id", status=response.status_code
            )
        return media_id


def _message_id(response: httpx.Response) -> str | None:
    try:
        body = codec.loads(response.content) if response.content else {}
    except codec.DecodeError:
        log.warning("GoSendAPI answered %s with a body that is not JSON", response.status_code)
        return None
    if not isinstance(body, dict):
        return None
    for name in ("id", "message_id", "wamid"):
        if isinstance(body.get(name), str):
            return str(body[name])
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        found = messages[0].get("id")
        return found if isinstance(found, str) else None
    return None


def _raise_for(response: httpx.Response, exchange: Exchange | None = None) -> str | None:
    body = _error_body(response)
    message = str(body.get("message") or response.reason_phrase or "error")
    code = body.get("code") if isinstance(body.get("code"), str) else None
    if exchange is not None:
        exchange.code = code
    details = body.get("details") if isinstance(body.get("details"), dict) else None
    status = response.status_code
    kwargs: dict[str, Any] = {"status": status, "code": code, "details": details}
    if status == 429:
        raise RateLimitedError(message, retry_after=_retry_after(response, body), **kwargs)
    if status in TRANSIENT_STATUSES or status >= 500:
        raise TransientProviderError(message, **kwargs)
    raise PermanentProviderError(message, **kwargs)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = codec.loads(response.content) if response.content else {}
    except codec.DecodeError:
        return {"message": response.text[:200]}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response, body: dict[str, Any]) -> float:
    """The longer of the body's retry_after_seconds and the Retry-After header."""
    delays = [
        _seconds(body.get("retry_after_seconds")),
        _seconds(response.headers.get("Retry-After")),
    ]
    known = [delay for delay in delays if delay is not None]
    return max(known) if known else DEFAULT_RETRY_AFTER


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


__all__ = ["Exchange", "ProviderError", "Sender"]
