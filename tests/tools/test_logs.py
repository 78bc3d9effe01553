"""A `botkit run` process's log under hostile requests: every line escaped and bounded
(issue 10: values from requests were logged in full, up to about 1 MB a line); and its JSON
log, web process and worker child alike, with a line per turn and per send (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.logsafe import LINE

from .processes import Deployment, post_event, provider_env, text_event, texts_by_user

pytestmark = pytest.mark.slow

BOT = "tests.tools.echo_bot"


def test_hostile_requests_leave_only_short_single_lines_in_the_log(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, str(tmp_path / "bot.db")))
    web = deployment.web(BOT, "--log-level", "info")
    forged = "x\nERROR botkit: forged line\r" + "y" * 200_000
    with httpx.Client(timeout=30.0) as client:
        # a long path with a forged line (the access log repeats the path)
        path = forged[:60_000].replace("\n", "%0A").replace("\r", "%0D")  # httpx's URL limit
        client.get(f"{web.url}/{path}")
        # an unknown route, a 400 and a 401 carrying huge values
        event = text_event("5491140000001", "hola")
        event["id"] = forged
        assert post_event(web.url, event, client=client).status_code == 400
        answer = client.post(
            f"{web.url}/webhook",
            content=forged.encode(),
            headers={"X-GoSendAPI-Signature": "sha256=" + "0" * 64},
        )
        assert answer.status_code == 401
        assert client.get(f"{web.url}/healthz").status_code == 200
    web.stop()
    lines = web.output().splitlines()
    assert lines, "the process logged nothing"
    assert any("GET /" in line for line in lines)  # the access line is there, cut
    assert max(len(line) for line in lines) <= LINE + 200
    assert not any(line.startswith("ERROR botkit: forged") for line in lines)


def test_botkit_run_and_its_worker_child_write_json_lines_with_a_turn_and_a_send(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake = deployment.fake_api()
    deployment.env.update(provider_env(fake, str(tmp_path / "bot.db")))
    deployment.env["BOTKIT_LOG_FORMAT"] = "json"
    web = deployment.web(BOT, workers=True)  # the worker child inherits the environment
    user = "5491140000007"
    event = text_event(user, "hola")
    assert post_event(web.url, event).status_code == 200
    deployment.wait_until(lambda: texts_by_user(fake.messages()).get(user), what="the reply")
    deployment.wait_until(lambda: '"log":"send"' in web.output(), what="the send line")
    web.stop()
    output = web.output()
    lines: list[dict[str, Any]] = [
        json.loads(line) for line in output.splitlines() if line.startswith("{")
    ]
    # uvicorn's own lines (the web process) are JSON too, and so is everything else but the
    # banner the command prints before it logs anything
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert all(line.startswith(("{", "botkit: ", "  ")) for line in output.splitlines()), output
    [turn] = [line for line in lines if line.get("log") == "turn"]
    assert turn["event_id"] == event["id"] and turn["outcome"] == "done"
    assert turn["handler"] == "echo" and turn["user"] == "54911****0007"
    [send] = [line for line in lines if line.get("log") == "send"]
    assert send["event_id"] == event["id"] and send["key"] == turn["send_keys"][0]
    assert send["outcome"] == "sent" and send["http_status"] == 200
    assert send["message_id"].startswith("wamid.")
    assert user not in output
