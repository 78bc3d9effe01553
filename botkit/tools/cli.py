"""The `botkit` command: try a bot (chat, dev), check and draw it, serve it (run, worker), fake
the provider (fake-api).

A deployed bot is processes of two kinds sharing one store: web processes (`botkit run`) that
verify, store and acknowledge webhooks, and workers (`botkit worker`) that run the handlers
and send the replies. `botkit run` starts its own worker child; `botkit run --no-workers` is a
web replica only, for as many as needed beside separately started `botkit worker`s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from botkit import logsafe
from botkit.config import DEV_WEBHOOK_SECRET, LogSettings, Settings, database_for
from botkit.conversation.dsl import Conversation
from botkit.exceptions import BotkitError
from botkit.fake.provider import FakeGoSendAPI, serve
from botkit.metrics import multiprocess
from botkit.runtime.bot import Bot, find_bot, import_target, load_bot
from botkit.runtime.runtime import Runtime
from botkit.runtime.worker import (
    STOP_SIGNALS,
    WorkerProcess,
    stop_signals,
    until_stopped,
    worker_command,
)
from botkit.store import open_store
from botkit.tools import check, graph, repair
from botkit.web import server
from botkit.web.app import create_app
from botkit.web.metrics import metrics_routes

log = logging.getLogger("botkit")

FAKE_MOUNT = "/provider"
LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]
# --log-level when not given (run and worker: BOTKIT_LOG_LEVEL first). The chat prints a
# handler's error as one line; the log would repeat it with a traceback (--log-level error
# shows it).
DEFAULT_LOG_LEVELS = {"run": "info", "worker": "info", "chat": "critical", "dev": "warning"}
# What to set when a separate worker needs a provider: a fake GoSendAPI will do.
PROVIDER_VARIABLES = (
    "GOSENDAPI_API_KEY and GOSENDAPI_WEBHOOK_SECRET (and, for a fake GoSendAPI served by "
    "`botkit fake-api --port 8001`, GOSENDAPI_BASE_URL=http://127.0.0.1:8001/v1)"
)


def build_app(
    bot: Bot,
    settings: Settings,
    *,
    target: str | None = None,
    log_level: str = "info",
    workers: bool = True,
) -> Starlette:
    """The service for `bot`: against GoSendAPI, or against the built-in fake when no key is set.

    With a `target` (the bot's import path) and a real provider, the workers run in a child
    process; against the in-process fake they run inline. With `workers=False` they run
    nowhere here: the app verifies, stores and acknowledges, and a `botkit worker` elsewhere
    processes (refused against the built-in fake, which only this process could reach).
    """
    if not settings.uses_fake_provider:
        if not workers:
            return create_app(Runtime(bot, settings, workers=False))
        process = WorkerProcess(worker_command(target, log_level)) if target else None
        return create_app(Runtime(bot, settings, worker_process=process))
    if not workers:
        raise BotkitError(
            "--no-workers serves a web replica whose events a separate `botkit worker` "
            "processes, but no GOSENDAPI_API_KEY is set: the built-in fake provider lives "
            f"inside this process, where no other process could send to it. Set "
            f"{PROVIDER_VARIABLES}, or leave out --no-workers"
        )
    fake = FakeGoSendAPI(
        webhook_url="http://bot/webhook", webhook_secret=settings.webhook_secrets[0]
    )
    settings = dataclasses.replace(settings, base_url="http://provider/v1")
    runtime = Runtime(bot, settings, transport=httpx.ASGITransport(app=fake.app))
    about = "the built-in fake GoSendAPI: POST _fake/inbound (be a user), GET _fake/messages"
    app = create_app(runtime, extra_routes=[Mount(FAKE_MOUNT, app=fake.app, name=about)])
    fake.webhook_transport = httpx.ASGITransport(app=app)
    return app


def _share_the_gil() -> None:
    """Hands the GIL over every 0.5 ms instead of 5 ms.

    The store's SQLite thread releases the GIL at every statement; with the default interval
    it waits up to 5 ms each time to get it back from a busy event loop, and a 256-event
    transaction took 50 ms (bench/webhook.py).
    """
    sys.setswitchinterval(0.0005)


def _run(args: argparse.Namespace) -> int:
    _share_the_gil()
    settings = Settings.from_env(
        require_provider=args.require_provider, default_database=database_for(args.target)
    )
    bot = load_bot(args.target)
    target = args.target if args.workers == "process" else None
    workers = args.workers != "none"
    with contextlib.ExitStack() as stack:
        if target is not None and not settings.uses_fake_provider and settings.metrics:
            # a web process and its worker child: their figures meet in a private directory
            directory = stack.enter_context(multiprocess())
            _at_stop_signals(lambda: shutil.rmtree(directory, ignore_errors=True))
        return _serve(args, bot, settings, target, workers)


def _at_stop_signals(cleanup: Callable[[], None]) -> None:
    """Runs `cleanup` at SIGTERM or SIGINT, then lets the signal act as it would have.

    uvicorn stops gracefully at those signals, then restores the handlers it found and raises
    the signal again, so that the process ends as signalled: no `finally` of ours runs then,
    but this handler does.
    """

    def handler(number: int, frame: object) -> None:
        cleanup()
        signal.signal(number, previous.get(number) or signal.SIG_DFL)
        signal.raise_signal(number)

    previous: dict[int, Any] = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, handler)


def _serve(
    args: argparse.Namespace, bot: Bot, settings: Settings, target: str | None, workers: bool
) -> int:
    app = build_app(bot, settings, target=target, log_level=args.log_level, workers=workers)
    _open_store_once(settings, worker=workers)
    sock = server.listen(args.host, args.port)  # a port in use is one line, before the banner
    where = f"http://{args.host}:{args.port}"
    if not workers:
        print(
            f"botkit: {bot.name} on {where}, acknowledging only (--no-workers): "
            f"`botkit worker {args.target}` on the same database runs the handlers and sends",
            file=sys.stderr,
            flush=True,
        )
    if settings.uses_fake_provider:
        secret = (
            "the development secret"
            if settings.webhook_secrets == (DEV_WEBHOOK_SECRET,)
            else "GOSENDAPI_WEBHOOK_SECRET"
        )
        print(
            f"botkit: {bot.name} on {where} with the built-in fake GoSendAPI (no GOSENDAPI_API_KEY set)\n"
            f"  webhook:   POST {where}/webhook (signed with {secret})\n"
            f"  as a user: curl -s {where}{FAKE_MOUNT}/_fake/inbound -H 'Content-Type: application/json' "
            '-d \'{"wa_id": "5491140123456", "name": "Juan", "text": "hola"}\'\n'
            f"  replies:   curl -s {where}{FAKE_MOUNT}/_fake/messages\n"
            f"  database:  {settings.database}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(provider_banner(bot.name, settings, where), file=sys.stderr, flush=True)
    for warning in settings.warnings():
        print(f"botkit: warning: {warning}", file=sys.stderr, flush=True)
    server.serve(app, settings, host=args.host, port=args.port, log_level=args.log_level, sock=sock)
    return 0


def provider_banner(name: str, settings: Settings, where: str) -> str:
    """What `botkit run` prints at start against a real GoSendAPI: where it sends, from which
    number, where the webhook is (never the key or the secret)."""
    kind = "sandbox" if (settings.api_key or "").startswith("gsk_test_") else "live"
    number = (
        f"phone_number_id {settings.phone_number_id} (GOSENDAPI_PHONE_NUMBER_ID) for proactive "
        "sends; replies from the number each event came to"
        if settings.phone_number_id
        else "replies from the number each event came to; proactive sends need "
        "GOSENDAPI_PHONE_NUMBER_ID or a phone_number_id in the trigger"
    )
    triggers = (
        f"POST {where}/conversations/{{wa_id}}/trigger (Bearer BOTKIT_API_TOKEN)"
        if settings.api_token
        else "off (BOTKIT_API_TOKEN is not set)"
    )
    secrets = len(settings.webhook_secrets)
    database = "PostgreSQL" if "://" in settings.database else settings.database  # no password
    return (
        f"botkit: {name} on {where} with GoSendAPI at {settings.base_url} ({kind} key)\n"
        f"  webhook:   POST {where}/webhook (set this URL in GoSendAPI; checked against "
        f"{secrets} secret{'' if secrets == 1 else 's'} from GOSENDAPI_WEBHOOK_SECRET)\n"
        f"  sends:     {number}\n"
        f"  triggers:  {triggers}\n"
        f"  database:  {database}"
    )


def _open_store_once(settings: Settings, *, worker: bool) -> None:
    """Opens the store and closes it, before the server starts: a database that cannot be used
    stops `botkit run` with one line (not the server's traceback), and its schema is created or
    migrated before the web process and its worker both open it. With `worker`, as a process
    that runs workers: a SQLite file another process runs workers on is refused here too."""

    async def open_and_close() -> None:
        store = open_store(settings.database, pool_size=1, worker=worker)
        await store.open()
        await store.aclose()

    asyncio.run(open_and_close())


def _collect_less() -> None:
    """Freezes what start-up built (the bot, its state machine, the libraries) out of the
    garbage collector's sight, and collects young objects ten times less often.

    The worker allocates a few hundred objects per event (envelopes, contexts, outcomes) and
    keeps few: with the default thresholds, collections cost it a sixth of its time
    (bench/webhook.py, processed events/s).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


def _worker(args: argparse.Namespace) -> int:
    _share_the_gil()
    settings = Settings.from_env(default_database=database_for(args.target))
    if settings.uses_fake_provider:
        raise BotkitError(
            "botkit worker sends replies to GoSendAPI, and no GOSENDAPI_API_KEY is set (the "
            f"built-in fake provider runs inside `botkit run` only): set {PROVIDER_VARIABLES}"
        )
    bot = load_bot(args.target)
    runtime = Runtime(bot, settings)
    metrics_at = None
    if args.metrics_port is not None:  # a port in use is one line, before the workers start
        metrics_at = server.listen(args.metrics_host, args.metrics_port)
    _collect_less()
    wakeups = runtime.store.inbox.notify if args.wakeups_from_stdin else None

    async def work() -> None:
        async with runtime.running(), contextlib.AsyncExitStack() as stack:
            if metrics_at is not None:
                app = Starlette(routes=metrics_routes(runtime))
                await stack.enter_async_context(server.serving(app, metrics_at))
            with stop_signals() as stop:
                if wakeups is None:  # on its own (`botkit run`'s child is stopped by its parent)
                    print(
                        f"botkit: {bot.name}'s workers are running; SIGTERM or Ctrl-C stops "
                        "them (what is in flight is finished first)"
                        + (
                            f"; GET /metrics on {args.metrics_host}:{args.metrics_port}"
                            if metrics_at
                            else ""
                        ),
                        file=sys.stderr,
                        flush=True,
                    )
                await until_stopped(stop, wakeups=wakeups)
            log.info("stopping the workers: finishing what is in flight")

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            runner.run(work())
        except KeyboardInterrupt:  # a second Ctrl-C, during the graceful stop
            print("botkit: stopped at once; unfinished work runs again", file=sys.stderr)
            return 130
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed except on Windows
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def load_conversation(target: str) -> type[Conversation]:
    """The Conversation of `module[:attr]`: the attribute itself when it is one, else its Bot's."""
    module, attr = import_target(target)
    found = getattr(module, attr, None) if attr else None
    if isinstance(found, type) and issubclass(found, Conversation):
        return found
    return find_bot(module, attr).conversation


def _graph(args: argparse.Namespace) -> int:
    spec = load_conversation(args.target).spec
    if args.format == "mermaid":
        return _write(graph.mermaid(spec).encode(), args.output)
    if args.format == "png" and args.output is None and sys.stdout.isatty():
        name = args.target.rpartition(".")[2].replace(":", "_")
        print(
            "botkit: error: a PNG is binary and stdout is a terminal: give --output FILE "
            f"(botkit graph {args.target} --format png --output {name}.png) or redirect "
            f"stdout (> {name}.png)",
            file=sys.stderr,
        )
        return 2
    if shutil.which("dot") is None:
        print(
            f"botkit: error: --format {args.format} needs Graphviz's `dot`, which is not "
            "installed (apt-get install graphviz); Mermaid output is available without it: "
            f"botkit graph {args.target}",
            file=sys.stderr,
        )
        return 1
    done = subprocess.run(
        ["dot", f"-T{args.format}"], input=graph.dot(spec).encode(), capture_output=True
    )
    if done.returncode != 0:
        print(f"botkit: error: dot failed: {done.stderr.decode().strip()}", file=sys.stderr)
        return 1
    return _write(done.stdout, args.output)


def _write(content: bytes, output: str | None) -> int:
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        Path(output).write_bytes(content)
    return 0


def _check(args: argparse.Namespace) -> int:
    from botkit.tools.lock import lost_states, write_lock

    conversation = load_conversation(args.target)
    problems = check.check(conversation)
    lock = Path(args.lock)
    problems += check.lock_problems(conversation, lost_states(conversation, lock), lock)
    for problem in problems:
        print(problem)
    errors = sum(not problem.warning for problem in problems)
    warnings = len(problems) - errors
    print(
        f"botkit check: {_count(errors, 'error')}, {_count(warnings, 'warning')}", file=sys.stderr
    )
    if args.write_lock and not errors:
        added = write_lock(conversation, lock)
        print(
            f"botkit check: {lock} remembers {', '.join(added) or 'no new state'}", file=sys.stderr
        )
    return 1 if errors else 0


def _new(args: argparse.Namespace) -> int:
    from botkit.tools.scaffold import new_project

    folder = new_project(args.name, Path(args.directory))
    print(f"botkit new: {folder} is ready. Next:\n  cd {folder}\n  pytest            # its tests"
          "\n  botkit run bot    # serve it (botkit dev bot: the web simulator)")  # fmt: skip
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _chat(args: argparse.Namespace) -> int:
    from botkit.tools.chat import DEFAULT_NAME, DEFAULT_USER, chat

    bot = load_bot(args.target)
    name = args.name if args.name or args.user else DEFAULT_NAME
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(chat(bot, wa_id=args.user or DEFAULT_USER, name=name))


def _dev(args: argparse.Namespace) -> int:
    # Imported here: only `botkit dev` needs the web simulator.
    from botkit.tools.devserver import DevBot, create_dev_app

    database = args.database or database_for(args.target, prefix="botkit-dev")
    dev = DevBot(args.target, database)
    _open_store_once(Settings(database=database), worker=True)
    sock = server.listen(args.host, args.port)  # a port in use is one line, before the banner
    app = create_dev_app(dev, watch_every=None if args.no_reload else 0.5)
    source = dev.module_path()
    reloads = f"; editing {source} reloads it" if source and not args.no_reload else ""
    print(
        f"botkit: {dev.bot.name} in the web simulator at http://{args.host}:{args.port}/\n"
        f"  built-in fake GoSendAPI, a clock that starts now, database {database}{reloads}",
        file=sys.stderr,
        flush=True,
    )
    # dev.end_streams at the stop signal: the pages' event streams would hold the stop otherwise
    server.serve(
        app,
        Settings(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        before_exit=dev.end_streams,
        sock=sock,
    )
    return 0


def _fake_api(args: argparse.Namespace) -> int:
    serve(
        args.host,
        args.port,
        rate_per_number=args.rate_per_number,
        enforce_window=not args.no_window_check,
    )
    return 0


DESCRIPTION = """\
WhatsApp bots on GoSendAPI. Start a project of your own (`botkit new shop`). Try a bot in the terminal (`botkit chat bots.clinic`) or in a web
simulator (`botkit dev bots.clinic`); find mistakes in its declarations (`botkit check`) and draw
its states (`botkit graph`); serve it (`botkit run`: the webhook and a worker child; for several
replicas, `botkit run --no-workers` beside `botkit worker`s); serve a fake GoSendAPI on its own
(`botkit fake-api`); look at and repair failed events and sends and users' conversations
(`botkit conversations`, `botkit events`, `botkit sends`). Without GOSENDAPI_API_KEY, run answers
through a built-in fake provider."""
EPILOG = "`botkit COMMAND --help` for a command's options; README.md for the rest."

RUN_DESCRIPTION = """\
Serves a bot's webhook: verifies each event's signature, stores it durably, acknowledges it.
By default a child process (`botkit worker`, supervised, restarted if it dies) runs the
handlers and sends the replies; against the built-in fake provider (no GOSENDAPI_API_KEY) they
run in this process. With --no-workers this process is a web replica only, and separately
started `botkit worker`s on the same database process what it stores. The database is
BOTKIT_DATABASE, or botkit-NAME.db after the bot's module (bots.clinic: botkit-clinic.db).
Configured from the environment (GOSENDAPI_*, BOTKIT_*; see the README)."""

WORKER_DESCRIPTION = """\
Runs a bot's workers (dispatcher, outbox, sender) on BOTKIT_DATABASE (botkit-NAME.db, after
the bot's module, when unset), the database the web processes use: they
process what web processes (`botkit run --no-workers`) store, and send the replies to
GoSendAPI (GOSENDAPI_API_KEY required). SIGTERM or Ctrl-C stops it gracefully: it finishes
what is in flight, gives its claims back and exits 0; a second signal stops it at once. A
SQLite database takes one worker process; a second one exits 2."""


class _CommandsHelp(argparse.HelpFormatter):
    """argparse measures the commands one indent short of where it prints them, so the
    longest (`conversations`) would have its help wrapped to the next line."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length += self._indent_increment


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="botkit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_CommandsHelp,
    )
    commands = top.add_subparsers(
        dest="command", required=True, title="commands", metavar="COMMAND"
    )
    run = commands.add_parser(
        "run",
        help="serve a bot: its webhook and a worker child (configured from the environment)",
        description=RUN_DESCRIPTION,
    )
    run.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. bots.clinic")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--log-level", choices=LOG_LEVELS, help="default: BOTKIT_LOG_LEVEL, else info")
    run.add_argument(
        "--require-provider",
        action="store_true",
        help="fail unless GOSENDAPI_API_KEY and GOSENDAPI_WEBHOOK_SECRET are set (no fake provider)",
    )
    placement = run.add_mutually_exclusive_group()
    placement.add_argument(
        "--workers",
        choices=["process", "inline"],
        help="run handlers and sends in a child process (default; inline against the fake provider)",
    )
    placement.add_argument(
        "--no-workers",
        dest="workers",
        action="store_const",
        const="none",
        help="a web replica: verify, store and acknowledge only; `botkit worker` processes "
        "(needs GOSENDAPI_API_KEY)",
    )
    run.set_defaults(func=_run, workers="process")
    worker = commands.add_parser(
        "worker",
        help="run a bot's workers (handlers and sends) until SIGTERM or Ctrl-C",
        description=WORKER_DESCRIPTION,
    )
    worker.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. bots.clinic")
    worker.add_argument(
        "--log-level", choices=LOG_LEVELS, help="default: BOTKIT_LOG_LEVEL, else info"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve this worker's GET /metrics on PORT (a worker apart from `botkit run`; "
        "BOTKIT_METRICS_TOKEN protects it as the web's)",
    )
    worker.add_argument("--metrics-host", default="127.0.0.1", help="with --metrics-port")
    # `botkit run`'s child: woken through its stdin, gone when its parent closes it
    worker.add_argument("--wakeups-from-stdin", action="store_true", help=argparse.SUPPRESS)
    worker.set_defaults(func=_worker)
    draw = commands.add_parser("graph", help="draw a bot's state diagram from its declarations")
    draw.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. bots.clinic")
    draw.add_argument("--format", choices=["mermaid", "svg", "png"], default="mermaid")
    draw.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    draw.set_defaults(func=_graph)
    checker = commands.add_parser("check", help="find mistakes in a bot's declarations")
    checker.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. bots.clinic")
    checker.add_argument(
        "--lock",
        default="botkit.lock",
        metavar="PATH",
        help="the lock file of the states the bot has had (default: botkit.lock); a state it "
        "names that the bot neither declares nor migrates is an error",
    )
    checker.add_argument(
        "--write-lock",
        action="store_true",
        help="when the check passes, add the bot's current states to the lock file",
    )
    checker.set_defaults(func=_check)
    new = commands.add_parser(
        "new", help="start a project of your own: a bot, its tests, a Dockerfile, a README"
    )
    new.add_argument("name", help="the project's folder and name, e.g. shop")
    new.add_argument("--directory", default=".", help="where to create it (default: here)")
    new.set_defaults(func=_new)
    chat = commands.add_parser(
        "chat", help="talk to a bot in the terminal (fake provider, no network)"
    )
    chat.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. bots.clinic")
    chat.add_argument("--user", default=None, metavar="NUMBER", help="the user's phone number")
    chat.add_argument("--name", default=None, help="the user's profile name")
    chat.add_argument("--log-level", choices=LOG_LEVELS, help="default: critical")
    chat.set_defaults(func=_chat)
    dev = commands.add_parser("dev", help="a web simulator for a bot, on the fake GoSendAPI")
    dev.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. bots.clinic")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument(
        "--database",
        default=None,
        help="the SQLite file (users' states); botkit-dev-NAME.db by default, after the module",
    )
    dev.add_argument("--log-level", choices=LOG_LEVELS, help="default: warning")
    dev.add_argument(
        "--no-reload", action="store_true", help="do not reload the bot when its file changes"
    )
    dev.set_defaults(func=_dev)
    fake = commands.add_parser("fake-api", help="serve the fake GoSendAPI")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8001)
    fake.add_argument(
        "--rate-per-number",
        type=int,
        default=None,
        metavar="N",
        help="answer 429 past N messages in any rolling second for one phone_number_id",
    )
    fake.add_argument(
        "--no-window-check",
        action="store_true",
        help="accept free-form messages whatever the 24-hour window (for webhooks posted straight "
        "to the bot, which the fake never sees open a window)",
    )
    fake.set_defaults(func=_fake_api)
    repair.add_commands(commands)  # events, sends, conversations: docs/repair.md
    return top


def _log_to_stderr(args: argparse.Namespace) -> None:
    """The process's log (botkit/logsafe.py: every line escaped and bounded, users' numbers
    masked): BOTKIT_LOG_FORMAT, BOTKIT_LOG_PHONE, and the level of --log-level, else, for
    the commands that serve a bot, BOTKIT_LOG_LEVEL, else the command's default."""
    settings = LogSettings.from_env()
    level = log_level(args.command, getattr(args, "log_level", None), settings)
    if hasattr(args, "log_level"):
        args.log_level = level  # `botkit run` passes it on to its worker child
    logsafe.configure(level, format=settings.format, phones=settings.phones)


def log_level(command: str, given: str | None, settings: LogSettings) -> str:
    """The level of `command`: --log-level when `given`, else BOTKIT_LOG_LEVEL for the
    commands that serve a bot (run, worker), else the command's own default."""
    if given is not None:
        return given
    serving = command in ("run", "worker")
    return (settings.level if serving else None) or DEFAULT_LOG_LEVELS.get(command, "info")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `botkit` command."""
    args = parser().parse_args(argv)
    try:
        _log_to_stderr(args)
    except BotkitError as exc:
        print(f"botkit: error: {exc}", file=sys.stderr)
        return 2
    sys.path.insert(0, ".")
    try:
        code: int = args.func(args)
    except BotkitError as exc:
        print(f"botkit: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
