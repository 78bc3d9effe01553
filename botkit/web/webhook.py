"""POST /webhook: verify the signature, store the events durably, then acknowledge."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from botkit import codec
from botkit.config import Settings
from botkit.exceptions import PayloadError, StoreError
from botkit.runtime.ingest import Ingest
from botkit.types import JSONObject
from botkit.web.body import TooLarge, read_limited
from botkit.wire.events import Event, parse_body
from botkit.wire.signing import SIGNATURE_HEADER, verify

log = logging.getLogger(__name__)

# Parsing costs up to ~0.4 ms a KB (bench/parse.py: many tiny Meta messages): a body above
# this size is parsed in a thread, where the GIL lets the event loop in every 5 ms, so that
# one large body cannot hold /healthz and every other webhook for hundreds of milliseconds.
OFF_LOOP_BYTES = 8 * 1024

_gc_lock = threading.Lock()
_gc_pauses = 0


def _pause_collector() -> None:
    """No garbage collection from a large body's decoding until it is taken apart: orjson
    builds it with the GIL held, and each collection its allocations set off walks
    everything built so far (a 1 MiB body of nested arrays: 330 ms to decode with
    collections, 35 ms without); resumed before, one collection would walk all of it at
    once. Counted, so that bodies in several threads at once pause it once."""
    global _gc_pauses
    with _gc_lock:
        _gc_pauses += 1
        if _gc_pauses == 1:
            gc.disable()


def _resume_collector() -> None:
    global _gc_pauses
    with _gc_lock:
        _gc_pauses -= 1
        if _gc_pauses == 0:
            gc.enable()


@dataclass(slots=True)
class _Parsed:
    """A body's events, and (a large body's) decoded document, to be let go of gradually."""

    events: list[Event]
    document: object = None
    paused: bool = False  # the collector is paused for it (_pause_collector)

    def __del__(self) -> None:
        # never dismantled (the request was cancelled while its body was parsed): the
        # collector must not stay paused for the rest of the process's life
        if self.paused:
            self.paused = False
            _resume_collector()

    def dismantle(self) -> None:
        """Frees the events, then the document, a piece at a time: freeing a large structure
        in one go is one C call that holds the GIL until its last object is gone (tens of
        ms at 1 MiB), wherever it runs. The events go first: they share the document's
        parts, which are taken apart only once nothing else holds them (stores encode or
        copy what they are given: contract.py)."""
        while self.events:
            self.events.pop()
        stack, self.document = [self.document], None
        try:
            _take_apart(stack)
        finally:
            if self.paused:
                self.paused = False
                _resume_collector()


def _take_apart(stack: list[object]) -> None:
    """Empties every container reachable from `stack`, one child at a time."""
    while stack:
        item = stack.pop()
        if type(item) is dict:
            while item:
                child = item.popitem()[1]
                if (type(child) is dict or type(child) is list) and child:
                    stack.append(child)
        elif type(item) is list:
            while item:
                child = item.pop()
                if (type(child) is dict or type(child) is list) and child:
                    stack.append(child)


def _parse_apart(body: bytes) -> _Parsed | PayloadError:
    """Parses a large body (in a thread); a refusal comes back as a value whose traceback
    holds no frame, so that the document is taken apart here, not freed on the loop."""
    _pause_collector()  # until dismantle() ends
    try:
        document = codec.loads(body, max_depth=codec.MAX_DEPTH)
    except ValueError:  # malformed or too deep: parse_body says so, building nothing
        document = None
    parsed = _Parsed([], document, paused=True)
    try:
        parsed.events = parse_body(document if isinstance(document, dict) else body)
    except PayloadError as exc:
        parsed.dismantle()
        return PayloadError(str(exc))
    except BaseException:
        parsed.dismantle()
        raise
    return parsed


async def _parse(body: bytes) -> _Parsed:
    """The body's events: parsed on the loop when small (most are ~1 KB), else in a thread."""
    if len(body) <= OFF_LOOP_BYTES:
        return _Parsed(parse_body(body))
    parsed = await asyncio.to_thread(_parse_apart, body)
    if isinstance(parsed, PayloadError):
        raise parsed
    return parsed


async def _release(parsed: _Parsed) -> None:
    """Lets go of a large body's events and document in a thread (see _Parsed.dismantle)."""
    if parsed.document is not None:
        await asyncio.to_thread(parsed.dismantle)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class WebhookEndpoint:
    """POST /webhook, as a bare ASGI app (the hot path skips Starlette's request and response
    objects, bench/webhook.py): 413 if too big, 401 if unsigned, 400 if unreadable, else stored
    then 200."""

    def __init__(self, ingest: Ingest, settings: Settings) -> None:
        self.ingest = ingest
        self.secrets = settings.webhook_secrets
        self.limit = settings.max_body_bytes
        self._signature_header = SIGNATURE_HEADER.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body = await self._answer(scope, receive)
        except ClientDisconnect:
            return
        except Exception:  # what Starlette's ServerErrorMiddleware would do, as JSON
            log.exception("POST /webhook failed")
            status, body = 500, {"error": "internal_error", "detail": "see the server's log"}
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
            parsed = await _parse(body)
        except PayloadError as exc:
            return _error(400, "invalid_payload", str(exc))
        try:
            flags = await self.ingest.accept(parsed.events)
        except StoreError as exc:
            log.error("could not store a webhook body, answering 503 so it is retried: %s", exc)
            return _error(503, "store_unavailable", "the event could not be stored; retry later")
        finally:
            await _release(parsed)
        new = sum(flags)
        return 200, {"accepted": new, "duplicates": len(flags) - new}


def _error(status: int, error: str, detail: str) -> tuple[int, JSONObject]:
    return status, {"error": error, "detail": detail}


__all__ = ["WebhookEndpoint"]
