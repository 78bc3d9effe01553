"""The dispatcher: each claimed user's turn, taken and committed on its own (see turn.py).

One user's events run one at a time and in order; different users run at once, each lane
committing as soon as its turn is taken, so a slow handler delays its own user only. Once a
turn is committed, each of its events gets its log line (botkit.runtime.report).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from botkit import codec
from botkit.conversation.dsl import Conversation, ConversationSpec
from botkit.logsafe import Phone
from botkit.metrics import Metrics
from botkit.runtime.lanes import LaneService, LaneWorker
from botkit.runtime.report import log_turn
from botkit.runtime.traced import traced_turn
from botkit.runtime.turn import HANDLER_TIMEOUT, Turn, take_turn
from botkit.store.base import InboxLane, Store
from botkit.tracing import Tracing
from botkit.types import Clock

log = logging.getLogger(__name__)


class Dispatcher(LaneService[InboxLane, Turn]):
    """The inbox's lane worker: claims users with events, takes their turns, commits each."""

    def __init__(
        self,
        store: Store,
        conversation: Conversation,
        clock: Clock,
        *,
        capacity: int = 512,
        batch: int = 256,
        lease: float = 60.0,
        poll: float = 1.0,
        handler_timeout: float = HANDLER_TIMEOUT,
        on_error: Callable[[str, BaseException], None] | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics.off()
        self.tracing = tracing  # None: no spans (botkit.tracing)
        self.conversation = conversation
        self.name = type(conversation).spec.name
        self.clock = clock
        self.handler_timeout = handler_timeout
        self._on_error = on_error
        self.worker: LaneWorker[InboxLane, Turn] = LaneWorker(
            "botkit-dispatch",
            store.inbox,
            self.take,
            self.commit,
            capacity=capacity,
            batch=batch,
            lease=lease,
            poll=poll,
        )

    async def take(self, lane: InboxLane) -> Turn:
        """Takes one user's turn (handlers run; nothing is written yet); with traces on, its
        spans are recorded and its sends carry them."""
        started = time.perf_counter()
        wall = time.time_ns() if self.tracing is not None else 0
        turn = await take_turn(
            self.conversation, lane, self.clock.now(), handler_timeout=self.handler_timeout
        )
        spec = type(self.conversation).spec
        self.metrics.turn(spec.name, _state(spec, lane), time.perf_counter() - started)
        if self.tracing is not None:
            turn = traced_turn(self.tracing, self.name, lane, turn, wall)
        return turn

    async def commit(self, lane: InboxLane, turn: Turn) -> None:
        """Commits a turn, then logs it and reports the handlers' errors (the simulator
        raises them)."""
        [written] = await self.store.inbox.complete([turn.outcome])
        if not written:
            log.warning(
                "user %s: the claim ended before the turn was committed; it runs again",
                Phone(lane.wa_id),
            )
            return
        log_turn(log, self.name, lane, turn)
        self._count(lane, turn)
        if self._on_error is not None:
            for event_id, error in turn.errors.items():
                self._on_error(event_id, error)

    def _count(self, lane: InboxLane, turn: Turn) -> None:
        """The committed turn's events, handler errors and delivery statuses, in the metrics."""
        metrics, outcome = self.metrics, turn.outcome
        kinds = {item.seq: item.kind for item in lane.events}
        for result in outcome.results:
            metrics.event(kinds.get(result.seq, "other"), result.status)
        name = type(self.conversation).spec.name
        for handler in turn.failed_handlers:
            metrics.handler_error(name, handler)
        for status in outcome.statuses:
            metrics.delivery_status(status.status, _first_code(status.errors))
        for _ in outcome.refused:
            metrics.window_refusal()
        for send in outcome.sends:
            if send.instead_of is not None:  # the handler sent into a window known closed
                metrics.fallback("closed_window")


def _state(spec: ConversationSpec, lane: InboxLane) -> str:
    """The state a lane's turn starts in, as turn.py resumes it (a label: always a declared one)."""
    session = lane.session
    if session is None or session.conversation != spec.name or session.state not in spec.states:
        return spec.initial
    return session.state


def _first_code(errors: str | None) -> str | None:
    """The first error code of a stored status's errors (JSON), as text."""
    if errors is None:
        return None
    try:
        found = codec.loads(errors)
    except codec.DecodeError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], dict):
        code = found[0].get("code")
        return None if code is None else str(code)
    return None


__all__ = ["Dispatcher"]
