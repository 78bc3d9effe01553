"""Users already stored: does the clinic bot keep its rates and its memory with 1,000, 100,000
and 1,000,000 users in its SQLite store?

Run:  PYTHONPATH=$PWD .venv/bin/python bench/users.py [--users-stored 1000,100000,1000000]
      [--duration 10] [--connections 32] [--load-users 40000] [--cache DIR] [--quick]

For each N it builds (or reuses, from --cache) a store of N users as `botkit run bots.clinic`
leaves them after each user booked once: the schema made by botkit's own SqliteStore, then,
in one transaction of plain executemany, each user's session (Clinic, `confirmed`, the service
chosen), their 3 events (text, list row, button: done, in their lane's index), their lane
(done, its window as of their last message), their 3 sends (sent) and those sends' delivery
statuses (read). Then it runs bench/webhook.py's load (b) on a copy of that store with half
new users (numbers past the store's) and half returning ones (spread over the whole store),
and prints per N acknowledged/s, p99, processed/s, the exactly-one-reply check and the peak
RSS of the web process and of its worker child; then each N's rates over the smallest N's.
The bare-Starlette line (a) is printed once, for scale.

`--build-only N` builds one store, checks it through botkit and prints the time and sizes;
`--explain` prints the plan and time of each hot-path statement on each store (no load);
`--no-automatic-index` runs the load with the bot's SQLite connections planning without
automatic indexes (an experiment through a sitecustomize: botkit is unchanged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _folder in (str(ROOT), str(BENCH)):
    if _folder not in sys.path:
        sys.path.insert(0, _folder)

from envelopes import PHONE_NUMBER_ID, wa_id_of  # noqa: E402

from botkit.store.sqlite import SqliteStore  # noqa: E402
from botkit.wire.idempotency import idempotency_key  # noqa: E402

# Bumped whenever the rows built change: a cached store of another format is built again.
FORMAT = 1
STEPS = 3  # events (and sends) per stored user
SERVICES = (
    ("general", "Consulta general", "30 min · $5000"),
    ("specialist", "Especialista", "45 min · $8000"),
    ("lab", "Laboratorio", "Análisis de sangre"),
)
CHUNK = 20_000  # users a executemany batch
DAY = 86_400.0


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _template(value: Any) -> str:
    """`value` as botkit's codec writes it, with @name@ placeholders turned into {name}."""
    text = _dumps(value).replace("{", "{{").replace("}", "}}")
    for name in ("wa", "user", "evt", "mid", "ts", "ctx", "row", "title", "desc", "svc"):
        text = text.replace(f"@{name}@", "{" + name + "}")
    return text


def _envelope(message: dict[str, Any]) -> str:
    return _template(
        {
            "id": "@evt@",
            "type": "whatsapp.message.received",
            "created_at": "2026-05-19T14:00:05Z",
            "phone_number_id": PHONE_NUMBER_ID,
            "data": {
                "contact": {"wa_id": "@wa@", "profile": {"name": "User @user@"}},
                "message": {"from": "@wa@", "id": "@mid@", "timestamp": "@ts@", **message},
            },
        }
    )


CONTEXT = {"from": "15550001111", "id": "@ctx@"}
ENVELOPES = (
    _envelope({"type": "text", "text": {"body": "hola"}}),
    _envelope(
        {
            "type": "interactive",
            "interactive": {
                "type": "list_reply",
                "list_reply": {"id": "@row@", "title": "@title@", "description": "@desc@"},
            },
            "context": CONTEXT,
        }
    ),
    _envelope(
        {
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": "confirm_yes", "title": "Sí, confirmo"},
            },
            "context": CONTEXT,
        }
    ),
)
# The clinic's three replies, as its outbox keeps them (bots/clinic.py).
LIST_PAYLOAD = _dumps(
    {
        "type": "list",
        "body": {"text": "¡Hola! ¿Qué turno querés reservar?"},
        "action": {
            "button": "Ver servicios",
            "sections": [
                {
                    "title": "Consultas",
                    "rows": [
                        {"id": row, "title": title, "description": desc}
                        for row, title, desc in SERVICES[:2]
                    ],
                },
                {
                    "title": "Estudios",
                    "rows": [
                        {"id": row, "title": title, "description": desc}
                        for row, title, desc in SERVICES[2:]
                    ],
                },
            ],
        },
    }
)
CONFIRM_PAYLOADS = tuple(
    _dumps(
        {
            "type": "button",
            "body": {"text": f"Elegiste {title}. ¿Confirmás el turno?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "confirm_yes", "title": "Sí, confirmo"}},
                    {"type": "reply", "reply": {"id": "reschedule", "title": "Reprogramar"}},
                ]
            },
        }
    )
    for _, title, _ in SERVICES
)
DONE_PAYLOADS = tuple(
    _dumps(
        {
            "body": f"¡Listo! Tu turno de {title} quedó confirmado. Te esperamos.",
            "preview_url": False,
        }
    )
    for _, title, _ in SERVICES
)
SEND_TYPES = ("interactive", "interactive", "text")


def conversation_version() -> str:
    """The clinic conversation's version, as botkit stamps its sessions."""
    from bots.clinic import bot

    return str(bot.conversation.spec.version)


def event_id(user: int, step: int) -> str:
    """The id of stored user `user`'s `step`-th event (never one the load sends)."""
    return f"evt_stored_{user}_{step}"


def store_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-inbox")]


def build(path: Path, users: int, *, now: float | None = None, span: float = 6 * DAY) -> float:
    """Builds at `path` (and `path`-inbox) a clinic store of `users` users, numbered 0 ..
    users-1 (bench/envelopes.py's wa_id_of), who each booked once: their events arrived over
    the `span` seconds before `now - 1 h`, in order (seq grows with time, as botkit numbers
    them). Returns the seconds it took."""
    started = time.monotonic()
    now = time.time() if now is None else now
    for file in (*store_files(path), Path(f"{path}.workers.lock")):
        file.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        for file in store_files(path):
            Path(f"{file}{suffix}").unlink(missing_ok=True)

    async def create() -> None:  # botkit's own schema and migrations
        async with SqliteStore(path):
            pass

    asyncio.run(create())
    version = conversation_version()
    first = now - 3600.0 - span
    step_gap = span / max(1, users * STEPS)  # seconds between two stored events
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("ATTACH DATABASE ? AS incoming", (f"{path}-inbox",))
        for schema in ("main", "incoming"):
            # no journal while building (a failed build is rebuilt), WAL again at the end
            db.execute(f"PRAGMA {schema}.journal_mode=OFF").fetchall()
            db.execute(f"PRAGMA {schema}.synchronous=OFF")
            db.execute(f"PRAGMA {schema}.cache_size=-1000000")  # 1 GB each
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN")
        for start in range(0, users, CHUNK):
            _insert(db, range(start, min(users, start + CHUNK)), first, step_gap, version)
        last = users * STEPS
        db.execute("UPDATE main.botkit_meta SET value = ? WHERE key = 'inbox_cursor'", (str(last),))
        db.execute("COMMIT")
        db.execute("PRAGMA locking_mode=NORMAL")
        for schema in ("main", "incoming"):
            db.execute(f"PRAGMA {schema}.journal_mode=WAL").fetchall()
    finally:
        db.close()
    return time.monotonic() - started


def _insert(db: sqlite3.Connection, users: range, first: float, gap: float, version: str) -> None:
    inbox, lane_events, lanes, sessions, outbox, statuses = [], [], [], [], [], []
    for user in users:
        wa = wa_id_of(user)
        row, title, desc = SERVICES[user % len(SERVICES)]
        base = user * STEPS  # the user's events are seqs base+1 .. base+3, and so are its sends
        sent = [f"wamid.stored.{user}.{step}" for step in range(STEPS)]
        payloads = (LIST_PAYLOAD, CONFIRM_PAYLOADS[user % 3], DONE_PAYLOADS[user % 3])
        at = first
        for step in range(STEPS):
            seq = base + step + 1
            at = first + (seq - 1) * gap
            evt = event_id(user, step)
            mid = f"wamid.in.stored.{user}.{step}"
            envelope = ENVELOPES[step].format(
                wa=wa, user=user, evt=evt, mid=mid, ts=int(at), ctx=sent[step - 1] if step else "",
                row=row, title=title, desc=desc,
            )  # fmt: skip
            inbox.append((seq, evt, mid, "message", PHONE_NUMBER_ID, wa, envelope, at))
            lane_events.append((PHONE_NUMBER_ID, wa, seq))
            replied = at + 0.05
            outbox.append(
                (seq, PHONE_NUMBER_ID, wa, idempotency_key(evt, 0), SEND_TYPES[step],
                 payloads[step], evt, "sent", "fail", 1, replied, sent[step], replied, replied)
            )  # fmt: skip
            statuses.append((sent[step], "read", 3, int(replied) + 5, None, replied + 5))
        last = base + STEPS
        lanes.append((PHONE_NUMBER_ID, wa, last, 0, 0, at, last))
        sessions.append(
            (PHONE_NUMBER_ID, wa, "Clinic", "confirmed", _dumps({"service": row}), version, at)
        )
    db.executemany(
        "INSERT INTO incoming.inbox (seq, event_id, message_id, kind, phone_number_id, wa_id,"
        " envelope, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        inbox,
    )
    db.executemany(
        "INSERT INTO main.lane_events (phone_number_id, wa_id, seq) VALUES (?, ?, ?)",
        lane_events,
    )
    db.executemany(
        "INSERT INTO main.lanes (phone_number_id, wa_id, done_seq, pending, attempts,"
        " last_inbound_at, inbound_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
        lanes,
    )
    db.executemany(
        "INSERT INTO main.sessions (phone_number_id, wa_id, conversation, state, data, version,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        sessions,
    )
    db.executemany(
        "INSERT INTO main.outbox (seq, phone_number_id, wa_id, idempotency_key, type, payload,"
        " cause, status, when_closed, attempts, next_attempt_at, provider_message_id,"
        " created_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        outbox,
    )
    db.executemany(
        "INSERT INTO main.message_status (message_id, status, rank, timestamp, errors,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        statuses,
    )


def check(path: Path, users: int) -> list[str]:
    """Reads the built store back through botkit's SqliteStore: a few users' sessions, windows
    and lanes, their events' status, and nothing pending. Returns what is wrong (nothing: [])."""

    async def read() -> list[str]:
        wrong: list[str] = []
        version = conversation_version()
        async with SqliteStore(path) as store:
            backlog = await store.inspect.backlog()
            if backlog.events or backlog.sends:
                wrong.append(f"backlog not empty: {backlog}")
            for user in sorted({0, users // 2, users - 1}):
                wa = wa_id_of(user)
                record = await store.sessions.get(PHONE_NUMBER_ID, wa)
                session = record.session
                service = SERVICES[user % len(SERVICES)][0]
                if session is None or (session.state, session.data, session.version) != (
                    "confirmed",
                    {"service": service},
                    version,
                ):
                    wrong.append(f"user {user}: session {session}")
                if record.window.inbound_seq != (user + 1) * STEPS:
                    wrong.append(f"user {user}: window {record.window}")
                for step in range(STEPS):
                    status = await store.inspect.event_status(event_id(user, step))
                    if status != ("done", None):
                        wrong.append(f"user {user} event {step}: {status}")
                sends = await store.inspect.outbox(wa)
                if [(s.status, s.delivery_status) for s in sends] != [("sent", "read")] * STEPS:
                    wrong.append(f"user {user}: sends {sends}")
                lanes = await store.repair.lanes(wa)
                if [
                    (lane.pending_events, lane.pending_sends, lane.in_flight) for lane in lanes
                ] != [(0, 0, False)]:
                    wrong.append(f"user {user}: lanes {lanes}")
        return wrong

    return asyncio.run(read())


# -- the stores, cached --------------------------------------------------------------------------


def sizes(path: Path) -> str:
    return ", ".join(
        f"{file.name} {file.stat().st_size / 2**20:,.0f} MiB" for file in store_files(path)
    )


def cached(cache: Path, users: int) -> Path:
    """The store of `users` users in `cache`, built (and checked) if it is not there yet."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"clinic-{users}-f{FORMAT}.db"
    marker = Path(f"{path}.built")
    if marker.exists() and all(file.exists() for file in store_files(path)):
        print(f"store of {users:>9,} users: cached at {path} ({sizes(path)})", flush=True)
        return path
    marker.unlink(missing_ok=True)
    took = build(path, users)
    print(f"store of {users:>9,} users: built in {took:6.1f} s ({sizes(path)})", flush=True)
    started = time.monotonic()
    wrong = check(path, users)
    if wrong:
        raise SystemExit(f"the store built at {path} does not read back: {wrong}")
    print(
        f"  checked through botkit's SqliteStore in {time.monotonic() - started:.2f} s: "
        "sessions, windows, events done, sends sent and read, lanes idle",
        flush=True,
    )
    marker.write_text(f"{took:.1f}\n")
    return path


# -- memory --------------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in KiB ({} once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in done.stdout.split()]


class Memory:
    """Samples the RSS of `botkit run` (the web process) and of its worker child every 0.2 s
    while the load runs; keeps each one's first and largest sample and its VmHWM at the end."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, int]] = {}

    @contextlib.contextmanager
    def watch(self, bots: list[subprocess.Popen[bytes]]) -> Iterator[None]:
        web = bots[0].pid
        workers = children(web)
        pids = {"web": web, **{f"worker{'' if n == 0 else n}": p for n, p in enumerate(workers)}}
        figures = {name: {"start_kib": 0, "peak_kib": 0, "hwm_kib": 0} for name in pids}
        self.figures = figures
        stop = threading.Event()

        def sample() -> None:
            while True:
                for name, pid in pids.items():
                    rss = _status(pid).get("VmRSS", 0)
                    figures[name]["start_kib"] = figures[name]["start_kib"] or rss
                    figures[name]["peak_kib"] = max(figures[name]["peak_kib"], rss)
                if stop.wait(0.2):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
            for name, pid in pids.items():
                figures[name]["hwm_kib"] = _status(pid).get("VmHWM", 0)


# -- the load ------------------------------------------------------------------------------------

STRIDE = 7919  # a prime: coprime with every power of ten, so returning users never repeat early


def load_ids(stored: int, slots: int) -> list[int]:
    """User numbers for the load's slots: even slots returning users (stored, spread over the
    whole store; each once while there are enough of them), odd slots new users (numbered
    after the stored ones)."""
    return [
        (slot // 2 * STRIDE) % stored if slot % 2 == 0 else stored + slot // 2
        for slot in range(slots)
    ]


# An experiment, not a change to botkit: the bot's processes import this first (PYTHONPATH), and
# every sqlite3 connection they open plans without automatic indexes.
NO_AUTOMATIC_INDEX = """import sqlite3

_connect = sqlite3.connect


def connect(*args, **kwargs):
    db = _connect(*args, **kwargs)
    db.execute("PRAGMA automatic_index=OFF")
    return db


sqlite3.connect = connect
"""


def run(args: argparse.Namespace, counts: list[int]) -> None:
    import webhook  # bench/webhook.py: its load, its sink, its checks

    wrk = webhook.ensure_wrk()
    stores = {n: cached(Path(args.cache), n) for n in counts}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="botkit-bench-users-") as tmp:
        folder = Path(tmp)
        baseline = None
        env = None
        if args.no_automatic_index:
            (folder / "site").mkdir()
            (folder / "site" / "sitecustomize.py").write_text(NO_AUTOMATIC_INDEX)
            env = {"PYTHONPATH": os.pathsep.join([str(folder / "site"), str(ROOT)])}
        for n in counts:
            events = folder / f"events-{n}.tsv"
            total = webhook.write_events(
                events, args.load_users, 1, args.threads, user_ids=load_ids(n, args.load_users)
            )
            if baseline is None and not args.no_baseline:
                baseline = webhook.baseline(wrk, events, folder, args)
            memory = Memory()
            b = webhook.clinic(
                wrk, folder, args, "sqlite", [events], env, tag=f"-{n}", prebuilt=stores[n],
                watch=memory.watch,
            )  # fmt: skip
            for file in folder.glob(f"bench-sqlite-{n}.db*"):
                file.unlink()  # the copy (the cache keeps the store)
            row = {"stored": n, "prepared": total, **b, "memory": memory.figures}
            rows.append(row)
            line(row, args)
    report(baseline, rows, args)


def line(row: dict[str, Any], args: argparse.Namespace) -> None:
    acked_rate = (row["requests"] - row["errors_status"]) / args.duration
    processed = row["events"] / row["drained_s"]
    row["acked_per_s"], row["processed_per_s"] = acked_rate, processed
    mem = "  ".join(
        f"{name} RSS {f['start_kib'] / 1024:5.0f} -> peak {f['peak_kib'] / 1024:5.0f} MiB"
        f" (HWM {f['hwm_kib'] / 1024:5.0f})"
        for name, f in row["memory"].items()
    )
    print(
        f"N={row['stored']:>9,}: {acked_rate:7.0f} acked/s  p99 {row['p99_us'] / 1000:7.2f} ms"
        f"  {processed:7.0f} processed/s  exactly one reply each: {row['exactly_one_reply_each']}"
        f" ({row['events']} events, missing {row['missing_replies']}, extra"
        f" {row['extra_replies']}, twice {row['keys_sent_twice']}, not done {row['not_done']})"
        f"  ready in {row['ready_s']:.1f} s\n{'':13}{mem}",
        flush=True,
    )


def report(
    baseline: dict[str, int] | None, rows: list[dict[str, Any]], args: argparse.Namespace
) -> None:
    if args.no_automatic_index:
        print("\nexperiment: the bot's SQLite connections ran with PRAGMA automatic_index=OFF")
    print(
        f"\nload: {args.load_users} user slots (half returning users spread over the store, half"
        f" new), 3 steps each, wrk {args.connections} connections, {args.duration} s a run"
    )
    if baseline is not None:
        rate = (baseline["requests"] - baseline["errors_status"]) / args.duration
        print(
            f"(a) bare Starlette verify+parse : {rate:8.0f} acked/s  p50"
            f" {baseline['p50_us'] / 1000:6.2f} ms  p99 {baseline['p99_us'] / 1000:6.2f} ms"
            f"  non-2xx {baseline['errors_status']}"
        )
    first = rows[0]
    bound = args.rss_bound_mb * 1024
    for row in rows:
        acked_ratio = row["acked_per_s"] / first["acked_per_s"]
        processed_ratio = row["processed_per_s"] / first["processed_per_s"]
        peaks = {name: f["peak_kib"] for name, f in row["memory"].items()}
        flat = all(0.9 <= r <= 1 / 0.9 for r in (acked_ratio, processed_ratio))
        print(
            f"N={row['stored']:>9,} / N={first['stored']:,}: acked {acked_ratio:5.2f}"
            f"  processed {processed_ratio:5.2f}  p99 {row['p99_us'] / 1000:7.2f} ms"
            f"  {'within' if flat else 'NOT within'} 10 %;  peak RSS "
            + ", ".join(f"{name} {kib / 1024:.0f} MiB" for name, kib in peaks.items())
            + f" ({'under' if max(peaks.values()) < bound else 'OVER'} {args.rss_bound_mb} MiB)"
        )
        if row["requests"] > row["prepared"]:
            print("  note: wrk ran out of prepared events and replayed some; raise --load-users")
    print("BENCH_JSON " + json.dumps({"a": baseline, "b": rows}, default=str))


# -- the hot path's plans ------------------------------------------------------------------------


BATCH = 300  # lanes in one group commit under load (botkit writes up to 400 a statement)


def hot_path(users: int) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(what, SQL, parameters) of the statements a webhook and a turn run, as botkit has them
    (store `users` users); the multi-row ones also with BATCH rows, as a busy worker runs them."""
    from botkit.store.sqlite import inbox as inbox_sql
    from botkit.store.sqlite import outbox as outbox_sql
    from botkit.store.sqlite import retention

    def one(template: str, width: int) -> str:
        return template.format(values="(" + ", ".join("?" * width) + ")")

    def batch(template: str, row: tuple[Any, ...], *extra: Any) -> tuple[str, tuple[Any, ...]]:
        """`template` with BATCH rows like `row`, its wa_id (the row's second value) one of a
        user spread over the store."""
        rows = [(row[0], wa_id_of(n * STRIDE % users), *row[2:]) for n in range(BATCH)]
        sql = template.format(values=", ".join(["(" + ", ".join("?" * len(row)) + ")"] * BATCH))
        return sql, (*(value for each in rows for value in each), *extra)

    wa, now = wa_id_of(1), time.time()
    cursor = inbox_sql._CURSOR
    owned = (PHONE_NUMBER_ID, wa, "t", 3, 1, now, 3, None, 1)
    release = (PHONE_NUMBER_ID, wa, "t", None)
    return [
        ("web: dedupe on add (_existing)",
         "SELECT event_id, message_id FROM incoming.inbox WHERE event_id IN (?) OR message_id IN (?)",
         ("evt_x", "wamid.x")),
        ("web: insert event", one(inbox_sql._INSERT_EVENT, 8),
         ("e", "m", "message", PHONE_NUMBER_ID, wa, "{}", now, None)),
        ("web: healthz/metrics backlog (lanes)",
         "SELECT (SELECT coalesce(sum(pending), 0) FROM main.lanes WHERE next_event IS NOT NULL)"
         f" + (SELECT count(*) FROM incoming.inbox WHERE seq > {cursor})", ()),
        ("web: healthz oldest pending event",
         "SELECT received_at FROM incoming.inbox WHERE seq = (SELECT min(s) FROM ("
         " SELECT min(next_event) AS s FROM main.lanes WHERE next_event IS NOT NULL"
         f" UNION ALL SELECT min(seq) FROM incoming.inbox WHERE seq > {cursor}))", ()),
        ("web: healthz pending sends",
         "SELECT count(*), min(created_at) FROM main.outbox WHERE status = 'pending'", ()),
        ("web: healthz held sends", "SELECT count(*) FROM main.outbox WHERE status = 'held'", ()),
        ("worker: sync new events into lane_events",
         "INSERT INTO main.lane_events (phone_number_id, wa_id, seq) SELECT phone_number_id,"
         f" wa_id, seq FROM incoming.inbox NOT INDEXED WHERE seq > {cursor}", ()),
        ("worker: sync lanes",
         "INSERT INTO main.lanes (phone_number_id, wa_id, next_event, pending) SELECT"
         " phone_number_id, wa_id, min(seq), count(*) FROM incoming.inbox NOT INDEXED"
         f" WHERE seq > {cursor} GROUP BY phone_number_id, wa_id ON CONFLICT"
         " (phone_number_id, wa_id) DO UPDATE SET next_event = coalesce(lanes.next_event,"
         " excluded.next_event), pending = lanes.pending + excluded.pending", ()),
        ("worker: claim lanes (inbox _CLAIM)", inbox_sql._CLAIM, ("t", now + 30, now, 64)),
        ("worker: claimed lanes' events + session + prompt (_EVENTS)", one(inbox_sql._EVENTS, 3),
         (PHONE_NUMBER_ID, wa, 1)),
        ("worker: inbox next_due",
         "SELECT min(coalesce(event_until, 0)) FROM main.lanes WHERE next_event IS NOT NULL", ()),
        ("worker: complete lane (_OWNED)", one(inbox_sql._OWNED, 9), (*owned, now)),
        (f"worker: complete {BATCH} lanes (_OWNED)", *batch(inbox_sql._OWNED, owned, now)),
        ("worker: complete, the user wrote: release held sends (_RELEASE_HELD)",
         one(inbox_sql._RELEASE_HELD, 2), (PHONE_NUMBER_ID, wa, now)),
        (f"worker: complete {BATCH} lanes, release held sends (_RELEASE_HELD)",
         *batch(inbox_sql._RELEASE_HELD, (PHONE_NUMBER_ID, wa), now)),
        ("worker: upsert session", one(inbox_sql._UPSERT_SESSION, 7),
         (PHONE_NUMBER_ID, wa, "Clinic", "confirmed", "{}", "v", now)),
        ("worker: insert send", one(inbox_sql._INSERT_SEND, 13),
         (PHONE_NUMBER_ID, wa, "k", "text", "{}", "c", "pending", "fail", None, None, now, now,
          None)),
        ("worker: outbox claim (_CLAIM)", outbox_sql._CLAIM, ("t", now + 30, now, now, 64)),
        ("worker: outbox claim position",
         "SELECT coalesce(max(seq), 0) FROM incoming.sqlite_sequence WHERE name = 'inbox'", ()),
        ("worker: claimed lanes' sends (_SENDS)", one(outbox_sql._SENDS, 2),
         (PHONE_NUMBER_ID, wa)),
        ("worker: outbox next_due",
         "SELECT min(max(send_due, coalesce(send_until, 0))) FROM main.lanes"
         " WHERE send_due IS NOT NULL", ()),
        ("worker: record send (_FINISH_SEND)", one(outbox_sql._FINISH_SEND, 11),
         (1, "sent", 1, "w", None, None, now, None, PHONE_NUMBER_ID, wa, "t", now)),
        ("worker: release send lane (_RELEASE)", one(outbox_sql._RELEASE, 4), release),
        (f"worker: release {BATCH} send lanes (_RELEASE)", *batch(outbox_sql._RELEASE, release)),
        (f"worker: {BATCH} send lanes, held sends if open (_RELEASE_IF_OPEN)",
         *batch(outbox_sql._RELEASE_IF_OPEN, (PHONE_NUMBER_ID, wa), now, now)),
        (f"worker: {BATCH} lanes' send_due (REFRESH_SEND_DUE)",
         *batch(outbox_sql.REFRESH_SEND_DUE, (PHONE_NUMBER_ID, wa))),
        ("worker: status upsert", one(inbox_sql._UPSERT_STATUS, 6),
         ("w", "read", 3, 1, None, now)),
        ("worker: outbox by provider id (a status)",
         "SELECT 1 FROM main.outbox WHERE provider_message_id = ?", ("w",)),
        ("worker: backlog (workers' idle check)",
         "SELECT count(*) FROM main.outbox WHERE status = 'pending'", ()),
        ("worker: timers next_due", "SELECT min(due_at) FROM main.timers", ()),
        ("worker startup: free claims",
         "UPDATE main.lanes SET event_token = NULL, event_until = NULL"
         " WHERE event_token IS NOT NULL", ()),
        ("janitor: horizon's bounds (_horizon)",
         "SELECT min(seq), max(seq) FROM incoming.inbox", ()),
        ("janitor: finished events", retention._FINISHED_EVENTS, (100, now - 7 * DAY, 100)),
        ("janitor: finished sends", retention._DELETE_SENDS, (now - 7 * DAY, 100)),
        ("janitor: statuses", retention._DELETE_STATUSES, (now - 7 * DAY, 100)),
    ]  # fmt: skip


def explain(path: Path, users: int) -> None:
    """SQLite's plan of each hot-path statement on the store at `path`, and the time it takes
    there (run in a transaction rolled back: the store is left as it was), as botkit's
    connections run it (its default page cache, no ANALYZE)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("ATTACH DATABASE ? AS incoming", (f"{path}-inbox",))
        print(f"\nEXPLAIN QUERY PLAN on {path} ({users:,} users), and the time each took:")
        for what, sql, params in hot_path(users):
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            db.execute("BEGIN")
            try:
                started = time.perf_counter()
                db.execute(sql, params).fetchall()
                took = (time.perf_counter() - started) * 1000
            finally:
                db.execute("ROLLBACK")
            print(f"-- {what}: {took:.2f} ms")
            for step in plan:
                print(f"     {step}")
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users-stored", default="1000,100000,1000000")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--load-users", type=int, default=40000, help="user slots of the load (half new)"
    )
    parser.add_argument(
        "--cache",
        default=os.environ.get(
            "BENCH_USERS_CACHE", str(Path(tempfile.gettempdir()) / "botkit-bench-users")
        ),
        help="where built stores are kept between runs",
    )
    parser.add_argument("--rss-bound-mb", type=int, default=256, help="the memory bound stated")
    parser.add_argument("--quick", action="store_true", help="1000,100000 stored, 5 s runs")
    parser.add_argument("--no-baseline", action="store_true", help="skip (a)")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--no-automatic-index",
        action="store_true",
        help="experiment: the bot's sqlite3 connections run PRAGMA automatic_index=OFF (through"
        " a sitecustomize on their PYTHONPATH; botkit itself is unchanged)",
    )
    parser.add_argument("--build-only", type=int, metavar="N", help="build (cached) and check")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="only print the hot path's plans and times on each store (built if need be)",
    )
    args = parser.parse_args()
    if args.quick:
        args.users_stored, args.duration = "1000,100000", 5
    counts = sorted({int(n) for n in args.users_stored.split(",") if n.strip()})
    if args.build_only:
        cached(Path(args.cache), args.build_only)
        return
    if args.explain:
        for n in counts:
            explain(cached(Path(args.cache), n), n)
        return
    run(args, counts)


if __name__ == "__main__":
    main()
