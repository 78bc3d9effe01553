"""Shared fixtures: async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import bots.clinic as clinic
from botkit import Simulator
from botkit.tools.simulator import SimUser
from tests.postgres import postgres_database, postgres_url  # noqa: F401 (fixtures)

# Example webhook bodies of every event the provider sends, signed and unsigned (a copy of the
# provider contract's examples, kept with the tests so that a clone anywhere passes).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "webhooks"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """The clinic bot in the simulator."""
    async with Simulator(clinic) as simulator:
        yield simulator


@pytest.fixture
def juan(sim: Simulator) -> SimUser:
    """A user of the clinic bot."""
    return sim.user("5491140123456", name="Juan")
