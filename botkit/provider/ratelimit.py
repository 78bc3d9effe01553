"""Smooth token buckets that pace sends under the provider's limits.

GoSendAPI limits throughput per sending number (standard tier: 80 messages/s; medium 200,
high 1000) and requests per API key (sandbox 10/s, standard 100, high volume 500). A
`RateLimiter` keeps one `TokenBucket` per phone_number_id and one for the key; the sender
awaits `acquire(phone_number_id)` before each message, so the provider never has a reason
to answer 429. A 429 still can happen (another process on the same key), and is honoured.

With several processes (a PostgreSQL store), the buckets are shared: `SharedBucket` takes its
slots from the store's `Pacing`, so that the limits hold for the whole deployment.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from botkit.config import DEFAULT_RATE_PER_KEY, DEFAULT_RATE_PER_NUMBER, Settings
from botkit.exceptions import RateLimitedError, StoreError
from botkit.store.base import Pacing

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

LATE_FORGIVEN = 0.5  # of an interval: how late a waiter's timer may fire and keep the pace
HEADROOM = 0.02  # a limiter paces this fraction under each rate (see RateLimiter)
SHARED_HEADROOM = 0.03  # ... and this, when several processes share the buckets
RESOLUTION = 1e-6  # seconds: a shorter wait is none (no timer is finer; float sums are not exact)


class TokenBucket:
    """`rate` tokens a second, at most `burst` at once; `acquire` waits for one.

    Kept as GCRA (the theoretical time of the next token) rather than a token count.
    Callers wait in turn behind a lock (first come, first served), never leave before
    their time, and are charged when they actually resume. Timers wake late: a waiter
    late by up to `LATE_FORGIVEN` of an interval keeps the schedule (else every timer's
    lag would slow the rate), one held up longer (a stalled event loop) moves it, so that
    the waiters behind it are still spaced and do not leave at once. Slots reserved ahead
    instead let a stall release a bunch, and the provider counts arrivals in rolling
    seconds: bench/ratelimit.py saw 429s that way. After the first `burst`, acquisitions
    are at least `1 / rate` apart, less what a late one may make up, and any `n` of them
    span at least `(n - burst) / rate` less half an interval. A caller cancelled while it
    waits takes nothing.
    """

    __slots__ = (
        "_forgiven",
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
        self._forgiven = LATE_FORGIVEN * self._interval
        self._monotonic = monotonic
        self._sleep = sleep
        # The theoretical time of the next token; a caller may take it `_tolerance` early.
        self._next = -math.inf  # full at the start
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until a token is free (0: one is free now); takes nothing."""
        wait = self._next - self._tolerance - self._monotonic()
        return wait if wait > RESOLUTION else 0.0

    async def acquire(self) -> None:
        """Waits just long enough for a token, then takes it."""
        async with self._lock:
            slept = False
            while delay := self.delay():  # again if a timer fired early
                await self._sleep(delay)
                slept = True
            now = self._monotonic()
            charged = now - self._forgiven if slept else now
            self._next = max(self._next, charged) + self._interval


class Bucket(Protocol):
    """What a limiter waits on before a request."""

    async def acquire(self) -> None:
        """Waits for a slot, then takes it."""
        ...


class SharedBucket:
    """`rate` slots a second shared by every process of a deployment, through the store.

    Each acquisition reserves the next slot (GCRA, by the database's clock) and sleeps until
    it. A caller that wakes more than half an interval after its slot (a stalled process) lets it
    go and reserves another: sent late, its message would reach the provider in the same
    rolling second as the slots after it, of this process and the others (bench/ratelimit.py
    --replicas 3 saw 429s that way). A store that cannot be reached raises RateLimitedError:
    the message waits a second, as after a 429, without counting an attempt.
    """

    __slots__ = ("_interval", "_monotonic", "_pacing", "_sleep", "key", "rate")

    def __init__(
        self,
        pacing: Pacing,
        key: str,
        rate: float,
        *,
        sleep: Sleep = asyncio.sleep,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"a shared bucket needs a positive rate, not {rate!r}")
        self.key = key
        self.rate = float(rate)
        self._interval = 1.0 / self.rate
        self._pacing = pacing
        self._sleep = sleep
        self._monotonic = monotonic

    async def acquire(self) -> None:
        """Reserves the bucket's next slot and waits for it (again, if it woke too late)."""
        while True:
            try:
                wait = await self._pacing.reserve(self.key, self._interval)
            except StoreError as exc:
                raise RateLimitedError(
                    f"the deployment's send pacing is unavailable ({exc}); trying again",
                    retry_after=1.0,
                ) from exc
            if wait <= RESOLUTION:
                return
            slot = self._monotonic() + wait
            await self._sleep(wait)
            if self._monotonic() - slot <= LATE_FORGIVEN * self._interval:
                return


class RateLimiter:
    """The buckets of one API key: one per phone_number_id (made on first use) and the key's own.

    A rate of 0 turns that limit off. `overrides` gives numbers on other tiers their own
    rate. Buckets are kept per business number, and those are few, so the dict stays small.
    The buckets are smooth (burst 1): a burst above one would let a rolling second hold
    `rate + burst - 1` messages, and the provider counts in rolling seconds. They pace
    `headroom` (2 %, 20 ms a second) under each rate: sends exactly `1 / rate` apart reach
    the provider with milliseconds of jitter, and then about every other rolling second
    holds one message too many. bench/ratelimit.py, 2,000 sends at 80/s on a busy 2-CPU
    machine: about 20 429s without headroom, 0 to 2 with 1 %, none with 2 %. Shared buckets
    pace 3 % under: the sends of several processes reach the provider with more jitter than
    one's (bench/ratelimit.py --replicas 3: 0 to 2 429s a run with 2 %, none in three runs
    with 3 %, 25.9 s for 2,000 messages at 80/s).

    With `pacing` (a store several processes share), the buckets are `SharedBucket`s named
    after the number and after `key_id` (a digest of the API key), so that the limits hold for
    every process using that key together.
    """

    def __init__(
        self,
        *,
        per_number: float = DEFAULT_RATE_PER_NUMBER,
        per_key: float = DEFAULT_RATE_PER_KEY,
        overrides: Mapping[str, float] | None = None,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        headroom: float | None = None,
        pacing: Pacing | None = None,
        key_id: str = "default",
    ) -> None:
        if headroom is None:
            headroom = HEADROOM if pacing is None else SHARED_HEADROOM
        if not 0 <= headroom < 1:
            raise ValueError(f"headroom is a fraction of the rate, 0 to under 1, not {headroom!r}")
        for name, rate in [("per_number", per_number), ("per_key", per_key)]:
            _check_rate(name, rate)
        self.overrides = dict(overrides or {})
        for number, rate in self.overrides.items():
            _check_rate(f"the override for {number}", rate)
        self.per_number = float(per_number)
        self.per_key = float(per_key)
        self.headroom = headroom
        self._monotonic = monotonic
        self._sleep = sleep
        self._pacing = pacing
        self._key = self._bucket(per_key, f"key:{key_id}")
        self._numbers: dict[str, Bucket | None] = {}

    def rate_for(self, phone_number_id: str) -> float:
        """Messages a second allowed for one sending number (0: not paced)."""
        return self.overrides.get(phone_number_id, self.per_number)

    async def acquire(self, phone_number_id: str) -> None:
        """Waits for the number's bucket, then for the key's: one message may go."""
        if phone_number_id not in self._numbers:
            rate = self.rate_for(phone_number_id)
            self._numbers[phone_number_id] = self._bucket(rate, f"number:{phone_number_id}")
        number = self._numbers[phone_number_id]
        if number is not None:
            await number.acquire()
        await self.acquire_request()

    async def acquire_request(self) -> None:
        """Waits for the key's bucket only: a request that sends no message (a media upload)."""
        if self._key is not None:
            await self._key.acquire()

    def _bucket(self, rate: float, name: str) -> Bucket | None:
        if rate == 0:
            return None
        paced = rate * (1 - self.headroom)
        if self._pacing is not None:
            return SharedBucket(
                self._pacing, name, paced, sleep=self._sleep, monotonic=self._monotonic
            )
        return TokenBucket(paced, monotonic=self._monotonic, sleep=self._sleep)


def rate_limiter(settings: Settings, pacing: Pacing | None = None) -> RateLimiter | None:
    """The limiter `settings` ask for (shared through `pacing`, when given); None when every
    rate is 0 (pacing off)."""
    overrides = dict(settings.rate_per_number_overrides)
    if not (settings.rate_per_number or settings.rate_per_key or any(overrides.values())):
        return None
    return RateLimiter(
        per_number=settings.rate_per_number,
        per_key=settings.rate_per_key,
        overrides=overrides,
        pacing=pacing,
        key_id=_digest(settings.api_key or "fake"),
    )


def _digest(api_key: str) -> str:
    """A name for an API key's bucket that does not reveal the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _check_rate(name: str, rate: float) -> None:
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"{name} must be a number of requests a second, 0 or more; not {rate!r}")


__all__ = ["RateLimiter", "SharedBucket", "TokenBucket", "rate_limiter"]
