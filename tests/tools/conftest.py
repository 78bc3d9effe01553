"""Fixtures of the tools' tests: the real processes of a deployment (processes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import Deployment


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A test's processes, stopped (or killed) when it ends."""
    with Deployment(tmp_path) as started:
        yield started
