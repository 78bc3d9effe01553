"""Where the time goes: py-spy samples `botkit run bots.clinic`'s web process and its worker
child under the webhook benchmark's load, and prints each one's hottest functions.

Run:  .venv/bin/python bench/pyspy.py [--duration 10] [--store sqlite] [--top 25]

It starts the sink (no rate limit), `botkit run` on SQLite (or `--store pg` on the local
PostgreSQL), loads it with wrk as bench/webhook.py does (32 connections, the clinic flow), and
records both processes at once with py-spy (installed into the venv when missing). Then, for
each process: the share of samples by function where the time is spent (self) and the share of
samples whose stack passes through it (total), with the idle samples (the event loop waiting)
counted apart. `--keep DIR` keeps the raw stacks (py-spy's collapsed format, which
flamegraph.pl or speedscope read) and the logs.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from processes import admin, free_port, start, stop, wait_ready, with_database
from webhook import bot_env, ensure_wrk, run_wrk, write_events

ROOT = Path(__file__).resolve().parents[1]
IDLE = ("select (selectors.py", "_run_once (asyncio/base_events.py", "poll (selectors.py")


def ensure_py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or sys.exit("no py-spy")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in out.stdout.split()]


def summary(stacks: Path, top: int) -> str:
    """The hottest functions of py-spy's collapsed stacks: self and total shares."""
    own: collections.Counter[str] = collections.Counter()
    through: collections.Counter[str] = collections.Counter()
    idle = total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")[1:]  # the first is the process/thread
        total += n
        leaf = frames[-1] if frames else "?"
        if any(leaf.startswith(mark) for mark in IDLE):
            idle += n
            continue
        own[_short(leaf)] += n
        for frame in set(map(_short, frames)):
            through[frame] += n
    busy = max(total - idle, 1)
    lines = [f"  samples {total}, idle (waiting in the event loop) {idle / max(total, 1):.0%}"]
    lines.append("  self, of busy samples:")
    lines += [f"    {n / busy:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("  total (the stack passes through), of busy samples:")
    lines += [f"    {n / busy:6.1%}  {name}" for name, n in through.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """`func (path/to/module.py:line)` without the line and the site-packages prefix."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for prefix in ("site-packages/", "python3.11/", str(ROOT) + "/"):
        if prefix in where:
            where = where.split(prefix, 1)[1]
    return f"{name} ({where})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--users", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--keep", type=Path, help="keep the stacks and logs in this folder")
    parser.add_argument(
        "--database",
        type=Path,
        help="start from a copy of this SQLite store (and its -inbox file), e.g. one of "
        "bench/users.py's prebuilt stores",
    )
    parser.add_argument(
        "--gil", action="store_true", help="only the thread holding the GIL (py-spy --gil)"
    )
    args = parser.parse_args()
    wrk, spy = ensure_wrk(), ensure_py_spy()
    with tempfile.TemporaryDirectory(prefix="botkit-profile-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        events = folder / "events.tsv"
        write_events(events, args.users, args.rounds, args.threads)
        database = str(folder / "profile.db")
        if args.database is not None:
            shutil.copyfile(args.database, database)
            shutil.copyfile(f"{args.database}-inbox", f"{database}-inbox")
        pg_name = None
        if args.store == "pg":
            pg_name = f"botkit_profile_{os.getpid()}"
            admin(f"DROP DATABASE IF EXISTS {pg_name}", f"CREATE DATABASE {pg_name}")
            database = with_database(pg_name)
        sink_port, port = free_port(), free_port()
        sink = start(
            [sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(sink_port)],
            {},
            folder / "sink.log",
        )
        env = bot_env(sink_port, database)
        command = [sys.executable, "-m", "botkit.tools.cli", "run", "bots.clinic"]
        bot = start(
            [*command, "--port", str(port), "--log-level", "warning"], env, folder / "bot.log"
        )
        try:
            wait_ready(f"http://127.0.0.1:{sink_port}/_fake/stats")
            wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=60)
            [worker] = children(bot.pid) or sys.exit("botkit run has no worker child")
            spies = {
                name: subprocess.Popen(
                    [
                        spy,
                        "record",
                        "-p",
                        str(pid),
                        "-d",
                        str(args.duration),
                        "-r",
                        str(args.rate),
                        "-f",
                        "raw",
                        "-o",
                        str(folder / f"{name}.stacks"),
                        "--nonblocking",
                        *(["--gil"] if args.gil else []),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for name, pid in (("web", bot.pid), ("worker", worker))
            }
            started = time.monotonic()
            result = run_wrk(wrk, port, events, args)
            for spied in spies.values():
                spied.wait(timeout=args.duration + 60)
            while time.monotonic() - started < 300:
                pending = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
                if pending["pending"]["events"] == 0 and pending["pending"]["sends"] == 0:
                    break
                time.sleep(0.1)
            drained = time.monotonic() - started
        finally:
            stop(bot)
            stop(sink)
            if pg_name:
                admin(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
        acked = result["requests"] - result["errors_status"]
        print(
            f"load: {acked / args.duration:,.0f} acknowledged/s, p99 {result['p99_us'] / 1000:.1f} ms;"
            f" backlog drained {drained:.1f} s after the load began"
        )
        for name in ("web", "worker"):
            stacks = folder / f"{name}.stacks"
            print(f"\n{name} process:")
            print(summary(stacks, args.top) if stacks.exists() else "  (py-spy recorded nothing)")


if __name__ == "__main__":
    main()
