"""Rate-limit benchmark: 2,000 replies to 2,000 users through a provider that enforces 80/s.

Run:  .venv/bin/python bench/ratelimit.py [--users 2000] [--rate 80] [--pace N] [--replicas 3]

Starts the fake provider in sink mode with `--rate-per-number` (more than that many messages
in any rolling second from one phone_number_id answers 429) and the clinic bot with
`botkit run` against it (default pacing: 80 messages/s a number, 100 requests/s a key, less
botkit's 2 % headroom). After one warm-up round trip (then the sink is reset), posts one
signed "hola" from each user to the bot's webhook; each gets exactly one reply (the service
list). Prints the time from the first webhook to the last reply accepted by the provider and
from the first to the last reply at the provider (target: users / rate, 25 s ± 5 % for 2,000
at 80/s), messages/s, the provider's 429s (target 0) and whether every reply arrived
exactly once.

With `--replicas N`, N `botkit run` processes (each with its worker) share one PostgreSQL
database (BENCH_POSTGRES or the local server; a new database, dropped at the end), the
webhooks go round-robin across them, and the 80/s must hold for the N workers together:
their sends are paced through the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from envelopes import received
from processes import admin, free_port, start, stop, wait_ready, with_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botkit.wire.idempotency import idempotency_key  # noqa: E402
from botkit.wire.signing import sign  # noqa: E402

SECRET = "whsec_bench"
POSTERS = 16  # webhooks in flight at once


def events(users: range) -> list[tuple[str, bytes]]:
    """(event id, body) of one "hola" from each user."""
    made = []
    for user in users:
        event_id = f"evt_rl_{user}"
        part = {"type": "text", "text": {"body": "hola"}}
        envelope = received(user, event_id, f"wamid.rl.{user}", part)
        made.append((event_id, json.dumps(envelope, separators=(",", ":")).encode()))
    return made


async def post_all(ports: list[int], bodies: list[bytes]) -> None:
    """POSTs every event to the bots' webhooks (round-robin), POSTERS at a time; each must be
    acknowledged."""
    queue = list(reversed(list(enumerate(bodies))))
    limits = httpx.Limits(max_connections=POSTERS)
    async with httpx.AsyncClient(limits=limits) as client:

        async def poster() -> None:
            while queue:
                n, body = queue.pop()
                headers = {
                    "Content-Type": "application/json",
                    "X-GoSendAPI-Signature": sign(SECRET, body),
                }
                url = f"http://127.0.0.1:{ports[n % len(ports)]}/webhook"
                response = await client.post(url, content=body, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"the webhook answered {response.status_code}")

        await asyncio.gather(*(poster() for _ in range(POSTERS)))


def wait_replies(sink: str, count: int, timeout: float) -> float:
    """Polls the sink until it has accepted `count` messages; returns when it saw them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{sink}/_fake/stats", timeout=10).json()["messages"] >= count:
            return time.monotonic()
        time.sleep(0.01)
    raise SystemExit(f"fewer than {count} replies reached the provider in {timeout:.0f}s")


def wait_drained(bot: str, timeout: float = 30.0) -> None:
    """Waits until the bot has recorded every send (no 429 retry still pending)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = httpx.get(f"{bot}/healthz", timeout=10).json()["pending"]
        if pending["events"] == 0 and pending["sends"] == 0:
            return
        time.sleep(0.05)
    raise SystemExit("the bot did not drain its backlog in time")


def warm_up(ports: list[int], sink: str, bot: str, user: int) -> None:
    """A round trip through each replica before the clock starts (connections, caches), then
    a clean sink."""
    made = events(range(user, user + len(ports)))
    asyncio.run(post_all(ports, [body for _, body in made]))
    wait_replies(sink, len(ports), timeout=30)
    wait_drained(bot)
    httpx.post(f"{sink}/_fake/reset", timeout=10)


def run(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    sink_port = free_port()
    ports = [free_port() for _ in range(args.replicas)]
    sink_url, bot_url = f"http://127.0.0.1:{sink_port}", f"http://127.0.0.1:{ports[0]}"
    log = folder / "servers.log"
    cli = [sys.executable, "-m", "botkit.tools.cli"]
    sink = start(
        [
            sys.executable,
            str(ROOT / "bench" / "sink.py"),
            "--port",
            str(sink_port),
            "--rate-per-number",
            str(args.rate),
        ],
        {},
        log,
    )
    database = str(folder / "bench.db")
    pg_name = None
    if args.replicas > 1:
        pg_name = f"botkit_bench_rl_{os.getpid()}"
        admin(f"DROP DATABASE IF EXISTS {pg_name}", f"CREATE DATABASE {pg_name}")
        database = with_database(pg_name)
    bot_env = {
        "GOSENDAPI_API_KEY": "gsk_test_bench",
        "GOSENDAPI_BASE_URL": f"{sink_url}/v1",
        "GOSENDAPI_WEBHOOK_SECRET": SECRET,
        "BOTKIT_DATABASE": database,
    }
    if args.pace is not None:  # unset: the bot paces at its default, the standard tier
        bot_env["BOTKIT_RATE_PER_NUMBER"] = args.pace
    bots = [
        start(
            [*cli, "run", "bots.clinic", "--port", str(port), "--log-level", "warning"],
            bot_env,
            log,
        )
        for port in ports
    ]
    made = events(range(args.users))
    try:
        wait_ready(f"{sink_url}/_fake/stats")
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=60)
        warm_up(ports, sink_url, bot_url, args.users)
        started = time.monotonic()
        asyncio.run(post_all(ports, [body for _, body in made]))
        acknowledged = time.monotonic()
        finished = wait_replies(sink_url, args.users, timeout=args.users / args.rate * 3 + 30)
        wait_drained(bot_url)
        stats = httpx.get(f"{sink_url}/_fake/stats", timeout=30).json()
        keys = httpx.get(f"{sink_url}/_fake/keys", timeout=30).json()["keys"]
    except SystemExit:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        for bot in bots:
            stop(bot)
        stop(sink)
        if pg_name:
            admin(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
    expected = {idempotency_key(event_id, 0) for event_id, _ in made}
    return {
        "users": args.users,
        "rate": args.rate,
        "replicas": args.replicas,
        "seconds": finished - started,
        "acknowledged_s": acknowledged - started,
        "provider_span_s": stats["last_message_at"] - stats["first_message_at"],
        "rate_limited": stats["rate_limited"],
        "requests": stats["requests"],
        "messages": stats["messages"],
        "distinct_keys": len(keys),
        "keys_twice": sum(1 for count in keys.values() if count > 1),
        "missing": len(expected - keys.keys()),
        "unexpected": len(keys.keys() - expected),
    }


def report(result: dict[str, object]) -> None:
    users, rate = int(result["users"]), float(result["rate"])  # type: ignore[call-overload, arg-type]
    seconds, span = float(result["seconds"]), float(result["provider_span_s"])  # type: ignore[arg-type]
    target = users / rate
    once = (
        result["distinct_keys"] == users
        and result["keys_twice"] == 0
        and result["missing"] == 0
        and result["unexpected"] == 0
    )
    replicas = int(result["replicas"])  # type: ignore[call-overload]
    where = f"{replicas} replicas on PostgreSQL" if replicas > 1 else "one process on SQLite"
    print(
        f"{users} replies to {users} users ({where}); the provider answers 429 past "
        f"{rate:g}/s a number"
    )
    print(
        f"total time        : {seconds:6.2f} s  first webhook -> last reply accepted "
        f"(target {target:.2f} s ± 5 %: {_within(seconds, target)}); "
        f"webhooks acknowledged in {float(result['acknowledged_s']):.2f} s"  # type: ignore[arg-type]
    )
    print(
        f"at the provider   : {span:6.2f} s  first -> last reply accepted "
        f"({_within(span, target)}); {(users - 1) / span:.1f} messages/s accepted"
    )
    print(f"throughput        : {users / seconds:6.1f} messages/s end to end")
    print(f"429s answered     : {result['rate_limited']}  (target 0)")
    print(
        f"exactly once      : {once}  (distinct keys {result['distinct_keys']} of {users}, "
        f"received twice {result['keys_twice']}, missing {result['missing']}, "
        f"unexpected {result['unexpected']}; requests {result['requests']})"
    )
    print("BENCH_JSON " + json.dumps(result))


def _within(seconds: float, target: float) -> str:
    return "yes" if abs(seconds - target) <= 0.05 * target else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=80, help="the provider's limit per number")
    parser.add_argument(
        "--pace",
        default=None,
        help="BOTKIT_RATE_PER_NUMBER for the bot (default: unset, botkit's 80; 0: no pacing)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="botkit run processes (more than 1: on one PostgreSQL database)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="botkit-bench-") as tmp:
        result = run(args, Path(tmp))
    report(result)


if __name__ == "__main__":
    main()
