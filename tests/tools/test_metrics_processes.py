"""Metrics and readiness of a real `botkit run`: its web process serves GET /metrics with the
figures of its worker child added in (prometheus-client's multiprocess mode, through a private
directory `botkit run` makes and removes), and they survive the child being killed and
restarted. Black-box, as tests/tools/test_processes.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from .processes import Deployment, Process, _descendants, free_port, provider_env
from .test_processes import BOT, USERS, post_messages

pytestmark = pytest.mark.slow

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", re.M)


def scrape(web: Process, headers: dict[str, str] | None = None) -> dict[str, float]:
    """GET /metrics: "name{labels}" -> value."""
    answer = httpx.get(f"{web.url}/metrics", headers=headers, timeout=5.0)
    assert answer.status_code == 200, answer.text
    return {f"{m[1]}{m[2] or ''}": float(m[3]) for m in SAMPLE.finditer(answer.text)}


def figure(web: Process, key: str, headers: dict[str, str] | None = None) -> float:
    return scrape(web, headers).get(key, 0.0)


def worker_child(web: Process) -> int | None:
    """The pid of `botkit run`'s worker child, None while there is none."""
    for pid in _descendants(web.popen.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as found:
                if b"--wakeups-from-stdin" in found.read():
                    return pid
        except OSError:  # gone meanwhile
            continue
    return None


def multiprocess_directory(web: Process) -> Path:
    """The directory the worker child was given (/proc shows a process's starting environment:
    the web process set the variable after it started)."""
    with open(f"/proc/{worker_child(web)}/environ", "rb") as found:
        variables = dict(
            entry.split(b"=", 1) for entry in found.read().split(b"\0") if b"=" in entry
        )
    return Path(variables[b"PROMETHEUS_MULTIPROC_DIR"].decode())


SENT = 'botkit_sends_total{outcome="sent",type="text"}'
DONE = 'botkit_events_processed_total{kind="message",outcome="done"}'
ACCEPTED = 'botkit_webhook_requests_total{outcome="accepted"}'


def test_the_worker_childs_figures_reach_the_web_scrape_and_survive_its_restart(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, str(tmp_path / "bot.db")))
    web = deployment.web(BOT, workers=True)
    directory = multiprocess_directory(web)
    assert directory.is_dir()

    post_messages(web, range(1, 3))  # 2 messages of each of 5 users
    first = len(USERS) * 2
    deployment.wait_until(lambda: figure(web, SENT) == first, what="the sends counted", process=web)
    found = scrape(web)
    assert found[DONE] == first  # counted in the worker child
    assert found[ACCEPTED] == first  # counted in the web process
    assert found["botkit_worker_up"] == 1
    assert found["botkit_worker_restarts_total"] == 0

    child = worker_child(web)
    assert child is not None
    os.kill(child, signal.SIGKILL)  # the worker dies; the web process starts another

    def not_ready() -> dict[str, object] | None:
        answer = httpx.get(f"{web.url}/readyz", timeout=2.0)
        return answer.json() if answer.status_code == 503 else None

    down = deployment.wait_until(not_ready, what="/readyz 503", within=5.0, process=web)
    assert down["checks"]["worker"] == "down"  # type: ignore[index]
    assert "the worker process is down" in str(down["reasons"])
    deployment.wait_until(
        lambda: (
            figure(web, "botkit_worker_restarts_total") == 1
            and worker_child(web) not in (None, child)
        ),
        what="the worker restarted",
        process=web,
    )
    assert figure(web, SENT) == first  # the dead child's figures stay in the scrape

    post_messages(web, range(3, 5))
    total = first * 2
    deployment.wait_until(lambda: figure(web, SENT) == total, what="all sends counted", process=web)
    found = scrape(web)
    assert found[DONE] == total
    assert found[ACCEPTED] == total
    assert found["botkit_worker_up"] == 1
    assert httpx.get(f"{web.url}/readyz", timeout=5.0).status_code == 200
    assert len(fake.messages()) == total

    web.stop()
    assert not directory.exists()  # botkit run removes its directory at exit


def test_a_separate_worker_serves_its_own_figures_behind_the_token(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, str(tmp_path / "bot.db")))
    deployment.env["BOTKIT_METRICS_TOKEN"] = "scrape-token"
    web = deployment.web(BOT)  # --no-workers: a web replica
    port = free_port()
    worker = deployment.worker(BOT, "--metrics-port", str(port))
    assert f"GET /metrics on 127.0.0.1:{port}" in worker.output()
    worker.url = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{worker.url}/metrics", timeout=5.0).status_code == 401

    post_messages(web, range(1, 2))
    headers = {"Authorization": "Bearer scrape-token"}
    total = len(USERS)
    deployment.wait_until(
        lambda: figure(worker, SENT, headers) == total, what="the worker's sends", process=worker
    )
    found = scrape(worker, headers)
    assert found[DONE] == total
    assert found.get(ACCEPTED, 0) == 0  # the worker acknowledges nothing
    served = scrape(web, headers)
    assert served[ACCEPTED] == total  # the web replica does
    assert served.get(SENT, 0) == 0
    assert "botkit_worker_up" not in served  # no child of its own
    assert worker.stop() == 0


def test_a_directory_left_by_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    """A SIGKILLed botkit run cannot remove its directory; the next run removes it, and leaves
    a live run's alone."""
    from botkit.metrics import PREFIX, multiprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = Path(tempfile.gettempdir()) / f"{PREFIX}{dead.pid}-killed"
    orphan.mkdir()
    (orphan / "counter_1.db").write_bytes(b"\0" * 16)
    live = Path(tempfile.gettempdir()) / f"{PREFIX}{os.getpid()}-running"
    live.mkdir()
    try:
        with multiprocess() as made:
            assert Path(made).name.startswith(f"{PREFIX}{os.getpid()}-")
        assert not orphan.exists()
        assert live.exists()
    finally:
        shutil.rmtree(orphan, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)
