"""Three replicas on one PostgreSQL database, for real: each `botkit run` (web process and
worker child) on a machine of its own, webhooks round-robin across them, one replica lost
(SIGKILL of the web process and its worker at once) mid-load and started again.

Black-box, as tests/tools/test_processes.py: the bot (tests/tools/echo_bot.py) answers
"echo N" to the text "N"; the fake provider records what it accepted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .processes import (
    Deployment,
    Process,
    post_event,
    provider_env,
    text_event,
    texts_by_user,
)

pytestmark = pytest.mark.slow

BOT = "tests.tools.echo_bot"
USERS = [f"54911500000{n:02d}" for n in range(20)]


def deliver(replicas: list[Process], turn: int, envelope: dict[str, object]) -> None:
    """Posts to the replica whose turn it is; as the provider does, again to the next one
    while a replica is gone or answers 5xx, until one acknowledges."""
    for attempt in range(3 * len(replicas)):
        replica = replicas[(turn + attempt) % len(replicas)]
        try:
            answer = post_event(replica.url, envelope)
        except httpx.TransportError:
            continue
        if answer.status_code == 200:
            return
        assert answer.status_code >= 500, answer.text
    pytest.fail("no replica acknowledged an event")


def post_round(replicas: list[Process], numbers: range) -> None:
    """Every user sends `numbers` in order, users at once (a thread each), each user's
    events round-robin across the replicas."""

    def one_user(index: int) -> None:
        for number in numbers:
            deliver(replicas, index + number, text_event(USERS[index], str(number)))

    with ThreadPoolExecutor(len(USERS)) as pool:
        list(pool.map(one_user, range(len(USERS))))


def test_a_replica_killed_mid_load_loses_no_reply_doubles_none_and_keeps_each_users_order(
    deployment: Deployment, postgres_url: str
) -> None:
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, postgres_url))
    # turns in flight when it is killed: each event takes 2 s, so that a user's four events of
    # a round outlast posting them even on a loaded machine (at 0.1 s, then 0.5 s, CI saw all
    # of them done by the time it looked)
    deployment.env["BOTKIT_TEST_ECHO_SECONDS"] = "2"
    deployment.env["BOTKIT_LEASE_SECONDS"] = "5"  # the dead replica's claims end soon
    replicas = [deployment.web(BOT, workers=True) for _ in range(3)]
    post_round(replicas, range(1, 5))
    pending = httpx.get(f"{replicas[0].url}/healthz", timeout=5).json()["pending"]
    assert pending["events"] > 0  # mid-load: events stored and not yet processed
    replicas[1].kill_all()  # a machine lost: its web process and its worker at once
    post_round(replicas, range(5, 9))  # its share goes to the others (as redeliveries do)
    replicas[1] = deployment.web(BOT, workers=True)  # ... and it comes back
    post_round(replicas, range(9, 13))
    total = len(USERS) * 12
    deployment.wait_until(lambda: len(fake.messages()) >= total, what="every reply", within=120)
    expected = {user: [f"echo {n}" for n in range(1, 13)] for user in USERS}
    assert texts_by_user(fake.messages()) == expected
    assert len(fake.messages()) == total  # none twice, under any key


def test_web_replicas_and_separate_workers_scale_apart_on_one_database(
    deployment: Deployment, postgres_url: str
) -> None:
    """Two web replicas that only acknowledge and two `botkit worker`s on other "machines":
    the workers learn of each event from the database (no pipe from a parent), and a third
    worker replaces one stopped (SIGTERM) mid-load; every event gets one reply, in order."""
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, postgres_url))
    deployment.env["BOTKIT_TEST_ECHO_SECONDS"] = "0.05"
    webs = [deployment.web(BOT) for _ in range(2)]
    workers = [deployment.worker(BOT) for _ in range(2)]
    post_round(webs, range(1, 5))
    assert workers[0].stop() == 0  # mid-load: it finishes its turns and exits
    post_round(webs, range(5, 9))
    workers.append(deployment.worker(BOT))
    post_round(webs, range(9, 13))
    total = len(USERS) * 12
    deployment.wait_until(lambda: len(fake.messages()) >= total, what="every reply", within=120)
    expected = {user: [f"echo {n}" for n in range(1, 13)] for user in USERS}
    assert texts_by_user(fake.messages()) == expected
    assert len(fake.messages()) == total
    for worker in workers[1:]:
        assert worker.stop() == 0
    assert "Traceback" not in "".join(p.output() for p in [*webs, *workers])
