"""Smooth token buckets that pace sends under the provider's limits.

GoSendAPI limits throughput per sending number (standard tier: 80 messages/s; medium 200,
high 1000) and requests per API key (sandbox 10/s, standard 100, high volume 500). A
`RateLimiter` keeps one `TokenBucket` per phone_number_id and one for the key; the sender
awaits `acquire(phone_number_id)` before each message, so the provider never has a reason
to answer 429. A 429 still can happen (another process on the same key), and is honoured.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from botkit.config import DEFAULT_RATE_PER_KEY, DEFAULT_RATE_PER_NUMBER, Settings

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class TokenBucket:
    """`rate` tokens a second, at most `burst` at once; `acquire` waits for one.

    Kept as GCRA (the theoretical time of the next token) rather than a token count. Callers
    wait in turn behind a lock (first come, first served), and a token is charged at the
    time the caller actually resumes, not at the time it planned to: if the event loop
    wakes a waiter late, the next one still waits a whole `1 / rate` after it. Slots
    reserved ahead would instead let every waiter delayed by a stall leave at once, and
    the provider counts arrivals in rolling seconds (bench/ratelimit.py saw 429s so).
    After the first `burst`, acquisitions are at least `1 / rate` apart. A caller
    cancelled while it waits takes nothing.
    """

    __slots__ = (
        "_interval",
        "_lock",
        "_monotonic",
        "_next",
        "_sleep",
        "_tolerance",
        "burst",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"a token bucket needs a positive rate, not {rate!r}")
        if burst < 1:
            raise ValueError(f"a token bucket's burst must be at least 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._interval = 1.0 / self.rate
        self._tolerance = (burst - 1) * self._interval
        self._monotonic = monotonic
        self._sleep = sleep
        # The theoretical time of the next token; a caller may take it `_tolerance` early.
        self._next = -math.inf  # full at the start
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until a token is free (0: one is free now); takes nothing."""
        return max(0.0, self._next - self._tolerance - self._monotonic())

    async def acquire(self) -> None:
        """Waits just long enough for a token, then takes it."""
        async with self._lock:
            delay = self.delay()
            if delay > 0:
                await self._sleep(delay)
            self._next = max(self._next, self._monotonic()) + self._interval


class RateLimiter:
    """The buckets of one API key: one per phone_number_id (made on first use) and the key's own.

    A rate of 0 turns that limit off. `overrides` gives numbers on other tiers their own
    rate. Buckets are kept per business number, and those are few, so the dict stays small.
    The buckets are smooth (burst 1): a burst above one would let a rolling second hold
    `rate + burst - 1` messages, and the provider counts in rolling seconds.
    """

    def __init__(
        self,
        *,
        per_number: float = DEFAULT_RATE_PER_NUMBER,
        per_key: float = DEFAULT_RATE_PER_KEY,
        overrides: Mapping[str, float] | None = None,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        for name, rate in [("per_number", per_number), ("per_key", per_key)]:
            _check_rate(name, rate)
        self.overrides = dict(overrides or {})
        for number, rate in self.overrides.items():
            _check_rate(f"the override for {number}", rate)
        self.per_number = float(per_number)
        self.per_key = float(per_key)
        self._monotonic = monotonic
        self._sleep = sleep
        self._key = self._bucket(per_key)
        self._numbers: dict[str, TokenBucket | None] = {}

    def rate_for(self, phone_number_id: str) -> float:
        """Messages a second allowed for one sending number (0: not paced)."""
        return self.overrides.get(phone_number_id, self.per_number)

    async def acquire(self, phone_number_id: str) -> None:
        """Waits for the number's bucket, then for the key's: one message may go."""
        if phone_number_id not in self._numbers:
            self._numbers[phone_number_id] = self._bucket(self.rate_for(phone_number_id))
        number = self._numbers[phone_number_id]
        if number is not None:
            await number.acquire()
        await self.acquire_request()

    async def acquire_request(self) -> None:
        """Waits for the key's bucket only: a request that sends no message (a media upload)."""
        if self._key is not None:
            await self._key.acquire()

    def _bucket(self, rate: float) -> TokenBucket | None:
        if rate == 0:
            return None
        return TokenBucket(rate, monotonic=self._monotonic, sleep=self._sleep)


def rate_limiter(settings: Settings) -> RateLimiter | None:
    """The limiter `settings` ask for; None when every rate is 0 (pacing off)."""
    overrides = dict(settings.rate_per_number_overrides)
    if not (settings.rate_per_number or settings.rate_per_key or any(overrides.values())):
        return None
    return RateLimiter(
        per_number=settings.rate_per_number, per_key=settings.rate_per_key, overrides=overrides
    )


def _check_rate(name: str, rate: float) -> None:
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"{name} must be a number of requests a second, 0 or more; not {rate!r}")


__all__ = ["RateLimiter", "TokenBucket", "rate_limiter"]
