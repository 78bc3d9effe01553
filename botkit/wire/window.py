"""The 24-hour customer-service window: pure functions of (latest inbound, closure seen, now)."""

from __future__ import annotations

WINDOW_SECONDS = 24 * 60 * 60


def closes_at(last_inbound_at: float | None) -> float | None:
    """When the window opened by the latest inbound message closes (None: the user never wrote)."""
    return None if last_inbound_at is None else last_inbound_at + WINDOW_SECONDS


def is_open(last_inbound_at: float | None, closed_at: float | None, now: float) -> bool:
    """Whether a free-form message may be sent now.

    Measured from the inbound message's own timestamp. `closed_at` is when the provider last
    said the window was closed (a 403, or a failed status with code 131047); an inbound
    message after it opens the window again.
    """
    end = closes_at(last_inbound_at)
    if end is None or now >= end:
        return False
    return closed_at is None or last_inbound_at is None or closed_at < last_inbound_at
