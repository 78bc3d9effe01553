"""Durable delivery of what handlers sent: claims due sends, delivers them in per-user order, records results."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from botkit.exceptions import (
    MediaError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from botkit.provider.media import MediaUploads
from botkit.provider.sender import Sender
from botkit.store.base import (
    FAILED,
    FALL_BACK,
    HELD,
    HOLD,
    PENDING,
    SENT,
    OutboxItem,
    SendOutcome,
    Store,
)
from botkit.types import Clock
from botkit.wire import window

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for 5xx and network failures."""

    base: float = 0.5
    cap: float = 300.0
    max_attempts: int = 15

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait before attempt number `attempts + 1` (full jitter over the upper half)."""
        exponent = min(max(0, attempts - 1), 64)  # capped first: 2.0 ** 1025 overflows
        ceiling = min(self.cap, self.base * 2.0**exponent)
        return float(ceiling * rng.uniform(0.5, 1.0))


class Outbox:
    """The outbox worker: one loop, many lanes in flight, each lane in order."""

    def __init__(
        self,
        store: Store,
        sender: Sender,
        clock: Clock,
        *,
        batch: int = 256,
        lease: float = 60.0,
        poll: float = 1.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.media = MediaUploads(store, sender)
        self.clock = clock
        self.owner = f"outbox-{uuid.uuid4().hex[:12]}"
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self.busy = False

    def wake(self) -> None:
        """Tells the loop there may be new sends."""
        self._wake.set()

    def stop(self) -> None:
        """Ends the loop after the round in flight."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Delivers until stopped."""
        while not self._stopping:
            self._wake.clear()
            self.busy = True
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("outbox round failed; its sends will be claimed again")
                worked = 0
            finally:
                self.busy = False
            if not worked:
                await self._idle()

    async def run_once(self) -> int:
        """One round: claim, deliver, record. Returns how many sends were claimed."""
        now = self.clock.now()
        items = await self.store.claim_outbox(self.owner, self.batch, self.lease, now)
        if not items:
            return 0
        lanes: dict[str, list[OutboxItem]] = {}
        for item in items:
            lanes.setdefault(item.lane, []).append(item)
        results = await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))
        outcomes = [outcome for lane in results for outcome in lane]
        await self.store.record_sends(self.owner, outcomes, self.clock.now())
        return len(items)

    async def _idle(self) -> None:
        due = await self.store.next_send_due()
        timeout = self.poll if due is None else min(self.poll, max(0.0, due - self.clock.now()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.001))

    async def _lane(self, items: Sequence[OutboxItem]) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        for index, item in enumerate(items):
            outcome = await self._deliver(item)
            outcomes.append(outcome)
            if outcome.status == PENDING:  # keep the order: release the rest of the lane
                outcomes.extend(
                    SendOutcome(rest.seq, PENDING, rest.attempts) for rest in items[index + 1 :]
                )
                break
        return outcomes

    async def _deliver(self, item: OutboxItem) -> SendOutcome:
        attempts = item.attempts + 1
        free_form = item.type != "template"
        if free_form and not window.is_open(
            item.last_inbound_at, item.window_closed_at, self.clock.now()
        ):
            return self._closed(
                item, item.attempts, "the 24-hour window is closed", provider_said=False
            )
        try:
            payload = await self.media.resolve(item.phone_number_id, item.payload)
            message_id = await self.sender.send(
                phone_number_id=item.phone_number_id,
                to=item.wa_id,
                type=item.type,
                payload=payload,
                idempotency_key=item.idempotency_key,
            )
        except RateLimitedError as exc:
            # A 429 is the provider pacing us, not a failure of this message: it does not count.
            retry_at = self.clock.now() + (exc.retry_after or 1.0)
            return SendOutcome(
                item.seq, PENDING, item.attempts, error=str(exc), next_attempt_at=retry_at
            )
        except TransientProviderError as exc:
            return self._transient(item, attempts, exc)
        except PermanentProviderError as exc:
            if exc.status == 403 and free_form:  # the provider has the last word on the window
                return self._closed(item, attempts, str(exc), provider_said=True)
            log.warning("send %s to %s refused, not retried: %s", item.seq, _mask(item.wa_id), exc)
            return SendOutcome(item.seq, FAILED, attempts, error=str(exc))
        except MediaError as exc:
            log.warning("send %s: %s", item.seq, exc)
            return SendOutcome(item.seq, FAILED, attempts, error=str(exc))
        except Exception as exc:  # a transport's unmapped error must not lose the round's results
            log.exception("send %s: unexpected error, retried like a network failure", item.seq)
            return self._transient(item, attempts, exc)
        return SendOutcome(item.seq, SENT, attempts, provider_message_id=message_id)

    def _closed(
        self, item: OutboxItem, attempts: int, reason: str, *, provider_said: bool
    ) -> SendOutcome:
        """A free-form send into a closed window: its fallback template, held, or failed."""
        if item.when_closed == FALL_BACK and item.fallback is not None:
            return SendOutcome(
                item.seq,
                PENDING,
                attempts,
                error=reason,
                fall_back=FALL_BACK,
                window_closed=provider_said,
            )
        if item.when_closed == HOLD:
            return SendOutcome(
                item.seq,
                HELD,
                attempts,
                error=reason,
                fall_back=HOLD,
                window_closed=provider_said,
            )
        log.warning("send %s to %s not delivered: %s", item.seq, _mask(item.wa_id), reason)
        return SendOutcome(
            item.seq,
            FAILED,
            attempts,
            error=f"window closed, no fallback: {reason}",
            window_closed=provider_said,
        )

    def _transient(self, item: OutboxItem, attempts: int, exc: Exception) -> SendOutcome:
        if attempts >= self.retry.max_attempts:
            log.error(
                "send %s to %s failed %d times, giving up: %s",
                item.seq,
                _mask(item.wa_id),
                attempts,
                exc,
            )
            return SendOutcome(
                item.seq, FAILED, attempts, error=f"gave up after {attempts} attempts: {exc}"
            )
        delay = self.retry.delay(attempts, self._rng)
        log.info(
            "send %s to %s failed (%s), retrying in %.1fs", item.seq, _mask(item.wa_id), exc, delay
        )
        return SendOutcome(
            item.seq, PENDING, attempts, error=str(exc), next_attempt_at=self.clock.now() + delay
        )


def _mask(wa_id: str) -> str:
    """A phone number fit for logs: the last four digits only."""
    return f"***{wa_id[-4:]}"
