"""The SQLite inbox's transactions, run in the connection's thread: add, claim, complete.

Adding writes only the inbox file (the web process); everything else writes only the main
file (the worker). See schema.py for the tables. One writer numbers the inbox in commit
order, so an event's `seq` is also its position in its lane (`lane_seq`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botkit import codec
from botkit.store.base import (
    DONE,
    HELD,
    LANE_ITEMS,
    PENDING,
    STATUS_RANK,
    InboxItem,
    InboxLane,
    LaneKey,
    LaneOutcome,
    NewEvent,
    Session,
    encoded,
)
from botkit.store.sqlite import timer_rows as timers_sql
from botkit.store.sqlite.outbox import REFRESH_SEND_DUE, refuse
from botkit.store.sqlite.sql import many, marks
from botkit.wire.prompt import PROMPT_KEY
from botkit.wire.window import Window

# -- add: the web process's group commit -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One add() call: its events with their envelopes encoded, and when they arrived."""

    events: Sequence[NewEvent]
    envelopes: Sequence[str]
    now: float


_INSERT_EVENT = (
    "INSERT INTO incoming.inbox (event_id, message_id, kind, phone_number_id, wa_id,"
    " envelope, received_at, traceparent) VALUES {values}"
)


def add(arrivals: Sequence[Arrival], db: sqlite3.Connection) -> list[Any]:
    """Stores the new events of every arrival; per arrival, its flags (True: new)."""
    events = [event for arrival in arrivals for event in arrival.events]
    seen_ids, seen_messages = _existing(db, events)
    rows: list[tuple[Any, ...]] = []
    results: list[Any] = []
    for arrival in arrivals:
        flags = []
        for event, envelope in zip(arrival.events, arrival.envelopes, strict=True):
            new = event.event_id not in seen_ids and (
                event.message_id is None or event.message_id not in seen_messages
            )
            flags.append(new)
            if not new:
                continue
            seen_ids.add(event.event_id)
            if event.message_id is not None:
                seen_messages.add(event.message_id)
            rows.append((event.event_id, event.message_id, event.kind, event.phone_number_id,
                         event.wa_id, envelope, arrival.now, event.trace))  # fmt: skip
        results.append(flags)
    if rows:
        many(_INSERT_EVENT, rows, db)
    return results


def _existing(db: sqlite3.Connection, events: Sequence[NewEvent]) -> tuple[set[str], set[str]]:
    ids = [event.event_id for event in events]
    messages = [event.message_id for event in events if event.message_id is not None]
    found = db.execute(
        f"SELECT event_id, message_id FROM incoming.inbox WHERE event_id IN ({marks(len(ids))})"
        f" OR message_id IN ({marks(len(messages))})",
        [*ids, *messages],
    ).fetchall()
    return {row[0] for row in found}, {row[1] for row in found if row[1] is not None}


# -- claim: the worker's ---------------------------------------------------------------------


_CURSOR = "(SELECT CAST(value AS INTEGER) FROM main.botkit_meta WHERE key = 'inbox_cursor')"


def sync(db: sqlite3.Connection) -> None:
    """Brings events stored since the cursor into their lanes: each new event into the lanes'
    index of events (`lane_events`), each lane counting it pending and, if it had none
    waiting, starting from it."""
    # NOT INDEXED: read the rows past the cursor by seq, never through another index
    arrived = f"SELECT {{what}} FROM incoming.inbox NOT INDEXED WHERE seq > {_CURSOR}"
    added = db.execute(
        "INSERT INTO main.lane_events (phone_number_id, wa_id, seq) "
        + arrived.format(what="phone_number_id, wa_id, seq")
        + " RETURNING seq"
    ).fetchall()
    if not added:
        return
    db.execute(
        "INSERT INTO main.lanes (phone_number_id, wa_id, next_event, pending) "
        + arrived.format(what="phone_number_id, wa_id, min(seq), count(*)")
        + " GROUP BY phone_number_id, wa_id ON CONFLICT (phone_number_id, wa_id) DO UPDATE"
        " SET next_event = coalesce(lanes.next_event, excluded.next_event),"
        " pending = lanes.pending + excluded.pending"
    )
    newest = max(row[0] for row in added)
    db.execute("UPDATE main.botkit_meta SET value = ? WHERE key = 'inbox_cursor'", (str(newest),))


# A lane claimed again while its last claim of several events never completed (attempts > 0:
# the worker died or its lease ran out) marks the events that claim could have held as
# suspects: they run one at a time, so that an event that kills the worker is the only one
# charged the attempts (and the events before it are not claimed with it again and again).
_THIS_LANE = "e.phone_number_id = lanes.phone_number_id AND e.wa_id = lanes.wa_id"
_CLAIM = (
    "UPDATE main.lanes SET event_token = ?, event_until = ?, attempts = attempts + 1,"
    " suspect_until = CASE WHEN attempts = 0 OR next_event <= coalesce(suspect_until, 0)"
    f" THEN suspect_until ELSE coalesce((SELECT e.seq FROM main.lane_events e WHERE {_THIS_LANE}"
    f" AND e.seq >= lanes.next_event ORDER BY e.seq LIMIT 1 OFFSET {LANE_ITEMS - 1}),"
    f" (SELECT max(e.seq) FROM main.lane_events e WHERE {_THIS_LANE})) END"
    " WHERE rowid IN (SELECT rowid FROM main.lanes WHERE next_event IS NOT NULL"
    " AND (event_until IS NULL OR event_until <= ?) ORDER BY next_event LIMIT ?)"
    " RETURNING phone_number_id, wa_id, next_event, attempts, last_inbound_at, inbound_seq,"
    " closed_seq, suspect_until"
)
# The claimed lanes' next events (a few, from `first`), each with its user's session and
# the provider's id of the session's latest prompt (by the outbox's unique idempotency key).
_EVENTS = (
    "WITH v (p, w, first) AS (VALUES {values}) SELECT i.seq, i.event_id, i.kind,"
    " i.phone_number_id, i.wa_id, i.envelope, i.traceparent, s.conversation, s.state, s.data, s.version,"
    " o.provider_message_id"
    " FROM v JOIN main.lane_events e ON e.phone_number_id = v.p AND e.wa_id = v.w"
    " AND e.seq IN (SELECT x.seq FROM main.lane_events x WHERE x.phone_number_id = v.p"
    f" AND x.wa_id = v.w AND x.seq >= v.first ORDER BY x.seq LIMIT {LANE_ITEMS})"
    " JOIN incoming.inbox i ON i.seq = e.seq"
    " LEFT JOIN main.sessions s ON s.phone_number_id = v.p AND s.wa_id = v.w"
    f" LEFT JOIN main.outbox o ON o.idempotency_key = json_extract(s.data, '$.\"{PROMPT_KEY}\"')"
    " ORDER BY i.seq"
)


def claim(
    token: str, limit: int, lease: float, now: float, db: sqlite3.Connection
) -> tuple[list[Any], list[Any]]:
    """Claims the lanes whose next event waits longest; their rows and their events' rows
    (decoded by `lanes_of`, in the caller's thread: this one runs SQL, not Python)."""
    sync(db)
    lanes = db.execute(_CLAIM, (token, now + lease, now, limit)).fetchall()
    if not lanes:
        return [], []
    return lanes, many(_EVENTS, [(row[0], row[1], row[2]) for row in lanes], db)


def lanes_of(token: str, lanes: list[Any], rows: list[Any]) -> list[InboxLane]:
    """The claimed lanes, oldest first, each with its events and its user's session."""
    # suspects run one at a time (see _CLAIM)
    alone = {(row[0], row[1]) for row in lanes if row[7] is not None and row[2] <= row[7]}
    events: dict[LaneKey, list[InboxItem]] = {}
    sessions: dict[LaneKey, Session] = {}
    prompts: dict[LaneKey, str] = {}
    for seq, event_id, kind, pnid, wa_id, envelope, trace, *session, prompt in rows:
        key = (pnid, wa_id)
        if key in alone and key in events:
            continue
        item = InboxItem(seq, seq, event_id, kind, pnid, wa_id, codec.loads(envelope), trace)
        events.setdefault(key, []).append(item)
        if session[0] is not None and key not in sessions:
            conversation, state, data, version = session
            sessions[key] = Session(pnid, wa_id, conversation, state, codec.loads(data), version)
        if prompt is not None:
            prompts[key] = prompt
    lanes.sort(key=lambda row: row[2])  # oldest first
    return [
        InboxLane(
            pnid, wa_id, token, tuple(events[(pnid, wa_id)]), sessions.get((pnid, wa_id)),
            Window(last_in, inbound_seq, closed_seq), attempts, prompts.get((pnid, wa_id)),
        )
        for pnid, wa_id, _, attempts, last_in, inbound_seq, closed_seq, _ in lanes
        if (pnid, wa_id) in events  # a lane always has its next event stored; never run empty
    ]  # fmt: skip


def session_of(row: Sequence[Any]) -> Session:
    """A session from its row (phone_number_id, wa_id, conversation, state, data, version)."""
    return Session(row[0], row[1], row[2], row[3], codec.loads(row[4]), row[5])


def renew(
    token: str, keys: Sequence[LaneKey], until: float, column: str, db: sqlite3.Connection
) -> list[LaneKey]:
    """Extends `token`'s claims (`column`: event or send) on `keys`; returns those extended."""
    if not keys:
        return []
    rows = many(
        f"WITH v (p, w) AS (VALUES {{values}}) UPDATE main.lanes SET {column}_until = ? FROM v"
        f" WHERE lanes.phone_number_id = v.p AND lanes.wa_id = v.w AND lanes.{column}_token = ?"
        " RETURNING lanes.phone_number_id, lanes.wa_id",
        list(keys),
        db,
        until,
        token,
    )
    return [(row[0], row[1]) for row in rows]


def release(
    token: str, keys: Sequence[LaneKey] | None, column: str, refund: bool, db: sqlite3.Connection
) -> None:
    """Frees `token`'s claims (all, or those on `keys`); `refund` uncounts an event attempt."""
    attempts = "max(attempts - 1, 0)" if refund and column == "event" else "attempts"
    update = (
        f"UPDATE main.lanes SET {column}_token = NULL, {column}_until = NULL, attempts = {attempts}"
    )
    if keys is None:
        db.execute(f"{update} WHERE {column}_token = ?", (token,))
        return
    many(
        f"WITH v (p, w) AS (VALUES {{values}}) {update} FROM v WHERE lanes.phone_number_id = v.p"
        f" AND lanes.wa_id = v.w AND lanes.{column}_token = ?",
        list(keys),
        db,
        token,
    )


def next_due(now: float, db: sqlite3.Connection) -> float | None:
    """Seconds until a lane with events can be claimed: 0 now, None when no event waits."""
    (unsynced,) = db.execute(
        f"SELECT EXISTS (SELECT 1 FROM incoming.inbox WHERE seq > {_CURSOR})"
    ).fetchone()
    if unsynced:
        return 0.0
    (free_at,) = db.execute(
        "SELECT min(coalesce(event_until, 0)) FROM main.lanes WHERE next_event IS NOT NULL"
    ).fetchone()
    return None if free_at is None else max(0.0, free_at - now)


# -- complete: the worker's group commit ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Completion:
    """A lane outcome as rows, encoded before the transaction (so a value that cannot be
    stored fails its own lane only)."""

    outcome: LaneOutcome
    session: tuple[Any, ...] | None
    sends: list[tuple[Any, ...]]
    statuses: list[tuple[Any, ...]]

    @classmethod
    def of(cls, outcome: LaneOutcome, now: float) -> Completion:
        """Encodes `outcome`; one that cannot be encoded is stored as its events' failure."""
        return encoded(outcome, lambda each: cls._encode(each, now))

    @classmethod
    def _encode(cls, outcome: LaneOutcome, now: float) -> Completion:
        session = outcome.session
        row = None
        if session is not None:
            row = (session.phone_number_id, session.wa_id, session.conversation, session.state,
                   codec.dumps_str(session.data), session.version, now)  # fmt: skip
        sends = [
            (send.phone_number_id, send.wa_id, send.idempotency_key, send.type,
             codec.dumps_str(send.payload), send.cause, HELD if send.held else PENDING,
             send.when_closed, None if send.fallback is None else codec.dumps_str(send.fallback),
             send.instead_of, now, now, send.trace)
            for send in outcome.sends
        ]  # fmt: skip
        statuses = [
            (s.message_id, s.status, STATUS_RANK.get(s.status, 0), s.timestamp, s.errors, now)
            for s in outcome.statuses
        ]
        timers_sql.encode(outcome.timers)
        return cls(outcome, row, sends, statuses)

    def lane_row(self) -> tuple[Any, ...]:
        """(p, w, token, done, how many, last_inbound_at, inbound_seq, closed_seq, due)."""
        outcome = self.outcome
        window = outcome.window or Window()
        done = max((result.lane_seq for result in outcome.results), default=0)
        due = any(row[6] == PENDING for row in self.sends)
        return (*outcome.key, outcome.token, done, len(outcome.results), window.last_inbound_at,
                window.inbound_seq, window.closed_seq, due)  # fmt: skip

    @property
    def moves_sends(self) -> bool:
        """Whether it changes sends already queued (held ones released, refused ones)."""
        return self.outcome.release_held or bool(self.outcome.refused)


# One write of the lane row: done_seq, the claim freed, the next event, the window merged (each
# field's maximum), and a lane with no pending send before now due at once.
_OWNED = (
    "WITH v (p, w, token, done, n, last_in, in_seq, closed, due) AS (VALUES {values})"
    " UPDATE main.lanes SET done_seq = max(done_seq, v.done), pending = pending - v.n,"
    " attempts = 0, event_token = NULL, event_until = NULL,"
    " next_event = (SELECT min(e.seq) FROM main.lane_events e WHERE e.phone_number_id = v.p"
    " AND e.wa_id = v.w AND e.seq > max(lanes.done_seq, v.done)),"
    " send_due = CASE WHEN v.due THEN coalesce(send_due, ?) ELSE send_due END,"
    " last_inbound_at = CASE WHEN v.last_in IS NULL THEN last_inbound_at"
    " WHEN last_inbound_at IS NULL THEN v.last_in ELSE max(last_inbound_at, v.last_in) END,"
    " inbound_seq = max(inbound_seq, v.in_seq),"
    " closed_seq = CASE WHEN v.closed IS NULL THEN closed_seq"
    " WHEN closed_seq IS NULL THEN v.closed ELSE max(closed_seq, v.closed) END"
    " FROM v WHERE lanes.phone_number_id = v.p AND lanes.wa_id = v.w"
    " AND lanes.event_token = v.token RETURNING lanes.phone_number_id, lanes.wa_id,"
    " lanes.next_event IS NOT NULL"
)
_EVENT_RESULT = (
    "INSERT OR REPLACE INTO main.event_results (seq, status, error, attempts, processed_at)"
    " VALUES {values}"
)
_UPSERT_SESSION = (
    "INSERT INTO main.sessions (phone_number_id, wa_id, conversation, state, data, version,"
    " updated_at) VALUES {values} ON CONFLICT (phone_number_id, wa_id) DO UPDATE"
    " SET conversation = excluded.conversation, state = excluded.state, data = excluded.data,"
    " version = excluded.version, updated_at = excluded.updated_at"
)
_INSERT_SEND = (
    "INSERT OR IGNORE INTO main.outbox (phone_number_id, wa_id, idempotency_key, type, payload,"
    " cause, status, when_closed, fallback, instead_of, next_attempt_at, created_at,"
    " traceparent)"
    " VALUES {values}"
)
_UPSERT_STATUS = (
    "INSERT INTO main.message_status (message_id, status, rank, timestamp, errors, updated_at)"
    " VALUES {values} ON CONFLICT (message_id) DO UPDATE SET status = excluded.status,"
    " rank = excluded.rank, timestamp = excluded.timestamp, errors = excluded.errors,"
    " updated_at = excluded.updated_at WHERE excluded.rank > message_status.rank"
)
# INDEXED BY: from about 254 lanes in `v`, SQLite's planner built an automatic index over the
# whole outbox for each statement instead of using outbox_held (800 ms at 100,000 users, 3.6 s
# at a million: bench/users.py --explain); with the index named, 1-2 ms at any size.
_RELEASE_HELD = (
    "WITH v (p, w) AS (VALUES {values}) UPDATE main.outbox INDEXED BY outbox_held"
    " SET status = 'pending',"
    " next_attempt_at = ? FROM v WHERE outbox.status = 'held'"
    " AND outbox.phone_number_id = v.p AND outbox.wa_id = v.w"
    " RETURNING outbox.phone_number_id, outbox.wa_id"
)


def complete(
    completions: Sequence[Completion], now: float, db: sqlite3.Connection, waiting: list[LaneKey]
) -> list[bool]:
    """Writes each completion whose token still holds its lane; per completion, True, or
    False when the claim was lost (nothing written). Lanes that still have events (which came
    while they ran) are added to `waiting`."""
    rows = many(_OWNED, [c.lane_row() for c in completions], db, now)
    owned = {(row[0], row[1]) for row in rows}
    waiting.extend((row[0], row[1]) for row in rows if row[2])
    mine = [c for c in completions if c.outcome.key in owned]
    if mine:
        _write(mine, now, db)
    return [c.outcome.key in owned for c in completions]


def _write(mine: Sequence[Completion], now: float, db: sqlite3.Connection) -> None:
    results = [
        (r.seq, r.status, r.error, c.outcome.attempts, now)
        for c in mine
        for r in c.outcome.results
        if r.status != DONE
    ]
    if results:
        many(_EVENT_RESULT, results, db)
    sessions = [c.session for c in mine if c.session is not None]
    if sessions:
        many(_UPSERT_SESSION, sessions, db)
    sends = [row for c in mine for row in c.sends]
    if sends:
        many(_INSERT_SEND, sends, db)
    statuses = [row for c in mine for row in c.statuses]
    if statuses:
        many(_UPSERT_STATUS, statuses, db)
    moved: set[LaneKey] = set()
    for c in mine:  # refused first: a message of the user's in the same turn releases them
        moved |= refuse(c.outcome.refused, now, db, remember=True)
    released = [c.outcome.key for c in mine if c.outcome.release_held]
    if released:  # the user wrote: sends held for that go out
        moved.update((row[0], row[1]) for row in many(_RELEASE_HELD, released, db, now))
    if moved:
        many(REFRESH_SEND_DUE, sorted(moved), db)
    timers_sql.write([(c.outcome.key, c.outcome.timers) for c in mine if c.outcome.timers], db)


def backlog(db: sqlite3.Connection) -> int:
    """Events stored and not completed."""
    (count,) = db.execute(
        "SELECT (SELECT coalesce(sum(pending), 0) FROM main.lanes WHERE next_event IS NOT NULL)"
        f" + (SELECT count(*) FROM incoming.inbox WHERE seq > {_CURSOR})"
    ).fetchone()
    return int(count)


def pending(db: sqlite3.Connection) -> tuple[int, int, int, float | None, float | None]:
    """Events not completed, sends pending and held, when the oldest pending event was stored
    and when the oldest pending send was queued (each through a partial index)."""
    events = backlog(db)
    (received,) = db.execute(
        "SELECT received_at FROM incoming.inbox WHERE seq = (SELECT min(s) FROM ("
        " SELECT min(next_event) AS s FROM main.lanes WHERE next_event IS NOT NULL"
        f" UNION ALL SELECT min(seq) FROM incoming.inbox WHERE seq > {_CURSOR}))"
    ).fetchone() or (None,)
    sends, created = db.execute(
        "SELECT count(*), min(created_at) FROM main.outbox WHERE status = 'pending'"
    ).fetchone()
    (held,) = db.execute("SELECT count(*) FROM main.outbox WHERE status = 'held'").fetchone()
    return events, int(sends), int(held), received, created
