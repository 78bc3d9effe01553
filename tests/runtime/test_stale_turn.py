"""Stale taps in a turn, with no store: the race where the newest prompt is queued but not
yet sent (the claim hands out no provider id for it), in a later turn and in the same one."""

from __future__ import annotations

import dataclasses

import pytest

from botkit.runtime.turn import take_turn
from botkit.store.base import DONE, InboxItem, InboxLane, Session
from botkit.types import JSONObject
from botkit.wire.idempotency import idempotency_key
from botkit.wire.prompt import PROMPT_KEY
from botkit.wire.window import Window
from tests.runtime.stale_bot import Order

pytestmark = pytest.mark.anyio

PN = "555123456789"
ANA = "5491140000001"
T0 = 1_779_199_200
NOW = float(T0 + 60)
CONFIRM = "wamid.CONFIRM"  # the confirmation the bot sent (and the provider recorded)
DRINK_KEY = "key-of-the-drink-question"


def tap(lane_seq: int, button: str, context_id: str | None) -> InboxItem:
    """Ana's tap on reply button `button` of message `context_id`."""
    message: JSONObject = {
        "from": ANA,
        "id": f"wamid.IN{lane_seq}",
        "timestamp": str(T0),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": button, "title": button}},
    }
    if context_id is not None:
        message["context"] = {"from": "15550001111", "id": context_id}
    envelope: JSONObject = {
        "id": f"evt_{lane_seq}",
        "type": "whatsapp.message.received",
        "phone_number_id": PN,
        "data": {"contact": {"wa_id": ANA, "profile": {"name": "Ana"}}, "message": message},
    }
    return InboxItem(100 + lane_seq, lane_seq, f"evt_{lane_seq}", "message", PN, ANA, envelope)


def session(state: str, prompt: str, **data: str) -> Session:
    stored: JSONObject = {"pizza": "muzza", **data, PROMPT_KEY: prompt}
    return Session(PN, ANA, "Order", state, stored, Order.spec.version)


def lane(*events: InboxItem, state: Session, sent: str | None) -> InboxLane:
    return InboxLane(PN, ANA, "claim-1", events, state, Window(), 1, sent)


def bodies(lane_out: object) -> list[object]:
    sends = lane_out.sends  # type: ignore[attr-defined]
    return [s.payload.get("body") for s in sends]


async def test_a_tap_while_the_newest_prompt_is_not_yet_sent_is_stale() -> None:
    """The drink question is queued, not sent: the user can only have tapped an older one."""
    claimed = lane(
        tap(1, "no", CONFIRM), state=session("drinking", DRINK_KEY, order="yes"), sent=None
    )
    turn = await take_turn(Order(), claimed, NOW)
    out = turn.outcome
    assert out.session is not None
    assert out.session.state == "drinking"
    assert out.session.data == {
        "pizza": "muzza",
        "order": "yes",
        PROMPT_KEY: out.sends[-1].idempotency_key,
    }
    assert [s.type for s in out.sends] == ["text", "interactive"]
    assert out.sends[0].payload == {
        "body": "Esa opción ya no está disponible.",
        "preview_url": False,
    }
    assert turn.reports[0].handler == "(stale)"


async def test_a_tap_on_the_newest_prompt_once_sent_runs_its_handler() -> None:
    claimed = lane(
        tap(1, "no", "wamid.DRINK"),
        state=session("drinking", DRINK_KEY, order="yes"),
        sent="wamid.DRINK",
    )
    out = (await take_turn(Order(), claimed, NOW)).outcome
    assert out.session is not None
    assert out.session.state == "done"
    assert out.session.data["drink"] == "no"
    assert out.session.data[PROMPT_KEY] == DRINK_KEY  # "¡Listo!" is no prompt


async def test_a_tap_on_the_prompt_a_turn_replaced_is_stale_in_the_same_turn() -> None:
    """Two taps on the confirmation in one claim: the first moves on and queues the drink
    question; the second names the confirmation, no longer the newest prompt."""
    confirm_key = "key-of-the-confirmation"
    claimed = lane(
        tap(1, "yes", CONFIRM), tap(2, "no", CONFIRM),
        state=session("confirming", confirm_key), sent=CONFIRM,
    )  # fmt: skip
    turn = await take_turn(Order(), claimed, NOW)
    out = turn.outcome
    assert [r.status for r in out.results] == [DONE, DONE]
    assert [r.handler for r in turn.reports] == ["confirm", "(stale)"]
    assert out.session is not None
    assert out.session.state == "drinking"
    assert out.session.data["order"] == "yes"
    assert out.session.data[PROMPT_KEY] == idempotency_key("evt_2", 1)  # the drink question again


async def test_a_tap_without_context_is_not_checked() -> None:
    claimed = lane(tap(1, "no", None), state=session("drinking", DRINK_KEY), sent=None)
    out = (await take_turn(Order(), claimed, NOW)).outcome
    assert out.session is not None
    assert out.session.state == "done"


async def test_a_conversation_without_stale_taps_drops_a_remembered_prompt() -> None:
    class Unprotected(Order):
        stale_taps = False

    stored = dataclasses.replace(session("drinking", DRINK_KEY), conversation="Unprotected")
    claimed = lane(tap(1, "no", CONFIRM), state=stored, sent=None)
    out = (await take_turn(Unprotected(), claimed, NOW)).outcome
    assert out.session is not None
    assert out.session.state == "done"  # the tap ran as it always did
    assert PROMPT_KEY not in out.session.data
