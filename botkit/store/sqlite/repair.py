"""The SQLite store's repairs (see botkit/store/repair.py), each one transaction in the
connection's thread.

Any process may run them, the web process or `botkit events ...` beside a running worker: a
transaction holds the write lock of the file it changes (both, for those that change both),
so a worker's claim or completion runs wholly before or after it. Reads of a lane's claim
happen under that lock: a live claim refuses `reset` and `forget` (LaneBusyError), a lapsed
one is taken away, so that its worker's late completion writes nothing.

An event's status is not stored for a done event: it is done when its lane's `done_seq`
passed it (schema.py); events past the inbox cursor are not in their lanes yet (`sync`),
and pending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from botkit import codec
from botkit.exceptions import LaneBusyError, RepairError
from botkit.store.base import FAILED
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
from botkit.store.sqlite.connection import BOTH, MAIN
from botkit.store.sqlite.inbox import session_of
from botkit.store.sqlite.outbox import REFRESH_SEND_DUE
from botkit.store.sqlite.sql import many
from botkit.wire.window import Window

if TYPE_CHECKING:
    from botkit.store.sqlite import SqliteStore

_CURSOR = "(SELECT CAST(value AS INTEGER) FROM main.botkit_meta WHERE key = 'inbox_cursor')"
_STATUS = (
    "CASE WHEN r.status IS NOT NULL THEN r.status WHEN l.done_seq >= i.seq THEN 'done'"
    " ELSE 'pending' END"
)
# attempts: a finished event's, or a pending lane head's so far (0 behind it, None when done)
_EVENT = (
    f"SELECT i.seq, i.event_id, i.kind, i.phone_number_id, i.wa_id, {_STATUS}, r.error,"
    " CASE WHEN r.status IS NOT NULL THEN r.attempts WHEN l.done_seq >= i.seq THEN NULL"
    " WHEN l.next_event = i.seq THEN l.attempts ELSE 0 END, i.received_at, r.processed_at,"
    " i.envelope FROM incoming.inbox i LEFT JOIN main.event_results r ON r.seq = i.seq"
    " LEFT JOIN main.lanes l ON l.phone_number_id = i.phone_number_id AND l.wa_id = i.wa_id"
)
# the user's events: those in their lanes, and those not yet brought into a lane
_USER_SEQS = (
    "i.seq IN (SELECT e.seq FROM main.lanes u JOIN main.lane_events e"
    " ON e.phone_number_id = u.phone_number_id AND e.wa_id = u.wa_id WHERE u.wa_id = :w"
    f" UNION ALL SELECT x.seq FROM incoming.inbox x WHERE x.seq > {_CURSOR} AND x.wa_id = :w)"
)
_STORED_STATUS = "i.seq IN (SELECT seq FROM main.event_results WHERE status = :s)"
_SEND = (
    "SELECT o.seq, o.phone_number_id, o.wa_id, o.idempotency_key, o.type, o.payload, o.status,"
    " o.attempts, o.provider_message_id, o.error, s.status, o.created_at, o.sent_at, o.cause,"
    " o.instead_of FROM main.outbox o"
    " LEFT JOIN main.message_status s ON s.message_id = o.provider_message_id"
)


def events(
    status: str | None, wa_id: str | None, limit: int, db: sqlite3.Connection
) -> list[EventRecord]:
    """Inbox events, newest first, of `status` and `wa_id` when given."""
    where = []
    if wa_id is not None:
        where.append(_USER_SEQS)
    if status is not None:
        stored = status not in ("pending", "done")
        where.append(_STORED_STATUS if stored else f"{_STATUS} = :s")
    sql = _EVENT + (f" WHERE {' AND '.join(where)}" if where else "")
    rows = db.execute(
        f"{sql} ORDER BY i.seq DESC LIMIT :n", {"w": wa_id, "s": status, "n": limit}
    ).fetchall()
    return [_event(row) for row in rows]


def event(event_id: str, db: sqlite3.Connection) -> EventRecord | None:
    """One inbox event."""
    row = db.execute(f"{_EVENT} WHERE i.event_id = ?", (event_id,)).fetchone()
    return None if row is None else _event(row)


def _event(row: Sequence[Any]) -> EventRecord:
    seq, event_id, kind, pnid, wa_id, status, error, attempts, received_at, processed_at = row[:10]
    return EventRecord(
        seq, event_id, kind, pnid, wa_id, status, error, attempts, received_at, processed_at,
        codec.loads(row[10]),
    )  # fmt: skip


def retry_event(event_id: str, now: float, db: sqlite3.Connection) -> EventRecord:
    """Queues a copy of a failed event at the end of its lane (both files: run under BOTH)."""
    original = event(event_id, db)
    if original is None:
        raise RepairError(f"no event {event_id!r} in the inbox", status=404)
    if original.status != FAILED:
        raise RepairError(
            f"event {event_id!r} is {original.status}: only a failed event can be retried"
        )
    copy_id = retry_event_id(event_id)
    db.execute(
        "INSERT OR IGNORE INTO incoming.inbox (event_id, message_id, kind, phone_number_id,"
        " wa_id, envelope, received_at) SELECT ?, NULL, kind, phone_number_id, wa_id, envelope,"
        " ? FROM incoming.inbox WHERE seq = ?",
        (copy_id, now, original.seq),
    )
    db.execute("UPDATE main.event_results SET status = ? WHERE seq = ?", (RETRIED, original.seq))
    copy = event(copy_id, db)
    assert copy is not None  # inserted just above, or by a retry a crash left unmarked
    return copy


_SEND_STATUSES = ("pending", "held", "sent", "failed")


def sends(
    status: str | None, wa_id: str | None, limit: int, db: sqlite3.Connection
) -> list[SendRecord]:
    """Outbox rows, newest first, of `status` and `wa_id` when given."""
    where = ["1"]
    if wa_id is not None:
        where.append("o.wa_id = :w")
    if status in _SEND_STATUSES:  # a literal: the partial index outbox_failed serves it
        where.append(f"o.status = '{status}'")
    elif status is not None:
        where.append("o.status = :s")
    rows = db.execute(
        f"{_SEND} WHERE {' AND '.join(where)} ORDER BY o.seq DESC LIMIT :n",
        {"w": wa_id, "s": status, "n": limit},
    ).fetchall()
    return [_send(row) for row in rows]


def send(seq: int, db: sqlite3.Connection) -> SendRecord | None:
    """One outbox row."""
    row = db.execute(f"{_SEND} WHERE o.seq = ?", (seq,)).fetchone()
    return None if row is None else _send(row)


def _send(row: Sequence[Any]) -> SendRecord:
    seq, pnid, wa_id, key, kind, payload, status, attempts, provider_id, error = row[:10]
    delivery, created_at, finished_at, cause, instead_of = row[10:]
    return SendRecord(
        seq, pnid, wa_id, key, kind, codec.loads(payload), status, attempts, provider_id, error,
        delivery, created_at, finished_at, cause, instead_of,
    )  # fmt: skip


def retry_send(seq: int, now: float, db: sqlite3.Connection) -> SendRecord:
    """Puts a failed send back to pending, due now, under a new key (run under MAIN)."""
    found = send(seq, db)
    if found is None:
        raise RepairError(f"no send {seq} in the outbox", status=404)
    if found.status != FAILED:
        raise RepairError(f"send {seq} is {found.status}: only a failed send can be retried")
    db.execute(
        "UPDATE main.outbox SET idempotency_key = ?, status = 'pending', attempts = 0,"
        " error = NULL, provider_message_id = NULL, media_id = NULL, sent_at = NULL,"
        " next_attempt_at = ? WHERE seq = ?",
        (retry_key(found.idempotency_key), now, seq),
    )
    many(REFRESH_SEND_DUE, [(found.phone_number_id, found.wa_id)], db)
    retried = send(seq, db)
    assert retried is not None
    return retried


_LANES = (
    "SELECT l.phone_number_id, s.conversation, s.state, s.data, s.version, l.last_inbound_at,"
    " l.inbound_seq, l.closed_seq, CASE WHEN l.next_event IS NULL THEN 0 ELSE l.pending END,"
    " (SELECT count(*) FROM main.outbox o WHERE o.wa_id = l.wa_id"
    " AND o.phone_number_id = l.phone_number_id AND o.status IN ('pending', 'held')),"
    " l.event_token IS NOT NULL AND l.event_until > :now,"
    " l.send_token IS NOT NULL AND l.send_until > :now"
    " FROM main.lanes l LEFT JOIN main.sessions s ON s.phone_number_id = l.phone_number_id"
    " AND s.wa_id = l.wa_id WHERE l.wa_id = :w ORDER BY l.phone_number_id"
)


def lanes(wa_id: str, now: float, db: sqlite3.Connection) -> list[UserLane]:
    """The user's lanes, by number, with the events not yet in a lane counted pending."""
    unsynced = dict(
        db.execute(
            "SELECT phone_number_id, count(*) FROM incoming.inbox"
            f" WHERE seq > {_CURSOR} AND wa_id = ? GROUP BY phone_number_id",
            (wa_id,),
        ).fetchall()
    )
    found = []
    for pnid, *session, last_in, in_seq, closed, pending, sends_, turn, sending in db.execute(
        _LANES, {"w": wa_id, "now": now}
    ):
        stored = None if session[0] is None else session_of((pnid, wa_id, *session))
        window = Window(last_in, in_seq, closed)
        pending += unsynced.pop(pnid, 0)
        found.append(UserLane(pnid, wa_id, stored, window, pending, sends_, bool(turn or sending)))
    for pnid, count in unsynced.items():  # a user not yet in any lane
        found.append(UserLane(pnid, wa_id, None, Window(), count, 0, False))
    return sorted(found, key=lambda lane: lane.phone_number_id)


def _take_over(wa_id: str, column: str, what: str, now: float, db: sqlite3.Connection) -> None:
    """LaneBusyError if a live claim (`column`: event or send) holds one of the user's lanes;
    lapsed claims are taken away (their workers' late writes then change nothing)."""
    (live,) = db.execute(
        f"SELECT count(*) FROM main.lanes WHERE wa_id = ? AND {column}_token IS NOT NULL"
        f" AND {column}_until > ?",
        (wa_id, now),
    ).fetchone()
    if live:
        raise LaneBusyError(busy_message(wa_id, what))
    db.execute(
        f"UPDATE main.lanes SET {column}_token = NULL, {column}_until = NULL"
        f" WHERE wa_id = ? AND {column}_token IS NOT NULL",
        (wa_id,),
    )


_USER_SESSIONS = (
    "main.sessions WHERE wa_id = :w AND phone_number_id IN"
    " (SELECT phone_number_id FROM main.lanes WHERE wa_id = :w)"
)


def reset(wa_id: str, now: float, db: sqlite3.Connection) -> int:
    """Deletes the user's sessions (run under MAIN); how many."""
    _take_over(wa_id, "event", TURN, now, db)
    db.execute("DELETE FROM main.timers WHERE wa_id = ?", (wa_id,))
    return db.execute(f"DELETE FROM {_USER_SESSIONS}", {"w": wa_id}).rowcount


def forget(wa_id: str, now: float, db: sqlite3.Connection) -> Forgotten:
    """Deletes everything stored about the user (run under BOTH: no event of theirs can be
    added meanwhile)."""
    pending = sum(lane.pending_events for lane in lanes(wa_id, now, db))
    if pending:
        raise RepairError(pending_refusal(wa_id, pending))
    _take_over(wa_id, "send", SENDING, now, db)
    user = {"w": wa_id}
    seqs = (
        "SELECT e.seq FROM main.lanes u JOIN main.lane_events e"
        " ON e.phone_number_id = u.phone_number_id AND e.wa_id = u.wa_id WHERE u.wa_id = :w"
    )
    results = db.execute(f"DELETE FROM main.event_results WHERE seq IN ({seqs})", user).rowcount
    events = db.execute(f"DELETE FROM incoming.inbox WHERE seq IN ({seqs})", user).rowcount
    db.execute(
        "DELETE FROM main.lane_events WHERE (phone_number_id, wa_id) IN"
        " (SELECT phone_number_id, wa_id FROM main.lanes WHERE wa_id = :w)",
        user,
    )
    statuses = db.execute(
        "DELETE FROM main.message_status WHERE message_id IN (SELECT provider_message_id"
        " FROM main.outbox WHERE wa_id = :w AND provider_message_id IS NOT NULL)",
        user,
    ).rowcount
    sends_ = db.execute("DELETE FROM main.outbox WHERE wa_id = :w", user).rowcount
    sessions = db.execute(f"DELETE FROM {_USER_SESSIONS}", user).rowcount
    db.execute("DELETE FROM main.timers WHERE wa_id = :w", user)
    lanes_ = db.execute("DELETE FROM main.lanes WHERE wa_id = :w", user).rowcount
    return Forgotten(sessions, events, results, sends_, statuses, lanes_)


class SqliteRepair:
    """Repairs of a SqliteStore."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def _now(self) -> float:
        return self.store.clock.now()

    async def events(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Inbox events, newest first."""
        found: list[EventRecord] = await self.store.run(partial(events, status, wa_id, limit))
        return found

    async def event(self, event_id: str) -> EventRecord | None:
        """One inbox event."""
        found: EventRecord | None = await self.store.run(partial(event, event_id))
        return found

    async def retry_event(self, event_id: str) -> EventRecord:
        """Queues a copy of a failed event at the end of its user's lane."""
        copy: EventRecord = await self.store.run(
            partial(retry_event, event_id, self._now()), lock=BOTH
        )
        self.store.inbox.notify()
        return copy

    async def sends(
        self, *, status: str | None = None, wa_id: str | None = None, limit: int = 50
    ) -> list[SendRecord]:
        """Outbox rows, newest first."""
        found: list[SendRecord] = await self.store.run(partial(sends, status, wa_id, limit))
        return found

    async def send(self, seq: int) -> SendRecord | None:
        """One outbox row."""
        found: SendRecord | None = await self.store.run(partial(send, seq))
        return found

    async def retry_send(self, seq: int) -> SendRecord:
        """Puts a failed send back to pending under a new key."""
        retried: SendRecord = await self.store.run(partial(retry_send, seq, self._now()), lock=MAIN)
        self.store.outbox.notify()
        return retried

    async def lanes(self, wa_id: str) -> list[UserLane]:
        """The user's lanes, by number."""
        found: list[UserLane] = await self.store.run(partial(lanes, wa_id, self._now()))
        return found

    async def reset(self, wa_id: str) -> int:
        """Deletes the user's sessions; how many."""
        count: int = await self.store.run(partial(reset, wa_id, self._now()), lock=MAIN)
        return count

    async def forget(self, wa_id: str) -> Forgotten:
        """Deletes everything stored about the user."""
        gone: Forgotten = await self.store.run(partial(forget, wa_id, self._now()), lock=BOTH)
        return gone
