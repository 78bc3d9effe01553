"""botkit.runtime.repair against running workers: a reset or a forget asked for while a turn of
the user's is in flight waits for it to commit, and then wins (the turn's commit never brings
the old session back); and the masking of numbers in lists.

The simulator runs the workers on the event loop over a real SQLite file, then a PostgreSQL
database; the handler of
"slow" takes a tenth of a second of real time, so the repair comes while its turn runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit import Bot, Context, Conversation, Simulator, State, Text, on
from botkit.exceptions import LaneBusyError, RepairError
from botkit.runtime.repair import Repairs, masked_user

JUAN = "5491140123456"


class Diary(Conversation):
    """Keeps every text since the session began."""

    writing = State(initial=True)

    @on.text()
    async def note(self, ctx: Context) -> None:
        if ctx.text == "slow":
            await asyncio.sleep(0.1)
        seen = ctx.data.get("seen", [])
        ctx.data["seen"] = [*seen, ctx.text] if isinstance(seen, list) else [ctx.text]
        await ctx.send(Text(f"noted {ctx.text}"))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, and a PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "diary.db")


@pytest.fixture
async def sim(database: str) -> AsyncIterator[Simulator]:
    async with Simulator(Bot(Diary), database=database) as simulator:
        yield simulator


async def in_flight(sim: Simulator, text: str) -> None:
    """Juan sends `text`; returns once a worker runs its turn (not waiting for it to end)."""
    await sim.fake.receive(
        wa_id=JUAN, message={"type": "text", "text": {"body": text}}, name="Juan"
    )
    for _ in range(200):
        lanes = await sim.runtime.store.repair.lanes(JUAN)
        if lanes and lanes[0].in_flight:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the turn never started")


pytestmark = pytest.mark.anyio


async def test_a_reset_during_a_turn_waits_for_it_and_its_commit_does_not_undo_the_reset(
    sim: Simulator,
) -> None:
    juan = sim.user(JUAN)
    await juan.says("first")
    await in_flight(sim, "slow")
    answer = await sim.runtime.repairs().reset(JUAN)
    assert answer["sessions_deleted"] == 1
    await sim.settle()
    await juan.refresh()
    assert juan.session is None  # the slow turn committed before the reset, not after
    await juan.says("again")
    assert juan.data == {"seen": ["again"]}


async def test_a_forget_during_a_turn_is_refused_naming_the_event_and_deletes_nothing(
    sim: Simulator,
) -> None:
    juan = sim.user(JUAN)
    await juan.says("first")
    await in_flight(sim, "slow")
    repairs = sim.runtime.repairs()
    with pytest.raises(RepairError, match="has 1 event not processed yet") as refused:
        await repairs.forget(JUAN)
    assert refused.value.status == 409
    await sim.settle()
    gone = await repairs.forget(JUAN)
    assert gone["deleted"]["events"] == 2 and gone["deleted"]["sends"] == 2


async def test_a_turn_that_outlasts_the_wait_is_busy(sim: Simulator) -> None:
    await sim.user(JUAN).says("first")
    await in_flight(sim, "slow")
    impatient = Repairs(sim.runtime.store, Diary.spec, sim.clock, busy_wait=0.0)
    with pytest.raises(LaneBusyError, match="a turn of theirs is running"):
        await impatient.reset(JUAN)
    await sim.settle()
    assert (await impatient.reset(JUAN))["sessions_deleted"] == 1


def test_lists_show_the_first_five_and_last_four_digits() -> None:
    assert masked_user("5491140123456") == "54911****3456"
    assert masked_user("14155550100") == "14155****0100"
    assert masked_user("12345678") == "****5678"
