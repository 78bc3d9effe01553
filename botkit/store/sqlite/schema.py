"""The SQLite store's two files: their tables, and how older files are brought up to date.

Two files, so that the web process and the worker process never wait for each other's write
lock: the inbox file (`<path>-inbox`), which only acknowledgements write (synchronous=FULL: an
acknowledged event survives a power loss), and the main file, which only the worker writes
(synchronous=NORMAL: a lost claim or completion is redone, under the same idempotency keys).

The inbox file is append-only and numbered in commit order (one writer), so an event's `seq`
also orders it among its user's events: it is the event's position in its lane. An
acknowledgement writes nothing else. The worker learns of new events by reading the inbox
past a cursor (`inbox_cursor`, which never skips a row, since rows commit in seq order) and
indexes them by lane in its own file (`lane_events`). The main file keeps one row per lane
(`lanes`): how far its events are done (`done_seq`), its next event and how many wait, the
claims on its events and on its sends, when its first pending send is due, and its 24-hour
window; after a claim that never completed (a worker that died), how far its events run one
at a time (`suspect_until`), so that an event that kills the worker is charged alone. An event
at or below its lane's `done_seq` is done; `event_results` keeps the others' outcomes (failed,
ignored) with their errors. `refusals` keeps the provider's "window closed" statuses (131047)
for messages whose send is not recorded yet, to apply when it is.

Finished events, sends and delivery statuses are deleted once older than the retention
(retention.py; the indexes `outbox_finished` and `message_status_updated` find them). The
inbox's AUTOINCREMENT numbers are never reused, so positions outlive the rows they name.
"""

from __future__ import annotations

import sqlite3
import time
from functools import partial

from botkit.exceptions import StoreError
from botkit.store.base import SCHEMA_VERSION
from botkit.store.sqlite.connection import BOTH, LOCK_WAIT, transaction
from botkit.store.sqlite.timer_rows import TIMERS_SCHEMA

INBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS incoming.inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    message_id TEXT UNIQUE,
    kind TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    envelope TEXT NOT NULL,
    received_at REAL NOT NULL,
    traceparent TEXT
);
"""
MAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS botkit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO botkit_meta (key, value) VALUES ('inbox_cursor', '0');
CREATE TABLE IF NOT EXISTS lanes (
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    done_seq INTEGER NOT NULL DEFAULT 0,
    next_event INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    event_token TEXT,
    event_until REAL,
    send_due REAL,
    send_token TEXT,
    send_until REAL,
    last_inbound_at REAL,
    inbound_seq INTEGER NOT NULL DEFAULT 0,
    closed_seq INTEGER,
    suspect_until INTEGER,
    PRIMARY KEY (phone_number_id, wa_id)
);
CREATE INDEX IF NOT EXISTS lanes_events ON lanes (next_event) WHERE next_event IS NOT NULL;
CREATE INDEX IF NOT EXISTS lanes_sends ON lanes (send_due, phone_number_id, wa_id)
    WHERE send_due IS NOT NULL;
-- a user's lanes, for operators (repair.py): wa_id never changes, so it costs a lane nothing
CREATE INDEX IF NOT EXISTS lanes_user ON lanes (wa_id);
CREATE TABLE IF NOT EXISTS lane_events (
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_results (
    seq INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    processed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    version TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    phone_number_id TEXT NOT NULL,
    wa_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    cause TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    when_closed TEXT NOT NULL DEFAULT 'fail',
    fallback TEXT,
    instead_of TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    provider_message_id TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL,
    media_id TEXT,
    traceparent TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending_lane ON outbox (phone_number_id, wa_id, seq)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_held ON outbox (phone_number_id, wa_id)
    WHERE status = 'held';
CREATE INDEX IF NOT EXISTS outbox_provider_id ON outbox (provider_message_id);
CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (sent_at) WHERE status IN ('sent', 'failed');
-- for operators (repair.py): a user's sends, and the failed ones
CREATE INDEX IF NOT EXISTS outbox_user ON outbox (wa_id, seq);
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (seq) WHERE status = 'failed';
CREATE TABLE IF NOT EXISTS refusals (
    message_id TEXT PRIMARY KEY,
    refused_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS media (
    phone_number_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    media_id TEXT NOT NULL,
    uploaded_at REAL NOT NULL,
    PRIMARY KEY (phone_number_id, sha256)
);
CREATE TABLE IF NOT EXISTS message_status (
    message_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    rank INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    errors TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS message_status_updated ON message_status (updated_at);
"""


def attach(inbox_path: str, db: sqlite3.Connection) -> None:
    """Attaches the inbox file as `incoming` and sets WAL and each file's durability."""
    # SQLite's own busy handler while opening: two processes starting on a new file both
    # switch it to WAL. Transactions then use begin()'s retries (busy_timeout=0, see migrate).
    db.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT * 1000)}")
    db.execute("ATTACH DATABASE ? AS incoming", (inbox_path,))
    for pragma in (
        "PRAGMA main.journal_mode=WAL",
        "PRAGMA incoming.journal_mode=WAL",
        "PRAGMA main.synchronous=NORMAL",
        "PRAGMA incoming.synchronous=FULL",
    ):
        _retrying(db, pragma)


def _retrying(db: sqlite3.Connection, pragma: str) -> None:
    """Runs `pragma`, again while the file is busy: switching to WAL needs the file to itself,
    and SQLite answers BUSY at once (without its busy handler) when another connection is
    switching it at the same moment."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            db.execute(pragma).fetchall()
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(0.001)


def migrate(path: str, inbox_path: str, db: sqlite3.Connection) -> None:
    """Creates or upgrades both files, each step a transaction that decides inside itself, so
    that a crash in between leaves something the next start finishes, and another process
    opening the same files at the same time finds the step done; then checks they belong
    together."""
    transaction(db, partial(_create, path), BOTH)
    transaction(db, _move_inbox_out, BOTH)  # schema 2 kept the inbox in the main file
    transaction(db, _build_lanes, BOTH)  # schemas 2 and 3 kept progress per event
    transaction(db, _stamp_version, BOTH)
    transaction(db, partial(_check_pair, path, inbox_path), BOTH)
    db.execute("PRAGMA busy_timeout=0")  # see begin()


def _create(path: str, db: sqlite3.Connection) -> None:
    if _has_table(db, "main", "botkit_meta"):
        row = db.execute("SELECT value FROM main.botkit_meta WHERE key = 'schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {row[0]}, newer than this botkit's "
                f"{SCHEMA_VERSION}: upgrade botkit"
            )
    _script(db, INBOX_SCHEMA + MAIN_SCHEMA + TIMERS_SCHEMA)
    for qualified, columns in _COLUMNS_ADDED.items():
        schema, _, table = qualified.rpartition(".")
        schema = schema or "main"
        present = {row[1] for row in db.execute(f"PRAGMA {schema}.table_info({table})")}
        for name, declaration in columns.items():
            if name not in present:
                db.execute(f"ALTER TABLE {schema}.{table} ADD COLUMN {name} {declaration}")


_COLUMNS_ADDED = {  # columns a table created by an older botkit lacks
    "outbox": {
        "when_closed": "TEXT NOT NULL DEFAULT 'fail'",  # schema 1: no closed-window policies
        "fallback": "TEXT",
        "instead_of": "TEXT",
        "media_id": "TEXT",  # the media a send's earlier attempt went with
        "traceparent": "TEXT",  # the turn's trace context (botkit.tracing)
    },
    "incoming.inbox": {"traceparent": "TEXT"},  # the webhook's trace context
    "lanes": {"suspect_until": "INTEGER"},  # events run one at a time after a crash
}


def _move_inbox_out(db: sqlite3.Connection) -> None:
    if not _has_table(db, "main", "inbox"):
        return
    db.execute(
        "INSERT OR IGNORE INTO incoming.inbox (seq, event_id, message_id, kind, phone_number_id,"
        " wa_id, envelope, received_at) SELECT seq, event_id, message_id, kind, phone_number_id,"
        " wa_id, envelope, received_at FROM main.inbox"
    )
    moved = db.execute(
        "SELECT count(*) FROM main.inbox o WHERE NOT EXISTS"
        " (SELECT 1 FROM incoming.inbox i WHERE i.seq = o.seq)"
    ).fetchone()[0]
    if moved:  # written since the copy (an older botkit still running?)
        raise StoreError(
            f"{moved} inbox events arrived in the old layout while it was being converted; "
            "stop every older botkit on this file and start again"
        )
    db.execute(
        # schema 3 created the table before converting: a conversion it left half-done has one
        "CREATE TABLE IF NOT EXISTS main.inbox_state (seq INTEGER PRIMARY KEY, phone_number_id"
        " TEXT, wa_id TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL, processed_at REAL,"
        " error TEXT)"
    )
    db.execute(
        "INSERT OR IGNORE INTO main.inbox_state (seq, phone_number_id, wa_id, status, attempts,"
        " processed_at, error) SELECT seq, phone_number_id, wa_id, status, attempts,"
        " processed_at, error FROM main.inbox WHERE status != 'pending' OR attempts > 0"
    )
    db.execute("INSERT OR REPLACE INTO main.botkit_meta (key, value) VALUES ('inbox_floor', '0')")
    db.execute("DROP TABLE main.inbox")


# Schema 3 kept progress per event (inbox_state, a row once claimed; every event below the
# floor finished): schema 4 keeps it per lane.
_FLOOR = "(SELECT CAST(value AS INTEGER) FROM main.botkit_meta WHERE key = 'inbox_floor')"
_PENDING = (
    "SELECT i.phone_number_id, i.wa_id, i.seq FROM incoming.inbox i"
    " LEFT JOIN main.inbox_state p ON p.seq = i.seq"
    f" WHERE (p.seq IS NULL AND i.seq > {_FLOOR}) OR p.status = 'pending'"
)


def _build_lanes(db: sqlite3.Connection) -> None:
    if not _has_table(db, "main", "inbox_state"):
        return
    db.execute(
        "INSERT OR IGNORE INTO main.event_results (seq, status, error, attempts, processed_at)"
        " SELECT seq, status, error, attempts, coalesce(processed_at, 0) FROM main.inbox_state"
        " WHERE status NOT IN ('pending', 'done')"
    )
    db.execute(f"INSERT OR IGNORE INTO main.lane_events {_PENDING}")
    db.execute(
        "INSERT INTO main.lanes (phone_number_id, wa_id, done_seq) SELECT i.phone_number_id,"
        " i.wa_id, coalesce(max(i.seq) FILTER (WHERE e.seq IS NULL), 0) FROM incoming.inbox i"
        " LEFT JOIN main.lane_events e ON e.phone_number_id = i.phone_number_id"
        " AND e.wa_id = i.wa_id AND e.seq = i.seq GROUP BY i.phone_number_id, i.wa_id"
        " ON CONFLICT DO NOTHING"
    )
    db.execute(
        "UPDATE main.lanes SET next_event = w.first, pending = w.n,"
        " attempts = coalesce((SELECT p.attempts FROM main.inbox_state p WHERE p.seq = w.first), 0)"
        " FROM (SELECT phone_number_id, wa_id, min(seq) AS first, count(*) AS n"
        " FROM main.lane_events GROUP BY phone_number_id, wa_id) w"
        " WHERE lanes.phone_number_id = w.phone_number_id AND lanes.wa_id = w.wa_id"
    )
    _windows_from_sessions(db)
    db.execute(
        "UPDATE main.lanes SET send_due = (SELECT next_attempt_at FROM main.outbox o"
        " WHERE o.phone_number_id = lanes.phone_number_id AND o.wa_id = lanes.wa_id"
        " AND o.status = 'pending' ORDER BY o.seq LIMIT 1)"
    )
    db.execute("DROP INDEX IF EXISTS main.outbox_pending")  # claims go by lane now
    for column in ("claimed_by", "claimed_until"):
        if column in {row[1] for row in db.execute("PRAGMA main.table_info(outbox)")}:
            db.execute(f"ALTER TABLE main.outbox DROP COLUMN {column}")
    cursor = db.execute("SELECT coalesce(max(seq), 0) FROM incoming.inbox").fetchone()[0]
    db.execute("UPDATE main.botkit_meta SET value = ? WHERE key = 'inbox_cursor'", (str(cursor),))
    db.execute("DELETE FROM main.botkit_meta WHERE key = 'inbox_floor'")
    db.execute("DROP TABLE main.inbox_state")


def _windows_from_sessions(db: sqlite3.Connection) -> None:
    """Schema 3 kept the window on the session, as times; schema 4 keeps lane positions.

    The latest inbound message counts as the last one done; a closure after it as of it.
    """
    columns = {row[1] for row in db.execute("PRAGMA main.table_info(sessions)")}
    if "last_inbound_at" not in columns:
        return
    closed_at = "s.window_closed_at" if "window_closed_at" in columns else "NULL"
    db.execute(
        "INSERT OR IGNORE INTO main.lanes (phone_number_id, wa_id)"
        " SELECT phone_number_id, wa_id FROM main.sessions"
    )
    db.execute(
        "UPDATE main.lanes SET last_inbound_at = s.last_inbound_at,"
        " inbound_seq = CASE WHEN s.last_inbound_at IS NULL THEN 0 ELSE lanes.done_seq END,"
        f" closed_seq = CASE WHEN {closed_at} IS NOT NULL AND (s.last_inbound_at IS NULL"
        f" OR {closed_at} >= s.last_inbound_at) THEN lanes.done_seq END"
        " FROM main.sessions s WHERE s.phone_number_id = lanes.phone_number_id"
        " AND s.wa_id = lanes.wa_id"
    )
    for column in ("last_inbound_at", "window_closed_at"):
        if column in columns:
            db.execute(f"ALTER TABLE main.sessions DROP COLUMN {column}")


def _stamp_version(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT OR REPLACE INTO main.botkit_meta (key, value) VALUES ('schema', ?)",
        (str(SCHEMA_VERSION),),
    )


def _check_pair(path: str, inbox_path: str, db: sqlite3.Connection) -> None:
    """Refuses an inbox file that is not the main file's: missing, replaced or restored older.

    A new, empty inbox would number its events from 1 again, under the main file's cursor,
    and they would never be processed.
    """
    (cursor,) = db.execute(
        "SELECT CAST(value AS INTEGER) FROM main.botkit_meta WHERE key = 'inbox_cursor'"
    ).fetchone()
    (last,) = db.execute(
        "SELECT coalesce(max(seq), 0) FROM incoming.sqlite_sequence WHERE name = 'inbox'"
    ).fetchone()
    if cursor > last:
        raise StoreError(
            f"the inbox file {inbox_path} does not go with {path}: {path} has read events "
            f"up to number {cursor}, the inbox has numbered {last}; restore the inbox file "
            "saved with it (copy both files together), or move both away to start empty"
        )


def _has_table(db: sqlite3.Connection, schema: str, table: str) -> bool:
    sql = f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?"
    return db.execute(sql, (table,)).fetchone() is not None


def _script(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
