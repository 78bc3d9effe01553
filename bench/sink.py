"""The benchmarks' provider: a bare ASGI sink that accepts every well-keyed JSON send, fast.

`python bench/sink.py --port P [--rate-per-number N]` serves it under uvicorn (no access log:
a line per request would cost more than answering it). bench/webhook.py, bench/ratelimit.py and
bench/transport.py start it; tests/test_bench_sink.py checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
from http import HTTPStatus
from pathlib import Path

import uvicorn
from starlette.types import Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botkit.fake.rules import API_KEY_PREFIXES, Answer, RollingLimit
from botkit.types import Clock, JSONObject, SystemClock


def _encode(body: JSONObject) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _error(status: int, code: str, message: str) -> bytes:
    phrase = HTTPStatus(status).phrase
    body: JSONObject = {"statusCode": status, "message": message, "error": phrase, "code": code}
    return _encode({**body, "details": {}})


class SinkApp:
    """A bare ASGI app that accepts every well-keyed JSON send: for benchmarks.

    It checks only the API key prefix and the JSON content type, answers 200
    with a fresh id, and dedupes on Idempotency-Key (the same key gets the same
    id and counts as a duplicate). With `rate_per_number`, a new message past that
    many in a rolling second for its phone_number_id answers 429 (the body is read
    for that number only then). `GET /_fake/stats`, `GET /_fake/keys` (how often each key came),
    `GET /_fake/times` (when each key first came, Unix seconds) and
    `POST /_fake/reset` report and clear.
    """

    def __init__(
        self,
        api_key_prefixes: tuple[str, ...],
        *,
        rate_per_number: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._prefixes = tuple(prefix.encode() for prefix in api_key_prefixes)
        self._clock = clock or SystemClock()
        self._limit = (
            None if rate_per_number is None else RollingLimit(rate_per_number, self._clock)
        )
        self.requests = 0
        self.messages = 0
        self.duplicates = 0
        self.rejected = 0
        self.rate_limited = 0
        self.first_message_at: float | None = None
        self.last_message_at: float | None = None
        self.keys: dict[str, int] = {}
        self.times: dict[str, float] = {}
        self._ids: dict[str, bytes] = {}

    def reset(self) -> None:
        """Forgets every request and key."""
        self.requests = self.messages = self.duplicates = self.rejected = self.rate_limited = 0
        self.first_message_at = self.last_message_at = None
        self.keys.clear()
        self.times.clear()
        self._ids.clear()
        if self._limit is not None:
            self._limit.clear()

    def stats(self) -> JSONObject:
        """Counts of messages, requests, repeated keys and refusals; first and last message times."""
        return {
            "messages": self.messages,
            "requests": self.requests,
            "duplicate_keys": self.duplicates,
            "rejected": self.rejected,
            "rate_limited": self.rate_limited,
            "first_message_at": self.first_message_at,
            "last_message_at": self.last_message_at,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Routes on method and path, without a router."""
        if scope["type"] == "lifespan":
            await _lifespan_protocol(receive, send)
            return
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        if route != ("POST", "/v1/messages"):
            await _drain(receive)
            await _reply(send, *self._control(route))
            return
        body = await _drain(receive, keep=self._limit is not None)
        await _reply(send, *self._message(scope["headers"], body))

    def _message(
        self, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        """One send: 401 or 415, 429 past the rate, else 200 with an id (the same for a key)."""
        self.requests += 1
        found = dict(headers)
        refusal = self._refusal(found)
        if refusal is not None:
            self.rejected += 1
            return (*refusal, {})
        raw_key = found.get(b"idempotency-key")
        key = raw_key.decode("latin-1") if raw_key is not None else None
        limited = self._check_rate(key, body)
        if limited is not None:
            return limited.status, _encode(limited.payload), limited.headers
        message_id = self._id_for(key)
        answer = b'{"id":"%s","messaging_product":"whatsapp","messages":[{"id":"%s"}]}' % (
            message_id,
            message_id,
        )
        return 200, answer, {}

    def _check_rate(self, key: str | None, body: bytes) -> Answer | None:
        """The 429 for a new message past the rate; a repeated key is answered, not counted."""
        if self._limit is None or (key is not None and key in self._ids):
            return None
        limited = self._limit.check(_sink_phone_number_id(body))
        if limited is not None:
            self.rate_limited += 1
        return limited

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple[int, bytes] | None:
        """401 for a missing or malformed key, 415 for a non-JSON body, else None."""
        api_key = headers.get(b"x-api-key")
        if not api_key:
            return 401, _error(401, "INVALID_API_KEY", "X-API-Key is required")
        if not api_key.startswith(self._prefixes):
            return 401, _error(401, "MALFORMED_API_KEY", "malformed API key")
        media = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        if media != b"application/json":
            text = "Content-Type must be application/json"
            return 415, _error(415, "UNSUPPORTED_MEDIA_TYPE", text)
        return None

    def _id_for(self, key: str | None) -> bytes:
        """A fresh id, or the one already given to this key."""
        if key is not None and key in self._ids:
            self.keys[key] += 1
            self.duplicates += 1
            return self._ids[key]
        self.messages += 1
        self.last_message_at = self._clock.now()
        if self.first_message_at is None:
            self.first_message_at = self.last_message_at
        message_id = b"wamid.sink.%d" % self.messages
        if key is not None:
            self.keys[key] = 1
            self.times[key] = self.last_message_at
            self._ids[key] = message_id
        return message_id

    def _control(self, route: tuple[str, str]) -> tuple[int, bytes]:
        """The /_fake endpoints; 404 for anything else."""
        if route == ("GET", "/_fake/stats"):
            return 200, _encode(self.stats())
        if route == ("GET", "/_fake/times"):
            times: JSONObject = dict(self.times)
            return 200, _encode({"times": times})
        if route == ("GET", "/_fake/keys"):
            keys: JSONObject = dict(self.keys)
            return 200, _encode({"keys": keys})
        if route == ("POST", "/_fake/reset"):
            self.reset()
            return 200, _encode({"reset": True})
        return 404, _error(404, "NOT_FOUND", f"{route[0]} {route[1]}: not found")


def sink_app(
    *,
    api_key_prefixes: tuple[str, ...] = API_KEY_PREFIXES,
    rate_per_number: int | None = None,
    clock: Clock | None = None,
) -> SinkApp:
    """A fast sink for benchmarks: see `SinkApp`."""
    return SinkApp(api_key_prefixes, rate_per_number=rate_per_number, clock=clock)


def _sink_phone_number_id(body: bytes) -> str:
    """The body's phone_number_id for the sink's rate limit; "" when it has none."""
    try:
        message = json.loads(body)
    except ValueError:
        return ""
    number = message.get("phone_number_id") if isinstance(message, dict) else None
    return number if isinstance(number, str) else ""


async def _drain(receive: Receive, *, keep: bool = False) -> bytes:
    """Reads the request body: returns it when `keep`, else drops it and returns b""."""
    chunks: list[bytes] = []
    message: Message = {"more_body": True}
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        if keep:
            chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _reply(send: Send, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    """Sends a JSON response, with `extra` headers."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(name.lower().encode(), value.encode()) for name, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan_protocol(receive: Receive, send: Send) -> None:
    """Acknowledges the server's startup and shutdown: the sink holds no resources."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    """Serves the sink until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--rate-per-number", type=int, default=None, metavar="N")
    args = parser.parse_args()
    app = sink_app(rate_per_number=args.rate_per_number)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
