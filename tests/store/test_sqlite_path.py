"""Paths a SQLite store refuses before creating anything: one error naming the path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from botkit.exceptions import StoreError
from botkit.store.sqlite import SqliteStore
from botkit.store.sqlite.path import check_path

pytestmark = pytest.mark.anyio


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_missing_folder_is_named_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"the folder .*missing does not exist; create it"):
        check_path(str(tmp_path / "missing" / "x.db"))
    assert names(tmp_path) == []


def test_a_folder_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder: name a file in it"):
        check_path(str(tmp_path))


def test_a_new_file_an_empty_file_and_memory_are_fine(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    check_path(str(tmp_path / "new.db"))
    check_path(str(tmp_path / "empty.db"))
    check_path(":memory:")


async def test_a_botkit_database_passes_and_another_applications_is_refused(
    tmp_path: Path,
) -> None:
    async with SqliteStore(tmp_path / "bot.db"):
        pass
    check_path(str(tmp_path / "bot.db"))
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    with pytest.raises(StoreError, match="is a SQLite database of something else"):
        check_path(str(tmp_path / "other.db"))


async def test_opening_a_file_that_is_not_a_database_creates_nothing_beside_it(
    tmp_path: Path,
) -> None:
    source = tmp_path / "clinic.py"
    source.write_text("x = 1\n")
    with pytest.raises(StoreError, match=f"{source} is not a SQLite database"):
        await SqliteStore(source, worker=True).open()
    assert names(tmp_path) == ["clinic.py"]
