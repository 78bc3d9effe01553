"""Webhook benchmark: (a) bare Starlette verify+parse vs (b) the clinic bot with its durable inbox.

Run:  .venv/bin/python bench/webhook.py [--duration 10] [--connections 32] [--stores sqlite,pg1,pg3]

Loads both with wrk (installed with apt-get when missing) replaying pre-signed events of
users cycling text -> list row -> button, then prints acknowledged events/s and p50/p99
acknowledgement latency for both, the ratio b/a, and for (b) the fully processed events/s
(replies recorded by the benchmarks' sink) and whether every event got exactly its reply; then
the isolation line of bench/isolation.py (reply latency with and without one handler sleeping 5 s).

`--stores` runs (b) on each store named, side by side in one run: `sqlite` (one `botkit run`,
its web process and worker child on a SQLite file), `pg1` (the same on a PostgreSQL database,
BENCH_POSTGRES or the local server) and `pg3` (three `botkit run` replicas on one PostgreSQL
database, each loaded by a wrk of its own with a third of the connections and every third
event: one user's steps reach different replicas).

`--metrics-overhead` runs only (b) on SQLite, with metrics on (the default: GET /metrics, the
web process and its worker child keeping their figures in a multiprocess directory) and off
(BOTKIT_METRICS=off), alternately `--repeat` times each, and prints the cost of the metrics
on acknowledged and on processed throughput (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import isolation
from envelopes import CLINIC_FLOW, PHONE_NUMBER_ID, received
from processes import admin, free_port, start, stop, wait_ready, with_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botkit.wire.idempotency import idempotency_key  # noqa: E402
from botkit.wire.signing import sign  # noqa: E402

SECRET = "whsec_bench"


def write_events(
    path: Path,
    users: int,
    rounds: int,
    threads: int = 2,
    part: int = 0,
    parts: int = 1,
    user_ids: Sequence[int] | None = None,
) -> int:
    """One line per event, "signature<TAB>body"; event k is user k % users, step k // users;
    with `parts`, only the events k with k % parts == part; with `user_ids`, user slot u is
    user number user_ids[u] (bench/users.py: users already stored, and new ones), and the
    event and message ids are numbered by slot."""
    count = 0
    index = -1
    with path.open("w") as out:
        # wrk drops the first request its Lua script generates on a thread; a status event for
        # an unknown message (stored, no reply) goes first on each thread so no user step is lost.
        for thread in range(threads):
            status = {
                "id": f"evt_warmup_{thread}",
                "type": "whatsapp.message.delivered",
                "phone_number_id": PHONE_NUMBER_ID,
                "data": {
                    "status": {
                        "id": f"wamid.warmup.{thread}",
                        "status": "delivered",
                        "timestamp": str(int(time.time())),
                        "recipient_id": "5491100000000",
                    }
                },
            }
            body = json.dumps(status, separators=(",", ":")).encode()
            out.write(f"{sign(SECRET, body)}\t{body.decode()}\n")
        for step in range(rounds * len(CLINIC_FLOW)):
            for number in range(users):
                index += 1
                if index % parts != part:
                    continue
                # with user_ids, ids by slot: a user may fill several slots (a visit each)
                user = number if user_ids is None else user_ids[number]
                message_id = f"wamid.bench.{step}.{number}"
                envelope = received(
                    user, f"evt_{step}_{number}", message_id, CLINIC_FLOW[step % len(CLINIC_FLOW)]
                )
                body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
                out.write(f"{sign(SECRET, body)}\t{body.decode()}\n")
                count += 1
    return count


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def run_wrk(wrk: str, port: int, events: Path, args: argparse.Namespace) -> dict[str, int]:
    env = {**os.environ, "BENCH_EVENTS": str(events), "BENCH_THREADS": str(args.threads)}
    out = subprocess.run(
        [
            wrk,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "wrk.lua"),
            f"http://127.0.0.1:{port}/webhook",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("BENCH_RESULT "))
    return json.loads(line.removeprefix("BENCH_RESULT "))


def acked(result: dict[str, int]) -> int:
    return result["requests"] - result["errors_status"]


def baseline(wrk: str, events: Path, folder: Path, args: argparse.Namespace) -> dict[str, int]:
    port = free_port()
    server = start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        {"GOSENDAPI_WEBHOOK_SECRET": SECRET},
        folder / "baseline.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/")
        return run_wrk(wrk, port, events, args)
    finally:
        stop(server)


def bot_env(sink_port: int, database: str) -> dict[str, str]:
    """The environment of a `botkit run` that replies to the sink on `sink_port`."""
    return {
        "GOSENDAPI_API_KEY": "gsk_test_bench",
        "GOSENDAPI_BASE_URL": f"http://127.0.0.1:{sink_port}/v1",
        "GOSENDAPI_WEBHOOK_SECRET": SECRET,
        "BOTKIT_DATABASE": database,
        # the sink has no limits: measure botkit, not the pacing of issue 3's rate limits
        "BOTKIT_RATE_PER_NUMBER": "0",
        "BOTKIT_RATE_PER_KEY": "0",
    }


def clinic(
    wrk: str,
    folder: Path,
    args: argparse.Namespace,
    store: str,
    events: list[Path],
    extra_env: dict[str, str] | None = None,
    tag: str = "",
    prebuilt: Path | None = None,
    watch: Callable[[list[subprocess.Popen[bytes]]], contextlib.AbstractContextManager[Any]]
    | None = None,
) -> dict[str, object]:
    """(b) on `store`: sqlite, pg1 or pg3 (one replica per events file); `extra_env` for the
    bot's processes, `tag` to tell runs on the same store apart (their database files).

    `prebuilt` (sqlite): a store to start from, copied with its inbox file (bench/users.py);
    only the events and sends after its last ones are checked. `watch(bots)` is entered once
    the bots answer and left once their backlog is drained (bench/users.py samples memory)."""
    sink_port = free_port()
    database = str(folder / f"bench-{store}{tag}.db")
    since = (0, 0)
    if prebuilt is not None:
        for suffix in ("", "-inbox"):
            copy_synced(Path(f"{prebuilt}{suffix}"), Path(f"{database}{suffix}"))
        since = last_rows(Path(database))
    pg_name = None
    if store.startswith("pg"):
        pg_name = f"botkit_bench_{os.getpid()}_{store}"
        admin(f"DROP DATABASE IF EXISTS {pg_name}", f"CREATE DATABASE {pg_name}")
        # the server's count of each function's calls (a superuser's setting)
        with contextlib.suppress(asyncpg.PostgresError):
            admin(f"ALTER DATABASE {pg_name} SET track_functions = 'pl'")
        database = with_database(pg_name)
    sink = start(
        [sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(sink_port)],
        {},
        folder / f"sink-{store}.log",
    )
    env = {**bot_env(sink_port, database), **(extra_env or {})}
    ports = [free_port() for _ in events]
    bots = []
    try:
        for n, port in enumerate(ports):
            command = [sys.executable, "-m", "botkit.tools.cli", "run", "bots.clinic"]
            level = (extra_env or {}).get("BOTKIT_LOG_LEVEL", args.log_level)
            command += ["--port", str(port), "--log-level", level]
            bots.append(start(command, env, folder / f"bot-{store}-{n}.log"))
        wait_ready(f"http://127.0.0.1:{sink_port}/_fake/stats")
        launched = time.monotonic()
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=60)
        ready = time.monotonic() - launched
        with watch(bots) if watch is not None else contextlib.nullcontext():
            started = time.monotonic()
            result = run_wrks(wrk, ports, events, args)
            drained = wait_drained(ports[0], started)
        keys = httpx.get(f"http://127.0.0.1:{sink_port}/_fake/keys", timeout=30).json()["keys"]
    finally:
        for bot in bots:
            stop(bot)
        stop(sink)
    try:
        checked = verify_pg(database, keys) if pg_name else verify(Path(database), keys, since)
    finally:
        if pg_name:
            admin(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
    return {
        **result,
        **checked,
        "drained_s": drained,
        "ready_s": ready,
        "store": store,
        "replicas": len(ports),
    }


def copy_synced(source: Path, target: Path) -> None:
    """Copies a file and waits for it to reach the disk: the load's own fsyncs (the inbox's
    synchronous=FULL) must not queue behind gigabytes of the copy's writeback."""
    shutil.copyfile(source, target)
    descriptor = os.open(target, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def last_rows(database: Path) -> tuple[int, int]:
    """The last inbox and outbox seq a SQLite store has numbered."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("ATTACH DATABASE ? AS incoming", (f"{database}-inbox",))
        inbox = db.execute("SELECT coalesce(max(seq), 0) FROM incoming.inbox").fetchone()[0]
        outbox = db.execute("SELECT coalesce(max(seq), 0) FROM main.outbox").fetchone()[0]
    return int(inbox), int(outbox)


def run_wrks(
    wrk: str, ports: list[int], events: list[Path], args: argparse.Namespace
) -> dict[str, int]:
    """One wrk per replica, at once, the connections shared out; their results summed (the
    latencies: the median of the p50s, the largest p99)."""
    if len(ports) == 1:
        return run_wrk(wrk, ports[0], events[0], args)
    share = argparse.Namespace(
        **{**vars(args), "connections": max(2, args.connections // len(ports))}
    )
    with ThreadPoolExecutor(len(ports)) as pool:
        results = list(
            pool.map(lambda pe: run_wrk(wrk, pe[0], pe[1], share), zip(ports, events, strict=True))
        )
    summed = {key: sum(r[key] for r in results) for key in results[0]}
    summed["p50_us"] = sorted(r["p50_us"] for r in results)[len(results) // 2]
    summed["p99_us"] = max(r["p99_us"] for r in results)
    summed["max_us"] = max(r["max_us"] for r in results)
    return summed


def verify_pg(url: str, keys: dict[str, int]) -> dict[str, object]:
    async def read() -> tuple[list[str], int, tuple[int, int]]:
        db = await asyncpg.connect(url)
        try:
            events = [
                r[0] for r in await db.fetch("SELECT event_id FROM inbox WHERE kind = 'message'")
            ]
            not_done = await db.fetchval(
                "SELECT count(*) FROM inbox i LEFT JOIN event_results r ON r.seq = i.seq"
                " LEFT JOIN lanes l ON l.phone_number_id = i.phone_number_id AND l.wa_id = i.wa_id"
                " WHERE r.seq IS NOT NULL OR coalesce(l.done_seq, 0) < i.seq"
            )
            outbox = await db.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM outbox"
            )
            # the botkit processes have ended: their connections' statistics reach the server
            # as those end (after the clients have gone)
            await asyncio.sleep(2.0)
            calls = await db.fetch(
                "SELECT funcname, calls FROM pg_stat_user_functions ORDER BY funcname"
            )
            commits = await db.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
            server = {r["funcname"]: int(r["calls"]) for r in calls} | {"commits": int(commits)}
            return events, not_done, (outbox[0], outbox[1]), server
        finally:
            await db.close()

    events, not_done, outbox, server = asyncio.run(read())
    return {**replies(events, not_done, outbox, keys), "server_calls": server}


def wait_drained(port: int, started: float, timeout: float = 300.0) -> float:
    while time.monotonic() - started < timeout:
        pending = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["pending"]
        if pending["events"] == 0 and pending["sends"] == 0:
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit("the bot did not drain its backlog in time")


def verify(
    database: Path, keys: dict[str, int], since: tuple[int, int] = (0, 0)
) -> dict[str, object]:
    """`since`: the inbox and outbox seqs after which rows are this run's (a prebuilt store's
    rows are not checked)."""
    with sqlite3.connect(database) as db:
        db.execute("ATTACH DATABASE ? AS incoming", (f"{database}-inbox",))
        events = [
            row[0]
            for row in db.execute(
                "SELECT event_id FROM inbox WHERE kind = 'message' AND seq > ?", (since[0],)
            )
        ]
        not_done = db.execute(
            "SELECT count(*) FROM inbox i LEFT JOIN event_results r ON r.seq = i.seq"
            " LEFT JOIN lanes l ON l.phone_number_id = i.phone_number_id AND l.wa_id = i.wa_id"
            " WHERE i.seq > ? AND (r.seq IS NOT NULL OR coalesce(l.done_seq, 0) < i.seq)",
            (since[0],),
        ).fetchone()[0]
        outbox = db.execute(
            "SELECT count(*), sum(status = 'sent') FROM outbox WHERE seq > ?", (since[1],)
        ).fetchone()
    expected = {idempotency_key(event_id, 0): event_id for event_id in events}
    missing = expected.keys() - keys.keys()
    with sqlite3.connect(database) as db:
        db.execute("ATTACH DATABASE ? AS incoming", (f"{database}-inbox",))
        for key in sorted(missing)[:5]:
            event_id = expected[key]
            inbox = db.execute(
                "SELECT i.seq, r.status, r.error, i.wa_id, i.envelope FROM inbox i"
                " LEFT JOIN event_results r ON r.seq = i.seq WHERE i.event_id = ?",
                (event_id,),
            ).fetchone()
            sends = db.execute(
                "SELECT idempotency_key, status, error, attempts FROM outbox WHERE cause = ?",
                (event_id,),
            ).fetchall()
            history = db.execute(
                "SELECT i.seq, i.event_id, r.status FROM inbox i"
                " LEFT JOIN event_results r ON r.seq = i.seq WHERE i.wa_id = ? ORDER BY i.seq",
                (inbox[3],),
            ).fetchall()
            print(
                f"missing reply for {event_id}: inbox {inbox[:4]}, outbox {sends}, user's events {history}",
                file=sys.stderr,
            )
    return replies(events, not_done, (outbox[0], outbox[1] or 0), keys)


def replies(
    events: list[str], not_done: int, outbox: tuple[int, int], keys: dict[str, int]
) -> dict[str, object]:
    """Whether every event got exactly its reply at the provider."""
    expected = {idempotency_key(event_id, 0): event_id for event_id in events}
    extra = {idempotency_key(event_id, 1) for event_id in events} & keys.keys()
    missing = expected.keys() - keys.keys()
    repeated = {key: times for key, times in keys.items() if times > 1}
    exact = not missing and not extra and not repeated and len(keys) == len(expected)
    return {
        "events": len(events),
        "not_done": not_done,
        "outbox": outbox[0],
        "sent": outbox[1] or 0,
        "provider_keys": len(keys),
        "missing_replies": len(missing),
        "keys_sent_twice": len(repeated),
        "extra_replies": len(extra),
        "exactly_one_reply_each": exact,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--users", type=int, default=40000)
    parser.add_argument(
        "--rounds", type=int, default=1, help="times each user goes through the 3 steps"
    )
    parser.add_argument(
        "--stores",
        default="sqlite",
        help="comma-separated, of sqlite, pg1 and pg3 (default sqlite)",
    )
    parser.add_argument("--no-isolation", action="store_true", help="skip the isolation line")
    parser.add_argument(
        "--log-level",
        default="warning",
        help="the bot's (warning: no line per request; info: the access log and a line per "
        "turn and per send, as JSON with BOTKIT_LOG_FORMAT=json in the environment)",
    )
    parser.add_argument(
        "--metrics-overhead",
        action="store_true",
        help="only (b) on sqlite, with metrics on and off (BOTKIT_METRICS=off) alternately: "
        "the metrics' cost on acknowledged and processed throughput",
    )
    parser.add_argument(
        "--with-logs",
        action="store_true",
        help="with --metrics-overhead: 'on' also logs at info as JSON (the access, turn and send "
        "lines), 'off' at warning: what metrics and logging cost together",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="with --with-logs: uvicorn's line per request too (BOTKIT_ACCESS_LOG=on)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="with --metrics-overhead: runs of each (default 1)"
    )
    args = parser.parse_args()
    if args.metrics_overhead:
        metrics_overhead(args)
        return
    stores = [store.strip() for store in args.stores.split(",") if store.strip()]
    unknown = set(stores) - {"sqlite", "pg1", "pg3"}
    if unknown:
        parser.error(f"unknown stores {sorted(unknown)}: choose among sqlite, pg1, pg3")
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="botkit-bench-") as tmp:
        folder = Path(tmp)
        events = folder / "events.tsv"
        total = write_events(events, args.users, args.rounds, args.threads)
        thirds = [folder / f"events-{n}.tsv" for n in range(3)]
        if "pg3" in stores:
            for n, path in enumerate(thirds):
                write_events(path, args.users, args.rounds, args.threads, part=n, parts=3)
        sync = disk_sync(folder)
        a = baseline(wrk, events, folder, args)
        results = [
            clinic(wrk, folder, args, store, thirds if store == "pg3" else [events])
            for store in stores
        ]
        isolated = None if args.no_isolation else isolation.run(folder, users=200)
    report(a, results, total, args, sync)
    if isolated is not None:
        print(isolation.line(*isolated))


def metrics_overhead(args: argparse.Namespace) -> None:
    """(b) on SQLite with metrics on and off, alternately; each one's best run compared (the
    machine's noise only ever slows a run down)."""
    wrk = ensure_wrk()
    runs: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="botkit-bench-") as tmp:
        folder = Path(tmp)
        events = folder / "events.tsv"
        total = write_events(events, args.users, args.rounds, args.threads)
        for n in range(args.repeat):
            for mode in ("on", "off") if n % 2 == 0 else ("off", "on"):
                env = {"BOTKIT_METRICS": mode}
                if args.with_logs:  # on: a JSON line per turn and send too; off: none
                    env["BOTKIT_LOG_LEVEL"] = "info" if mode == "on" else "warning"
                    env["BOTKIT_LOG_FORMAT"] = "json"
                    env["BOTKIT_ACCESS_LOG"] = "on" if args.access_log else "off"
                b = clinic(wrk, folder, args, "sqlite", [events], env, f"-{mode}-{n}")
                acked_rate = acked(b) / args.duration  # type: ignore[arg-type]
                processed = int(b["events"]) / float(b["drained_s"])  # type: ignore[call-overload, arg-type]
                exact = b["exactly_one_reply_each"]
                print(
                    f"{'metrics+logs' if args.with_logs else 'metrics'} {mode:<3} run {n + 1}: {acked_rate:8.0f} acked/s  p99 "
                    f"{int(b['p99_us']) / 1000:6.2f} ms  {processed:8.0f} processed/s  "  # type: ignore[call-overload]
                    f"exactly one reply each: {exact}",
                    flush=True,
                )
                runs[mode].append((acked_rate, processed))
    print(f"events prepared: {total}; wrk {args.connections} connections, {args.duration}s a run")
    for index, what in enumerate(("acknowledged", "processed")):
        on = max(run[index] for run in runs["on"])
        off = max(run[index] for run in runs["off"])
        print(
            f"{what:<13}: on {on:8.0f}/s  off {off:8.0f}/s  on/off {on / off:5.3f}  "
            f"overhead {(1 - on / off) * 100:+5.1f} %"
        )


def disk_sync(folder: Path, rounds: int = 100) -> float:
    """The median seconds of an fdatasync after a 4 KB append, in `folder` (the store's disk)."""
    path = folder / "sync.test"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    try:
        for _ in range(rounds):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return sorted(times)[len(times) // 2]


def report(
    a: dict[str, int],
    results: list[dict[str, object]],
    total: int,
    args: argparse.Namespace,
    sync: float | None = None,
) -> None:
    seconds = args.duration
    rate_a = acked(a) / seconds
    print(
        f"events prepared: {total} ({args.users} users x 3 steps x {args.rounds}); wrk {args.connections} connections, {seconds}s"
    )
    if sync is not None:  # each acknowledgement waits for its group's fsync; (a) writes nothing
        print(
            f"disk: fdatasync p50 {sync * 1000:.2f} ms, so at most {args.connections} / "
            f"{sync * 1000:.2f} ms = {args.connections / sync:,.0f} durable acknowledgements/s on "
            f"{args.connections} connections (each waits for its group's sync)"
        )
    print(
        f"(a) bare Starlette verify+parse : {rate_a:8.0f} acked/s  p50 {a['p50_us'] / 1000:6.2f} ms  p99 {a['p99_us'] / 1000:6.2f} ms  non-2xx {a['errors_status']}"
    )
    processed: dict[str, float] = {}
    for b in results:
        name = f"(b) clinic, {b['store']}"
        rate_b = acked(b) / seconds  # type: ignore[arg-type]
        processed[str(b["store"])] = rate = int(b["events"]) / float(b["drained_s"])  # type: ignore[arg-type]
        print(
            f"{name:<32}: {rate_b:8.0f} acked/s  p50 {int(b['p50_us']) / 1000:6.2f} ms  p99 {int(b['p99_us']) / 1000:6.2f} ms  non-2xx {b['errors_status']}"  # type: ignore[call-overload]
        )
        print(f"{'  ratio to (a) acknowledged':<32}: {rate_b / rate_a:8.2f}")
        print(
            f"{'  processed (reply recorded)':<32}: {rate:8.0f} events/s  ({b['events']} events in {float(b['drained_s']):.1f}s from the first request)"  # type: ignore[arg-type]
        )
        print(
            f"{'  exactly one reply per event':<32}: {b['exactly_one_reply_each']}  (events {b['events']}, provider keys {b['provider_keys']}, missing {b['missing_replies']}, extra {b['extra_replies']}, sent twice {b['keys_sent_twice']}, not done {b['not_done']})"
        )
        server = b.get("server_calls")
        if isinstance(server, dict) and b["events"]:
            per = ", ".join(
                f"{name.removeprefix('botkit_')} {calls / int(b['events']):.2f}"  # type: ignore[call-overload]
                for name, calls in sorted(server.items())
            )
            print(f"{'  server calls per event':<32}: {per}")
        if int(b["requests"]) > total:  # type: ignore[call-overload]
            # (a) may replay freely: it only verifies and parses
            print(
                "note: wrk ran out of prepared events and replayed some (duplicates); raise --users"
            )
    if "sqlite" in processed and "pg1" in processed:
        print(
            f"processed pg1 / sqlite           : {processed['pg1'] / processed['sqlite']:8.2f}   (target >= 0.70)"
        )
    if "pg1" in processed and "pg3" in processed:
        print(
            f"processed pg3 / pg1              : {processed['pg3'] / processed['pg1']:8.2f}   (target >= 1.00)"
        )
    print("BENCH_JSON " + json.dumps({"a": a, "b": results, "processed_per_s": processed}))


if __name__ == "__main__":
    main()
