"""A `botkit run` process's log under hostile requests: every line escaped and bounded
(issue 10: values from requests were logged in full, up to about 1 MB a line)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from botkit.logsafe import LINE

from .processes import Deployment, post_event, provider_env, text_event

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
