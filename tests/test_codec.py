"""botkit.codec: parsing JSON from outside with a nesting limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from botkit import codec


def nested(levels: int, container: str = "dict") -> bytes:
    value: Any = 1
    for n in range(levels):
        value = {"k": value} if container == "dict" or n % 2 else [value]
    return json.dumps(value).encode()


@pytest.mark.parametrize("container", ["dict", "mixed"])
def test_a_document_at_the_limit_is_read_one_deeper_is_refused(container: str) -> None:
    assert codec.loads(nested(codec.MAX_DEPTH, container), max_depth=codec.MAX_DEPTH)
    with pytest.raises(codec.NestingError, match="deeper than 64 levels"):
        codec.loads(nested(codec.MAX_DEPTH + 1, container), max_depth=codec.MAX_DEPTH)


def test_what_is_read_under_the_limit_can_be_written_again_wrapped_in_an_envelope() -> None:
    body = codec.loads(nested(codec.MAX_DEPTH), max_depth=codec.MAX_DEPTH)
    envelope = {"data": {"message": {"text": body}}}
    assert codec.loads(codec.dumps(envelope)) == envelope


def test_the_check_reads_the_parser_s_deepest_document_without_recursing() -> None:
    with pytest.raises(codec.NestingError):
        codec.loads(b"[" * 1000 + b"]" * 1000, max_depth=codec.MAX_DEPTH)


def test_without_a_limit_stored_rows_are_read_as_written() -> None:
    assert codec.loads(nested(200)) == json.loads(nested(200))
