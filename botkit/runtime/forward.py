"""The people's webhook: a handed-off user's messages, posted to BOTKIT_HANDOFF_URL, signed.

The outbox delivers rows of type `botkit.handoff` through a `Forwarder` instead of the
provider: with the row's idempotency key, the same retries and backoff, and none of the
provider's window rules or rate limits. A 2xx is delivered; a 5xx, a 429 or a network failure
is retried; any other answer fails the row (kept, with the answer, for the admin API).
"""

from __future__ import annotations

import time

import httpx

from botkit import codec
from botkit.exceptions import PermanentProviderError, TransientProviderError
from botkit.provider.sender import USER_AGENT, Exchange
from botkit.store.base import OutboxItem
from botkit.types import Clock
from botkit.wire.handoff import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

ERROR_SHOWN = 200  # characters of the receiver's answer kept in an error


class Forwarder:
    """Posts forwarded messages to `url`, signed with `secret` (X-Botkit-Signature over
    ``<X-Botkit-Timestamp>.<body>``)."""

    def __init__(
        self,
        url: str,
        secret: str,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.clock = clock
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout)

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._client.aclose()

    async def post(self, item: OutboxItem, exchange: Exchange) -> None:
        """One delivery attempt; raises TransientProviderError (retry) or
        PermanentProviderError (give up) when the receiver did not take it."""
        body = codec.dumps(item.payload)
        stamp = str(int(self.clock.now()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": item.idempotency_key,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(self.secret, stamp, body),
        }
        started = time.perf_counter()
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientProviderError(f"handoff webhook: {type(exc).__name__}: {exc}") from exc
        finally:
            exchange.latency = time.perf_counter() - started
        exchange.status = status = response.status_code
        if 200 <= status < 300:
            return
        said = response.text[:ERROR_SHOWN]
        message = f"handoff webhook answered {status}: {said}"
        if status >= 500 or status in (408, 429):
            raise TransientProviderError(message, status=status)
        raise PermanentProviderError(message, status=status)


__all__ = ["Forwarder"]
