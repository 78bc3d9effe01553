"""The 24-hour customer-service window: one value, merged from every source, asked by everyone.

WhatsApp lets a business send free-form messages only within 24 hours of the user's latest
message. botkit learns about a user's window from three sources, and keeps each in the clock
domain it comes from, never comparing one machine's clock with another's:

- **inbound messages** (provider clock): the message's own `timestamp` opens the window for
  24 hours; a late or redelivered older message never moves it back;
- **refusals** (arrival order): a 403 on a free-form send, or a `failed` status with code
  131047, says the window is closed. A refusal is recorded as a position in the user's lane
  (the per-user sequence numbers the store gives events as they arrive), not as a time: any
  inbound message stored after it reopens the window, whatever its timestamp says;
- **time passing** (this machine's clock against the provider's timestamp): the window ends
  24 hours after the latest inbound message. Clocks that differ by seconds matter little
  against 24 hours, and the provider's 403 has the last word.

`Window` is a value of three fields that only grow, so merging two views of it is a fieldwise
maximum: a commit that started before a closure can never erase it, whatever order writers
commit in. The store keeps it in that form; the context, the outbox, the dev server and the
chat all ask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

WINDOW_SECONDS = 24 * 60 * 60
WINDOW_CLOSED_CODE = 131047  # Meta: "Re-engagement message": sent outside the 24-hour window

_N = TypeVar("_N", int, float)


@dataclass(frozen=True, slots=True)
class Window:
    """What botkit knows of one user's window (per business number); see the module docstring.

    `last_inbound_at`: the latest inbound message's own timestamp (None: the user never wrote).
    `inbound_seq`: the lane position of the latest inbound message applied.
    `closed_seq`: the lane position as of which the provider last refused (None: never).
    """

    last_inbound_at: float | None = None
    inbound_seq: int = 0
    closed_seq: int | None = None

    @property
    def closes_at(self) -> float | None:
        """When the window opened by the latest inbound message ends (None: never opened).

        The provider may have closed it earlier: see `refused`.
        """
        return None if self.last_inbound_at is None else self.last_inbound_at + WINDOW_SECONDS

    @property
    def refused(self) -> bool:
        """Whether the provider refused since the user's latest message (until they write)."""
        return self.closed_seq is not None and self.closed_seq >= self.inbound_seq

    def is_open(self, now: float) -> bool:
        """Whether a free-form message may be sent at `now` (this machine's clock)."""
        end = self.closes_at
        return end is not None and now < end and not self.refused

    def with_inbound(self, seq: int, sent_at: float) -> Window:
        """After an inbound message at lane position `seq`, sent at `sent_at` (provider clock)."""
        last = sent_at if self.last_inbound_at is None else max(self.last_inbound_at, sent_at)
        return Window(last, max(self.inbound_seq, seq), self.closed_seq)

    def with_refusal(self, seq: int) -> Window:
        """After a refusal recorded when the lane's latest stored event was at position `seq`."""
        closed = seq if self.closed_seq is None else max(self.closed_seq, seq)
        return Window(self.last_inbound_at, self.inbound_seq, closed)

    def with_failed_status(self, seq: int, failed_at: float) -> Window:
        """After a `failed` status with code 131047, stored at lane position `seq`.

        The failure and the user's messages carry the provider's own timestamps (one clock): a
        user who wrote after the failure has reopened the window, even if that message reached
        the bot before the status did. Timestamps are whole seconds: within the same second,
        arrival order decides (the status came after the user's message).
        """
        if self.last_inbound_at is not None and self.last_inbound_at > failed_at:
            return self
        return self.with_refusal(seq)

    def merge(self, other: Window) -> Window:
        """Both views together: each field's maximum (the order of merging never matters)."""
        last = _max(self.last_inbound_at, other.last_inbound_at)
        closed = _max(self.closed_seq, other.closed_seq)
        return Window(last, max(self.inbound_seq, other.inbound_seq), closed)


def _max(a: _N | None, b: _N | None) -> _N | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


__all__ = ["WINDOW_CLOSED_CODE", "WINDOW_SECONDS", "Window"]
