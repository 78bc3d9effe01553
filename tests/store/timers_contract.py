"""The Timers contract: what every backend does with users' timers (tests/store/test_timers.py
runs it on the memory store, SQLite and PostgreSQL). Timers are written with a lane's
completion and fired into the inbox when due, once."""

from __future__ import annotations

import asyncio

import pytest

from botkit.store.base import Store
from botkit.store.timers import TimerWrite
from botkit.types import ManualClock
from botkit.wire.timer import TIMER_KIND, TimerEvent

from .contract import ANA, BEN, LEASE, PN, StoreFactory, done, event, ids


def timer(name: str, due_at: float | None, n: int = 0) -> TimerWrite:
    payload = {} if due_at is None else {"data": {"n": n}, "guard": {}}
    return TimerWrite(name, due_at, payload, f"{name}-{n}")  # type: ignore[arg-type]


async def set_timers(store: Store, wa_id: str, *writes: TimerWrite, token: str = "H") -> bool:
    """Completes an event of `wa_id`'s lane whose turn wrote `writes`."""
    await store.inbox.add([event(f"carrier-{wa_id}-{writes[0].timer_id}", wa_id=wa_id)])
    claimed = {lane.wa_id: lane for lane in await store.inbox.claim(token, 100, LEASE)}
    [written] = await store.inbox.complete([done(claimed[wa_id], timers=writes)])
    await store.inbox.release(token)
    return written


@pytest.mark.anyio
class TimersContract:
    """Every Store backend's timers."""

    async def test_a_turn_sets_timers_that_inspection_lists_soonest_first(
        self, store: Store, clock: ManualClock
    ) -> None:
        now = clock.now()
        assert await store.timers.next_due() is None
        await set_timers(store, ANA, timer("later", now + 300), timer("sooner", now + 60))
        await set_timers(store, BEN, timer("sooner", now + 120))
        found = [(t.wa_id, t.name, t.due_at) for t in await store.inspect.timers()]
        assert found == [(ANA, "sooner", now + 60), (BEN, "sooner", now + 120),
                         (ANA, "later", now + 300)]  # fmt: skip
        assert [t.name for t in await store.inspect.timers(BEN)] == ["sooner"]
        assert await store.timers.next_due() == 60
        [first] = await store.inspect.timers(BEN)
        assert first.payload == {"data": {"n": 0}, "guard": {}}

    async def test_setting_a_name_again_replaces_it_and_cancelling_deletes_it(
        self, store: Store, clock: ManualClock
    ) -> None:
        now = clock.now()
        await set_timers(store, ANA, timer("r", now + 60), timer("x", now + 60))
        await set_timers(store, ANA, timer("r", now + 600, n=1), timer("x", None))
        [only] = await store.inspect.timers(ANA)
        assert (only.name, only.due_at, only.timer_id) == ("r", now + 600, "r-1")

    async def test_a_completion_whose_claim_was_lost_sets_no_timer(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("e1")])
        [lane] = await store.inbox.claim("A", 10, LEASE)
        clock.advance(LEASE + 1)
        [again] = await store.inbox.claim("B", 10, LEASE)
        late = done(lane, timers=(timer("r", clock.now() + 5),))
        assert await store.inbox.complete([late]) == [False]
        assert await store.inspect.timers() == []
        assert await store.inbox.complete([done(again)]) == [True]

    async def test_fire_moves_due_timers_into_the_inbox_once_in_order(
        self, store: Store, clock: ManualClock
    ) -> None:
        now = clock.now()
        await set_timers(store, ANA, timer("a", now + 60), timer("b", now + 30))
        assert await store.timers.fire() == 0  # nothing due yet
        clock.advance(60)
        assert await store.timers.fire() == 2
        assert await store.inspect.timers() == []
        assert await store.timers.fire() == 0
        [lane] = await store.inbox.claim("W", 10, LEASE)
        assert [item.kind for item in lane.events] == [TIMER_KIND, TIMER_KIND]
        fired = [TimerEvent.from_envelope(item.envelope) for item in lane.events]
        assert [(e.input.name, e.input.due_at) for e in fired] == [("b", now + 30), ("a", now + 60)]
        assert fired[0].input.data == {"n": 0}
        assert (fired[0].phone_number_id, fired[0].wa_id) == (PN, ANA)

    async def test_a_timer_does_not_hold_back_its_users_messages(
        self, store: Store, clock: ManualClock
    ) -> None:
        await set_timers(store, ANA, timer("far", clock.now() + 86400 * 30))
        await store.inbox.add([event("msg")])
        [lane] = await store.inbox.claim("W", 10, LEASE)
        assert ids([lane]) == [["msg"]]

    async def test_firing_the_same_row_twice_stores_one_event(
        self, store: Store, make_store: StoreFactory, clock: ManualClock
    ) -> None:
        now = clock.now()
        await set_timers(store, ANA, *(timer(f"t{n}", now + n) for n in range(20)))
        clock.advance(30)
        other = make_store()
        await other.open()
        try:
            fired = await asyncio.gather(store.timers.fire(7), other.timers.fire(7),
                                         store.timers.fire(7), other.timers.fire(7))  # fmt: skip
            while await store.timers.fire(7):
                pass
        finally:
            if other is not store:
                await other.aclose()
        assert sum(fired) <= 20  # each counts only the events it stored
        assert await store.inspect.timers() == []
        [lane] = await store.inbox.claim("W", 10, LEASE)
        names = []
        while True:
            names += [TimerEvent.from_envelope(i.envelope).input.name for i in lane.events]
            await store.inbox.complete([done(lane)])
            claimed = await store.inbox.claim("W", 10, LEASE)
            if not claimed:
                break
            [lane] = claimed
        assert sorted(names) == sorted(f"t{n}" for n in range(20))

    async def test_a_repairs_reset_and_forget_delete_the_users_timers(
        self, store: Store, clock: ManualClock
    ) -> None:
        now = clock.now()
        await set_timers(store, ANA, timer("r", now + 60))
        await set_timers(store, BEN, timer("r", now + 60))
        assert await store.repair.reset(ANA) == 0  # no session was stored, timers go anyway
        assert [t.wa_id for t in await store.inspect.timers()] == [BEN]
        await store.repair.forget(BEN)
        assert await store.inspect.timers() == []

    async def test_a_timer_that_cannot_be_stored_fails_its_own_lane_only(
        self, store: Store, clock: ManualClock
    ) -> None:
        await store.inbox.add([event("a", wa_id=ANA), event("b", wa_id=BEN)])
        lanes = {lane.wa_id: lane for lane in await store.inbox.claim("W", 10, LEASE)}
        bad = TimerWrite("r", clock.now() + 60, {"data": {"x": {1, 2}}, "guard": {}}, "bad")  # type: ignore[dict-item]
        good = timer("r", clock.now() + 60)
        written = await store.inbox.complete(
            [done(lanes[ANA], timers=(bad,)), done(lanes[BEN], timers=(good,))]
        )
        assert written == [True, True]
        status, error = await store.inspect.event_status("a") or ("missing", None)
        assert status == "failed" and "could not be stored" in (error or "")
        assert await store.inspect.event_status("b") == ("done", None)
        assert [t.wa_id for t in await store.inspect.timers()] == [BEN]
