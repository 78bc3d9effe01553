"""The people's side of a handoff, faked: a receiver of botkit's handoff webhook.

`FakeDesk.app` answers POST /handoff as a help desk would: it checks the timestamp and the
HMAC signature itself (sharing no code with botkit's signing, on purpose), records each
delivery, and answers 200, or the status `fail_next` asked for. It imports only the stdlib,
starlette and `botkit.types`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import deque
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from botkit.types import JSONObject

SIGNATURE = "X-Botkit-Signature"
TIMESTAMP = "X-Botkit-Timestamp"


@dataclass(frozen=True, slots=True)
class DeskDelivery:
    """One POST the desk received: its JSON body, its Idempotency-Key, whether the signature
    was right, and what the desk answered."""

    body: JSONObject
    idempotency_key: str | None
    signed: bool
    answered: int


class FakeDesk:
    """A handoff webhook receiver that keeps what it got (`deliveries`, `messages`)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.deliveries: list[DeskDelivery] = []
        self._faults: deque[int] = deque()
        self.app = Starlette(routes=[Route("/handoff", self._receive, methods=["POST"])])

    def fail_next(self, status: int, *, times: int = 1) -> None:
        """Answers `status` to the next `times` deliveries (503: botkit retries)."""
        self._faults.extend([status] * times)

    @property
    def messages(self) -> list[JSONObject]:
        """The bodies the desk took (answered 2xx, signed right), once per idempotency key."""
        seen: set[str | None] = set()
        taken: list[JSONObject] = []
        for delivery in self.deliveries:
            if delivery.signed and delivery.answered < 300 and delivery.idempotency_key not in seen:
                seen.add(delivery.idempotency_key)
                taken.append(delivery.body)
        return taken

    async def _receive(self, request: Request) -> JSONResponse:
        raw = await request.body()
        stamp = request.headers.get(TIMESTAMP, "")
        given = request.headers.get(SIGNATURE, "")
        expected = hmac.new(self.secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
        signed = hmac.compare_digest(given, "sha256=" + expected.hexdigest())
        status = self._faults.popleft() if self._faults else (200 if signed else 401)
        body = json.loads(raw)
        key = request.headers.get("idempotency-key")
        self.deliveries.append(DeskDelivery(body, key, signed, status))
        return JSONResponse({"ok": status < 300}, status_code=status)


__all__ = ["DeskDelivery", "FakeDesk"]
