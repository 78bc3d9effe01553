"""What every store's claim hands the turn of a user's latest prompt (botkit.wire.prompt):
the provider's message id recorded for the idempotency key the session remembers."""

from __future__ import annotations

import itertools

import pytest

from botkit.store.base import NewSend, Session, Store
from botkit.wire.prompt import PROMPT_KEY

from .contract import ANA, BEN, LEASE, PN, event, mark_sent, queue_sends, run_lane

_EVENTS = itertools.count()


def prompt(key: str, wa_id: str = ANA) -> NewSend:
    """Reply buttons to `wa_id` with idempotency key `key`."""
    payload = {"type": "button", "body": {"text": "¿Sí?"}, "action": {"buttons": []}}
    return NewSend(PN, wa_id, key, "interactive", payload, f"cause-{key}")


def remembering(key: str | None, wa_id: str = ANA) -> Session:
    """A session whose data remembers `key` as its latest prompt (and data of its own)."""
    data: dict[str, object] = {"service": "lab"}
    if key is not None:
        data[PROMPT_KEY] = key
    return Session(PN, wa_id, "Clinic", "asking", data, "v1")  # type: ignore[arg-type]


async def claimed(store: Store, wa_id: str = ANA) -> str | None:
    """Stores an event of `wa_id`, claims its lane and says what the claim handed out."""
    await store.inbox.add([event(f"e-{wa_id}-{next(_EVENTS)}", wa_id)])
    lanes = {lane.wa_id: lane for lane in await store.inbox.claim("P", 10, LEASE)}
    await store.inbox.release("P")
    return lanes[wa_id].prompt_message_id


@pytest.mark.anyio
class PromptContract:
    """The claim hands out the provider's id of the session's latest prompt."""

    async def test_a_claim_hands_out_the_latest_prompts_id_once_it_is_sent(
        self, store: Store
    ) -> None:
        await queue_sends(store, prompt("k1"))
        await store.inbox.add([event("a1")])
        await run_lane(store, session=remembering("k1"))
        assert await claimed(store) is None  # queued, not sent yet
        await mark_sent(store, "k1", "wamid.k1")
        assert await claimed(store) == "wamid.k1"

    async def test_a_session_without_a_prompt_hands_out_none(self, store: Store) -> None:
        await queue_sends(store, prompt("k1"))
        await mark_sent(store, "k1", "wamid.k1")
        await store.inbox.add([event("a1")])
        await run_lane(store, session=remembering(None))
        assert await claimed(store) is None

    async def test_each_lane_gets_its_own_users_prompt(self, store: Store) -> None:
        await queue_sends(store, prompt("ka", ANA))
        await queue_sends(store, prompt("kb", BEN))
        await mark_sent(store, "ka", "wamid.ka")
        await mark_sent(store, "kb", "wamid.kb")
        await store.inbox.add([event("a1", ANA), event("b1", BEN)])
        await run_lane(store, ANA, session=remembering("ka", ANA))
        await run_lane(store, BEN, session=remembering("kb", BEN))
        await store.inbox.add([event("a2", ANA), event("b2", BEN)])
        lanes = {lane.wa_id: lane for lane in await store.inbox.claim("P", 10, LEASE)}
        assert {w: lane.prompt_message_id for w, lane in lanes.items()} == {
            ANA: "wamid.ka",
            BEN: "wamid.kb",
        }

    async def test_a_newer_prompt_not_yet_sent_hands_out_none(self, store: Store) -> None:
        await queue_sends(store, prompt("k1"))
        await mark_sent(store, "k1", "wamid.k1")
        await store.inbox.add([event("a1")])
        await run_lane(store, session=remembering("k2"), sends=(prompt("k2"),))
        assert await claimed(store) is None
