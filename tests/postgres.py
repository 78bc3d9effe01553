"""A PostgreSQL database of its own for each test run, and an empty schema for each test.

The server is BOTKIT_TEST_POSTGRES (default: the local one at 127.0.0.1:5432, which
scripts/services.sh starts where it is installed). Without a server the PostgreSQL tests are
skipped with the reason; in CI (CI=true) they fail instead, so that CI never passes without
having run them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

SERVER = os.environ.get("BOTKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def with_database(url: str, name: str) -> str:
    """`url` naming the database `name` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(sql: str) -> None:
    db = await asyncpg.connect(SERVER, timeout=5)
    try:
        await db.execute(sql)
    finally:
        await db.close()


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL tests need a server at {SERVER} (BOTKIT_TEST_POSTGRES): {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A new database for this test run (dropped at its end): its URL."""
    name = f"botkit_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f"CREATE DATABASE {name}"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unreachable(str(exc) or type(exc).__name__)
    try:
        yield with_database(SERVER, name)
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def empty(url: str) -> None:
    """Drops everything in the database's public schema (a test starts from nothing)."""
    db = await asyncpg.connect(url, timeout=5)
    try:
        await db.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await db.close()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The test run's database, emptied for this test."""
    asyncio.run(empty(postgres_database))
    return postgres_database
