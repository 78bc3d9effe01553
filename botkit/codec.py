"""JSON encoding and decoding for the whole package (the only orjson importer)."""

from __future__ import annotations

from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError


def loads(data: bytes | str) -> Any:
    """Parses JSON; raises DecodeError (a ValueError) on malformed input."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Encodes as compact UTF-8 JSON bytes."""
    return orjson.dumps(value)


def dumps_str(value: Any) -> str:
    """Encodes as a compact JSON string (for text columns)."""
    return orjson.dumps(value).decode()
