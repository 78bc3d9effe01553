"""`botkit events`, `botkit sends` and `botkit conversations`: an operator's look at failed
work and at one user's conversation, and their repairs (docs/repair.md).

Each command opens the bot's store the way `botkit run` does (BOTKIT_DATABASE, else the
bot's own botkit-NAME.db in this folder; `--database` overrides both), as a process that
claims no work, so it runs beside a running bot, SQLite or PostgreSQL. What it prints comes
from botkit.runtime.repair, the admin API's answers: `--json` prints those as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from botkit import codec
from botkit.config import Settings, database_for
from botkit.exceptions import RepairError, StoreError
from botkit.runtime.bot import load_bot
from botkit.runtime.repair import MAX_LIMIT, RECENT, Repairs
from botkit.store import open_store
from botkit.store.sqlite import sqlite_path
from botkit.types import JSON, SystemClock

Action = Callable[[Repairs, argparse.Namespace], Awaitable[JSON]]
Printer = Callable[[Any], None]


def add_commands(commands: Any) -> None:
    """Adds `events`, `sends` and `conversations` to the `botkit` command's subparsers."""
    _events(commands)
    _sends(commands)
    _conversations(commands)


def _command(
    group: Any, name: str, help: str, action: Action, printer: Printer
) -> argparse.ArgumentParser:
    """A subcommand taking the bot target, --database and --json, running `action`."""
    parser: argparse.ArgumentParser = group.add_parser(name, help=help, description=help)
    parser.add_argument("target", metavar="MODULE[:ATTR]", help="the bot, e.g. bots.clinic")
    parser.add_argument(
        "--database",
        default=None,
        help="its database (default: BOTKIT_DATABASE, else botkit-NAME.db after the module)",
    )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(func=lambda args: _run(args, action, printer))
    return parser


def _events(commands: Any) -> None:
    events = commands.add_parser(
        "events", help="list, show and retry failed events (docs/repair.md)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    failed = _command(
        events,
        "failed",
        "list failed events, newest first (id, user, kind, when, error)",
        lambda r, a: r.events(limit=a.limit),
        _print_event_lines,
    )
    failed.add_argument("--limit", type=_count, default=50, help="at most this many (default 50)")
    show = _command(
        events,
        "show",
        "show one event: status, attempts, error, the stored envelope",
        lambda r, a: r.event(a.event_id),
        _print_event,
    )
    show.add_argument("event_id", metavar="EVENT_ID")
    retry = _command(
        events,
        "retry",
        "queue failed events again; each runs after the events its user sent since",
        _retry_events,
        _print_retried_events,
    )
    _one_or_all(retry, "event_id", "EVENT_ID")


def _sends(commands: Any) -> None:
    sends = commands.add_parser(
        "sends", help="list, show and retry failed sends (docs/repair.md)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    failed = _command(
        sends,
        "failed",
        "list failed sends, newest first (number, user, type, when, error)",
        lambda r, a: r.sends(limit=a.limit),
        _print_send_lines,
    )
    failed.add_argument("--limit", type=_count, default=50, help="at most this many (default 50)")
    show = _command(
        sends,
        "show",
        "show one send: status, attempts, error, key, delivery status, body",
        lambda r, a: r.send(a.send),
        _print_send,
    )
    show.add_argument("send", metavar="SEND", type=int, help="its number (botkit sends failed)")
    retry = _command(
        sends,
        "retry",
        "send failed sends again, under new idempotency keys",
        _retry_sends,
        _print_retried_sends,
    )
    _one_or_all(retry, "send", "SEND", kind=int)


def _count(text: str) -> int:
    """A --limit or --recent: a whole number from 1 to MAX_LIMIT (as the API takes)."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_LIMIT}, not {text!r}")
    return int(text)


def _one_or_all(parser: argparse.ArgumentParser, dest: str, metavar: str, kind: Any = str) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(dest, metavar=metavar, nargs="?", type=kind)
    which.add_argument("--all-failed", action="store_true", help="every failed one")


async def _retry_events(repairs: Repairs, args: argparse.Namespace) -> JSON:
    if args.all_failed:
        return await repairs.retry_failed_events()
    return await repairs.retry_event(args.event_id)


async def _retry_sends(repairs: Repairs, args: argparse.Namespace) -> JSON:
    if args.all_failed:
        return await repairs.retry_failed_sends()
    return await repairs.retry_send(args.send)


def _conversations(commands: Any) -> None:
    conversations = commands.add_parser(
        "conversations", help="show, reset or forget one user's conversation (docs/repair.md)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    show = _command(
        conversations,
        "show",
        "a user's state, data, window, pending work and latest messages in and out",
        lambda r, a: r.conversation(a.wa_id, a.recent),
        _print_conversation,
    )
    show.add_argument("wa_id", metavar="WA_ID", help="the user's number, digits only")
    show.add_argument(
        "--recent", type=_count, default=RECENT, help=f"messages to show (default {RECENT})"
    )
    reset = _command(
        conversations,
        "reset",
        "put a user back at the initial state with empty data (events and sends stay)",
        lambda r, a: r.reset(a.wa_id),
        _print_reset,
    )
    reset.add_argument("wa_id", metavar="WA_ID")
    forget = _command(
        conversations,
        "forget",
        "delete everything stored about a user (refused while events of theirs are pending)",
        lambda r, a: r.forget(a.wa_id),
        _print_forgotten,
    )
    forget.add_argument("wa_id", metavar="WA_ID")


def _run(args: argparse.Namespace, action: Action, printer: Printer) -> int:
    """Opens the bot's store, runs `action`, prints its answer; 1 when the store refuses."""
    bot = load_bot(args.target)
    database = (
        args.database or Settings.from_env(default_database=database_for(args.target)).database
    )
    _check_exists(database)

    async def work() -> JSON:
        store = open_store(database, pool_size=2)
        await store.open()
        try:
            return await action(Repairs(store, bot.conversation.spec, SystemClock()), args)
        finally:
            await store.aclose()

    try:
        answer = asyncio.run(work())
    except RepairError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(codec.dumps_str(answer))
    else:
        printer(answer)
    return 0


def _check_exists(database: str) -> None:
    """A SQLite file that is not there is a mistake here (the wrong folder, the wrong bot),
    not a new database to create."""
    if "://" in database and not database.startswith("sqlite://"):
        return
    path = sqlite_path(database)
    if path != ":memory:" and not Path(path).is_file():
        raise StoreError(
            f"no database at {path}: run this where the bot runs, or name its database "
            "(BOTKIT_DATABASE, or --database)"
        )


# -- printing --------------------------------------------------------------------------------


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


def _text(value: Any) -> str:
    return "-" if value is None else " ".join(str(value).split())


def _print_event_lines(lines: Any) -> None:
    if not lines:
        print("no failed events")
        return
    rows = [
        [e["event_id"], e["user"], e["kind"], _text(e["processed_at"]), _text(e["attempts"]),
         _text(e["error"])]
        for e in lines
    ]  # fmt: skip
    _table(rows, ["EVENT", "USER", "KIND", "FAILED AT", "ATTEMPTS", "ERROR"])


def _print_event(event: Any) -> None:
    for key in ("event_id", "status", "attempts", "error", "kind", "wa_id", "phone_number_id",
                "received_at", "processed_at", "summary"):  # fmt: skip
        print(f"{key + ':':17} {_text(event[key])}")
    print("envelope:")
    print(json.dumps(event["envelope"], indent=2, ensure_ascii=False))


def _print_retried_events(answer: Any) -> None:
    if "as" in answer:
        print(
            f"queued {answer['retried']} again as {answer['as']['event_id']}: it runs after "
            "the events its user sent since"
        )
        return
    _print_retried_all(answer, "event", lambda r: f"{r['event_id']} as {r['as']}")


def _print_retried_all(answer: Any, noun: str, line: Callable[[Any], str]) -> None:
    retried, refused = answer["retried"], answer["refused"]
    print(f"retried {len(retried)} failed {noun}{'' if len(retried) == 1 else 's'}")
    for each in retried:
        print(f"  {line(each)}")
    for each in refused:
        print(f"  not retried: {each['error']}")
    if answer["more"]:
        print("more remain: run it again")


def _print_send_lines(lines: Any) -> None:
    if not lines:
        print("no failed sends")
        return
    rows = [
        [str(s["send"]), s["user"], s["type"], _text(s["finished_at"]), _text(s["attempts"]),
         _text(s["error"])]
        for s in lines
    ]  # fmt: skip
    _table(rows, ["SEND", "USER", "TYPE", "FAILED AT", "ATTEMPTS", "ERROR"])


def _print_send(send: Any) -> None:
    for key in ("send", "status", "attempts", "error", "type", "instead_of", "wa_id",
                "phone_number_id", "idempotency_key", "provider_message_id", "delivery_status",
                "created_at", "finished_at", "cause", "summary"):  # fmt: skip
        print(f"{key + ':':21} {_text(send[key])}")
    print("payload:")
    print(json.dumps(send["payload"], indent=2, ensure_ascii=False))


def _print_retried_sends(answer: Any) -> None:
    if "send" in answer:
        print(f"send {answer['send']} is pending again, as {answer['idempotency_key']}")
        return
    _print_retried_all(answer, "send", lambda r: f"{r['send']} as {r['idempotency_key']}")


def _print_conversation(view: Any) -> None:
    print(f"user {view['wa_id']} (conversation {view['conversation']})")
    for number in view["numbers"]:
        state = number["state"] + (" (initial: no session stored)" if number["initial"] else "")
        print(f"  number {number['phone_number_id']}: state {state}")
        print(f"    data: {codec.dumps_str(number['data'])}")
        window = number["window"]
        if window["open"]:
            shown = f"open, closes at {window['closes_at']}"
        elif window["refused"]:
            shown = "closed: the provider refused a message since the user last wrote"
        elif window["closes_at"] is None:
            shown = "closed: the user never wrote"
        else:
            shown = f"closed at {window['closes_at']}"
        print(f"    window: {shown}")
        busy = "; a turn or a send is in flight" if number["in_flight"] else ""
        print(
            f"    pending: {number['pending_events']} events, {number['pending_sends']} sends{busy}"
        )
    for timer in view.get("timers", []):
        print(f"  timer {timer['name']} due {timer['due_at']} (number {timer['phone_number_id']})")
    messages = view["messages"]
    print(f"  messages (latest {len(messages)}):" if messages else "  no messages kept")
    for m in messages:
        status = m["status"]
        if m["direction"] == "out" and m["delivery_status"]:
            status += f", {m['delivery_status']}"
        if m["error"]:
            status += f": {_text(m['error'])}"
        print(f"    {m['at']}  {m['direction']:3}  {_text(m['summary'])}  [{status}]")


def _print_reset(answer: Any) -> None:
    print(
        f"user {answer['wa_id']}: back at state {answer['state']} with empty data "
        f"({answer['sessions_deleted']} session{'' if answer['sessions_deleted'] == 1 else 's'}"
        " deleted)"
    )


_ONE = {"delivery_statuses": "delivery status"}  # the others lose their final s


def _print_forgotten(answer: Any) -> None:
    counts = ", ".join(
        f"{count} {(_ONE.get(kind, kind[:-1]) if count == 1 else kind).replace('_', ' ')}"
        for kind, count in answer["deleted"].items()
    )
    print(f"user {answer['wa_id']} forgotten: deleted {counts} ({answer['total']} rows)")


__all__ = ["add_commands"]
