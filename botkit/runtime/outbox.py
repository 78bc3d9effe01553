"""The outbox: delivers what handlers sent, each user's messages in order, users at once.

Each claimed lane's sends go out one after another and are recorded as soon as the lane is
done, so a slow send (or upload) delays its own user only. A send that must wait (a retry, a
429) holds back the user's later sends; a free-form send into a closed window becomes its
fallback template, waits held until the user writes, or fails, as its handler declared.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from botkit.exceptions import (
    MediaError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from botkit.logsafe import Phone
from botkit.metrics import Metrics
from botkit.provider.media import DEFAULT_MAX_AGE, MediaUploads, Resolved
from botkit.provider.sender import Exchange, Sender
from botkit.runtime.forward import Forwarder
from botkit.runtime.lanes import LaneService, LaneWorker
from botkit.runtime.report import log_send
from botkit.runtime.traced import send_attributes, send_outcome
from botkit.store.base import (
    FAILED,
    FALL_BACK,
    HELD,
    HOLD,
    PENDING,
    SENT,
    OutboxItem,
    OutboxLane,
    SendLaneOutcome,
    SendOutcome,
    Store,
)
from botkit.tracing import Tracing
from botkit.types import Clock
from botkit.wire.handoff import FORWARD_TYPE
from botkit.wire.idempotency import with_media

log = logging.getLogger(__name__)

# What the provider answers a send whose media id it no longer has (the contract does not say
# which; these are the ones that can mean it). Such a send uploads the file again, once.
MEDIA_GONE_STATUSES = frozenset({400, 404, 410, 422})


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


class Outbox(LaneService[OutboxLane, SendLaneOutcome]):
    """The outbox's lane worker: claims users with due sends and delivers them in order."""

    def __init__(
        self,
        store: Store,
        sender: Sender,
        clock: Clock,
        *,
        capacity: int = 512,
        batch: int = 256,
        lease: float = 60.0,
        poll: float = 1.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        media_max_age: float = DEFAULT_MAX_AGE,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        forwarder: Forwarder | None = None,
    ) -> None:
        self.store = store
        self.forwarder = forwarder  # the people's webhook (None: forwarded rows are kept only)
        self.metrics = metrics or Metrics.off()
        self.tracing = tracing  # None: no spans (botkit.tracing)
        self.sender = sender
        self.media = MediaUploads(store.media, sender, max_age=media_max_age)
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self.worker: LaneWorker[OutboxLane, SendLaneOutcome] = LaneWorker(
            "botkit-outbox",
            store.outbox,
            self.deliver,
            self.commit,
            capacity=capacity,
            batch=batch,
            lease=lease,
            poll=poll,
        )

    async def run_once(self) -> int:
        """One claim, its lanes run to the end (tests, scripts); returns how many sends it took."""
        return sum(len(lane.sends) for lane in await self.worker.run_once())

    async def deliver(self, lane: OutboxLane) -> SendLaneOutcome:
        """Sends a lane's claimed messages in order; what happened to each, to record.

        It stops at the first send that must wait for a retry, falls back or is held (the
        rest keep their turn behind it), and at the first the provider refused for the closed
        window (the rest are claimed again with the window as then stored).
        """
        results: list[SendOutcome] = []
        for item in lane.sends:
            if self.tracing is None:
                outcome = await self._deliver(lane, item, Exchange())
            else:
                outcome = await self._traced(self.tracing, lane, item)
            self.metrics.send(item.type, _outcome(item, outcome))
            results.append(outcome)
            if outcome.status == PENDING or outcome.fall_back or outcome.window_closed:
                break
        return SendLaneOutcome(
            lane.phone_number_id, lane.wa_id, lane.token, tuple(results), lane.position
        )

    async def commit(self, lane: OutboxLane, outcome: SendLaneOutcome) -> None:
        """Records a lane's results (and frees the lane)."""
        [written] = await self.store.outbox.record([outcome])
        if not written:
            log.warning(
                "user %s: the outbox claim ended before its results were recorded; the sends "
                "go again under the same idempotency keys",
                Phone(lane.wa_id),
            )

    async def _traced(self, tracing: Tracing, lane: OutboxLane, item: OutboxItem) -> SendOutcome:
        """`_deliver` in a span of its own, the child of the turn that queued the send."""
        exchange = Exchange()
        with tracing.send(item.trace, send_attributes(lane, item)) as span:
            outcome = await self._deliver(lane, item, exchange)
            span.ended(send_outcome(outcome, exchange), outcome.status == FAILED)
        return outcome

    async def _deliver(self, lane: OutboxLane, item: OutboxItem, exchange: Exchange) -> SendOutcome:
        if item.type == FORWARD_TYPE:
            return await self._forward(lane, item)
        attempts = item.attempts + 1
        free_form = item.type != "template"
        # A first attempt asks the window; a retry does not: an earlier attempt may have gone
        # out, and only the same request under the same key is sure not to go out twice (the
        # provider's 403 has the last word if the window closed meanwhile).
        if free_form and item.attempts == 0 and not lane.window.is_open(self.clock.now()):
            return self._closed(lane, item, item.attempts, "the 24-hour window is closed", None)
        media: list[str | None] = [item.media_id]
        try:
            message_id = await self._send(lane, item, media, exchange)
        except RateLimitedError as exc:
            # A 429 is the provider pacing us, not a failure of this message: it does not count.
            self.metrics.retry("429")
            retry_in = exc.retry_after or 1.0
            log_send(log, lane, item, PENDING, exchange=exchange, error=exc, retry_in=retry_in)
            return SendOutcome(
                item.seq, PENDING, item.attempts, error=str(exc), retry_in=retry_in,
                media_id=media[0],
            )  # fmt: skip
        except TransientProviderError as exc:
            return self._transient(lane, item, attempts, exc, media[0], exchange)
        except PermanentProviderError as exc:
            if exc.status == 403 and free_form:  # the provider has the last word on the window
                return self._closed(lane, item, attempts, exc, exchange)
            log_send(log, lane, item, FAILED, exchange=exchange, error=exc, level=logging.WARNING)
            return SendOutcome(item.seq, FAILED, attempts, error=str(exc), media_id=media[0])
        except MediaError as exc:
            log_send(log, lane, item, FAILED, exchange=exchange, error=exc, level=logging.WARNING)
            return SendOutcome(item.seq, FAILED, attempts, error=str(exc))
        except Exception as exc:  # a transport's unmapped error must not lose the lane's results
            return self._transient(lane, item, attempts, exc, media[0], exchange, unexpected=True)
        log_send(log, lane, item, SENT, exchange=exchange, message_id=message_id)
        return SendOutcome(
            item.seq, SENT, attempts, provider_message_id=message_id, media_id=media[0]
        )

    async def _forward(self, lane: OutboxLane, item: OutboxItem) -> SendOutcome:
        """A handed-off user's message, to the people's webhook: no window, no rate limit;
        retried as a send is. With no BOTKIT_HANDOFF_URL it is only kept (the handoff API
        lists it), and counts as sent."""
        attempts = item.attempts + 1
        if self.forwarder is None:
            log_send(log, lane, item, SENT, error="no BOTKIT_HANDOFF_URL: kept for the API")
            return SendOutcome(item.seq, SENT, attempts)
        exchange = Exchange()
        try:
            await self.forwarder.post(item, exchange)
        except TransientProviderError as exc:
            return self._transient(lane, item, attempts, exc, None, exchange)
        except PermanentProviderError as exc:
            log_send(log, lane, item, FAILED, exchange=exchange, error=exc, level=logging.WARNING)
            return SendOutcome(item.seq, FAILED, attempts, error=str(exc))
        except Exception as exc:  # a transport's unmapped error must not lose the lane's results
            return self._transient(lane, item, attempts, exc, None, exchange, unexpected=True)
        log_send(log, lane, item, SENT, exchange=exchange)
        return SendOutcome(item.seq, SENT, attempts)

    async def _send(
        self, lane: OutboxLane, item: OutboxItem, media: list[str | None], exchange: Exchange
    ) -> str | None:
        """Sends `item` (with the media an earlier attempt used, if any); a refusal that can
        mean "that media id is gone" uploads the file again, once. `media[0]` is left naming
        the media id the last request carried."""
        pnid = lane.phone_number_id
        if media[0] is not None:
            resolved = self.media.with_id(item.payload, media[0])
        else:
            resolved = await self.media.resolve(pnid, item.payload)
        media[0] = resolved.media_id
        try:
            return await self._post(lane, item, resolved, exchange)
        except PermanentProviderError as exc:
            if resolved.media_id is None or exc.status not in MEDIA_GONE_STATUSES:
                raise
            log.warning(
                "send %s: the provider refused media %s (%s); uploading the file again",
                item.seq,
                resolved.media_id,
                exc,
            )
        again = await self.media.upload_again(pnid, item.payload, resolved.media_id)
        media[0] = again.media_id
        return await self._post(lane, item, again, exchange)

    async def _post(
        self, lane: OutboxLane, item: OutboxItem, resolved: Resolved, exchange: Exchange
    ) -> str | None:
        key = item.idempotency_key
        if resolved.media_id is not None:
            key = with_media(key, resolved.media_id)
        return await self.sender.send(
            phone_number_id=lane.phone_number_id,
            to=lane.wa_id,
            type=item.type,
            payload=resolved.payload,
            idempotency_key=key,
            exchange=exchange,
        )

    def _closed(
        self,
        lane: OutboxLane,
        item: OutboxItem,
        attempts: int,
        refusal: PermanentProviderError | str,
        exchange: Exchange | None,
    ) -> SendOutcome:
        """A free-form send into a closed window (`refusal`: the provider's 403, or why it
        was not sent): its fallback template, held, or failed."""
        reason, provider_said = str(refusal), exchange is not None
        if item.when_closed == FALL_BACK and item.fallback is not None:
            self.metrics.fallback("403" if provider_said else "closed_window")
            log_send(log, lane, item, PENDING, exchange=exchange, error=refusal, fallback=FALL_BACK)
            return SendOutcome(
                item.seq, PENDING, attempts, error=reason, fall_back=FALL_BACK,
                window_closed=provider_said,
            )  # fmt: skip
        if item.when_closed == HOLD:
            log_send(log, lane, item, HELD, exchange=exchange, error=refusal)
            return SendOutcome(
                item.seq, HELD, attempts, error=reason, fall_back=HOLD, window_closed=provider_said
            )
        log_send(log, lane, item, FAILED, exchange=exchange, error=refusal, level=logging.WARNING)
        return SendOutcome(
            item.seq,
            FAILED,
            attempts,
            error=f"window closed, no fallback: {reason}",
            window_closed=provider_said,
        )

    def _transient(
        self,
        lane: OutboxLane,
        item: OutboxItem,
        attempts: int,
        exc: Exception,
        media: str | None,
        exchange: Exchange,
        *,
        unexpected: bool = False,
    ) -> SendOutcome:
        """A 5xx, a network failure, or an error nothing expected (logged with its traceback):
        retried after a backoff, until the policy gives up."""
        if attempts >= self.retry.max_attempts:
            log_send(log, lane, item, FAILED, exchange=exchange, error=exc, level=logging.ERROR,
                     traceback=unexpected)  # fmt: skip
            return SendOutcome(
                item.seq, FAILED, attempts, error=f"gave up after {attempts} attempts: {exc}"
            )
        delay = self.retry.delay(attempts, self._rng)
        # a status is the provider's answer (5xx); without one, the request never got one
        self.metrics.retry("5xx" if getattr(exc, "status", None) else "network")
        level = logging.ERROR if unexpected else logging.WARNING
        log_send(log, lane, item, PENDING, exchange=exchange, error=exc, retry_in=delay,
                 level=level, traceback=unexpected)  # fmt: skip
        return SendOutcome(
            item.seq, PENDING, attempts, error=str(exc), retry_in=delay, media_id=media
        )


def _outcome(item: OutboxItem, outcome: SendOutcome) -> str:
    """A send attempt's outcome, as botkit_sends_total labels it."""
    if outcome.status != PENDING:
        return outcome.status  # sent, failed, held
    if outcome.fall_back == FALL_BACK:
        return "fallback"
    # a 5xx or network failure counts an attempt; a 429 does not (the provider pacing us)
    return "retry" if outcome.attempts > item.attempts else "rate_limited"


__all__ = ["Outbox", "RetryPolicy"]
