"""POST /webhook: verify the signature, store the events durably, then acknowledge."""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from botkit import codec
from botkit.config import Settings
from botkit.exceptions import PayloadError, StoreError
from botkit.metrics import Metrics
from botkit.runtime.ingest import Ingest
from botkit.tracing import Tracing
from botkit.types import JSONObject
from botkit.web.body import TooLarge, read_limited
from botkit.web.decoder import LARGE, BodyDecoder, DecoderUnavailable
from botkit.wire.events import parse_body
from botkit.wire.signing import SIGNATURE_HEADER, verify

log = logging.getLogger(__name__)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class WebhookEndpoint:
    """POST /webhook, as a bare ASGI app (the hot path skips Starlette's request and response
    objects, bench/webhook.py): 413 if too big, 401 if unsigned, 400 if unreadable, else stored
    then 200."""

    def __init__(
        self,
        ingest: Ingest,
        settings: Settings,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.ingest = ingest
        self.metrics = metrics or Metrics.off()
        self.tracing = tracing  # None: no spans (botkit.tracing)
        self.secrets = settings.webhook_secrets
        self.limit = settings.max_body_bytes
        self._signature_header = SIGNATURE_HEADER.lower().encode("latin-1")
        self.decoder = BodyDecoder()  # a body over LARGE: decoded apart (decoder.py says why)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if self.tracing is None:
            answer = await self._respond(scope, receive)
        else:
            answer = await self._traced(self.tracing, scope, receive)
        if answer is None:
            return
        status, body = answer
        content = codec.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
        self._count(status, body, time.perf_counter() - started)

    async def _respond(self, scope: Scope, receive: Receive) -> tuple[int, JSONObject] | None:
        """The status and body to answer (None: the client went away)."""
        try:
            return await self._answer(scope, receive)
        except ClientDisconnect:
            return None
        except Exception:  # what Starlette's ServerErrorMiddleware would do, as JSON
            log.exception("POST /webhook failed")
            return 500, {"error": "internal_error", "detail": "see the server's log"}

    async def _traced(
        self, tracing: Tracing, scope: Scope, receive: Receive
    ) -> tuple[int, JSONObject] | None:
        """`_respond` in the request's span, which continues the sender's trace context."""
        traceparent = _header(scope, b"traceparent")
        tracestate = _header(scope, b"tracestate") if traceparent else None
        with tracing.webhook(traceparent, tracestate) as span:
            answer = await self._respond(scope, receive)
            if answer is not None:
                status, body = answer
                span.answered(
                    status, _number(body.get("accepted")), _number(body.get("duplicates"))
                )
        return answer

    def _count(self, status: int, body: JSONObject, seconds: float) -> None:
        if status != 200:
            self.metrics.webhook(str(status), seconds)
            return
        new, duplicates = body["accepted"], body["duplicates"]
        outcome = "duplicate" if duplicates and not new else "accepted"
        self.metrics.webhook(outcome, seconds, int(new), int(duplicates))  # type: ignore[arg-type]

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, JSONObject]:
        try:
            body = await read_limited(scope, receive, self.limit)
        except TooLarge:
            return _error(413, "payload_too_large", f"the body exceeds {self.limit} bytes")
        signature = _header(scope, self._signature_header)
        if not signature:
            return _error(401, "missing_signature", f"the {SIGNATURE_HEADER} header is missing")
        if not verify(self.secrets, body, signature):
            return _error(401, "invalid_signature", f"{SIGNATURE_HEADER} does not match the body")
        try:
            if len(body) > LARGE:
                rows = await self.decoder.rows(body)
                try:
                    flags = await self.ingest.accept_rows(rows)
                finally:
                    await self.decoder.release(rows)
            else:
                flags = await self.ingest.accept(parse_body(body))
        except PayloadError as exc:
            return _error(400, "invalid_payload", str(exc))
        except DecoderUnavailable as exc:
            log.error("could not decode a large webhook body, answering 503: %s", exc)
            return _error(503, "decoder_unavailable", "the body could not be read; retry later")
        except StoreError as exc:
            log.error("could not store a webhook body, answering 503 so it is retried: %s", exc)
            return _error(503, "store_unavailable", "the event could not be stored; retry later")
        new = sum(flags)
        return 200, {"accepted": new, "duplicates": len(flags) - new}


def _number(value: object) -> int:
    return value if isinstance(value, int) else 0


def _error(status: int, error: str, detail: str) -> tuple[int, JSONObject]:
    return status, {"error": error, "detail": detail}


__all__ = ["WebhookEndpoint"]
