"""The Bearer token check of the HTTP APIs (the trigger API, GET /metrics): one rule, one home."""

from __future__ import annotations

import hmac


def bearer_matches(header: str | None, token: bytes) -> bool:
    """Whether an Authorization header is `Bearer <token>` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


__all__ = ["bearer_matches"]
