"""The process model, for real: web replicas (`botkit run --no-workers`) store and acknowledge,
separate `botkit worker`s reply, all on one SQLite file, against `botkit fake-api`.

Black-box: the tests start the commands as an operator would (tests/tools/processes.py), post
signed webhooks to the web process, and read what the fake provider accepted. The bot
(tests/tools/echo_bot.py) answers "echo N" to the text "N", so each reply names its event.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from .processes import (
    Deployment,
    FakeAPI,
    Process,
    post_event,
    post_text,
    provider_env,
    text_event,
    texts_by_user,
)

pytestmark = pytest.mark.slow

BOT = "tests.tools.echo_bot"
USERS = [f"54911400000{n:02d}" for n in range(5)]


def fake_and_web(deployment: Deployment, tmp_path: Path) -> tuple[FakeAPI, Process]:
    """The fake provider, and a web replica on a SQLite file that replies through it."""
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, str(tmp_path / "bot.db")))
    return fake, deployment.web(BOT)


def post_messages(web: Process, numbers: range) -> None:
    """Each user sends each number, in order (users interleaved); every one acknowledged."""
    with httpx.Client(timeout=10.0) as client:
        for number in numbers:
            for user in USERS:
                answer = post_text(web.url, user, str(number), client=client)
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"accepted": 1, "duplicates": 0}


def expected(numbers: range) -> dict[str, list[str]]:
    return {user: [f"echo {number}" for number in numbers] for user in USERS}


def pending(web: Process) -> dict[str, int]:
    """What the store still holds to process or send, as the web replica's /healthz says."""
    health = httpx.get(f"{web.url}/healthz", timeout=5.0).json()
    found: dict[str, int] = health["pending"]
    return found


def test_web_replicas_store_and_a_separate_worker_replies_once_to_each_event(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake, web = fake_and_web(deployment, tmp_path)
    other = deployment.web(BOT)  # a second web replica on the same file
    worker = deployment.worker(BOT)  # its stdin is closed: it must not take that for a stop

    post_messages(web, range(1, 3))
    post_messages(other, range(3, 5))
    again = text_event(USERS[0], "5")
    assert post_event(web.url, again).json() == {"accepted": 1, "duplicates": 0}
    assert post_event(other.url, again).json() == {"accepted": 0, "duplicates": 1}

    total = len(USERS) * 4 + 1
    deployment.wait_until(lambda: len(fake.messages()) >= total, what="every reply", process=worker)
    deployment.wait_until(lambda: pending(web) == {"events": 0, "sends": 0}, what="nothing left")
    replies = expected(range(1, 5))
    replies[USERS[0]].append("echo 5")
    assert texts_by_user(fake.messages()) == replies
    assert worker.stop() == 0
    assert "Traceback" not in worker.output() + web.output() + other.output()


def test_a_worker_stopped_under_load_finishes_its_turns_and_the_next_one_sends_the_rest(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake, web = fake_and_web(deployment, tmp_path)
    first = deployment.worker(BOT)
    post_messages(web, range(1, 7))
    deployment.wait_until(lambda: fake.messages(), what="a first reply", process=first)

    assert first.stop() == 0  # SIGTERM while it replies: it finishes what it holds, exits 0
    assert "stopping the workers" in first.output()
    post_messages(web, range(7, 13))  # no worker runs: the web replica still acknowledges
    assert len(fake.messages()) < len(USERS) * 12
    second = deployment.worker(BOT)

    total = len(USERS) * 12
    deployment.wait_until(lambda: len(fake.messages()) >= total, what="every reply", process=second)
    deployment.wait_until(lambda: pending(web) == {"events": 0, "sends": 0}, what="nothing left")
    assert texts_by_user(fake.messages()) == expected(range(1, 13))  # once each, in order
    assert fake.stats()["replays"] == 0  # the stop left nothing half-sent to send again
    assert second.stop() == 0
    assert "Traceback" not in first.output() + second.output() + web.output()


def test_a_second_worker_on_the_same_sqlite_file_exits_2_saying_why(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake_and_web(deployment, tmp_path)
    first = deployment.worker(BOT)

    second = deployment.worker(BOT, ready=False)

    assert second.wait() == 2
    said = second.output().strip()
    assert said.startswith(f"botkit: error: database {tmp_path / 'bot.db'} is in use: ")
    assert "\n" not in said  # one line, no traceback
    assert first.alive
    first.signal(signal.SIGINT)  # Ctrl-C: a graceful stop too
    assert first.wait() == 0


def test_botkit_run_replies_through_its_worker_child_which_stops_with_it(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, str(tmp_path / "bot.db")))
    web = deployment.web(BOT, workers=True)  # web and a worker child, woken through a pipe

    post_messages(web, range(1, 3))
    banner = web.output()
    assert f"with GoSendAPI at {fake.url}/v1 (sandbox key)" in banner
    assert f"POST {web.url}/webhook" in banner and "phone_number_id 555" in banner
    assert "warning" not in banner

    total = len(USERS) * 2
    deployment.wait_until(lambda: len(fake.messages()) >= total, what="every reply", process=web)
    assert texts_by_user(fake.messages()) == expected(range(1, 3))
    web.stop()
    assert "stopping the workers" in web.output()  # the child stopped gracefully, then exited:
    assert deployment.worker(BOT).stop() == 0  # its lock on the file is free
