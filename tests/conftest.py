"""Shared fixtures: async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures" / "webhooks"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"webhook fixtures not found at {FIXTURES}: botkit expects ../shared beside the checkout")
    return FIXTURES
