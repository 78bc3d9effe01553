"""Reading a request body under a size limit, without ever buffering more than the limit."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope


class TooLarge(Exception):
    """The body passed the limit."""


async def read_limited(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The body, or TooLarge as soon as its Content-Length or what has arrived exceeds `limit`
    bytes; ClientDisconnect if the client goes away first."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


__all__ = ["TooLarge", "read_limited"]
