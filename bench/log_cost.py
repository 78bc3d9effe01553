"""What the workers' two log lines cost per event (a `turn` line and a `send` line), measured on
their own: off (level WARNING), through a LogRecord and the handler chain (a host's handler, as
under pytest), and straight into botkit's own batching handler (`logsafe.direct`), text and JSON.

Run:  .venv/bin/python bench/log_cost.py [--events 100000]

bench/webhook.py --metrics-overhead --with-logs measures the same end to end.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botkit import logsafe
from botkit.provider.sender import Exchange
from botkit.runtime.report import log_send, log_turn
from botkit.runtime.turn import EventReport, Turn
from botkit.store.base import SENT, InboxLane, LaneOutcome, OutboxItem, OutboxLane
from botkit.wire.window import Window

NUMBER, USER = "555123456789", "5491140123456"
LANE = InboxLane(NUMBER, USER, "token", (), None, Window(), 1)
REPORT = EventReport(
    "evt_3f2a9c1d0b7e4a66b1c2d3e4f5a6b7c8", "message", "choosing", "confirming", "choose",
    ("interactive",), ("bk1_4cf779be4406bfd7ca42d8b3f81b7ebee0c25429",), 0.00081, "done",
    None, "wamid.in.abdd3a0a84c044adb0b4b23eb90015a2", None,
)  # fmt: skip
TURN = Turn(LaneOutcome(NUMBER, USER, "token", (), None, Window()), {}, (REPORT,))
SENDS = OutboxLane(NUMBER, USER, "token", (), Window(), 0)
ITEM = OutboxItem(7, REPORT.keys[0], "interactive", {}, 0, cause=REPORT.event_id)


def event(turns: logging.Logger, sends: logging.Logger) -> None:
    """The lines of one processed event with one reply."""
    log_turn(turns, "Clinic", LANE, TURN)
    exchange = Exchange()
    exchange.status, exchange.latency = 200, 0.0007
    log_send(sends, SENDS, ITEM, SENT, exchange=exchange, message_id="wamid.out.4bd839b06b61")


def per_event(events: int) -> float:
    """Microseconds per event, best of three."""
    turns, sends = logging.getLogger("botkit.runtime.dispatch"), logging.getLogger("botkit.x")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(events):
            event(turns, sends)
        best = min(best, time.perf_counter() - started)
    return best / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    root = logging.getLogger()
    with open(os.devnull, "w") as sink:
        for name, form, level, host in (
            ("off (warning)", logsafe.JSON, "warning", False),
            ("json, a LogRecord", logsafe.JSON, "info", True),
            ("json, direct", logsafe.JSON, "info", False),
            ("text, a LogRecord", logsafe.TEXT, "info", True),
            ("text, direct", logsafe.TEXT, "info", False),
        ):
            root.handlers[:] = []
            if host:  # a handler already there: the record path, as under pytest
                root.addHandler(logging.NullHandler())
            made = logsafe.configure(level, format=form, stream=sink)
            if host:  # basicConfig left the root alone: as a host would, at the level
                root.addHandler(made)
                root.setLevel(level.upper())
            micros = per_event(args.events)
            made.close()
            print(f"{name:<18}: {micros:6.2f} µs per event (a turn line and a send line)")


if __name__ == "__main__":
    main()
