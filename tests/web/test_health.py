"""Tests for botkit.web.health: GET /readyz is 200 when the store answers and events flow, 503
with the reasons when not (the worker child's side is in tests/tools/test_metrics_processes.py)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from botkit import Bot, Context, Conversation, State, Text, on
from botkit.config import Settings
from botkit.runtime.runtime import Runtime
from botkit.types import ManualClock
from botkit.web.app import create_app

pytestmark = pytest.mark.anyio

SECRET = "whsec_health"
ANA = "5491140123456"


class Echo(Conversation):
    idle = State(initial=True)

    @on.text(states=[idle])
    async def echo(self, ctx: Context) -> None:
        await ctx.send(Text(ctx.text or ""))


def body(event_id: str) -> bytes:
    message = {"from": ANA, "id": f"wamid.{event_id}", "timestamp": "1779199200", "type": "text"}
    envelope = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": "555123456789",
        "data": {"message": {**message, "text": {"body": "hola"}}},
    }
    return json.dumps(envelope).encode()


@contextlib.asynccontextmanager
async def web_only(
    tmp_path: Path, clock: ManualClock, **settings: float
) -> AsyncIterator[httpx.AsyncClient]:
    """A web replica (no workers here): what it stores waits."""
    config = Settings(database=str(tmp_path / "bot.db"), webhook_secrets=(SECRET,), **settings)  # type: ignore[arg-type]
    app = create_app(Runtime(Bot(Echo), config, clock=clock, workers=False))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bot") as client,
    ):
        yield client


async def post(client: httpx.AsyncClient, event_id: str) -> None:
    content = body(event_id)
    signature = "sha256=" + hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest()
    headers = {"X-GoSendAPI-Signature": signature, "Content-Type": "application/json"}
    response = await client.post("/webhook", content=content, headers=headers)
    assert response.status_code == 200, response.text


async def test_ready_while_the_oldest_pending_event_is_young_enough(tmp_path: Path) -> None:
    clock = ManualClock()
    async with web_only(tmp_path, clock, ready_max_age=60.0) as client:
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ready",
            "checks": {"store": "ok", "pending_events": 0, "oldest_pending_event_seconds": None},
        }
        await post(client, "evt_1")
        clock.advance(59)
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"]["oldest_pending_event_seconds"] == pytest.approx(59)


async def test_not_ready_once_the_oldest_pending_event_is_too_old(tmp_path: Path) -> None:
    clock = ManualClock()
    async with web_only(tmp_path, clock, ready_max_age=60.0) as client:
        await post(client, "evt_1")
        clock.advance(30)
        await post(client, "evt_2")
        clock.advance(31)
        response = await client.get("/readyz")
        assert response.status_code == 503
        found = response.json()
        assert found["status"] == "not ready"
        assert found["checks"]["pending_events"] == 2
        [reason] = found["reasons"]
        assert "oldest pending event has waited 61s" in reason
        assert "BOTKIT_READY_MAX_AGE (60s)" in reason
        assert (await client.get("/healthz")).status_code == 200  # up, though not ready


async def test_not_ready_when_the_store_cannot_be_reached(tmp_path: Path) -> None:
    # the store is never opened: the app's lifespan does not run (ASGITransport alone)
    settings = Settings(database=str(tmp_path / "bot.db"))
    app = create_app(Runtime(Bot(Echo), settings, clock=ManualClock(), workers=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == "unreachable"
    assert response.json()["reasons"][0].startswith("the store is unreachable")
