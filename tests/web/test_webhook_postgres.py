"""The webhook on a PostgreSQL store whose database goes away and comes back: acknowledgements
answer 503 while it is gone (the provider delivers again), then everything resumes, and
nothing acknowledged is lost. The database goes away behind a TCP proxy (tests/tcp_proxy.py)
that drops every connection and refuses new ones, as a restart does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.tcp_proxy import TcpProxy

from .test_webhook import Rig, running, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(postgres_url)
    started = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await started.start()
    yield started
    await started.aclose()


def proxied(postgres_url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(postgres_url)
    return f"postgresql://{parts.username}@127.0.0.1:{proxy.port}{parts.path}"


def text(event_id: str, body: str) -> bytes:
    envelope = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": "555123456789",
        "data": {
            "contact": {"wa_id": "5491140123456", "profile": {"name": "Juan"}},
            "message": {
                "from": "5491140123456",
                "id": f"wamid.{event_id}",
                "timestamp": "1779199200",
                "type": "text",
                "text": {"body": body},
            },
        },
    }
    return json.dumps(envelope).encode()


async def test_a_database_restart_answers_503_then_resumes_losing_nothing_acknowledged(
    tmp_path: Path, postgres_url: str, proxy: TcpProxy
) -> None:
    settings = settings_for(tmp_path, database=proxied(postgres_url, proxy))
    rig: Rig
    async with running(tmp_path, settings=settings) as rig:
        first = await rig.post(text("evt_a", "hola"))
        assert first.status_code == 200, first.text
        await proxy.cut()  # acknowledged, perhaps not yet processed: the database restarts
        down = await rig.post(text("evt_b", "hola de nuevo"))
        assert down.status_code == 503
        assert down.json()["error"] == "store_unavailable"
        health = await rig.client.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (503, "store unavailable")
        await asyncio.sleep(0.3)  # the workers fail to claim meanwhile, and keep trying
        await proxy.restore()
        again = await rig.post(text("evt_b", "hola de nuevo"))  # the provider delivers again
        assert again.status_code == 200, again.text
        assert again.json() == {"accepted": 1, "duplicates": 0}
        await rig.runtime.settle(within=30)
        assert await rig.status("evt_a") == "done"
        assert await rig.status("evt_b") == "done"
        assert len(rig.replies()) == 2  # the list for "hola", a reminder of it for the second
        assert (await rig.client.get("/healthz")).status_code == 200
