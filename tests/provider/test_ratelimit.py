"""Tests for botkit.provider.ratelimit: bucket pacing on a fake monotonic clock, the limiter's buckets."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import httpx
import pytest

import bots.clinic
from botkit.config import Settings
from botkit.provider.ratelimit import RateLimiter, TokenBucket, rate_limiter
from botkit.runtime.workers import Workers
from botkit.store import MemoryStore
from botkit.types import ManualClock, SystemClock

pytestmark = pytest.mark.anyio

A = "555123456789"
B = "555000000001"
EPSILON = 1e-9


class FakeTime:
    """A monotonic clock that moves only when a bucket sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.late: list[float] = []  # how late each next timer fires (then on time)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + (self.late.pop(0) if self.late else 0.0)

    def bucket(self, rate: float, burst: int = 1) -> TokenBucket:
        return TokenBucket(rate, burst=burst, monotonic=self.monotonic, sleep=self.sleep)

    def limiter(
        self, *, per_number: float, per_key: float, overrides: dict[str, float] | None = None
    ) -> RateLimiter:
        return RateLimiter(
            per_number=per_number,
            per_key=per_key,
            overrides=overrides,
            monotonic=self.monotonic,
            sleep=self.sleep,
            headroom=0.0,  # exact rates, for the arithmetic; the default is tested on its own
        )


async def times_of(time: FakeTime, bucket: TokenBucket, count: int) -> list[float]:
    """The fake time at which each of `count` acquisitions in a row got its token."""
    times = []
    for _ in range(count):
        await bucket.acquire()
        times.append(time.now)
    return times


def most_in_a_rolling_second(times: list[float]) -> int:
    """The largest number of `times` in any window [t, t + 1)."""
    return max(sum(start <= t < start + 1 - EPSILON for t in times) for start in times)


# -- the bucket ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "count"), [(80, 1, 200), (100, 1, 1000), (10, 3, 25), (100, 10, 250)]
)
async def test_n_acquisitions_take_n_minus_burst_over_rate(
    rate: float, burst: int, count: int
) -> None:
    time = FakeTime()
    times = await times_of(time, time.bucket(rate, burst), count)

    assert times[-1] == pytest.approx((count - burst) / rate)
    assert times[:burst] == [0.0] * burst  # the burst is immediate
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[burst - 1 :])]
    assert min(gaps) >= 1 / rate - EPSILON  # never two within 1/rate after the burst


async def test_a_smooth_bucket_never_puts_more_than_rate_in_a_rolling_second() -> None:
    time = FakeTime()
    times = await times_of(time, time.bucket(80), 400)
    assert most_in_a_rolling_second(times) == 80


async def test_concurrent_callers_are_served_in_call_order_at_the_rate() -> None:
    time = FakeTime()
    bucket = time.bucket(50)
    served: list[tuple[int, float]] = []

    async def one(index: int) -> None:
        await bucket.acquire()
        served.append((index, time.now))

    await asyncio.gather(*(one(index) for index in range(100)))

    assert [index for index, _ in served] == list(range(100))
    assert [at for _, at in served] == pytest.approx([index / 50 for index in range(100)])


async def test_an_idle_bucket_refills_to_its_burst_only() -> None:
    time = FakeTime()
    bucket = time.bucket(10, burst=2)
    await times_of(time, bucket, 5)
    time.now += 60.0  # a minute idle earns 2 tokens, not 600
    start = time.now

    times = await times_of(time, bucket, 4)

    assert [at - start for at in times] == pytest.approx([0.0, 0.0, 0.1, 0.2])


async def test_a_bucket_waits_only_as_long_as_needed() -> None:
    time = FakeTime()
    bucket = time.bucket(4)
    await bucket.acquire()
    time.now += 0.1  # a quarter second is due; 0.1 has passed

    await bucket.acquire()

    assert time.sleeps == [pytest.approx(0.15)]


async def test_a_timer_firing_a_little_late_does_not_slow_the_pace() -> None:
    time = FakeTime()
    bucket = time.bucket(80)
    time.late = [0.006] * 100  # every timer 6 ms late: under half of the 12.5 ms interval

    times = await times_of(time, bucket, 101)

    assert times[-1] == pytest.approx(100 / 80 + 0.006)  # late once, not 100 times


async def test_a_waiter_held_up_longer_moves_the_schedule_so_the_rest_stay_spaced() -> None:
    time = FakeTime()
    bucket = time.bucket(10)
    await times_of(time, bucket, 3)  # t = 0.0, 0.1, 0.2
    time.late = [0.5]  # the event loop stalls: the fourth resumes at 0.8, not 0.3

    times = await times_of(time, bucket, 3)

    assert times == pytest.approx([0.8, 0.85, 0.95])  # made up half an interval, no bunch


async def test_a_timer_firing_early_is_slept_again() -> None:
    time = FakeTime()
    bucket = time.bucket(10)
    await bucket.acquire()
    time.late = [-0.03]  # fires 30 ms early

    await bucket.acquire()

    assert time.now == pytest.approx(0.1)
    assert time.sleeps == pytest.approx([0.1, 0.03])


async def test_a_caller_cancelled_while_waiting_takes_nothing() -> None:
    gate = asyncio.Event()
    now = 0.0

    async def stuck(seconds: float) -> None:
        await gate.wait()

    bucket = TokenBucket(10, monotonic=lambda: now, sleep=stuck)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    now = 0.1

    assert bucket.delay() == 0.0  # the token the cancelled caller waited for is still there


async def test_the_limiter_paces_a_little_under_each_rate_by_default() -> None:
    time = FakeTime()
    limiter = RateLimiter(per_number=80, per_key=100, monotonic=time.monotonic, sleep=time.sleep)

    await acquire_in_turn(limiter, time, [A] * 785)

    assert limiter.headroom == 0.02
    assert time.now == pytest.approx(784 / (80 * 0.98))  # 10 s at 78.4/s
    assert limiter.rate_for(A) == 80  # the configured rate is the provider's


@pytest.mark.parametrize("headroom", [-0.1, 1.0])
def test_the_limiter_refuses_a_headroom_outside_0_to_1(headroom: float) -> None:
    with pytest.raises(ValueError, match="headroom"):
        RateLimiter(headroom=headroom)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-5, 1), (float("inf"), 1), (10, 0)])
def test_a_bucket_refuses_a_rate_or_burst_that_cannot_pace(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"rate|burst"):
        TokenBucket(rate, burst=burst)


# -- the limiter ---------------------------------------------------------------------------


async def acquire_in_turn(limiter: RateLimiter, time: FakeTime, numbers: list[str]) -> float:
    """Acquires once for each number, in order; returns the fake time it took."""
    for number in numbers:
        await limiter.acquire(number)
    return time.now


async def test_each_number_has_its_own_bucket() -> None:
    time = FakeTime()
    limiter = time.limiter(per_number=10, per_key=0)

    took = await acquire_in_turn(limiter, time, [A, B] * 10)

    assert took == pytest.approx(0.9)  # 10 each at 10/s side by side, not 20 at 10/s


async def test_one_number_is_held_to_its_rate_under_the_key() -> None:
    time = FakeTime()
    limiter = time.limiter(per_number=80, per_key=100)

    assert await acquire_in_turn(limiter, time, [A] * 161) == pytest.approx(2.0)


async def test_the_key_bucket_holds_every_number_together() -> None:
    time = FakeTime()
    limiter = time.limiter(per_number=80, per_key=100)

    took = await acquire_in_turn(limiter, time, [A, B] * 100)

    assert took == pytest.approx(1.99)  # 200 requests at the key's 100/s, though each number has 80


async def test_acquire_request_takes_from_the_key_only() -> None:
    time = FakeTime()
    limiter = time.limiter(per_number=1, per_key=10)
    await limiter.acquire(A)

    for _ in range(10):
        await limiter.acquire_request()

    assert time.now == pytest.approx(1.0)  # ten key tokens at 10/s; A's bucket untouched


async def test_overrides_give_a_number_its_own_rate() -> None:
    time = FakeTime()
    limiter = time.limiter(per_number=80, per_key=0, overrides={A: 200, B: 0})

    assert await acquire_in_turn(limiter, time, [A] * 201) == pytest.approx(1.0)
    assert await acquire_in_turn(limiter, time, [B] * 1000) == pytest.approx(1.0)  # unpaced
    assert (limiter.rate_for(A), limiter.rate_for(B), limiter.rate_for("555")) == (200, 0, 80)


async def test_an_override_paces_a_number_when_the_default_is_off() -> None:
    time = FakeTime()
    limiter = time.limiter(per_number=0, per_key=0, overrides={A: 10})

    await acquire_in_turn(limiter, time, [B] * 50)
    assert time.sleeps == []
    assert await acquire_in_turn(limiter, time, [A] * 11) == pytest.approx(1.0)


async def test_rates_of_zero_never_wait() -> None:
    time = FakeTime()
    limiter = time.limiter(per_number=0, per_key=0)

    await acquire_in_turn(limiter, time, [A, B] * 500)
    for _ in range(100):
        await limiter.acquire_request()

    assert time.sleeps == []


@pytest.mark.parametrize(
    "rates",
    [{"per_number": -1}, {"per_key": float("nan")}, {"overrides": {A: -80}}],
    ids=["per-number", "per-key", "override"],
)
def test_the_limiter_refuses_negative_or_non_finite_rates(rates: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="0 or more"):
        RateLimiter(**rates)  # type: ignore[arg-type]


# -- from settings -------------------------------------------------------------------------


def test_rate_limiter_follows_the_settings() -> None:
    settings = Settings(
        rate_per_number=200, rate_per_number_overrides=((A, 1000),), rate_per_key=500
    )
    limiter = rate_limiter(settings)

    assert limiter is not None
    assert (limiter.per_number, limiter.per_key, limiter.overrides) == (200, 500, {A: 1000})
    assert rate_limiter(Settings()) is not None  # paced by default: 80/s a number, 100/s a key


def test_no_limiter_when_every_rate_is_zero() -> None:
    assert rate_limiter(Settings(rate_per_number=0, rate_per_key=0)) is None
    only_override = Settings(rate_per_number=0, rate_per_key=0, rate_per_number_overrides=((A, 5),))
    assert rate_limiter(only_override) is not None


async def test_the_runtime_paces_on_the_system_clock_only(tmp_path: Path) -> None:
    settings = Settings(database=str(tmp_path / "bot.db"), rate_per_number=200)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"id": "wamid.1"}))

    real = Workers(MemoryStore(), bots.clinic.Clinic, settings, SystemClock(), transport=transport)
    simulated = Workers(
        MemoryStore(), bots.clinic.Clinic, settings, ManualClock(), transport=transport
    )

    try:
        assert real.sender.limiter is not None
        assert real.sender.limiter.rate_for(A) == 200
        assert simulated.sender.limiter is None  # simulated time: real waits would model nothing
    finally:
        await real.sender.aclose()
        await simulated.sender.aclose()
