"""Leaf module: the aliases and Protocols every other botkit module speaks in."""

from __future__ import annotations

import time
from typing import Protocol, TypeAlias, runtime_checkable

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
JSONObject: TypeAlias = "dict[str, JSON]"


@runtime_checkable
class Clock(Protocol):
    """Tells the time as Unix seconds; injected so that tests can move time by hand."""

    def now(self) -> float:
        """The current time, in seconds since the epoch."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now(self) -> float:
        """The current time, in seconds since the epoch."""
        return time.time()


class ManualClock:
    """A clock that only moves when told to: for tests and the simulator."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 1_779_199_200.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """The current time, in seconds since the epoch."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Moves the clock forward; time never runs backwards."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back in time (advance by {seconds} s)")
        self._now += seconds

    def set(self, when: float) -> None:
        """Jumps to an absolute time not earlier than now."""
        self.advance(when - self._now)
