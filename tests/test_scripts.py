"""The README's test command: every stage runs, and a failing one fails the whole."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_failing_pytest_still_runs_ruff_and_mypy_and_fails_the_command() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "test"), "tests/no_such_test_file.py", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    summary = done.stderr.split("scripts/test: summary", 1)[1].splitlines()
    assert [line.split()[0] for line in summary if line.strip()] == [
        "FAILED",
        "passed",
        "passed",
        "passed",
        "passed",
    ]
    assert all(stage in done.stderr for stage in ("ruff check", "mypy", "mkdocs build"))
