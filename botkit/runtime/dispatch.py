"""The dispatcher: each claimed user's turn, taken and committed on its own (see turn.py).

One user's events run one at a time and in order; different users run at once, each lane
committing as soon as its turn is taken, so a slow handler delays its own user only. Once a
turn is committed, each of its events gets its log line (botkit.runtime.report).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from botkit.conversation.dsl import Conversation
from botkit.logsafe import Phone
from botkit.runtime.lanes import LaneService, LaneWorker
from botkit.runtime.report import log_turn
from botkit.runtime.turn import HANDLER_TIMEOUT, Turn, take_turn
from botkit.store.base import InboxLane, Store
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
    ) -> None:
        self.store = store
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
        """Takes one user's turn (handlers run; nothing is written yet)."""
        return await take_turn(
            self.conversation, lane, self.clock.now(), handler_timeout=self.handler_timeout
        )

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
        if self._on_error is not None:
            for event_id, error in turn.errors.items():
                self._on_error(event_id, error)


__all__ = ["Dispatcher"]
