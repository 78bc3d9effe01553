"""Tests for botkit.web.auth: the Bearer check of the trigger API and GET /metrics."""

from __future__ import annotations

import pytest

from botkit.web.auth import bearer_matches


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "])
def test_the_token_after_bearer_matches(header: str) -> None:
    assert bearer_matches(header, b"s3cret")


@pytest.mark.parametrize(
    "header", [None, "", "s3cret", "Basic s3cret", "Bearer", "Bearer s3cre", "Bearer s3cret2"]
)
def test_anything_else_does_not(header: str | None) -> None:
    assert not bearer_matches(header, b"s3cret")
