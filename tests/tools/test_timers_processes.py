"""Timers for real: a web replica and two `botkit worker` processes on one PostgreSQL
database, with the system clock; each user who goes quiet is nudged once, whichever worker's
timer loop gets to the timer first (black-box, as tests/tools/test_processes.py)."""

from __future__ import annotations

import time

import pytest

from .processes import Deployment, post_event, provider_env, text_event, texts_by_user

pytestmark = pytest.mark.slow

BOT = "tests.tools.quiet_bot"
USERS = [f"54911600000{n:02d}" for n in range(12)]


def test_two_workers_nudge_each_quiet_user_once(deployment: Deployment, postgres_url: str) -> None:
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, postgres_url))
    deployment.env["BOTKIT_TEST_QUIET_SECONDS"] = "1"
    web = deployment.web(BOT)
    deployment.worker(BOT)
    deployment.worker(BOT)
    for wa_id in USERS:
        assert post_event(web.url, text_event(wa_id, "hola")).status_code == 200
    nudged = {wa_id: ["¿Confirmás?", "nudge"] for wa_id in USERS}
    deployment.wait_until(
        lambda: texts_by_user(fake.messages()) == nudged, what="one nudge each", within=60
    )
    time.sleep(6)  # a second firing would come within the timer loops' next look (5 s poll)
    assert texts_by_user(fake.messages()) == nudged
