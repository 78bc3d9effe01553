"""`botkit new`: a project of one's own that passes its tests at once (scripts/check-new does
the same from a built wheel, in an empty folder, in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from botkit.exceptions import BotkitError
from botkit.tools.cli import main
from botkit.tools.scaffold import new_project

FILES = [
    "bot.py",
    "tests/test_bot.py",
    "tests/snapshots/greeting.txt",
    "pyproject.toml",
    "README.md",
    ".env.example",
    "Dockerfile",
    ".gitignore",
    ".dockerignore",
]


@pytest.mark.slow
def test_a_new_project_has_everything_and_its_tests_pass(tmp_path: Path) -> None:
    assert main(["new", "shop", "--directory", str(tmp_path)]) == 0
    folder = tmp_path / "shop"
    assert [name for name in FILES if not (folder / name).is_file()] == []
    assert "Ana: taps [yes] Yes" in (folder / "tests/snapshots/greeting.txt").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.parametrize("name", ["Shop", "1shop", "my shop", "class", "../x", ""])
def test_a_name_that_is_not_a_project_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BotkitError, match="is not a project name"):
        new_project(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_empty_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "bot.py").write_text("mine")
    with pytest.raises(BotkitError, match="exists and is not empty"):
        new_project("shop", tmp_path)
    assert (tmp_path / "shop" / "bot.py").read_text() == "mine"
