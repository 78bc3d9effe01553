"""What botkit's metrics cost per event, measured on their own: the calls one acknowledged webhook
and one processed event make (botkit.metrics.Metrics), in process memory, in the multiprocess
directory of `botkit run`, and off.

Run:  .venv/bin/python bench/metrics_cost.py [--calls 200000]

bench/webhook.py --metrics-overhead measures the same end to end, with all the noise of a
shared machine; this one says how much of a core the metrics take at a given rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botkit.metrics import Metrics, multiprocess


def acknowledged(metrics: Metrics) -> None:
    """What POST /webhook does for a request of one new event."""
    metrics.webhook("accepted", 0.0012, 1, 0)


def processed(metrics: Metrics) -> None:
    """What the dispatcher and the outbox do for one event with one reply."""
    metrics.turn("Clinic", "choosing", 0.0004)
    metrics.event("message", "done")
    metrics.send("interactive", "sent")
    metrics.send_seconds(0.003)


def per_call(metrics: Metrics, work: object, calls: int) -> float:
    """Microseconds per call of `work(metrics)`, best of three."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            work(metrics)  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    modes = [("off", Metrics.off), ("in memory", Metrics)]
    results = [(name, make()) for name, make in modes]
    with multiprocess():
        results.append(("multiprocess", Metrics()))
        for name, metrics in results:
            ack = per_call(metrics, acknowledged, args.calls)
            done = per_call(metrics, processed, args.calls)
            print(
                f"{name:<13}: {ack:5.2f} µs per acknowledged webhook, "
                f"{done:5.2f} µs per processed event"
            )


if __name__ == "__main__":
    main()
