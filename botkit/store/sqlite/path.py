"""Checks on a SQLite store's path before anything is created beside it.

The store makes files beside its path (`<path>-inbox`, `<path>.workers.lock`): a path whose
folder is missing, that cannot be written, or that names a file which is not botkit's is
refused with one line naming it, and nothing is created.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from botkit.exceptions import StoreError

HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
MEMORY = ":memory:"


def check_path(path: str) -> None:
    """Raises a StoreError naming `path` when a store cannot (or must not) be made there."""
    if path == MEMORY:
        return
    file = Path(path)
    folder = file.parent
    if not folder.is_dir():
        raise StoreError(
            f"database {path}: the folder {folder} does not exist; create it "
            f"(mkdir -p {folder}) or set BOTKIT_DATABASE to a file in an existing folder"
        )
    if file.is_dir():
        raise StoreError(f"database {path} is a folder: name a file in it instead")
    if file.exists():
        _check_existing(file)


def _check_existing(file: Path) -> None:
    try:
        with file.open("rb") as opened:
            header = opened.read(len(HEADER))
    except OSError as exc:
        raise StoreError(f"database {file}: cannot be read ({exc.strerror})") from None
    if not header:
        return  # an empty file: SQLite makes a database of it
    if header != HEADER:
        raise StoreError(
            f"database {file} is not a SQLite database (an existing file of something "
            "else): set BOTKIT_DATABASE to a new file, such as botkit.db"
        )
    if not _is_botkit(file):
        raise StoreError(
            f"database {file} is a SQLite database of something else (it has no botkit "
            "tables): set BOTKIT_DATABASE to a new file, such as botkit.db"
        )


def _is_botkit(file: Path) -> bool:
    """True when the database has botkit's tables, or no tables at all."""
    try:
        db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StoreError(f"database {file}: cannot be read ({exc})") from None
    return not names or "botkit_meta" in names


def opening_failed(path: str, exc: sqlite3.Error) -> StoreError:
    """The one line for an error SQLite gave while the store opened `path`."""
    return StoreError(
        f"database {path}: cannot be opened ({exc}): check that this user may write in "
        f"{Path(path).parent}, or set BOTKIT_DATABASE to another file"
    )


def lock_failed(path: str, exc: OSError) -> StoreError:
    """The one line for a worker lock file that could not be made beside `path`."""
    return StoreError(
        f"database {path}: cannot make its lock file ({exc.strerror}): check that this user "
        f"may write in {Path(path).parent}, or set BOTKIT_DATABASE to another file"
    )
