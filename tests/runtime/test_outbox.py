"""Tests for botkit.runtime.outbox: keys, delivery, retries, 429 pacing, per-user order, the retry policy.

Sends enter the outbox the way the dispatcher puts them there (an inbox event claimed and
completed with NewSend rows) in a real SQLite file; `Outbox.run_once` delivers them to the
fake GoSendAPI in process, and time moves only with the ManualClock (the store's clock too).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.fake.provider import FakeGoSendAPI
from botkit.provider.sender import Sender
from botkit.runtime.outbox import Outbox, RetryPolicy
from botkit.store.base import (
    DONE,
    FAILED,
    PENDING,
    SENT,
    EventResult,
    LaneOutcome,
    NewEvent,
    NewSend,
    OutboxRecord,
)
from botkit.store.sqlite import SqliteStore
from botkit.types import ManualClock
from botkit.wire.idempotency import idempotency_key
from botkit.wire.window import Window

pytestmark = pytest.mark.anyio

API_KEY = "gsk_test_0123456789abcdef"
PHONE_NUMBER_ID = "555123456789"
ANA = "5491140000001"
BETO = "5491140000002"
SEED = 20260519
FAR = 10_000.0  # seconds: beyond any delay the default RetryPolicy can choose


@dataclass
class Rig:
    """A store, the fake provider, a clock and the outbox under test."""

    clock: ManualClock
    fake: FakeGoSendAPI
    store: SqliteStore
    sender: Sender
    outbox: Outbox

    async def queue(self, cause: str, wa_id: str, *texts: str, wrote: bool = True) -> list[str]:
        """Queues text sends as the dispatcher does, for one inbound event; returns their keys.

        The user's session says they wrote just now (their window is open) unless `wrote` is False.
        """
        event = NewEvent(
            cause, f"wamid.in.{cause}", "message", PHONE_NUMBER_ID, wa_id, {"id": cause}
        )
        assert await self.store.inbox.add([event]) == [True]
        [lane] = await self.store.inbox.claim("dispatcher", 10, 60.0)
        keys = [idempotency_key(cause, position) for position in range(len(texts))]
        sends = tuple(
            NewSend(PHONE_NUMBER_ID, wa_id, key, "text", {"body": text}, cause)
            for key, text in zip(keys, texts, strict=True)
        )
        [item] = lane.events
        window = Window(self.clock.now(), item.lane_seq) if wrote else Window()
        results = (EventResult(item.seq, item.lane_seq, DONE),)
        outcome = LaneOutcome(PHONE_NUMBER_ID, wa_id, lane.token, results, None, window, sends)
        assert await self.store.inbox.complete([outcome]) == [True]
        return keys

    async def due(self) -> float | None:
        """When the outbox's next send can go, on the clock (None: nothing waits)."""
        delay = await self.store.outbox.next_due()
        return None if delay is None else self.clock.now() + delay

    async def row(self, key: str) -> OutboxRecord:
        """The outbox row with this idempotency key."""
        [found] = [row for row in await self.store.inspect.outbox() if row.idempotency_key == key]
        return found

    def keys_requested(self) -> list[str | None]:
        """The Idempotency-Key of every request the provider received, in order."""
        return [request.headers.get("idempotency-key") for request in self.fake.requests]

    def texts_accepted(self, wa_id: str | None = None) -> list[Any]:
        """The bodies of the texts the provider accepted, in order."""
        sent = self.fake.messages if wa_id is None else self.fake.messages_to(wa_id)
        return [message.body["text"]["body"] for message in sent]  # type: ignore[index]


@contextlib.asynccontextmanager
async def make_rig(
    path: Path, *, enforce_window: bool = False, **options: Any
) -> AsyncIterator[Rig]:
    """A rig over a SQLite file at `path`; `options` go to the Outbox."""
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, enforce_window=enforce_window)
    transport = httpx.ASGITransport(app=fake.app)
    sender = Sender(base_url="http://gosendapi.fake/v1", api_key=API_KEY, transport=transport)
    options.setdefault("rng", random.Random(SEED))
    async with SqliteStore(path, clock=clock, worker=True) as store, sender:
        yield Rig(clock, fake, store, sender, Outbox(store, sender, clock, **options))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path / "x.db") as made:
        yield made


# -- idempotency keys ----------------------------------------------------------------------


def test_idempotency_key_is_deterministic() -> None:
    assert idempotency_key("evt_2f9c0c1e7b", 0) == idempotency_key("evt_2f9c0c1e7b", 0)
    assert idempotency_key("evt_2f9c0c1e7b", 3) == idempotency_key("evt_2f9c0c1e7b", 3)


def test_idempotency_key_differs_by_cause_and_position() -> None:
    causes = ["evt_1", "evt_2", "evt_10", "wamid.HBgL", "trigger:reminder:42", "evt_1\x1f0"]
    keys = [idempotency_key(cause, position) for cause in causes for position in range(12)]

    assert len(set(keys)) == len(keys)
    assert all(key.isascii() and key.isprintable() and " " not in key for key in keys)


# -- delivery ------------------------------------------------------------------------------


async def test_a_send_is_delivered_once_and_recorded_sent(rig: Rig) -> None:
    [key] = await rig.queue("evt_1", ANA, "hola")

    assert await rig.outbox.run_once() == 1

    [accepted] = rig.fake.messages
    assert (accepted.to, accepted.phone_number_id, accepted.idempotency_key) == (
        ANA,
        PHONE_NUMBER_ID,
        key,
    )
    assert rig.texts_accepted() == ["hola"]
    row = await rig.row(key)
    assert (row.status, row.attempts, row.error) == (SENT, 1, None)
    assert row.provider_message_id == accepted.message_id

    rig.clock.advance(FAR)
    assert await rig.outbox.run_once() == 0
    assert len(rig.fake.requests) == 1


async def test_nothing_to_do_claims_nothing(rig: Rig) -> None:
    assert await rig.outbox.run_once() == 0
    assert rig.fake.requests == []


# -- transient failures --------------------------------------------------------------------


async def test_503_waits_the_backoff_then_retries_with_the_same_key(rig: Rig) -> None:
    [key] = await rig.queue("evt_1", ANA, "hola")
    failed_at = rig.clock.now()
    rig.fake.fail_next(503)

    assert await rig.outbox.run_once() == 1

    row = await rig.row(key)
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.error is not None and "503" in row.error
    delay = RetryPolicy().delay(1, random.Random(SEED))  # the outbox's rng, same seed
    due = await rig.due()
    assert due == pytest.approx(failed_at + delay)
    assert due is not None and due > failed_at

    rig.clock.set(due - 0.01)
    assert await rig.outbox.run_once() == 0
    assert len(rig.fake.requests) == 1

    rig.clock.set(due)
    assert await rig.outbox.run_once() == 1

    assert rig.keys_requested() == [key, key]
    assert [request.status for request in rig.fake.requests] == [503, 200]
    [accepted] = rig.fake.messages
    row = await rig.row(key)
    assert (row.status, row.attempts, row.error) == (SENT, 2, None)
    assert row.provider_message_id == accepted.message_id


class FlakyNetwork:
    """A transport that fails the first `failures` requests with ConnectError, then forwards."""

    def __init__(self, app: Any, failures: int) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.failures = failures
        self.keys: list[str | None] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("idempotency-key"))
        if self.failures:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


async def test_network_failure_waits_the_backoff_then_retries_with_the_same_key(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, enforce_window=False)
    network = FlakyNetwork(fake.app, failures=1)
    transport = httpx.MockTransport(network.handle)
    sender = Sender(base_url="http://gosendapi.fake/v1", api_key=API_KEY, transport=transport)
    async with SqliteStore(tmp_path / "x.db", clock=clock, worker=True) as store, sender:
        rig = Rig(clock, fake, store, sender, Outbox(store, sender, clock, rng=random.Random(SEED)))
        [key] = await rig.queue("evt_1", ANA, "hola")

        assert await rig.outbox.run_once() == 1

        row = await rig.row(key)
        assert (row.status, row.attempts) == (PENDING, 1)
        assert row.error is not None and "ConnectError" in row.error
        due = await rig.due()
        assert due == pytest.approx(clock.now() + RetryPolicy().delay(1, random.Random(SEED)))
        assert await rig.outbox.run_once() == 0

        clock.advance(FAR)
        assert await rig.outbox.run_once() == 1

        assert network.keys == [key, key]
        assert rig.texts_accepted() == ["hola"]
        row = await rig.row(key)
        assert (row.status, row.attempts) == (SENT, 2)


async def test_429_waits_retry_after_and_is_not_an_attempt(rig: Rig) -> None:
    [key] = await rig.queue("evt_1", ANA, "hola")
    start = rig.clock.now()
    rig.fake.fail_next(429, retry_after=7)

    assert await rig.outbox.run_once() == 1

    row = await rig.row(key)
    assert (row.status, row.attempts) == (PENDING, 0)
    assert await rig.due() == pytest.approx(start + 7)

    rig.clock.set(start + 6.9)
    assert await rig.outbox.run_once() == 0
    assert len(rig.fake.requests) == 1

    rig.clock.set(start + 7)
    assert await rig.outbox.run_once() == 1

    assert rig.keys_requested() == [key, key]
    row = await rig.row(key)
    assert (row.status, row.attempts) == (SENT, 1)


async def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    async with make_rig(tmp_path / "x.db", retry=RetryPolicy(max_attempts=3)) as rig:
        [key] = await rig.queue("evt_1", ANA, "hola")
        rig.fake.fail_next(503, times=3)

        for attempt in (1, 2):
            assert await rig.outbox.run_once() == 1
            row = await rig.row(key)
            assert (row.status, row.attempts) == (PENDING, attempt)
            rig.clock.advance(FAR)

        assert await rig.outbox.run_once() == 1

        row = await rig.row(key)
        assert (row.status, row.attempts) == (FAILED, 3)
        assert row.error is not None and "gave up" in row.error and "503" in row.error
        rig.clock.advance(FAR)
        assert await rig.outbox.run_once() == 0
        assert len(rig.fake.requests) == 3
        assert rig.fake.messages == []


# -- permanent refusals --------------------------------------------------------------------


async def test_a_400_is_failed_after_one_attempt_and_never_retried(rig: Rig) -> None:
    [key] = await rig.queue("evt_1", "+54 9 11 4000-0001", "hola")

    assert await rig.outbox.run_once() == 1

    row = await rig.row(key)
    assert (row.status, row.attempts) == (FAILED, 1)
    assert row.error is not None and "400" in row.error and "INVALID_PHONE_NUMBER" in row.error
    rig.clock.advance(FAR)
    assert await rig.outbox.run_once() == 0
    assert len(rig.fake.requests) == 1
    assert await rig.due() is None


async def test_a_send_to_a_user_who_never_wrote_fails_without_asking_the_provider(
    rig: Rig,
) -> None:
    [key] = await rig.queue("evt_1", ANA, "hola", wrote=False)

    assert await rig.outbox.run_once() == 1

    row = await rig.row(key)
    assert row.status == FAILED
    assert row.error is not None and "window closed" in row.error
    assert rig.fake.requests == []


async def test_a_403_outside_the_window_is_failed_once(tmp_path: Path) -> None:
    async with make_rig(tmp_path / "x.db", enforce_window=True) as rig:
        # botkit thinks Ana wrote; the provider has no inbound from her: it refuses with 403
        [key] = await rig.queue("evt_1", ANA, "hola")

        assert await rig.outbox.run_once() == 1

        row = await rig.row(key)
        assert (row.status, row.attempts) == (FAILED, 1)
        assert row.error is not None and "403" in row.error and "WINDOW_CLOSED" in row.error
        rig.clock.advance(FAR)
        assert await rig.outbox.run_once() == 0
        assert len(rig.fake.requests) == 1
        assert rig.fake.messages == []


async def test_a_refused_send_does_not_hold_up_the_next_one(rig: Rig) -> None:
    keys = await rig.queue("evt_1", ANA, "hola", "chau")
    rig.fake.fail_next(422, code="UNPROCESSABLE")

    assert await rig.outbox.run_once() == 2

    assert [(await rig.row(key)).status for key in keys] == [FAILED, SENT]
    assert rig.texts_accepted() == ["chau"]


# -- order ---------------------------------------------------------------------------------


async def test_one_users_sends_wait_for_the_first_and_arrive_in_order(rig: Rig) -> None:
    keys = await rig.queue("evt_1", ANA, "uno", "dos", "tres")
    rig.fake.fail_next(503)

    assert await rig.outbox.run_once() == 3

    assert rig.keys_requested() == [keys[0]]  # dos and tres were not sent after uno failed
    rows = [await rig.row(key) for key in keys]
    assert [(row.status, row.attempts) for row in rows] == [
        (PENDING, 1),
        (PENDING, 0),
        (PENDING, 0),
    ]

    rig.clock.advance(0.001)
    assert await rig.outbox.run_once() == 0  # uno is not due, and the rest queue behind it
    assert len(rig.fake.requests) == 1

    rig.clock.advance(FAR)
    assert await rig.outbox.run_once() == 3

    assert rig.texts_accepted() == ["uno", "dos", "tres"]
    assert rig.keys_requested() == [keys[0], *keys]
    assert [(await rig.row(key)).status for key in keys] == [SENT, SENT, SENT]


async def test_later_events_of_a_waiting_user_queue_behind_it(rig: Rig) -> None:
    [first] = await rig.queue("evt_1", ANA, "uno")
    rig.fake.fail_next(503)
    assert await rig.outbox.run_once() == 1
    [second] = await rig.queue("evt_2", ANA, "dos")

    assert await rig.outbox.run_once() == 0

    assert rig.keys_requested() == [first]
    rig.clock.advance(FAR)
    assert await rig.outbox.run_once() == 2
    assert rig.texts_accepted() == ["uno", "dos"]
    assert rig.keys_requested() == [first, first, second]


async def test_other_users_proceed_while_one_user_waits(rig: Rig) -> None:
    [ana_first] = await rig.queue("evt_1", ANA, "ana uno")
    rig.fake.fail_next(503)
    assert await rig.outbox.run_once() == 1
    await rig.queue("evt_2", ANA, "ana dos")
    [beto] = await rig.queue("evt_3", BETO, "beto uno")

    assert await rig.outbox.run_once() == 1

    assert rig.texts_accepted() == ["beto uno"]
    assert (await rig.row(beto)).status == SENT
    assert (await rig.row(ana_first)).status == PENDING
    rig.clock.advance(FAR)
    assert await rig.outbox.run_once() == 2
    assert rig.texts_accepted(ANA) == ["ana uno", "ana dos"]


async def test_other_users_proceed_however_many_sends_wait_ahead_of_them(tmp_path: Path) -> None:
    async with make_rig(tmp_path / "x.db", batch=2) as rig:
        waiting = [f"54911400001{index:02d}" for index in range(8)]
        for index, wa_id in enumerate(waiting):  # an outage: eight users in backoff
            await rig.queue(f"evt_{index}", wa_id, "hola")
        rig.fake.fail_next(503, times=len(waiting))
        for _ in range(len(waiting) // 2):
            assert await rig.outbox.run_once() == 2
        assert rig.fake.messages == []
        [beto] = await rig.queue("evt_beto", BETO, "beto uno")

        assert await rig.outbox.run_once() == 1  # Beto's send is due; nobody else's is

        assert (await rig.row(beto)).status == SENT


# -- a crash between the provider's answer and record_sends ---------------------------------


async def test_a_send_the_provider_already_accepted_is_not_sent_twice(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with make_rig(path) as rig:
        [key] = await rig.queue("evt_1", ANA, "hola")
        # A worker that died: it claimed the row, the provider accepted, nothing was recorded.
        [lane] = await rig.store.outbox.claim("dead-worker", 10, 60.0)
        [item] = lane.sends
        first_id = await rig.sender.send(
            phone_number_id=lane.phone_number_id,
            to=lane.wa_id,
            type=item.type,
            payload=item.payload,
            idempotency_key=item.idempotency_key,
        )
        await rig.store.aclose()
        await rig.store.open()  # a restarted worker frees the dead worker's claims

        assert await rig.outbox.run_once() == 1

        assert rig.keys_requested() == [key, key]
        [accepted] = rig.fake.messages
        assert accepted.message_id == first_id
        row = await rig.row(key)
        assert (row.status, row.attempts, row.provider_message_id) == (SENT, 1, first_id)


# -- RetryPolicy ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_delay_stays_within_the_upper_half_of_its_ceiling(seed: int) -> None:
    policy = RetryPolicy(base=0.5, cap=300.0)
    rng = random.Random(seed)
    for attempts in range(1, 40):
        ceiling = min(300.0, 0.5 * 2 ** (attempts - 1))
        assert 0.5 * ceiling <= policy.delay(attempts, rng) <= ceiling


@pytest.mark.parametrize("seed", range(20))
def test_delay_grows_exponentially_until_the_cap(seed: int) -> None:
    policy = RetryPolicy(base=1.0, cap=64.0)
    rng = random.Random(seed)
    delays = [policy.delay(attempts, rng) for attempts in range(1, 16)]

    for attempts, delay in enumerate(delays[:7], start=1):  # ceilings 1, 2, 4 ... 64
        assert 2.0 ** (attempts - 2) <= delay <= 2.0 ** (attempts - 1)
    assert delays[:7] == sorted(delays[:7])  # [c/2, c] then [c, 2c]: never shorter
    assert all(32.0 <= delay <= 64.0 for delay in delays[7:])  # capped from then on


def test_delay_is_reproducible_with_the_same_seed() -> None:
    policy = RetryPolicy()
    first = [policy.delay(attempts, random.Random(7)) for attempts in range(1, 16)]
    again = [policy.delay(attempts, random.Random(7)) for attempts in range(1, 16)]
    other = [policy.delay(attempts, random.Random(8)) for attempts in range(1, 16)]

    assert first == again
    assert first != other


def test_delay_before_any_attempt_is_the_base() -> None:
    assert 0.25 <= RetryPolicy(base=0.5).delay(0, random.Random(1)) <= 0.5


def test_delay_stays_capped_however_many_attempts() -> None:
    policy = RetryPolicy(cap=300.0, max_attempts=10_000)

    assert 150.0 <= policy.delay(2_000, random.Random(1)) <= 300.0
