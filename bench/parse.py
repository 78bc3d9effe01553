"""How long one webhook body holds the parser: the worst shapes, at sizes up to the limit.

Run:  .venv/bin/python bench/parse.py [--repeat 5] [--store]

For each shape (many tiny messages, many contacts, many statuses, many entries, messages Meta
could not read with many errors, one long string, deep nesting) and each size up to
`MAX_BODY_BYTES`, it times `parse_body` on the body (the best of `--repeat` runs) and prints
the time per KB, which stays roughly constant when parsing is linear in the body's size, and
the ratio against `orjson.loads` alone on the same body (the floor: decoding it at all).
With `--store` it also times what storing those events would encode on the event loop (each
envelope as JSON, as the SQLite store's inbox does), the part that grows with the events.

Issue 10: a Meta body of 300 messages and 30,000 contacts (120 KB) took 6.4 s when each
message scanned the whole `contacts` list; the `contacts` shape is that body, grown.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botkit.config import MAX_BODY_BYTES
from botkit.web.decoder import LARGE, BodyDecoder
from botkit.wire.events import parse_body

KB = 1024
SIZES = [64 * KB, 128 * KB, 256 * KB, 512 * KB, MAX_BODY_BYTES - 4 * KB]
PHONE_NUMBER_ID = "555123456789"
DEPTH = 56  # as deep as a message's field can be and its body still be read (codec.MAX_DEPTH 64)
DEEP = "@deep@"


def wa_id(n: int) -> str:
    return str(5491100000000 + n)


def message(n: int, sender: str, **content: Any) -> dict[str, Any]:
    part = content or {"type": "text", "text": {"body": "x"}}
    return {"from": sender, "id": f"wamid.{n}", "timestamp": "1779199200", **part}


def status(n: int) -> dict[str, Any]:
    return {
        "id": f"wamid.{n}",
        "status": "read",
        "timestamp": "1779199200",
        "recipient_id": wa_id(n),
    }


def value(**items: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID}
    return {"messaging_product": "whatsapp", "metadata": metadata, **items}


def meta(*values: dict[str, Any]) -> dict[str, Any]:
    changes = [{"field": "messages", "value": v} for v in values]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": changes}]}


def fill(size: int, build: Callable[[int], dict[str, Any]]) -> bytes:
    """The largest body `build(n)` under `size` bytes (n found by bisection)."""
    low, high = 1, 1
    while len(encode(build(high))) <= size:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if len(encode(build(middle))) <= size:
            low = middle
        else:
            high = middle
    return encode(build(low))


def encode(document: dict[str, Any]) -> bytes:
    """JSON, with each `DEEP` placeholder replaced by arrays nested `DEPTH` deep."""
    return orjson.dumps(document).replace(b'"@deep@"', b"[" * DEPTH + b"0" + b"]" * DEPTH)


def tiny_messages(n: int) -> dict[str, Any]:
    """Many minimal messages from one user: the most events per byte."""
    return meta(value(messages=[message(i, wa_id(0)) for i in range(n)]))


def contacts(n: int) -> dict[str, Any]:
    """A contact per message and 99 more, each message's contact last: the old scan's worst."""
    people = [{"profile": {"name": "A"}, "wa_id": wa_id(i)} for i in range(n * 100)]
    messages = [message(i, wa_id(n * 100 - 1 - i)) for i in range(n)]
    return meta(value(contacts=people, messages=messages))


def statuses(n: int) -> dict[str, Any]:
    return meta(value(statuses=[status(i) for i in range(n)]))


def entries(n: int) -> dict[str, Any]:
    """One message per entry: the most paths and change values per byte."""
    entry = [
        {
            "id": str(i),
            "changes": [{"field": "messages", "value": value(messages=[message(i, wa_id(i))])}],
        }
        for i in range(n)
    ]
    return {"object": "whatsapp_business_account", "entry": entry}


def unreadable(n: int) -> dict[str, Any]:
    """Messages Meta could not read, each an `interactive` without its object, with errors."""
    errors = [{"code": 131000, "title": "Something went wrong"}] * 20
    return meta(
        value(messages=[message(i, wa_id(0), type="interactive", errors=errors) for i in range(n)])
    )


def long_string(n: int) -> dict[str, Any]:
    return meta(value(messages=[message(0, wa_id(0), type="text", text={"body": "á" * n})]))


def deep(n: int) -> dict[str, Any]:
    """Messages each carrying a field nested as deep as JSON decoding allows."""
    return meta(
        value(messages=[message(i, wa_id(0), type="reaction", extra=DEEP) for i in range(n)])
    )


def shared_contact(n: int) -> dict[str, Any]:
    """Many tiny messages from one user whose contact is as large as is kept whole: it is
    copied into every message's envelope, the most a body's events cost to store per byte."""
    person = {"profile": {"name": "A" * 440}, "wa_id": wa_id(0)}
    return meta(value(contacts=[person], messages=[message(i, wa_id(0)) for i in range(n)]))


SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "tiny messages": tiny_messages,
    "contacts": contacts,
    "statuses": statuses,
    "entries": entries,
    "unreadable": unreadable,
    "long string": long_string,
    "deep": deep,
    "shared contact": shared_contact,
}


def best(repeat: int, work: Callable[[], object]) -> float:
    """The shortest of `repeat` runs of `work`, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(name: str, body: bytes, repeat: int, store: bool) -> None:
    events = parse_body(body)
    parse = best(repeat, lambda: parse_body(body))
    decode = best(repeat, lambda: orjson.loads(body))
    kb = len(body) / KB
    line = (
        f"{name:14} {kb:7.0f} KB {len(events):6} events  parse {parse * 1e3:8.2f} ms"
        f"  {parse * 1e6 / kb:6.1f} us/KB  x{parse / decode:5.1f} orjson.loads"
    )
    if store:
        encode = best(repeat, lambda: [orjson.dumps(e.envelope).decode() for e in events])
        line += f"  store-encode {encode * 1e3:7.2f} ms"
    print(line, flush=True)


async def held(body: bytes, decoder: BodyDecoder) -> float:
    """The longest the event loop waited while `body` was read as the webhook reads it (a
    body over `LARGE` by the decoder's child process, its rows handed over frame by frame,
    else on the loop): the gaps of a ticker that yields every 0.5 ms."""
    longest = 0.0
    done = False

    async def tick() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.0005)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.002)
    if len(body) > LARGE:  # as the webhook does, around storing them
        await decoder.release(await decoder.rows(body))
    else:
        parse_body(body)
    done = True
    await ticker
    return longest


def loop(repeat: int) -> None:
    """The longest hold of the loop per shape at the size limit (the worst of `repeat` runs),
    with what was imported frozen out of the collector's sight, as `botkit run` does."""
    gc.freeze()
    for name, build in SHAPES.items():
        body = fill(SIZES[-1], build)
        decoder = BodyDecoder()
        try:
            asyncio.run(held(body, decoder))  # (the child's start is not the body's cost)
            worst = max(asyncio.run(held(body, decoder)) for _ in range(repeat))
        finally:
            decoder.close()
        print(f"{name:14} {len(body) / KB:7.0f} KB  event loop held at most {worst * 1e3:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", action="store_true", help="also time encoding for the store")
    parser.add_argument("--loop", action="store_true", help="only the event loop's longest hold")
    args = parser.parse_args()
    if args.loop:
        loop(args.repeat)
        return
    for name, build in SHAPES.items():
        for size in SIZES:
            measure(name, fill(size, build), args.repeat, args.store)
        print()


if __name__ == "__main__":
    main()
