"""Real botkit processes for black-box tests: `botkit fake-api`, `botkit run`, `botkit worker`.

A `Deployment` starts them from the project root with one environment (GOSENDAPI_* and
BOTKIT_* from the test only, never from the machine's), waits until each is ready, and at
the end of its block stops whatever still runs (SIGTERM, then SIGKILL after 30 s); a wait
that fails shows every process's output. `post_text` signs and posts a user's message as
GoSendAPI does, to any web process; `FakeAPI.messages()` reads what the fake recorded.

tests/tools/test_processes.py uses it on SQLite; a deployment of several replicas on
PostgreSQL is the same calls with `BOTKIT_DATABASE=postgresql://...` in `provider_env`:

    with Deployment(tmp_path) as deployment:
        fake = deployment.fake_api()
        deployment.env.update(provider_env(fake, "postgresql://.../botkit_test"))
        webs = [deployment.web("tests.tools.echo_bot") for _ in range(2)]
        workers = [deployment.worker("tests.tools.echo_bot") for _ in range(2)]
        post_text(webs[0].url, JUAN, "hola")
        deployment.wait_until(lambda: len(fake.messages()) == 1, what="the reply")
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]  # where `botkit`, `bots` and `tests` are imported from
CLI = [sys.executable, "-m", "botkit.tools.cli"]
SECRET = "whsec_processes"
API_KEY = "gsk_test_processes"
PHONE_NUMBER_ID = "555123456789"
WORKER_READY = "workers are running"  # the line `botkit worker` prints once it works
START_WITHIN = 30.0  # seconds for a process to be ready (imports on a busy machine)
STOP_WITHIN = 30.0  # seconds for a process to stop after SIGTERM before it is killed

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provider_env(fake: FakeAPI, database: str, *, secret: str = SECRET) -> dict[str, str]:
    """The variables of a bot's processes that reply through `fake` and keep `database`."""
    return {
        "GOSENDAPI_API_KEY": API_KEY,
        "GOSENDAPI_WEBHOOK_SECRET": secret,
        "GOSENDAPI_BASE_URL": f"{fake.url}/v1",
        "GOSENDAPI_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "BOTKIT_DATABASE": database,
    }


@dataclass
class Process:
    """One started botkit command, its output going to `log`."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""  # for those that serve HTTP

    @property
    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def output(self) -> str:
        """Everything it printed so far (stdout and stderr)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, number: int = signal.SIGTERM) -> None:
        """Sends it a signal (SIGTERM: stop gracefully)."""
        if self.alive:
            self.popen.send_signal(number)

    def wait(self, within: float = STOP_WITHIN) -> int:
        """Its exit code, once it exits; pytest fails if it has not within `within` seconds."""
        try:
            return self.popen.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {within} s:\n{self.output()}")

    def stop(self, within: float = STOP_WITHIN) -> int:
        """SIGTERM, then its exit code; pytest fails if it does not stop in time (and the
        deployment kills it)."""
        self.signal(signal.SIGTERM)
        return self.wait(within)

    def kill(self) -> None:
        """Stops it at once, whatever it was doing."""
        if self.alive:
            self.popen.kill()
        self.popen.wait(timeout=STOP_WITHIN)

    def kill_all(self) -> None:
        """SIGKILLs it and every process it started (`botkit run`'s worker child), at once:
        a machine lost, not a process stopped."""
        family = [*_descendants(self.popen.pid), self.popen.pid]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_WITHIN)


@dataclass
class FakeAPI:
    """A running `botkit fake-api`: its base URL and what it recorded."""

    process: Process
    url: str

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """The messages it accepted, in order (one per idempotency key), to `to` or to anyone."""
        params = {"to": to} if to else None
        answer = httpx.get(f"{self.url}/_fake/messages", params=params, timeout=5.0)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def stats(self) -> dict[str, Any]:
        """Its counters (`messages`, `requests`, `replays` of a known idempotency key, ...)."""
        answer = httpx.get(f"{self.url}/_fake/stats", timeout=5.0)
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found


@dataclass
class Deployment:
    """The processes of one test, started in `folder` with `env` (GOSENDAPI_* and BOTKIT_*
    come from here only); stopped, or killed, when its block ends."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in reversed(self.processes):
            process.signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.popen.wait(timeout=STOP_WITHIN)
            except subprocess.TimeoutExpired:
                process.kill()

    def start(self, name: str, args: list[str], *, env: Mapping[str, str] | None = None) -> Process:
        """Starts `botkit ARGS` from the project root (stdin closed, output to NAME.log)."""
        machine = {
            k: v for k, v in os.environ.items() if not k.startswith(("GOSENDAPI_", "BOTKIT_"))
        }
        log = self.folder / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [*CLI, *args],
                cwd=ROOT,
                env={**machine, **self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def fake_api(self, *args: str) -> FakeAPI:
        """`botkit fake-api` on a free port, accepting free-form messages whatever the
        window (the tests post webhooks straight to the bot), ready."""
        port = free_port()
        process = self.start(
            self._name("fake-api"), ["fake-api", "--port", str(port), "--no-window-check", *args]
        )
        fake = FakeAPI(process, f"http://127.0.0.1:{port}")
        self.wait_until(lambda: _answers(f"{fake.url}/_fake/stats"), what="up", process=process)
        return fake

    def web(
        self,
        target: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        workers: bool = False,
    ) -> Process:
        """`botkit run --no-workers TARGET` (a web replica) on a free port, ready (/healthz);
        with `workers`, `botkit run TARGET` (web and workers)."""
        port = free_port()
        argv = ["run", target, "--port", str(port), *([] if workers else ["--no-workers"])]
        process = self.start(self._name("web"), [*argv, *args], env=env)
        process.url = f"http://127.0.0.1:{port}"
        self.wait_until(lambda: _answers(f"{process.url}/healthz"), what="up", process=process)
        return process

    def worker(
        self, target: str, *args: str, env: Mapping[str, str] | None = None, ready: bool = True
    ) -> Process:
        """`botkit worker TARGET`; with `ready`, once it says its workers run."""
        process = self.start(self._name("worker"), ["worker", target, *args], env=env)
        if ready:
            self.wait_until(lambda: WORKER_READY in process.output(), what="up", process=process)
        return process

    def wait_until(
        self,
        check: Callable[[], T],
        *,
        what: str,
        within: float = START_WITHIN,
        process: Process | None = None,
    ) -> T:
        """`check()` once truthy; pytest fails, showing every process's output, if it is not
        within `within` seconds, or at once if `process` (the one that should get there) exits."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if process is not None and not process.alive:
                pytest.fail(f"{process.name} exited before {what}\n{self.outputs()}")
            try:
                found = check()
            except httpx.TransportError:
                found = None
            if found:
                return found
            time.sleep(0.05)
        who = f"{process.name} " if process is not None else ""
        pytest.fail(f"{who}{what}: not within {within} s\n{self.outputs()}")

    def outputs(self) -> str:
        """Every process's output, for a failure's message."""
        return "\n".join(
            f"--- {p.name} (exit {p.popen.poll()}):\n{p.output()}" for p in self.processes
        )

    def _name(self, kind: str) -> str:
        return f"{kind}-{sum(p.name.startswith(kind) for p in self.processes) + 1}"


def _descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _answers(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


# -- webhooks, as GoSendAPI sends them -----------------------------------------------------------


def text_event(wa_id: str, text: str, *, phone_number_id: str = PHONE_NUMBER_ID) -> dict[str, Any]:
    """A `whatsapp.message.received` envelope of a text from `wa_id`, sent now, with new ids."""
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "whatsapp.message.received",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "phone_number_id": phone_number_id,
        "data": {
            "contact": {"wa_id": wa_id, "profile": {"name": f"User {wa_id[-4:]}"}},
            "message": {
                "from": wa_id,
                "id": f"wamid.{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            },
        },
    }


def post_event(
    web_url: str,
    envelope: dict[str, Any],
    *,
    secret: str = SECRET,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POSTs an envelope to a web process's /webhook, signed as GoSendAPI signs (written out
    here, not botkit's own code: both sides of the wire must not share a bug)."""
    body = json.dumps(envelope).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-GoSendAPI-Signature": f"sha256={digest}"}
    with _client(client) as http:
        return http.post(f"{web_url}/webhook", content=body, headers=headers)


def post_text(web_url: str, wa_id: str, text: str, **options: Any) -> httpx.Response:
    """A user's text, posted to a web process's /webhook (see `post_event`)."""
    return post_event(web_url, text_event(wa_id, text), **options)


@contextmanager
def _client(given: httpx.Client | None) -> Iterator[httpx.Client]:
    if given is not None:
        yield given
        return
    with httpx.Client(timeout=10.0) as client:
        yield client


def texts_by_user(messages: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The text bodies the fake accepted, per recipient, in the order it accepted them."""
    found: dict[str, list[str]] = {}
    for message in messages:
        found.setdefault(message["to"], []).append(message["body"]["text"]["body"])
    return found
