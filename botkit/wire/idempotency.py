"""Idempotency keys, derived from what caused a send, so a crash and a redelivery repeat them."""

from __future__ import annotations

import hashlib


def idempotency_key(cause: str, position: int) -> str:
    """The key of the `position`-th send caused by `cause` (an event or a trigger id)."""
    digest = hashlib.sha256(f"{cause}\x1f{position}".encode()).hexdigest()
    return f"bk1_{digest[:40]}"


def with_media(key: str, media_id: str) -> str:
    """The key of a send whose body carries an uploaded media id: bound to that id.

    The provider keeps a key's first answer for its body: a send whose media was uploaded
    again (the provider dropped the old id) is another body, so it needs another key; and a
    retry of it after a crash finds the same id in the cache, hence the same key.
    """
    return f"{key}-m{hashlib.sha256(media_id.encode()).hexdigest()[:10]}"
