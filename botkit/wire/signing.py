"""HMAC-SHA256 signatures of webhook bodies, as GoSendAPI sends them: pure functions."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-GoSendAPI-Signature"
_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The header value GoSendAPI sends for `body`: ``sha256=<hex>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(secrets: Iterable[str], body: bytes, header: str | None) -> bool:
    """True when `header` is a valid signature of `body` under any of `secrets`.

    The hex digest is compared case-insensitively and in constant time; every
    secret is tried so that the time taken does not tell which one matched.
    """
    if not header:
        return False
    scheme, _, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        return False
    try:
        given_bytes = bytes.fromhex(given)
    except ValueError:
        return False
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        ok |= hmac.compare_digest(expected, given_bytes)
    return ok
