"""A turn's cost without the store: `take_turn` on the clinic flow, in microseconds per event.

Run:  .venv/bin/python bench/turn.py [--users 3000] [--repeat 5] [--profile]

Each of `--users` users goes through the clinic's three steps (text, list row, button), one
event per turn, each turn resuming the session the previous one left, as the dispatcher does
with a store that answers at once. Prints the best of `--repeat` runs (the machine's noise
only slows a run down); `--profile` prints cProfile's 30 costliest functions of one run
instead. The worker's processing path minus the store and the sends: what the per-event
overheads of parsing, routing, transitions and building request bodies add up to.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envelopes import CLINIC_FLOW, PHONE_NUMBER_ID, received, wa_id_of

import bots.clinic
from botkit.runtime.turn import take_turn
from botkit.store.base import InboxItem, InboxLane, Session
from botkit.wire.window import Window


async def run(users: int) -> tuple[int, float]:
    """(events, seconds) for `users` users through the flow."""
    conversation = bots.clinic.bot.conversation()
    sessions: dict[str, Session] = {}
    now, count = time.time(), 0
    items = [
        [
            received(user, f"evt_{step}_{user}", f"wamid.{step}.{user}", part)
            for user in range(users)
        ]
        for step, part in enumerate(CLINIC_FLOW)
    ]
    started = time.perf_counter()
    for step, envelopes in enumerate(items):
        for user, envelope in enumerate(envelopes):
            wa_id = wa_id_of(user)
            item = InboxItem(
                count, step + 1, envelope["id"], "message", PHONE_NUMBER_ID, wa_id, envelope
            )
            lane = InboxLane(PHONE_NUMBER_ID, wa_id, "t", (item,), sessions.get(wa_id), Window(), 1)
            turn = await take_turn(conversation, lane, now)
            if turn.outcome.results[0].status != "done":
                raise SystemExit(f"event {envelope['id']}: {turn.outcome.results[0]}")
            if turn.outcome.session is not None:
                sessions[wa_id] = turn.outcome.session
            count += 1
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(run(args.users))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    runs = [asyncio.run(run(args.users)) for _ in range(args.repeat)]
    count = runs[0][0]
    times = sorted(seconds / count * 1e6 for _, seconds in runs)
    print(
        f"take_turn: {times[0]:.0f} us per event (best of {args.repeat}; range "
        f"{times[0]:.0f}-{times[-1]:.0f}), {count} events of {args.users} users"
    )


if __name__ == "__main__":
    main()
