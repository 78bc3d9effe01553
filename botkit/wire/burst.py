"""A burst of texts being gathered for one turn: where a session keeps it (`BURST_KEY`), and
the name of the timer that ends it.

In a conversation with `coalesce`, a user's consecutive texts are kept in the session's data
(out of the handlers' sight, as the handoff mark and the latest prompt are) until the
interval passes without another one; then a text handler gets them as one input
(botkit.runtime.burst).
"""

from __future__ import annotations

from botkit.wire.timer import stored_name

BURST_KEY = "botkit.burst"  # where a session's data keeps the texts gathered so far
BURST = "burst"  # the kind of the timer that ends a burst
BURST_TIMER = stored_name(BURST, "texts")  # its stored name: burst:texts

__all__ = ["BURST", "BURST_KEY", "BURST_TIMER"]
