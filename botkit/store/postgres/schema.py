"""The PostgreSQL store's tables, and how a database is brought up to date at start-up.

One database serves every process of a deployment. Each event gets its `seq` from an identity
column while its user's lane is locked (inbox.py), so a lane's events are numbered in the
order they commit: `seq` is also the event's position in its lane. The lane's row (`lanes`)
keeps how far its events are done (`done_seq`), its latest and next event, how many wait,
the claim on its events and the user's 24-hour window; the outbox side of a lane
(`send_lanes`: when its first pending send is due, the claim on its sends) has a row of its
own, so that claiming sends never waits for, nor holds up, an acknowledgement or a claim of
events (recording them does lock the lane's row: outbox.py). `rate_buckets` paces sends for the whole deployment (ratelimit.py).

Migrations are numbered steps, run under an advisory lock: when several replicas start at
once, one migrates and the others wait, then find the work done.
"""

from __future__ import annotations

import asyncpg

from botkit.exceptions import StoreError
from botkit.store.postgres.functions import ADD_V2, CLAIM_SENDS_V2, FUNCTIONS
from botkit.store.postgres.timer_rows import TIMERS_TABLE
from botkit.store.postgres.traces import TRACES

# Step 1: the tables of the first PostgreSQL store.
_TABLES = """
CREATE TABLE IF NOT EXISTS botkit_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    message_id text UNIQUE,
    kind text NOT NULL,
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    envelope text NOT NULL,
    received_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_lane ON inbox (phone_number_id, wa_id, seq);
CREATE INDEX IF NOT EXISTS inbox_received ON inbox (received_at);
CREATE TABLE IF NOT EXISTS lanes (
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0,
    done_seq bigint NOT NULL DEFAULT 0,
    next_seq bigint,
    pending integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    suspect_until bigint,
    event_token text,
    event_until double precision,
    last_inbound_at double precision,
    inbound_seq bigint NOT NULL DEFAULT 0,
    closed_seq bigint,
    PRIMARY KEY (phone_number_id, wa_id)
);
-- lanes with events and no claim, oldest first: a claim takes them from the head, where
-- claimed lanes would otherwise pile up; claims (whose leases may run out) apart
CREATE INDEX IF NOT EXISTS lanes_free ON lanes (next_seq)
    WHERE next_seq IS NOT NULL AND event_token IS NULL;
CREATE INDEX IF NOT EXISTS lanes_claimed ON lanes (event_until) WHERE event_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS send_lanes (
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    send_due double precision,
    send_token text,
    send_until double precision,
    PRIMARY KEY (phone_number_id, wa_id)
);
CREATE INDEX IF NOT EXISTS send_lanes_free ON send_lanes (send_due, phone_number_id, wa_id)
    WHERE send_due IS NOT NULL AND send_token IS NULL;
CREATE INDEX IF NOT EXISTS send_lanes_claimed ON send_lanes (send_until)
    WHERE send_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_results (
    seq bigint PRIMARY KEY,
    status text NOT NULL,
    error text,
    attempts integer NOT NULL,
    processed_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    conversation text NOT NULL,
    state text NOT NULL,
    data text NOT NULL,
    version text NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (phone_number_id, wa_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number_id text NOT NULL,
    wa_id text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    type text NOT NULL,
    payload text NOT NULL,
    cause text NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    when_closed text NOT NULL DEFAULT 'fail',
    fallback text,
    instead_of text,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    provider_message_id text,
    error text,
    created_at double precision NOT NULL,
    sent_at double precision,
    media_id text
);
CREATE INDEX IF NOT EXISTS outbox_pending_lane ON outbox (phone_number_id, wa_id, seq)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_held ON outbox (phone_number_id, wa_id) WHERE status = 'held';
CREATE INDEX IF NOT EXISTS outbox_provider_id ON outbox (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (sent_at) WHERE status IN ('sent', 'failed');
CREATE TABLE IF NOT EXISTS refusals (
    message_id text PRIMARY KEY,
    refused_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS media (
    phone_number_id text NOT NULL,
    sha256 text NOT NULL,
    media_id text NOT NULL,
    uploaded_at double precision NOT NULL,
    PRIMARY KEY (phone_number_id, sha256)
);
CREATE TABLE IF NOT EXISTS message_status (
    message_id text PRIMARY KEY,
    status text NOT NULL,
    rank integer NOT NULL,
    timestamp bigint NOT NULL,
    errors text,
    updated_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS message_status_updated ON message_status (updated_at);
"""
# Step 2: send pacing shared by every process (the provider's limits are per number and per
# key, not per process). Unlogged: a slot taken is not worth a WAL write, and a crash that
# empties the table only lets the next sends go at once.
_RATE_BUCKETS = """
CREATE UNLOGGED TABLE IF NOT EXISTS rate_buckets (
    key text PRIMARY KEY,
    next_at double precision NOT NULL
);
"""

# Step 5: what operators look up by user and the failed sends (botkit/store/postgres/repair.py);
# wa_id never changes, so these cost a lane's and a send's updates nothing.
_USER_INDEXES = """
CREATE INDEX IF NOT EXISTS lanes_user ON lanes (wa_id);
CREATE INDEX IF NOT EXISTS outbox_user ON outbox (wa_id, seq);
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (seq) WHERE status = 'failed';
"""

# 3, 4 and 6: functions.py; 7, the trace context of events and sends: traces.py; 8, users'
# durable timers: timer_rows.py
STEPS = (
    _TABLES,
    _RATE_BUCKETS,
    FUNCTIONS,
    ADD_V2,
    _USER_INDEXES,
    CLAIM_SENDS_V2,
    TRACES,
    TIMERS_TABLE,
)
SCHEMA_VERSION = len(STEPS)

# pg_advisory_lock(key): held while a process migrates; others wait for it
MIGRATION_LOCK = 0x626F746B6974  # "botkit"


async def migrate(db: asyncpg.Connection, *, upto: int = SCHEMA_VERSION) -> int:
    """Creates or upgrades the schema to step `upto`, each step a transaction, one process at a
    time (a session advisory lock); returns the version found before."""
    await db.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        found = await _version(db)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"the database has botkit schema version {found}, newer than this botkit's "
                f"{SCHEMA_VERSION}: upgrade botkit"
            )
        for version in range(found + 1, upto + 1):
            async with db.transaction():
                await db.execute(STEPS[version - 1])
                await db.execute(
                    "INSERT INTO botkit_meta (key, value) VALUES ('schema', $1)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    str(version),
                )
        return found
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def _version(db: asyncpg.Connection) -> int:
    exists = await db.fetchval("SELECT to_regclass('botkit_meta') IS NOT NULL")
    if not exists:
        return 0
    value = await db.fetchval("SELECT value FROM botkit_meta WHERE key = 'schema'")
    return 0 if value is None else int(value)
