"""The stores' clock: leases end and retries come due only when a test moves it."""

from __future__ import annotations

import pytest

from botkit.types import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)
