"""The people's side of a handoff in `botkit dev`: hand a user over, answer as the person, and
give the conversation back to the bot in a declared state.

Each goes through the bot's own handoff path (`Bot.handoff`, `Bot.reply`, `Bot.resume`, as
the HTTP API does): events in the user's lane, a person's message through the outbox with the
window's rules. The dev server's JSON API routes them (`desk_actions`), the page shows the
mark (`handoff_view`) and tells the person's messages from the bot's (`DevBot.person_keys`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request

from botkit.exceptions import HandoffError
from botkit.store.base import FAILED
from botkit.types import JSONObject
from botkit.wire.handoff import MARK_KEY, HandoffMark
from botkit.wire.idempotency import idempotency_key

if TYPE_CHECKING:
    from botkit.tools.devserver import DevBot, DevUser

DeskAction = Callable[["DevBot", Request, JSONObject], Awaitable[str | None]]
CLOSED = (
    "the person's message was not sent: the window is closed and the dev server gives no "
    "fallback template (the API takes one: docs/guide/handoff.md)"
)


def handoff_view(data: JSONObject) -> JSONObject | None:
    """What the page shows of a session's handoff mark (None: the bot answers)."""
    mark = HandoffMark.from_json(data.get(MARK_KEY))
    if mark is None:
        return None
    return {**mark.to_json(), "resumes_at": mark.resumes_at}


async def handed_off(dev: DevBot, user: DevUser) -> bool:
    """Whether people answer the user now (no handler runs for their messages)."""
    found = await dev.runtime.store.sessions.get(dev.phone_number_id, user.wa_id)
    return found.session is not None and handoff_view(found.session.data) is not None


def is_person(dev: DevBot, key: str | None) -> bool:
    """Whether a message the provider got is a person's (its key, or its fallback's)."""
    return key is not None and key.removesuffix("-fb") in dev.person_keys


async def hand_off(
    dev: DevBot, user: DevUser, reason: str, after: float | None, resume_to: str | None
) -> None:
    """Hands the user to people, as POST /conversations/{wa_id}/handoff does; with `after`
    (seconds), the bot resumes by itself after that long with no message either way."""
    async with dev.lock:
        await dev.bot.handoff(user.wa_id, reason=reason, timeout=after, resume_to=resume_to)
        back = f", back to the bot after {after:g} s of silence" if after else ""
        dev.note(f"handed off to people: {reason or 'no reason given'}{back}", user)
        await dev.settle()


async def answer(dev: DevBot, user: DevUser, text: str) -> None:
    """Sends `text` to the user as the person, as POST /conversations/{wa_id}/messages does
    (through the outbox, under the window's rules)."""
    async with dev.lock:
        event_id = await dev.bot.reply(user.wa_id, text)
        key = idempotency_key(event_id, 0)
        dev.person_keys.add(key)
        await dev.settle()
        rows = await dev.runtime.store.inspect.outbox(user.wa_id)
        if any(row.idempotency_key == key and row.status == FAILED for row in rows):
            dev.note(CLOSED, user)
            await dev.publish()


async def resume(dev: DevBot, user: DevUser, state: str) -> None:
    """Gives the conversation back to the bot in `state`, as POST .../resume does."""
    async with dev.lock:
        await dev.bot.resume(user.wa_id, state=state)
        dev.note(f"resumed by the bot in {state}", user)
        await dev.settle()


def _string(body: JSONObject, key: str, *, required: bool = True) -> str:
    value = body.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise HandoffError(f"{key!r} is required (a non-empty string)")
    return value


async def _handoff(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(str(request.path_params["wa_id"]))
    timeout, resume_to = body.get("timeout"), body.get("resume_to")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise HandoffError("'timeout' must be a number of seconds")
    if resume_to is not None and not isinstance(resume_to, str):
        raise HandoffError("'resume_to' must name a state")
    seconds = None if timeout is None else float(timeout)
    await hand_off(dev, user, _string(body, "reason", required=False), seconds, resume_to)
    return user.wa_id


async def _answer(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(str(request.path_params["wa_id"]))
    await answer(dev, user, _string(body, "text"))
    return user.wa_id


async def _resume(dev: DevBot, request: Request, body: JSONObject) -> str:
    user = dev.known(str(request.path_params["wa_id"]))
    await resume(dev, user, _string(body, "state"))
    return user.wa_id


def desk_actions() -> dict[str, DeskAction]:
    """The dev server's JSON API of the people's side (POST paths and their actions)."""
    return {
        "/api/users/{wa_id}/handoff": _handoff,
        "/api/users/{wa_id}/person": _answer,
        "/api/users/{wa_id}/resume": _resume,
    }


__all__ = [
    "answer",
    "desk_actions",
    "hand_off",
    "handed_off",
    "handoff_view",
    "is_person",
    "resume",
]
