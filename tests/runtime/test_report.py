"""The workers' log lines (botkit.runtime.report), read from a JSON log of real conversations.

Each test runs the real webhook app (a real SQLite file, the workers in process) with the
fake GoSendAPI delivering webhooks to it and taking its replies, and captures the process's
log through botkit's own JSON (or text) handler at DEBUG: one `turn` line per event, one
`send` line per attempt, ids that lead from an event to its replies and their delivery
statuses, and never a user's whole number.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import bots.clinic as clinic
from botkit import HOLD, Bot, Context, Conversation, State, Template, Text, on
from botkit.config import Settings
from botkit.fake.provider import FakeGoSendAPI
from botkit.logsafe import FULL, JSON, MASKED, TEXT, handler
from botkit.runtime.dispatch import Dispatcher
from botkit.runtime.runtime import Runtime
from botkit.store.base import NewEvent
from botkit.store.memory import MemoryStore
from botkit.types import JSONObject, ManualClock
from botkit.web.app import create_app
from botkit.wire.idempotency import idempotency_key

pytestmark = pytest.mark.anyio

SECRET = "whsec_test_report"
PNID = "555123456789"
JUAN = "5491140123456"
JUAN_MASKED = "54911****3456"
TURN_FIELDS = {
    "log", "event_id", "kind", "conversation", "business", "user", "message_id", "delivery",
    "state_before", "state_after", "handler", "sent", "sent_types", "send_keys", "duration_ms",
    "outcome", "error", "attempt",
}  # fmt: skip
SEND_FIELDS = {
    "log", "key", "event_id", "type", "business", "user", "attempt", "outcome", "http_status",
    "provider_code", "error", "message_id", "latency_ms", "retry_in",
}  # fmt: skip


def text(body: str) -> dict[str, object]:
    return {"type": "text", "text": {"body": body}}


def row(row_id: str, title: str) -> dict[str, object]:
    reply = {"type": "list_reply", "list_reply": {"id": row_id, "title": title}}
    return {"type": "interactive", "interactive": reply}


def button(button_id: str, title: str) -> dict[str, object]:
    reply = {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
    return {"type": "interactive", "interactive": reply}


@contextmanager
def captured(format: str = JSON, phones: str = MASKED) -> Iterator[io.StringIO]:
    """The root logger's lines at DEBUG, through botkit's own handler, for the block."""
    out = io.StringIO()
    made = handler(format=format, phones=phones, stream=out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(made)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(made)
        root.setLevel(level)


def lines_of(out: io.StringIO) -> list[dict[str, Any]]:
    """Every line as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in out.getvalue().splitlines()]


@asynccontextmanager
async def running(bot: Bot, tmp_path: Path) -> AsyncIterator[tuple[Runtime, FakeGoSendAPI]]:
    clock = ManualClock()
    fake = FakeGoSendAPI(clock=clock, webhook_url="http://bot/webhook", webhook_secret=SECRET)
    settings = Settings(
        base_url="http://provider/v1",
        api_key="gsk_test_report",
        webhook_secrets=(SECRET,),
        database=str(tmp_path / "bot.db"),
    )
    runtime = Runtime(bot, settings, clock=clock, transport=httpx.ASGITransport(app=fake.app))
    app = create_app(runtime)
    fake.webhook_transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        yield runtime, fake
        await runtime.settle(autojump=clock)


async def test_a_conversation_logs_one_line_per_turn_and_per_send_attempt(tmp_path: Path) -> None:
    with captured() as out:
        async with running(clinic.bot, tmp_path) as (runtime, fake):
            hola = await fake.receive(wa_id=JUAN, name="Juan", message=text("hola"), phone_number_id=PNID)  # fmt: skip
            await runtime.settle()
            fake.fail_next(503)  # the confirmation's first attempt fails: it is retried
            lab = await fake.receive(wa_id=JUAN, message=row("lab", "Laboratorio"), phone_number_id=PNID)  # fmt: skip
            await runtime.settle(autojump=runtime.clock)
            [first_reply, second_reply] = fake.messages_to(JUAN)
            delivered = await fake.send_status(first_reply.message_id, "delivered")
            await runtime.settle()
    lines = lines_of(out)
    turns = [line for line in lines if line.get("log") == "turn"]
    sends = [line for line in lines if line.get("log") == "send"]
    hola_id, lab_id = str(hola.envelope["id"]), str(lab.envelope["id"])
    status_id = str(delivered.envelope["id"])
    assert [t["event_id"] for t in turns] == [hola_id, lab_id, status_id]  # one each, in order
    for turn in turns:
        assert turn.keys() >= TURN_FIELDS, turn
        assert turn["level"] == "INFO" and turn["message"] == "turn done"
        assert turn["conversation"] == "Clinic" and turn["user"] == JUAN_MASKED
        assert turn["business"] == PNID and turn["outcome"] == "done" and turn["error"] is None
        assert isinstance(turn["duration_ms"], float) and turn["duration_ms"] >= 0
    greet, choose, status = turns
    assert (greet["state_before"], greet["state_after"]) == ("idle", "choosing_service")
    assert greet["handler"] == "greet" and greet["kind"] == "message"
    assert greet["sent"] == 1 and greet["sent_types"] == ["interactive"]
    assert greet["send_keys"] == [idempotency_key(hola_id, 0)]
    assert greet["message_id"] == hola.envelope["data"]["message"]["id"]  # type: ignore[index,call-overload]
    assert (choose["state_before"], choose["state_after"]) == ("choosing_service", "confirming")
    assert choose["handler"] == "choose" and choose["sent"] == len(choose["sent_types"]) >= 1
    # the delivery status names the message the first send line names
    assert status["kind"] == "status" and status["delivery"] == "delivered"
    assert status["message_id"] == first_reply.message_id
    assert status["handler"] is None and status["sent"] == 0
    # one line per attempt: the first reply once; the second failed once with 503, then went
    for send in sends:
        assert send.keys() >= SEND_FIELDS, send
        assert send["user"] == JUAN_MASKED and send["business"] == PNID
    [greet_send] = [s for s in sends if s["event_id"] == hola_id]
    assert greet_send["key"] == greet["send_keys"][0] and greet_send["outcome"] == "sent"
    assert greet_send["http_status"] in (200, 201, 202) and greet_send["attempt"] == 1
    assert greet_send["message_id"] == first_reply.message_id
    assert greet_send["type"] == "interactive" and greet_send["latency_ms"] >= 0
    choose_sends = [s for s in sends if s["event_id"] == lab_id]
    assert [s["key"] for s in choose_sends][:2] == [choose["send_keys"][0]] * 2
    retried, went = choose_sends[:2]
    assert (retried["outcome"], retried["http_status"], retried["attempt"]) == ("retry", 503, 1)
    assert retried["level"] == "WARNING" and retried["error"] and retried["retry_in"] > 0
    assert (went["outcome"], went["attempt"], went["message_id"]) == (
        "sent", 2, second_reply.message_id,
    )  # fmt: skip
    assert len(sends) == len(fake.messages) + 1
    # a line per webhook request, at DEBUG, names the events it stored
    ingested = [line for line in lines if line.get("log") == "ingest"]
    assert [line["event_ids"] for line in ingested] == [[hola_id], [lab_id], [status_id]]
    # no line, whatever its logger, has Juan's number in full
    assert JUAN not in out.getvalue()
    assert JUAN_MASKED in out.getvalue()


class Fragile(Conversation):
    """Fails on "boom" (a handler's bug), echoes anything else."""

    start = State(initial=True)

    @on.text()
    async def echo(self, ctx: Context) -> None:
        if ctx.text == "boom":
            raise RuntimeError("handler bug")
        await ctx.send(Text(f"echo {ctx.text}"))


async def test_a_failed_event_is_an_error_line_with_the_handlers_traceback(tmp_path: Path) -> None:
    with captured() as out:
        async with running(Bot(Fragile), tmp_path) as (runtime, fake):
            boom = await fake.receive(wa_id=JUAN, message=text("boom"), phone_number_id=PNID)
            await runtime.settle()
    [turn] = [line for line in lines_of(out) if line.get("log") == "turn"]
    assert turn["event_id"] == boom.envelope["id"]
    assert (turn["level"], turn["message"], turn["outcome"]) == ("ERROR", "turn failed", "failed")
    assert turn["error"] == "RuntimeError: handler bug"
    assert turn["handler"] == "echo" and turn["state_after"] == "start" and turn["sent"] == 0
    assert "Traceback" in turn["exception"] and "handler bug" in turn["exception"]
    assert "\n" not in out.getvalue().strip().replace("\n{", "{")  # one line per record


async def test_the_text_format_writes_the_fields_after_the_message(tmp_path: Path) -> None:
    with captured(TEXT) as out:
        async with running(Bot(Fragile), tmp_path) as (runtime, fake):
            hi = await fake.receive(wa_id=JUAN, message=text("hi there"), phone_number_id=PNID)
            await runtime.settle()
    [turn] = [line for line in out.getvalue().splitlines() if " turn done " in line]
    assert turn.startswith("INFO botkit.runtime.dispatch: turn done log=turn ")
    assert f"event_id={hi.envelope['id']} " in turn
    assert f"user={JUAN_MASKED} " in turn and "handler=echo " in turn
    assert "state_before=start state_after=start " in turn and "sent_types=text " in turn
    [send] = [line for line in out.getvalue().splitlines() if " send sent " in line]
    assert "outcome=sent " in send and "http_status=" in send
    assert JUAN not in out.getvalue()


async def test_numbers_in_full_when_asked(tmp_path: Path) -> None:
    with captured(JSON, FULL) as out:
        async with running(Bot(Fragile), tmp_path) as (runtime, fake):
            await fake.receive(wa_id=JUAN, message=text("hi"), phone_number_id=PNID)
            await runtime.settle()
    [turn] = [line for line in lines_of(out) if line.get("log") == "turn"]
    assert turn["user"] == JUAN


async def test_logging_off_costs_no_line(tmp_path: Path) -> None:
    out = io.StringIO()
    made = handler(format=JSON, stream=out)
    made.setLevel(logging.WARNING)
    logging.getLogger().addHandler(made)
    try:
        async with running(Bot(Fragile), tmp_path) as (runtime, fake):
            await fake.receive(wa_id=JUAN, message=text("hi"), phone_number_id=PNID)
            await runtime.settle()
            await asyncio.sleep(0)
    finally:
        logging.getLogger().removeHandler(made)
    assert out.getvalue() == ""


async def test_a_turn_whose_commit_is_refused_logs_no_turn_line_until_it_commits() -> None:
    clock = ManualClock()
    envelope: JSONObject = {
        "id": "evt_lost",
        "type": "whatsapp.message.received",
        "phone_number_id": PNID,
        "data": {
            "contact": {"wa_id": JUAN, "profile": {"name": "Juan"}},
            "message": {"from": JUAN, "id": "wamid.lost", "timestamp": "1779199200",
                        "type": "text", "text": {"body": "hi"}},
        },
    }  # fmt: skip
    with captured() as out:
        async with MemoryStore(clock=clock) as store:
            dispatcher = Dispatcher(store, Fragile(), clock)
            await store.inbox.add(
                [NewEvent("evt_lost", "wamid.lost", "message", PNID, JUAN, envelope)]
            )
            [first] = await store.inbox.claim("first", 10, 5.0)
            turn = await dispatcher.take(first)
            clock.advance(10)  # its lease ran out: another worker claims the user
            [second] = await store.inbox.claim("second", 10, 5.0)
            await dispatcher.commit(first, turn)  # refused: the claim is the second's now
            assert [line for line in lines_of(out) if line.get("log") == "turn"] == []
            await dispatcher.commit(second, await dispatcher.take(second))
    [turn_line] = [line for line in lines_of(out) if line.get("log") == "turn"]
    assert turn_line["event_id"] == "evt_lost" and turn_line["attempt"] == 2
    [warning] = [
        line for line in lines_of(out) if "before the turn was committed" in line["message"]
    ]
    assert warning["message"].startswith("user 54911****3456:")


class Notices(Conversation):
    """Messages that may meet a closed window: a template instead, or held."""

    idle = State(initial=True)

    @on.trigger("remind")
    async def remind(self, ctx: Context) -> None:
        await ctx.send(Text("reminder"), fallback=Template.of("reminder", "es"))

    @on.trigger("notify", fallback=HOLD)
    async def notify(self, ctx: Context) -> None:
        await ctx.send(Text("news"))

    @on.text()
    async def answer(self, ctx: Context) -> None:
        await ctx.send(Text("hi"), fallback=Template.of("hello", "es"))


async def test_a_closed_window_logs_the_template_sent_instead_or_the_providers_refusal(
    tmp_path: Path,
) -> None:
    with captured() as out:
        async with running(Bot(Notices), tmp_path) as (runtime, fake):
            # Juan never wrote: the template goes at once, and the notice is held
            remind = await runtime.ingest.trigger(JUAN, "remind", {}, phone_number_id=PNID)
            notify = await runtime.ingest.trigger(JUAN, "notify", {}, phone_number_id=PNID)
            await runtime.settle()
            # he writes, the held notice goes, and the provider refuses it (403)
            fake.fail_next(403)
            hi = await fake.receive(wa_id=JUAN, message=text("hi"), phone_number_id=PNID)
            await runtime.settle(autojump=runtime.clock)
    lines = lines_of(out)
    hi_id = str(hi.envelope["id"])
    turns = [(t["event_id"], t["kind"], t["handler"], t["sent_types"])
             for t in lines if t.get("log") == "turn"]  # fmt: skip
    assert turns == [
        (remind, "trigger", "remind", ["template"]),
        (notify, "trigger", "notify", ["text"]),  # queued held: no attempt, no send line yet
        (hi_id, "message", "answer", ["text"]),
    ]
    sends = [(s["event_id"], s["type"], s["outcome"], s["http_status"])
             for s in lines if s.get("log") == "send"]  # fmt: skip
    assert sends == [
        (remind, "template", "sent", 200),
        # released (Juan wrote), refused by the provider (403): held again
        (notify, "text", "held", 403),
        # the window closed as of that refusal: the answer's template goes, asking nothing first
        (hi_id, "text", "fallback", None),
        (hi_id, "template", "sent", 200),
    ]
    assert JUAN not in out.getvalue()
