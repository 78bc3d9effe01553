"""The memory store's repairs (see repair.py): plain Python over MemoryStore's dicts.

Each operation runs without awaiting in between, so nothing of a worker's interleaves with
it: a claim, a completion and a repair each happen wholly before or after one another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botkit import codec
from botkit.exceptions import LaneBusyError, RepairError
from botkit.store.base import DONE, FAILED, HELD, PENDING, LaneKey, NewEvent
from botkit.store.repair import (
    RETRIED,
    SENDING,
    TURN,
    EventRecord,
    Forgotten,
    SendRecord,
    UserLane,
    busy_message,
    pending_refusal,
    retry_event_id,
    retry_key,
)

if TYPE_CHECKING:
    from botkit.store.memory import MemoryStore, _Event, _Hold, _Send


class MemoryRepair:
    """Repairs of a MemoryStore."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def _now(self) -> float:
        return self.store.clock.now()

    # -- events ---------------------------------------------------------------------------

    async def events(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Inbox events, newest first, optionally of one status and one user."""
        self.store._check_open()
        found: list[EventRecord] = []
        for stored in reversed(self.store._events.values()):
            if len(found) >= limit:
                break
            if wa_id is not None and stored.item.wa_id != wa_id:
                continue
            record = self._record(stored)
            if status is None or record.status == status:
                found.append(record)
        return found

    async def event(self, event_id: str) -> EventRecord | None:
        """One inbox event."""
        self.store._check_open()
        seq = self.store._event_ids.get(event_id)
        return None if seq is None else self._record(self.store._events[seq])

    def _record(self, stored: _Event) -> EventRecord:
        item = stored.item
        lane = self.store._lanes[(item.phone_number_id, item.wa_id)]
        status, error = self.store._results.get(item.seq, (PENDING, None))
        if item.seq not in self.store._results and item.lane_seq <= lane.done_seq:
            status = DONE
        attempts: int | None = None
        processed_at = None
        if item.seq in self.store._processed:
            attempts, processed_at = self.store._processed[item.seq]
        elif status == PENDING:
            attempts = lane.attempts if item.lane_seq == lane.done_seq + 1 else 0
        return EventRecord(
            item.seq, item.event_id, item.kind, item.phone_number_id, item.wa_id, status, error,
            attempts, stored.received_at, processed_at, _copy(item.envelope),
        )  # fmt: skip

    async def retry_event(self, event_id: str) -> EventRecord:
        """Queues a copy of a failed event at the end of its user's lane."""
        original = await self.event(event_id)
        if original is None:
            raise RepairError(f"no event {event_id!r} in the inbox", status=404)
        if original.status != FAILED:
            raise RepairError(
                f"event {event_id!r} is {original.status}: only a failed event can be retried"
            )
        copy_id = retry_event_id(event_id)
        if copy_id not in self.store._event_ids:
            copy = NewEvent(
                copy_id, None, original.kind, original.phone_number_id, original.wa_id,
                original.envelope,
            )  # fmt: skip
            self.store.inbox._store(copy, _copy(original.envelope))
        self.store._results[original.seq] = (RETRIED, original.error)
        self.store.inbox.notify()
        retried = await self.event(copy_id)
        assert retried is not None  # stored just above
        return retried

    # -- sends ----------------------------------------------------------------------------

    async def sends(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[SendRecord]:
        """Outbox rows, newest first, optionally of one status and one user."""
        self.store._check_open()
        found: list[SendRecord] = []
        for row in reversed(self.store._sends.values()):
            if len(found) >= limit:
                break
            if (wa_id is None or row.key[1] == wa_id) and (status is None or row.status == status):
                found.append(self._send_record(row))
        return found

    async def send(self, seq: int) -> SendRecord | None:
        """One outbox row."""
        self.store._check_open()
        row = self.store._sends.get(seq)
        return None if row is None else self._send_record(row)

    def _send_record(self, row: _Send) -> SendRecord:
        delivery = self.store._statuses.get(row.provider_message_id or "")
        return SendRecord(
            row.seq, *row.key, row.idempotency_key, row.type, _copy(row.payload), row.status,
            row.attempts, row.provider_message_id, row.error,
            None if delivery is None else delivery.status, row.created_at, row.finished_at,
            row.cause, row.instead_of,
        )  # fmt: skip

    async def retry_send(self, seq: int) -> SendRecord:
        """Puts a failed send back to pending, due now, under a new key."""
        self.store._check_open()
        row = self.store._sends.get(seq)
        if row is None:
            raise RepairError(f"no send {seq} in the outbox", status=404)
        if row.status != FAILED:
            raise RepairError(f"send {seq} is {row.status}: only a failed send can be retried")
        row.idempotency_key = retry_key(row.idempotency_key)
        row.status, row.attempts, row.error, row.next_attempt_at = PENDING, 0, None, self._now()
        row.provider_message_id = row.media_id = row.finished_at = None
        self.store._wake_outbox(row.key)
        return self._send_record(row)

    # -- users ----------------------------------------------------------------------------

    def _keys(self, wa_id: str) -> list[LaneKey]:
        keys = {key for key in self.store._lanes if key[1] == wa_id}
        keys |= {key for key in self.store._sessions if key[1] == wa_id}
        return sorted(keys)

    async def lanes(self, wa_id: str) -> list[UserLane]:
        """The user's lanes, by number."""
        self.store._check_open()
        found = []
        for key in self._keys(wa_id):
            lane = self.store._lane(key)
            sends = sum(
                row.key == key and row.status in (PENDING, HELD)
                for row in self.store._sends.values()
            )
            busy = self._live(lane.events) or self._live(lane.sends)
            session = self.store._sessions.get(key)
            pending = lane.last_seq - lane.done_seq
            found.append(UserLane(*key, session, lane.window, pending, sends, busy))
        return found

    def _live(self, hold: _Hold) -> bool:
        return hold.token is not None and hold.until is not None and hold.until > self._now()

    def _take_over(self, hold: _Hold, wa_id: str, what: str) -> None:
        """LaneBusyError if a live claim holds `hold`; a lapsed one is taken away."""
        if self._live(hold):
            raise LaneBusyError(busy_message(wa_id, what))
        hold.free()

    async def reset(self, wa_id: str) -> int:
        """Deletes the user's sessions; how many."""
        self.store._check_open()
        keys = self._keys(wa_id)
        for key in keys:
            self._take_over(self.store._lane(key).events, wa_id, TURN)
        self.store.timers.drop(keys)
        return sum(self.store._sessions.pop(key, None) is not None for key in keys)

    async def forget(self, wa_id: str) -> Forgotten:
        """Deletes everything stored about the user."""
        self.store._check_open()
        store = self.store
        keys = self._keys(wa_id)
        pending = sum(store._lane(key).last_seq - store._lane(key).done_seq for key in keys)
        if pending:
            raise RepairError(pending_refusal(wa_id, pending))
        for key in keys:
            self._take_over(store._lane(key).sends, wa_id, SENDING)
        events = [
            s for s in store._events.values() if (s.item.phone_number_id, s.item.wa_id) in keys
        ]
        results = 0
        for stored in events:
            item = stored.item
            del store._events[item.seq]
            del store._event_ids[item.event_id]
            store._message_ids.discard(stored.message_id or "")
            store._by_lane.pop((item.phone_number_id, item.wa_id, item.lane_seq), None)
            results += store._results.pop(item.seq, None) not in (None, (DONE, None))
            store._processed.pop(item.seq, None)
        sends = [row for row in store._sends.values() if row.key in keys]
        statuses = 0
        for row in sends:
            del store._sends[row.seq]
            store._send_keys.pop(row.queued_key, None)
            statuses += store._statuses.pop(row.provider_message_id or "", None) is not None
        sessions = sum(store._sessions.pop(key, None) is not None for key in keys)
        store.timers.drop(keys)
        lanes = sum(store._lanes.pop(key, None) is not None for key in keys)
        return Forgotten(sessions, len(events), results, len(sends), statuses, lanes)


def _copy(value: Any) -> Any:
    return None if value is None else codec.loads(codec.dumps(value))
