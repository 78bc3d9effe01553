"""Human handoff on the wire: the inbox events of the people's side, the mark a handed-off
session carries, and the signature of what botkit posts to the people's webhook.

A handoff, a person's reply and a resume are inbox events of kind "handoff" in the user's
lane, so they run in order with the user's own messages. While a session carries the mark
(`HandoffMark`, kept in its data under `MARK_KEY`, out of the handlers' sight), a message
of the user's is queued in the outbox as a row of type `FORWARD_TYPE`, which the outbox
posts to `BOTKIT_HANDOFF_URL` instead of the provider.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from botkit.exceptions import HandoffError, MessageError, PayloadError
from botkit.types import JSON, JSONObject
from botkit.wire.messages import Template, Text
from botkit.wire.signing import sign

HANDOFF_TYPE = "botkit.wire.handoff"  # the envelope type of the people's events
KIND = "handoff"  # their inbox kind
FORWARD_TYPE = "botkit.handoff"  # the outbox type of a user's message forwarded to people
MARK_KEY = "botkit.handoff"  # where a session's data keeps the mark (handlers never see it)
SIGNATURE_HEADER = "X-Botkit-Signature"
TIMESTAMP_HEADER = "X-Botkit-Timestamp"

START, REPLY, RESUME = "start", "reply", "resume"
ACTIONS = (START, REPLY, RESUME)
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class HandoffMark:
    """A handed-off conversation: since when (the store's clock), why, and the state the
    user was in when it was handed off. With a `timeout` (seconds), the bot resumes it by
    itself, in `resume_to` (else `state`), once no message has passed either way (the user's
    or a person's) for that long; `active` is when the last one did (botkit.runtime.handoff_timer).
    """

    since: float
    reason: str
    state: str
    timeout: float | None = None
    resume_to: str | None = None
    active: float | None = None

    @property
    def resumes_at(self) -> float | None:
        """When the bot resumes the conversation by itself (None: only when asked to)."""
        if self.timeout is None:
            return None
        return (self.since if self.active is None else self.active) + self.timeout

    def to_json(self) -> JSONObject:
        """The mark as the session's data keeps it."""
        kept: JSONObject = {"since": self.since, "reason": self.reason, "state": self.state}
        if self.timeout is not None:
            kept.update(timeout=self.timeout, resume_to=self.resume_to, active=self.active)
        return kept

    @classmethod
    def from_json(cls, value: JSON) -> HandoffMark | None:
        """The mark kept in a session's data; None when it is not one."""
        if not isinstance(value, dict):
            return None
        since, reason, state = value.get("since"), value.get("reason"), value.get("state")
        if not isinstance(since, int | float) or isinstance(since, bool):
            return None
        if not (isinstance(reason, str) and isinstance(state, str)):
            return None
        timeout, resume_to, active = (
            value.get("timeout"),
            value.get("resume_to"),
            value.get("active"),
        )
        return cls(
            float(since), reason, state, _seconds(timeout),
            resume_to if isinstance(resume_to, str) else None, _seconds(active),
        )  # fmt: skip


def _seconds(value: JSON) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    """One of the people's events for a user: `start` (with `reason`, and an optional
    `timeout` in seconds and `resume_to` state), `reply` (with `text` and an optional fallback
    template) or `resume` (to `state`)."""

    event_id: str
    phone_number_id: str
    wa_id: str
    action: str
    reason: str = ""
    state: str = ""
    text: str = ""
    fallback: JSONObject | None = None
    timeout: float | None = None
    resume_to: str | None = None

    @classmethod
    def create(
        cls,
        action: str,
        *,
        wa_id: str,
        phone_number_id: str,
        reason: str = "",
        state: str = "",
        text: str = "",
        fallback: JSONObject | None = None,
        key: str | None = None,
        timeout: float | None = None,
        resume_to: str | None = None,
    ) -> HandoffEvent:
        """A new event; the same `key` (an Idempotency-Key) for the same user, number and
        action gives the same event id, so a retried request is stored once."""
        if key is None:
            event_id = f"hnd_{uuid.uuid4().hex}"
        else:
            scope = "\x1f".join((phone_number_id, wa_id, action, key))
            event_id = f"hnd_{hashlib.sha256(scope.encode()).hexdigest()[:32]}"
        return cls(
            event_id, phone_number_id, wa_id, action, reason, state, text, fallback, timeout,
            resume_to,
        )  # fmt: skip

    @property
    def envelope(self) -> JSONObject:
        """The event as the inbox keeps it."""
        data: JSONObject = {"wa_id": self.wa_id, "action": self.action}
        if self.action == START:
            data["reason"] = self.reason
            if self.timeout is not None:
                data.update(timeout=self.timeout, resume_to=self.resume_to)
        elif self.action == RESUME:
            data["state"] = self.state
        else:
            data["text"] = self.text
            data["fallback"] = self.fallback
        return {
            "id": self.event_id,
            "type": HANDOFF_TYPE,
            "phone_number_id": self.phone_number_id,
            "data": data,
        }

    @classmethod
    def from_envelope(cls, envelope: JSONObject) -> HandoffEvent:
        """Reads the event back from the inbox."""
        body = envelope.get("data")
        event_id, number = envelope.get("id"), envelope.get("phone_number_id")
        if not isinstance(body, dict):
            raise PayloadError("a handoff envelope needs a data object", path="data")
        wa_id, action = body.get("wa_id"), body.get("action")
        if not (isinstance(event_id, str) and isinstance(number, str) and isinstance(wa_id, str)):
            raise PayloadError("a handoff event needs id, phone_number_id and data.wa_id")
        if action not in ACTIONS:
            raise PayloadError(f"unknown handoff action {action!r}", path="data.action")
        reason, state, text = body.get("reason", ""), body.get("state", ""), body.get("text", "")
        fallback = body.get("fallback")
        if not (isinstance(reason, str) and isinstance(state, str) and isinstance(text, str)):
            raise PayloadError("a handoff event's reason, state and text are strings")
        if fallback is not None and not isinstance(fallback, dict):
            raise PayloadError("a handoff reply's fallback is an object", path="data.fallback")
        timeout, resume_to = _seconds(body.get("timeout")), body.get("resume_to")
        return cls(
            event_id, number, wa_id, str(action), reason, state, text, fallback, timeout,
            resume_to if isinstance(resume_to, str) else None,
        )  # fmt: skip

    def message(self) -> Text:
        """A reply's message."""
        return Text(self.text)

    def fallback_template(self) -> Template | None:
        """A reply's fallback template, if the request gave one."""
        return None if self.fallback is None else template_of(self.fallback)


def template_of(value: JSONObject) -> Template:
    """A fallback template from a request's `{"name", "language", "body": [...]}`;
    MessageError names what is wrong."""
    name, language, body = value.get("name"), value.get("language"), value.get("body", [])
    if not isinstance(name, str) or not isinstance(language, str):
        raise MessageError(
            'a fallback template needs "name" and "language" (strings), e.g. '
            '{"name": "agent_reply", "language": "es", "body": ["..."]}',
            field="fallback",
        )
    if not isinstance(body, list) or not all(isinstance(item, str) for item in body):
        raise MessageError('a fallback template\'s "body" is a list of strings', field="fallback")
    return Template.of(name, language, [str(item) for item in body])


def handoff_timeout(
    timeout: timedelta | float | None, resume_to: str | None, states: Sequence[str]
) -> tuple[float | None, str | None]:
    """A handoff's `timeout` in seconds and its `resume_to` state, checked: HandoffError (400)
    for a timeout that is not a positive duration, a `resume_to` without a timeout, or a state
    the conversation does not declare (naming the declared ones)."""
    if timeout is None:
        if resume_to is not None:
            raise HandoffError('"resume_to" goes with a "timeout": give both, or neither')
        return None, None
    if isinstance(timeout, bool) or not isinstance(timeout, timedelta | int | float):
        raise HandoffError(f'"timeout" is a duration (seconds or a timedelta), not {timeout!r}')
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if not (0 < seconds < float("inf")):
        raise HandoffError(f'"timeout" must be a positive duration, not {seconds:g} s')
    if resume_to is not None and resume_to not in states:
        declared = ", ".join(states)
        raise HandoffError(f'"resume_to": no state {resume_to!r} (declared: {declared})')
    return seconds, resume_to


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Botkit-Signature of a delivery: ``sha256=<hex HMAC-SHA256>`` of
    ``<timestamp>.<body>`` keyed with BOTKIT_HANDOFF_SECRET (GoSendAPI's scheme, with the
    timestamp signed too so that a receiver can refuse old replays)."""
    return sign(secret, timestamp.encode() + b"." + body)


__all__ = [
    "FORWARD_TYPE",
    "KIND",
    "MARK_KEY",
    "HandoffEvent",
    "HandoffMark",
    "handoff_timeout",
    "signature",
    "template_of",
]
