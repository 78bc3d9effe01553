"""Fuzzing POST /webhook: every field of every webhook fixture, mutated, correctly signed.

A seeded generator (the same bodies every run; a failure names the fixture, the path and
the mutation): for each field of each fixture (every key and list item, at any depth), the
field removed and replaced by values of every JSON type and by what attackers and broken
senders send (other scripts' digits, control characters, huge numbers and strings, deep
nesting). Each body gets ids of its own, so that none is taken for a redelivery.

What must hold, as the provider would see it: only 200, 400 or 413, never a 5xx; afterwards
no handler raised and no event failed; the backlog drains; and a user who writes for the
first time still gets the clinic's list.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_webhook import (
    PHONE_NUMBER_ID,
    SERVICE_ROWS,
    encode,
    received,
    row_ids,
    running,
)

pytestmark = pytest.mark.slow

SEED = 20261202
FIXTURES = [
    "text.json",
    "button_reply.json",
    "list_reply.json",
    "template_quick_reply.json",
    "image.json",
    "location.json",
    "status_delivered.json",
    "status_read.json",
    "status_failed.json",
    "meta_native.json",
]


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"k": value}
    return value


REMOVED = object()
# what a field becomes; REMOVED: the key is deleted (a list item: dropped)
MUTATIONS: list[tuple[str, Any]] = [
    ("removed", REMOVED),
    ("null", None),
    ("true", True),
    ("zero", 0),
    ("negative", -1),
    ("float", 1.5),
    ("huge-int", 10**30),
    ("empty-string", ""),
    ("blank", "   "),
    ("arabic-indic-digits", "\u0665\u0665\u0665\u0665\u0665\u0665\u0665\u0665"),
    ("superscripts", "²³"),
    ("nul-and-newline", "a\u0000b\nINFO forged line"),
    ("digits-5000", "9" * 5000),
    ("long-string", "z" * 100_000),
    ("rtl-and-emoji", "\u202e👍🏽ñ"),
    ("empty-list", []),
    ("list", [1, "a", None]),
    ("empty-object", {}),
    ("object", {"unexpected": {"nested": [1, 2]}}),
    ("nested-20", deep(20)),
    ("nested-80", deep(80)),
]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key and list index under `value`, parents first."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index)
            yield from paths(child, (*prefix, index))


def with_ids(value: Any, suffix: str) -> Any:
    """`value` with every string `id` made unique (else each body would be a redelivery)."""
    if isinstance(value, dict):
        return {
            key: (f"{child}.{suffix}" if key == "id" and isinstance(child, str) else
                  with_ids(child, suffix))
            for key, child in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [with_ids(child, suffix) for child in value]
    return value


def mutated(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    changed = copy.deepcopy(document)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    if new is REMOVED:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(new)
    return changed


def corpus(fixtures_dir: Path) -> list[tuple[str, bytes]]:
    """(what it is, the body) for every fixture x field x mutation, and a few whole-body
    mutations; shuffled with the seed, so that every kind meets every other."""
    bodies: list[tuple[str, bytes]] = []
    n = 0
    for name in FIXTURES:
        original = json.loads((fixtures_dir / name).read_text())
        for path in paths(original):
            for label, new in MUTATIONS:
                n += 1
                document = mutated(with_ids(original, f"f{n}"), path, new)
                where = ".".join(str(step) for step in path)
                bodies.append((f"{name} {where} -> {label}", encode(document)))
        for label, raw in [
            ("truncated", encode(with_ids(original, f"t{n}"))[:-7]),
            ("trailing-garbage", encode(with_ids(original, f"g{n}")) + b"}}"),
            ("latin-1", encode(with_ids(original, f"l{n}")).replace(b"Juan", b"Ju\xe1n")),
        ]:
            bodies.append((f"{name} whole body -> {label}", raw))
    random.Random(SEED).shuffle(bodies)
    return bodies


def failed_events(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        db.execute("ATTACH DATABASE ? AS incoming", (f"{database}-inbox",))
        return db.execute(
            "SELECT i.event_id, r.error FROM event_results r JOIN incoming.inbox i"
            " ON i.seq = r.seq WHERE r.status = 'failed'"
        ).fetchall()


@pytest.mark.anyio
async def test_mutated_fixtures_get_200_400_or_413_and_never_break_a_conversation(
    tmp_path: Path, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = corpus(fixtures_dir)
    assert len(bodies) > 3000
    caplog.set_level(logging.WARNING)
    unexpected: list[str] = []
    counted: dict[int, int] = {}
    async with running(tmp_path) as rig:
        for start in range(0, len(bodies), 32):  # 32 at once, as a busy provider would
            chunk = bodies[start : start + 32]
            responses = await asyncio.gather(*(rig.post(body) for _, body in chunk))
            for (what, _), response in zip(chunk, responses, strict=True):
                counted[response.status_code] = counted.get(response.status_code, 0) + 1
                if response.status_code not in (200, 400, 413):
                    unexpected.append(f"{what}: {response.status_code} {response.text[:200]}")
        assert unexpected == []
        assert counted.get(200, 0) > len(bodies) // 4  # most mutations are still the provider's
        assert counted.get(400, 0) > 0
        await rig.runtime.settle(within=120.0)  # the backlog drains
        backlog = await rig.runtime.store.inspect.backlog()
        assert (backlog.events, backlog.sends) == (0, 0)
        assert failed_events(tmp_path / "bot.db") == []
        errors = [
            record.getMessage()[:300]
            for record in caplog.records
            if record.levelno >= logging.ERROR and record.name.startswith("botkit")
        ]
        assert errors == []
        # a user who writes for the first time gets the clinic's first question
        ana = "5491140000001"
        rig.fake.open_window(PHONE_NUMBER_ID, ana, rig.runtime.clock.now())
        hola = received(
            "evt_after_fuzz", "wamid.after.fuzz", {"type": "text", "text": {"body": "hola"}}
        )
        hola["data"]["message"]["from"] = ana
        hola["data"]["contact"] = {"wa_id": ana}
        assert (await rig.post(encode(hola))).status_code == 200
        await rig.runtime.settle()
        assert [row_ids(sent) for sent in rig.fake.messages_to(ana)] == [SERVICE_ROWS]


def test_the_corpus_is_the_same_every_run(fixtures_dir: Path) -> None:
    first, second = corpus(fixtures_dir), corpus(fixtures_dir)
    assert [what for what, _ in first] == [what for what, _ in second]
    kinds = {what.rsplit(" -> ", 1)[1] for what, _ in first}
    assert {label for label, _ in MUTATIONS} <= kinds
