"""Closed windows: fallback templates (per send, trigger, state), WindowClosedError, HOLD, and
the provider's last word (a 403 or a failed status 131047), each turning into a fallback once.

Everything runs in the Simulator: the real webhook app over SQLite, and a fake GoSendAPI that
enforces the window on its own side. To make botkit and the provider disagree, a message is
posted straight to the bot's webhook, signed, without the fake knowing of it (`behind_the_fake`):
botkit then sees an open window that the provider considers closed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from botkit import (
    HOLD,
    Bot,
    Context,
    Conversation,
    Simulator,
    State,
    Template,
    Text,
    WindowClosedError,
    on,
)
from botkit.fake.provider import Delivery
from botkit.store.base import OutboxRecord
from botkit.store.sqlite import SqliteStore
from botkit.tools.simulator import SIM_SECRET, SimUser
from botkit.types import JSONObject
from botkit.wire.idempotency import idempotency_key

pytestmark = pytest.mark.anyio

HOUR = 3600.0
ANA = "5491140123456"
WINDOW_CLOSED = 131047

SEND_FB = Template.of("per_send", "en")
TRIGGER_FB = Template.of("per_trigger", "en")
STATE_FB = Template.of("per_state", "en")
PROMPT_FB = Template.of("per_prompt_state", "en")
NOTICE = Template.of("window_notice", "en")


# --- helpers --------------------------------------------------------------------------------


def names(user: SimUser) -> list[str | None]:
    """What the user received: text bodies, or the template's name."""
    return [view.text if view.type == "text" else view.template_name for view in user.messages]


def posts(sim: Simulator) -> list[tuple[int, str | None]]:
    """Every POST /v1/messages the provider got: (status answered, Idempotency-Key)."""
    return [
        (r.status, r.headers.get("idempotency-key"))
        for r in sim.fake.requests
        if r.path.endswith("/messages")
    ]


async def behind_the_fake(sim: Simulator, user: SimUser, message: JSONObject) -> Delivery:
    """Posts a user's message straight to the webhook: botkit's window opens, the fake's does not."""
    envelope: JSONObject = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "whatsapp.message.received",
        "created_at": "2026-05-19T14:00:00Z",
        "phone_number_id": sim.phone_number_id,
        "data": {
            "contact": {"wa_id": user.wa_id, "profile": {"name": user.name or "x"}},
            "message": {
                "from": user.wa_id,
                "id": f"wamid.in.{uuid.uuid4().hex}",
                "timestamp": str(int(sim.clock.now())),
                **message,
            },
        },
    }
    body = json.dumps(envelope).encode()
    signature = "sha256=" + hmac.new(SIM_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-GoSendAPI-Signature": signature}
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        response = await client.post("/webhook", content=body, headers=headers)
    delivery = Delivery(envelope, body, response.status_code, response.json())
    await sim.after(delivery, user)
    return delivery


def text(body: str) -> JSONObject:
    return {"type": "text", "text": {"body": body}}


async def trigger_rows(sim: Simulator) -> list[tuple[str, str, str | None]]:
    """The inbox's trigger events: (event id, status, error), in order."""
    store = sim.runtime.store
    assert isinstance(store, SqliteStore)
    ids = await store.run(
        lambda db: db.execute(
            "SELECT event_id FROM incoming.inbox WHERE kind = 'trigger' ORDER BY seq"
        ).fetchall()
    )
    rows = []
    for (event_id,) in ids:
        status, error = await store.inspect.event_status(event_id) or ("", None)
        rows.append((event_id, status, error))
    return rows


async def row_of(sim: Simulator, message_id: str) -> OutboxRecord:
    [found] = [r for r in await sim.outbox() if r.provider_message_id == message_id]
    return found


# --- fallbacks declared per send, per trigger, per state ------------------------------------


class Notices(Conversation):
    """Fallbacks at every level; `bare` is a state without one."""

    idle = State(initial=True, fallback=STATE_FB)
    bare = State()
    informed = State(prompt=Text("info"), fallback=PROMPT_FB)

    @on.trigger("plain")
    async def plain(self, ctx: Context) -> None:
        await ctx.send(Text("plain"))

    @on.trigger("per_send")
    async def per_send(self, ctx: Context) -> None:
        await ctx.send(Text("per send"), fallback=SEND_FB)

    @on.trigger("per_trigger", fallback=TRIGGER_FB)
    async def per_trigger(self, ctx: Context) -> None:
        await ctx.send(Text("per trigger"))

    @on.trigger("send_beats_trigger", fallback=TRIGGER_FB)
    async def send_beats_trigger(self, ctx: Context) -> None:
        await ctx.send(Text("both"), fallback=SEND_FB)

    @on.trigger("computed")
    async def computed(self, ctx: Context) -> None:
        name = str(ctx.input.data["name"])  # type: ignore[union-attr]
        await ctx.send(Text("hi"), fallback=lambda c: Template.of("greeting", "es", body=[name]))

    @on.trigger("go_bare", to=bare)
    async def go_bare(self, ctx: Context) -> None:
        """Moves without sending."""

    @on.trigger("inform", to=informed)
    async def inform(self, ctx: Context) -> None:
        """Entering `informed` sends its prompt, with that state's fallback."""

    @on.trigger("inform_with_trigger_fallback", to=informed, fallback=TRIGGER_FB)
    async def inform_with_trigger_fallback(self, ctx: Context) -> None:
        """The trigger's fallback beats the destination state's for the prompt."""

    @on.text()
    async def answer(self, ctx: Context) -> None:
        await ctx.send(Text(f"re: {ctx.text}"))


@pytest.fixture
async def notices() -> AsyncIterator[Simulator]:
    async with Simulator(Bot(Notices)) as simulator:
        yield simulator


@pytest.mark.parametrize(
    ("trigger", "template"),
    [
        ("plain", "per_state"),  # only the state declares one
        ("per_send", "per_send"),  # send > state
        ("per_trigger", "per_trigger"),  # trigger > state
        ("send_beats_trigger", "per_send"),  # send > trigger > state
        ("inform", "per_prompt_state"),  # a prompt: the state it asks in
        ("inform_with_trigger_fallback", "per_trigger"),  # trigger > state, for prompts too
    ],
)
async def test_a_closed_window_sends_the_fallback_by_precedence(
    notices: Simulator, trigger: str, template: str
) -> None:
    ana = notices.user(ANA)
    await notices.trigger(ANA, trigger)
    assert names(ana) == [template]
    [row] = await notices.outbox(ANA)
    assert (row.type, row.instead_of, row.status) == ("template", "text", "sent")
    assert [status for status, _ in posts(notices)] == [200]  # no free-form attempt


@pytest.mark.parametrize(
    ("trigger", "sent"),
    [
        ("plain", "plain"),
        ("per_send", "per send"),
        ("per_trigger", "per trigger"),
        ("send_beats_trigger", "both"),
        ("inform", "info"),
    ],
)
async def test_an_open_window_sends_the_message_itself(
    notices: Simulator, trigger: str, sent: str
) -> None:
    ana = notices.user(ANA)
    await ana.says("hola")
    await notices.trigger(ANA, trigger)
    assert names(ana) == ["re: hola", sent]
    assert [row.instead_of for row in await notices.outbox(ANA)] == [None, None]


async def test_a_fallback_may_be_computed_from_the_context(notices: Simulator) -> None:
    ana = notices.user(ANA)
    await notices.trigger(ANA, "computed", {"name": "Ana"})
    [sent] = ana.messages
    assert (sent.template_name, sent.template_parameters) == ("greeting", ["Ana"])
    assert sent.payload["language"] == {"code": "es"}


async def test_the_states_fallback_is_the_one_of_the_state_the_send_happens_in(
    notices: Simulator,
) -> None:
    ana = notices.user(ANA)
    await notices.trigger(ANA, "go_bare")
    assert ana.state == "bare"
    with pytest.raises(WindowClosedError):
        await notices.trigger(ANA, "plain")  # bare declares no fallback
    await notices.trigger(ANA, "per_trigger")
    assert names(ana) == ["per_trigger"]


# --- no fallback: WindowClosedError ---------------------------------------------------------


class Plain(Conversation):
    """Replies to text (with the notice template as fallback, except "sin aviso ...")."""

    idle = State(initial=True)
    talking = State()
    nudged = State()

    @on.text(to=talking)
    async def reply(self, ctx: Context) -> None:
        ctx.data["said"] = ctx.text
        await ctx.send(Text(f"re: {ctx.text}"), fallback=NOTICE)

    @on.text(regex="^sin aviso", to=talking)
    async def reply_without_fallback(self, ctx: Context) -> None:
        ctx.data["said"] = ctx.text
        await ctx.send(Text(f"re: {ctx.text}"))

    @on.trigger("nudge", to=nudged)
    async def nudge(self, ctx: Context) -> None:
        ctx.data["nudged"] = True
        await ctx.send(Text("before"), fallback=NOTICE)  # a fine send, then a refused one
        await ctx.send(Text("nudge"))

    @on.trigger("notice")
    async def notice(self, ctx: Context) -> None:
        await ctx.send(Text("nudge"), fallback=NOTICE)

    @on.trigger("hold", fallback=HOLD)
    async def hold(self, ctx: Context) -> None:
        await ctx.send(Text(f"held {ctx.input.data['n']}"))  # type: ignore[union-attr]


@pytest.fixture
async def plain() -> AsyncIterator[Simulator]:
    async with Simulator(Bot(Plain)) as simulator:
        yield simulator


@pytest.fixture
def ana(plain: Simulator) -> SimUser:
    return plain.user(ANA, name="Ana")


async def test_no_fallback_raises_window_closed_naming_the_user_and_the_closure(
    plain: Simulator, ana: SimUser
) -> None:
    wrote = plain.clock.now()
    await ana.says("hola")
    await plain.advance(hours=25)
    sent_before, rows_before = len(plain.sent), len(await plain.outbox())

    with pytest.raises(WindowClosedError) as raised:
        await plain.trigger(ANA, "nudge")

    error = raised.value
    assert (error.wa_id, error.refused) == (ANA, False)
    assert error.closes_at == wrote + 24 * HOUR
    assert ANA in str(error) and "2026-05-20T14:00:00+00:00" in str(error)
    [(_, status, reason)] = await trigger_rows(plain)
    assert status == "failed"
    assert reason is not None and "WindowClosedError" in reason
    await ana.refresh()
    assert (ana.state, ana.data) == ("talking", {"said": "hola"})  # unchanged
    assert len(plain.sent) == sent_before  # nothing sent, not even the fine first send
    assert len(await plain.outbox()) == rows_before


async def test_no_fallback_for_a_user_who_never_wrote(plain: Simulator, ana: SimUser) -> None:
    with pytest.raises(WindowClosedError) as raised:
        await plain.trigger(ANA, "nudge")
    assert (raised.value.wa_id, raised.value.closes_at) == (ANA, None)
    assert "never written" in str(raised.value)
    assert plain.sent == []
    assert ana.session is None


async def test_the_bot_goes_on_after_a_window_closed_error(plain: Simulator, ana: SimUser) -> None:
    with pytest.raises(WindowClosedError):
        await plain.trigger(ANA, "nudge")
    await ana.says("hola")
    assert names(ana) == ["re: hola"]
    await plain.trigger(ANA, "nudge")  # open now
    assert names(ana) == ["re: hola", "before", "nudge"]
    assert ana.state == "nudged"


# --- HOLD -----------------------------------------------------------------------------------


async def test_hold_sends_nothing_while_closed(plain: Simulator, ana: SimUser) -> None:
    await ana.says("hola")
    await plain.advance(hours=25)
    await plain.trigger(ANA, "hold", {"n": 1})
    assert names(ana) == ["re: hola"]
    assert [row.status for row in await plain.outbox(ANA)] == ["sent", "held"]
    await plain.advance(hours=48)  # held, not retried
    assert names(ana) == ["re: hola"]
    assert len(posts(plain)) == 1


async def test_held_messages_go_out_in_order_before_the_reply_when_the_user_writes(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await plain.advance(hours=25)
    await plain.trigger(ANA, "hold", {"n": 1})
    await plain.trigger(ANA, "hold", {"n": 2})
    await ana.says("volví")
    assert names(ana) == ["re: hola", "held 1", "held 2", "re: volví"]
    assert [m.type for m in plain.fake.messages_to(ANA)] == ["text"] * 4
    assert [row.status for row in await plain.outbox(ANA)] == ["sent"] * 4
    assert all(status == 200 for status, _ in posts(plain))


async def test_held_for_a_user_who_never_wrote_until_the_first_message(
    plain: Simulator, ana: SimUser
) -> None:
    await plain.trigger(ANA, "hold", {"n": 1})
    assert plain.sent == []
    await ana.says("hola")
    assert names(ana) == ["held 1", "re: hola"]


async def test_a_send_held_at_delivery_by_a_403_goes_out_when_the_user_writes(
    plain: Simulator, ana: SimUser
) -> None:
    # botkit sees Ana's location (no reply: Plain has no handler for it), the provider does not
    await behind_the_fake(
        plain, ana, {"type": "location", "location": {"latitude": 1, "longitude": 2}}
    )
    await plain.trigger(ANA, "hold", {"n": 1})  # open for botkit: queued, then refused
    [(refused_status, refused_key)] = posts(plain)
    assert refused_status == 403
    [row] = await plain.outbox(ANA)
    assert row.status == "held"
    await plain.advance(minutes=1)
    await ana.says("hola")
    assert names(ana) == ["held 1", "re: hola"]
    held_key = plain.fake.messages_to(ANA)[0].idempotency_key
    assert held_key is not None and refused_key is not None
    assert held_key != refused_key and held_key.startswith(refused_key)


# --- the provider's last word: a 403 ----------------------------------------------------------


async def test_a_403_turns_the_send_into_its_fallback_once(plain: Simulator, ana: SimUser) -> None:
    delivery = await behind_the_fake(plain, ana, text("hola"))
    refused = idempotency_key(str(delivery.envelope["id"]), 0)
    [(first, key1), (second, key2)] = posts(plain)
    assert (first, key1) == (403, refused)
    assert second == 200
    assert key2 is not None and key2 != refused and key2.startswith(refused)  # derived
    [sent] = plain.fake.messages_to(ANA)
    assert (sent.type, sent.idempotency_key) == ("template", key2)
    assert names(ana) == ["window_notice"]
    [row] = await plain.outbox(ANA)
    assert (row.type, row.instead_of, row.status) == ("template", "text", "sent")
    assert row.provider_message_id == sent.message_id
    assert ana.window.refused
    await plain.advance(hours=1)
    assert len(posts(plain)) == 2  # nothing more


async def test_after_a_403_free_form_falls_back_until_the_user_writes(
    plain: Simulator, ana: SimUser
) -> None:
    await behind_the_fake(plain, ana, text("hola"))
    await plain.advance(minutes=1)
    await plain.trigger(ANA, "notice")
    assert names(ana) == ["window_notice", "window_notice"]
    assert [status for status, _ in posts(plain)] == [403, 200, 200]  # no second free-form try
    await plain.advance(minutes=1)
    await ana.says("otra vez")
    assert names(ana)[-1] == "re: otra vez"
    await plain.trigger(ANA, "notice")
    assert names(ana)[-1] == "nudge"


async def test_no_loop_when_the_fallback_template_fails_too(plain: Simulator, ana: SimUser) -> None:
    plain.fake.fail_next(403, times=2, code="WINDOW_CLOSED")
    await ana.says("hola")
    statuses = [status for status, _ in posts(plain)]
    assert statuses == [403, 403]
    [row] = await plain.outbox(ANA)
    assert (row.type, row.instead_of, row.status) == ("template", "text", "failed")
    await plain.advance(hours=2)
    assert len(posts(plain)) == 2
    assert plain.sent == []


async def test_a_403_without_a_fallback_is_recorded_failed(plain: Simulator, ana: SimUser) -> None:
    delivery = await behind_the_fake(plain, ana, text("sin aviso"))
    assert [status for status, _ in posts(plain)] == [403]
    [row] = await plain.outbox(ANA)
    assert (row.type, row.status) == ("text", "failed")
    assert row.error is not None and "403" in row.error
    assert plain.sent == []
    assert await plain.runtime.store.inspect.event_status(str(delivery.envelope["id"])) == (
        "done",
        None,
    )
    assert ana.state == "talking"  # the conversation moved on; only the send failed
    with pytest.raises(WindowClosedError):  # the closure is remembered
        await plain.trigger(ANA, "nudge")


# --- the provider's last word: a failed status with code 131047 -----------------------------


async def test_a_failed_131047_turns_the_message_into_its_fallback_once(
    plain: Simulator, ana: SimUser
) -> None:
    delivery = await ana.says("hola")
    original = ana.last_message
    refused = idempotency_key(str(delivery.envelope["id"]), 0)
    assert original.idempotency_key == refused

    failed = await plain.status(original, "failed", code=WINDOW_CLOSED)
    assert names(ana) == ["re: hola", "window_notice"]
    template = ana.last_message
    assert template.idempotency_key is not None
    assert template.idempotency_key != refused and template.idempotency_key.startswith(refused)
    [row] = await plain.outbox(ANA)
    assert (row.type, row.instead_of, row.status) == ("template", "text", "sent")
    assert row.provider_message_id == template.message_id

    await plain.status(original, "failed", code=WINDOW_CLOSED)  # the same status again
    again = await plain.redeliver(failed)  # and the very same event
    assert again.response == {"accepted": 0, "duplicates": 1}
    assert names(ana) == ["re: hola", "window_notice"]
    assert len(await plain.outbox(ANA)) == 1


async def test_a_failed_131047_of_the_fallback_itself_changes_nothing(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await plain.status(ana.last_message, "failed", code=WINDOW_CLOSED)
    template = ana.last_message
    await plain.status(template, "failed", code=WINDOW_CLOSED)
    assert names(ana) == ["re: hola", "window_notice"]
    row = await row_of(plain, template.message_id)
    assert row.delivery_status == "failed"


async def test_a_failed_131047_closes_the_window_until_the_user_writes(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await plain.status(ana.last_message, "failed", code=WINDOW_CLOSED)
    await plain.trigger(ANA, "notice")  # botkit would think it open for 24 h
    assert names(ana) == ["re: hola", "window_notice", "window_notice"]
    assert all(status == 200 for status, _ in posts(plain))  # no free-form attempt
    with pytest.raises(WindowClosedError):
        await plain.trigger(ANA, "nudge")
    await plain.advance(minutes=1)
    await ana.says("volví")
    assert names(ana)[-1] == "re: volví"


async def test_a_failed_131047_of_a_message_without_fallback_only_closes_the_window(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("sin aviso")
    sent = ana.last_message
    await plain.status(sent, "failed", code=WINDOW_CLOSED)
    assert names(ana) == ["re: sin aviso"]
    row = await row_of(plain, sent.message_id)
    assert (row.status, row.delivery_status) == ("sent", "failed")
    await plain.trigger(ANA, "notice")
    assert names(ana)[-1] == "window_notice"


async def test_a_failed_status_with_another_code_is_no_closure(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await plain.status(ana.last_message, "failed", code=131026)  # undeliverable
    assert names(ana) == ["re: hola"]
    await plain.trigger(ANA, "notice")
    assert names(ana) == ["re: hola", "nudge"]


# --- bugs -----------------------------------------------------------------------------------


async def test_writing_again_right_after_a_131047_reopens_the_window(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await plain.status(ana.last_message, "failed", code=WINDOW_CLOSED)
    await ana.says("volví")  # a new message, the provider delivered it: the window is open
    assert names(ana)[-1] == "re: volví"


async def test_window_closed_error_after_a_provider_closure_says_the_provider_refused(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    await plain.status(ana.last_message, "failed", code=WINDOW_CLOSED)
    await plain.advance(hours=1)
    with pytest.raises(WindowClosedError) as raised:
        await plain.trigger(ANA, "nudge")
    assert raised.value.refused  # closed by the provider, inside the 24 hours
    assert raised.value.closes_at is not None and raised.value.closes_at > plain.clock.now()
    assert "refused a message" in str(raised.value)


async def test_a_late_131047_does_not_close_a_window_the_user_reopened(
    plain: Simulator, ana: SimUser
) -> None:
    await ana.says("hola")
    original = ana.last_message
    status: JSONObject = {
        "id": original.message_id,
        "status": "failed",
        "timestamp": str(int(plain.clock.now())),
        "recipient_id": ANA,
        "errors": [{"code": WINDOW_CLOSED, "title": "Re-engagement message"}],
    }
    await plain.advance(hours=1)
    await ana.says("sigo acá")  # reopens: the provider's window is open again
    await plain.advance(minutes=30)
    await _deliver_status(plain, status)  # the retry of a status from 90 min ago
    await plain.trigger(ANA, "notice")
    assert names(ana)[-1] == "nudge"


async def _deliver_status(sim: Simulator, status: JSONObject) -> None:
    envelope: JSONObject = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "whatsapp.message.failed",
        "created_at": "2026-05-19T14:00:00Z",
        "phone_number_id": sim.phone_number_id,
        "data": {"status": status},
    }
    body = json.dumps(envelope).encode()
    signature = "sha256=" + hmac.new(SIM_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-GoSendAPI-Signature": signature}
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        response = await client.post("/webhook", content=body, headers=headers)
    await sim.after(Delivery(envelope, body, response.status_code, response.json()))
