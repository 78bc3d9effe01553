"""The README's test command: every stage runs, and a failing one fails the whole."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.slow
def test_a_clone_with_nothing_beside_it_collects_every_test(tmp_path: Path) -> None:
    """A fresh clone once failed with 147 errors: its tests read fixtures from a folder beside the
    checkout, which a user's clone does not have."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "alone" / "botkit"  # nothing beside it
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    environment = {**os.environ, "PYTHONPATH": str(clone)}  # the clone's botkit, not ours
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert "error" not in last and int(last.split()[0]) > 1000, last
    imported = subprocess.run(
        [sys.executable, "-c", "import botkit; print(botkit.__file__)"],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(clone))
