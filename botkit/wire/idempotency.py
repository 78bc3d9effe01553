"""Idempotency keys, derived from what caused a send, so a crash and a redelivery repeat them."""

from __future__ import annotations

import hashlib


def idempotency_key(cause: str, position: int) -> str:
    """The key of the `position`-th send caused by `cause` (an event or a trigger id)."""
    digest = hashlib.sha256(f"{cause}\x1f{position}".encode()).hexdigest()
    return f"bk1_{digest[:40]}"
