"""Leaf module: every error botkit raises.

BotkitError
├── ConfigError              a missing or invalid setting (names every one)
├── DefinitionError          a conversation declared wrongly (raised at import)
├── MessageError             an outbound message that breaks WhatsApp's limits (.field, .limit)
├── PayloadError             a webhook body botkit cannot read (.path)
├── StoreError               the store cannot be used (schema too new, bad URL)
├── HandoffError             a handoff, reply or resume that cannot be accepted (.status: 400, 404)
├── RepairError              an operator's repair that cannot be done (.status: 404, 409)
│   └── LaneBusyError        a turn of the user's runs, or a send of theirs is being delivered
└── ProviderError            GoSendAPI refused or failed a request (.status, .code, .retry_after)
    ├── TransientProviderError   5xx or a network failure: retried with the same key
    │   └── RateLimitedError     429: retried after .retry_after seconds
    └── PermanentProviderError   other 4xx: recorded, never retried
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from botkit.types import JSONObject


class BotkitError(Exception):
    """The root of every error botkit raises."""


class ConfigError(BotkitError):
    """A setting is missing or invalid; `problems` lists every one, not only the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(self.problems))


class DefinitionError(BotkitError):
    """A conversation is declared wrongly; raised when its class is created."""


class MessageError(BotkitError, ValueError):
    """An outbound message breaks one of WhatsApp's limits."""

    def __init__(self, message: str, *, field: str, limit: int | None = None) -> None:
        self.field = field
        self.limit = limit
        super().__init__(message)


class PayloadError(BotkitError, ValueError):
    """A webhook body is not JSON, or not an event botkit can read; `path` names the spot."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class StoreError(BotkitError):
    """The store cannot be opened or used."""


class RepairError(BotkitError):
    """An operator's repair that cannot be done: `status` 404 when what it names does not
    exist, 409 when the store refuses it as things stand (the message says why)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        self.status = status
        super().__init__(message)


class LaneBusyError(RepairError):
    """A worker holds a live claim on the user's events (a turn runs) or sends (one is being
    delivered): nothing was changed; it is over in moments, so try again."""


class WindowClosedError(BotkitError):
    """A free-form message to a user whose 24-hour window is closed, with no fallback declared.

    `closes_at`: when the window the user's latest message opened ends (None: they never
    wrote); `refused`: the provider refused a message since then (until the user writes).
    """

    def __init__(self, wa_id: str, closes_at: float | None, *, refused: bool = False) -> None:
        self.wa_id = wa_id
        self.closes_at = closes_at
        self.refused = refused
        if closes_at is None:
            when = "the user has never written"
        elif refused:
            when = "the provider refused a message since the user last wrote"
        else:
            when = "it closed at " + datetime.fromtimestamp(closes_at, tz=UTC).isoformat(
                timespec="seconds"
            )
        super().__init__(
            f"the 24-hour window with {wa_id} is closed ({when}): send a template, or declare "
            "a fallback (send(..., fallback=Template(...)), State(fallback=...), "
            "on.trigger(..., fallback=...)) or fallback=HOLD to deliver when the user writes"
        )


class TriggerError(BotkitError, ValueError):
    """A trigger request that cannot be accepted; `status` is the HTTP answer it maps to."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class HandoffError(BotkitError, ValueError):
    """A handoff, a person's reply or a resume that cannot be accepted; `status` is the HTTP
    answer it maps to (404: no such conversation; 400: a bad request)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class MediaError(BotkitError):
    """A local media file that cannot be read, or whose content changed since it was sent."""


class ProviderError(BotkitError):
    """GoSendAPI answered with an error or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: JSONObject | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.details = details or {}
        self.retry_after = retry_after
        head = f"GoSendAPI {status}" if status is not None else "GoSendAPI unreachable"
        tail = f" [{code}]" if code else ""
        super().__init__(f"{head}{tail}: {message}")


class TransientProviderError(ProviderError):
    """A 5xx answer or a network failure: the send is retried with the same idempotency key."""


class RateLimitedError(TransientProviderError):
    """A 429 answer: the send is retried after `retry_after` seconds."""


class PermanentProviderError(ProviderError):
    """A 4xx answer other than 429: the send is recorded as failed and never retried."""
