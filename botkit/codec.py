"""JSON encoding and decoding for the whole package (the only orjson importer)."""

from __future__ import annotations

from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError

# The deepest JSON botkit accepts from outside (webhook and trigger bodies): far deeper than
# anything the provider sends (about ten levels), and, with the few levels an inbox envelope
# adds around a body's parts, still within what orjson can encode again (254 levels), so that
# a body accepted can always be stored.
MAX_DEPTH = 64


class NestingError(ValueError):
    """A JSON document nested deeper than allowed."""


def loads(data: bytes | str, *, max_depth: int | None = None) -> Any:
    """Parses JSON; raises DecodeError (a ValueError) on malformed input, and NestingError
    when given a `max_depth` the document exceeds (containers inside containers)."""
    value = orjson.loads(data)
    if max_depth is not None and _brackets(data) > max_depth and _deeper_than(value, max_depth):
        raise NestingError(f"the JSON nests deeper than {max_depth} levels")
    return value


def _brackets(data: bytes | str) -> int:
    """How many `{` and `[` the text holds: at least as many as its containers (strings may hold
    some too), so no deeper than that; counting them is far cheaper than walking the value."""
    if isinstance(data, str):
        return data.count("{") + data.count("[")
    return data.count(b"{") + data.count(b"[")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` has containers nested more than `limit` deep (iterative: any depth)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict:
            children = item.values()
        elif kind is list:
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def dumps(value: Any) -> bytes:
    """Encodes as compact UTF-8 JSON bytes."""
    return orjson.dumps(value)


def dumps_str(value: Any) -> str:
    """Encodes as a compact JSON string (for text columns)."""
    return orjson.dumps(value).decode()
