"""`botkit conversations show` lists the user's pending timers (after the window)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from botkit.store import open_store
from botkit.store.base import DONE, EventResult, LaneOutcome
from botkit.store.timers import TimerWrite
from botkit.tools.cli import main

from .test_repair import JUAN, PN, TARGET, message

DUE = 4_102_444_800.0  # 2100-01-01T00:00:00Z


async def fill(path: str) -> None:
    store = open_store(path, worker=True)
    await store.open()
    try:
        await store.inbox.add([message("evt_hola", JUAN, "hola")])
        [lane] = await store.inbox.claim("W", 10, 60.0)
        [hola] = lane.events
        reminder = TimerWrite("reminder", DUE, {"data": {"n": 1}, "guard": {}}, "t1")
        outcome = LaneOutcome(
            PN, JUAN, "W", (EventResult(hola.seq, hola.lane_seq, DONE),), timers=(reminder,)
        )
        assert await store.inbox.complete([outcome]) == [True]
    finally:
        await store.aclose()


def test_conversations_show_lists_the_pending_timers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("GOSENDAPI_", "BOTKIT_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() prepends "."
    path = str(tmp_path / "bot.db")
    asyncio.run(fill(path))
    code = main(["conversations", "show", TARGET, JUAN, "--database", path])
    out = capsys.readouterr().out
    assert code == 0
    assert f"  timer reminder due 2100-01-01T00:00:00Z (number {PN})" in out.splitlines()
