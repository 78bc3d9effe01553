"""The PostgreSQL store's server-side functions: a claim, a completion or a record in one
round trip, where their statements one by one cost seven or eight (bench/webhook.py, pg1).

They are the statements of inbox.py and outbox.py, run in order inside PL/pgSQL, which takes
a new snapshot for each statement (READ COMMITTED), so what those modules say about locks
and snapshots holds here statement by statement. The names carry a version (`_v1`): a new
botkit that changes one adds a new name, and processes of the older version still running
during a rolling deploy keep theirs. They are created by a schema step, under the migration
lock.

They notify no other process: completions and records come from a process that runs both
the dispatcher and the outbox, whose own loops the store wakes (a NOTIFY would wake every
worker of the deployment for each lane, and serialize the commits that send it).
"""

from __future__ import annotations

from botkit.store.base import LANE_ITEMS
from botkit.wire.window import WINDOW_SECONDS

INBOX_CHANNEL = "botkit_inbox"

_REFUSED_ERROR = "the provider reported the 24-hour window closed (131047)"
REFUSALS_KEPT = 7 * 24 * 60 * 60.0


def _add_function(name: str, *, notify: bool) -> str:
    """The SQL of an add function. v1 notified the workers inside its transaction, which
    therefore held PostgreSQL's one lock for notifying transactions through its wait for the
    disk: the acknowledgements of every replica committed one at a time (bench/webhook.py pg3:
    most adds waiting on `Lock: object`). v2 does not; the store notifies after it commits."""
    notice = (
        f"""    IF FOUND THEN
        PERFORM pg_notify('{INBOX_CHANNEL}', '');
    END IF;
"""
        if notify
        else ""
    )
    return f"""
-- Stores events (acknowledged once this returns: the commit waits for the disk, where the
-- pool's default, for the workers' transactions, is not to). The lanes written to are locked
-- first, in key order (_locks, sorted), so that a lane's events commit in seq order; then the
-- events not seen before (by event id or message id) are inserted in the order given.
-- Returns the event ids stored.
CREATE OR REPLACE FUNCTION {name}(
    _locks bigint[], _event_ids text[], _message_ids text[], _kinds text[], _ps text[],
    _ws text[], _envelopes text[], _now float8
) RETURNS SETOF text LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    PERFORM pg_advisory_xact_lock(k) FROM unnest(_locks) AS k(k);
    RETURN QUERY
    WITH v AS (
        SELECT * FROM unnest(_event_ids, _message_ids, _kinds, _ps, _ws, _envelopes)
            WITH ORDINALITY AS v(event_id, message_id, kind, p, w, envelope, n)
    ), ins AS (
        INSERT INTO inbox (event_id, message_id, kind, phone_number_id, wa_id, envelope,
            received_at)
        SELECT v.event_id, v.message_id, v.kind, v.p, v.w, v.envelope, _now FROM v ORDER BY v.n
        ON CONFLICT DO NOTHING
        RETURNING inbox.seq, inbox.event_id, inbox.phone_number_id, inbox.wa_id
    ), lanes_up AS (
        INSERT INTO lanes AS l (phone_number_id, wa_id, last_seq, next_seq, pending)
        SELECT i.phone_number_id, i.wa_id, max(i.seq), min(i.seq), count(*) FROM ins i
        GROUP BY i.phone_number_id, i.wa_id ORDER BY i.phone_number_id, i.wa_id
        ON CONFLICT (phone_number_id, wa_id) DO UPDATE
        SET last_seq = greatest(l.last_seq, excluded.last_seq),
            next_seq = coalesce(l.next_seq, excluded.next_seq),
            pending = l.pending + excluded.pending
    )
    SELECT i.event_id FROM ins i;
{notice}END
$fn$;
"""


FUNCTIONS = f"""
{_add_function("botkit_add_v1", notify=True)}
-- Sends refused by a failed status (131047) fall back or wait held; with _remember, a refusal
-- of a message no send has yet is kept. Returns the lanes whose sends changed.
CREATE OR REPLACE FUNCTION botkit_refuse_v1(_ids text[], _now float8, _remember boolean)
RETURNS TABLE (p text, w text) LANGUAGE plpgsql AS $fn$
DECLARE
    kept integer;
BEGIN
    IF _ids IS NULL OR cardinality(_ids) = 0 THEN
        RETURN;
    END IF;
    -- kept only when no send has the id yet (before the updates below clear it)
    IF _remember THEN
        INSERT INTO refusals (message_id, refused_at)
        SELECT m, _now FROM unnest(_ids) AS m(m)
        WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.provider_message_id = m)
        ON CONFLICT (message_id) DO NOTHING;
        GET DIAGNOSTICS kept = ROW_COUNT;
        IF kept > 0 THEN
            DELETE FROM refusals WHERE refused_at < _now - {REFUSALS_KEPT};
        END IF;
    END IF;
    FOR p, w IN
        UPDATE outbox AS o SET instead_of = o.type, type = o.fallback::json ->> 'type',
            payload = (o.fallback::json -> 'payload')::text,
            idempotency_key = o.idempotency_key || '-fb', when_closed = 'fail', fallback = NULL,
            status = 'pending', attempts = 0, next_attempt_at = _now, provider_message_id = NULL,
            error = '{_REFUSED_ERROR}', sent_at = NULL
        WHERE o.provider_message_id = ANY(_ids) AND o.when_closed = 'fallback'
        RETURNING o.phone_number_id, o.wa_id
    LOOP
        RETURN NEXT;
    END LOOP;
    FOR p, w IN
        UPDATE outbox AS o SET status = 'held', idempotency_key = o.idempotency_key || '-held',
            provider_message_id = NULL, error = '{_REFUSED_ERROR}', sent_at = NULL
        WHERE o.provider_message_id = ANY(_ids) AND o.when_closed = 'hold'
        RETURNING o.phone_number_id, o.wa_id
    LOOP
        RETURN NEXT;
    END LOOP;
END
$fn$;

-- When each lane's first pending send is due, computed after locking the lanes' rows (in key
-- order), by statements that start after the locks were taken.
CREATE OR REPLACE FUNCTION botkit_refresh_due_v1(_ps text[], _ws text[])
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO send_lanes (phone_number_id, wa_id)
    SELECT * FROM unnest(_ps, _ws) AS v(p, w) ORDER BY v.p, v.w ON CONFLICT DO NOTHING;
    PERFORM 1 FROM send_lanes s WHERE (s.phone_number_id, s.wa_id) IN
        (SELECT * FROM unnest(_ps, _ws)) ORDER BY s.phone_number_id, s.wa_id FOR UPDATE;
    UPDATE send_lanes AS s SET send_due = (SELECT o.next_attempt_at FROM outbox o
        WHERE o.phone_number_id = s.phone_number_id AND o.wa_id = s.wa_id
        AND o.status = 'pending' ORDER BY o.seq LIMIT 1)
    WHERE (s.phone_number_id, s.wa_id) IN (SELECT * FROM unnest(_ps, _ws));
END
$fn$;

-- Claims up to _limit lanes whose next event waits longest, and returns their next events
-- (one per row, oldest lane first), each with the lane's claim and the user's session.
CREATE OR REPLACE FUNCTION botkit_claim_events_v1(
    _token text, _until float8, _now float8, _limit integer
) RETURNS TABLE (
    phone_number_id text, wa_id text, attempts integer, last_inbound_at float8,
    inbound_seq bigint, closed_seq bigint, seq bigint, event_id text, kind text,
    envelope text, conversation text, state text, data text, version text
) LANGUAGE plpgsql AS $fn$
DECLARE
    ps text[]; ws text[]; dones bigint[]; counts integer[]; firsts bigint[];
    tries integer[]; last_ins float8[]; in_seqs bigint[]; closeds bigint[];
BEGIN
    -- free lanes (index lanes_free), and lanes whose claim ran out (lanes_claimed), oldest
    -- first; more may be locked than claimed: the rest are let go at the end of the call
    WITH free AS (
        SELECT l.phone_number_id, l.wa_id, l.next_seq FROM lanes l
        WHERE l.next_seq IS NOT NULL AND l.event_token IS NULL
        ORDER BY l.next_seq LIMIT _limit
        FOR UPDATE SKIP LOCKED
    ), lapsed AS (
        SELECT l.phone_number_id, l.wa_id, l.next_seq FROM lanes l
        WHERE l.event_token IS NOT NULL AND l.event_until <= _now AND l.next_seq IS NOT NULL
        ORDER BY l.event_until LIMIT _limit
        FOR UPDATE SKIP LOCKED
    ), c AS (
        SELECT * FROM (SELECT * FROM free UNION ALL SELECT * FROM lapsed) AS x
        ORDER BY x.next_seq LIMIT _limit
    ), claimed AS (
        UPDATE lanes AS l SET event_token = _token, event_until = _until,
            attempts = l.attempts + 1,
            suspect_until = CASE WHEN l.attempts > 0
                AND l.done_seq >= coalesce(l.suspect_until, 0)
                THEN coalesce((SELECT i.seq FROM inbox i
                    WHERE i.phone_number_id = l.phone_number_id AND i.wa_id = l.wa_id
                    AND i.seq > l.done_seq ORDER BY i.seq
                    OFFSET {LANE_ITEMS - 1} LIMIT 1), l.last_seq)
                ELSE l.suspect_until END
        FROM c WHERE l.phone_number_id = c.phone_number_id AND l.wa_id = c.wa_id
        RETURNING l.*
    )
    SELECT array_agg(x.phone_number_id ORDER BY x.next_seq), array_agg(x.wa_id ORDER BY x.next_seq),
        array_agg(x.done_seq ORDER BY x.next_seq),
        array_agg(CASE WHEN x.suspect_until IS NOT NULL AND x.done_seq < x.suspect_until
            THEN 1 ELSE {LANE_ITEMS} END ORDER BY x.next_seq),
        array_agg(x.next_seq ORDER BY x.next_seq), array_agg(x.attempts ORDER BY x.next_seq),
        array_agg(x.last_inbound_at ORDER BY x.next_seq),
        array_agg(x.inbound_seq ORDER BY x.next_seq), array_agg(x.closed_seq ORDER BY x.next_seq)
    INTO ps, ws, dones, counts, firsts, tries, last_ins, in_seqs, closeds
    FROM claimed x;
    IF ps IS NULL THEN
        RETURN;
    END IF;
    -- a new statement: its snapshot includes the lanes' last completions
    RETURN QUERY
    SELECT v.p, v.w, v.tries, v.last_in, v.in_seq, v.closed, i.seq, i.event_id, i.kind,
        i.envelope, s.conversation, s.state, s.data, s.version
    FROM unnest(ps, ws, dones, counts, firsts, tries, last_ins, in_seqs, closeds)
        WITH ORDINALITY AS v(p, w, done, n, first, tries, last_in, in_seq, closed, k)
    CROSS JOIN LATERAL (
        SELECT x.seq, x.event_id, x.kind, x.envelope FROM inbox x
        WHERE x.phone_number_id = v.p AND x.wa_id = v.w AND x.seq > v.done
        ORDER BY x.seq LIMIT v.n
    ) AS i
    LEFT JOIN sessions s ON s.phone_number_id = v.p AND s.wa_id = v.w
    ORDER BY v.k, i.seq;
END
$fn$;

-- Writes the outcomes of several lanes (a group commit), each if its token still holds its
-- lane. Lane k's values are at index k of the lane arrays; results, sends, statuses and
-- refusals name their lane's index. Returns a row per lane written: its index, and 1 + 2 (the
-- lane still has events) + 4 (sends are due or moved). Lanes not returned were not written.
CREATE OR REPLACE FUNCTION botkit_complete_v1(
    _p text[], _w text[], _token text[], _done bigint[], _n integer[],
    _last_in float8[], _in_seq bigint[], _closed bigint[], _attempts integer[],
    _release_held boolean[], _conversation text[], _state text[], _data text[],
    _version text[],
    _r_lane integer[], _r_seq bigint[], _r_status text[], _r_error text[],
    _s_lane integer[], _s_key text[], _s_type text[], _s_payload text[], _s_cause text[],
    _s_status text[], _s_when text[], _s_fallback text[], _s_instead text[],
    _m_lane integer[], _m_id text[], _m_status text[], _m_rank integer[], _m_time bigint[],
    _m_error text[],
    _x_lane integer[], _x_id text[],
    _now float8
) RETURNS TABLE (lane integer, flags integer) LANGUAGE plpgsql AS $fn$
DECLARE
    owned integer[]; waiting boolean[];
    queued integer[];
    moved_p text[]; moved_w text[];
BEGIN
    -- the batch's lanes, locked in key order
    PERFORM 1 FROM lanes l WHERE (l.phone_number_id, l.wa_id) IN (SELECT * FROM unnest(_p, _w))
        ORDER BY l.phone_number_id, l.wa_id FOR UPDATE;
    WITH v AS (
        SELECT * FROM unnest(_p, _w, _token, _done, _n, _last_in, _in_seq, _closed)
            WITH ORDINALITY AS v(p, w, token, done, n, last_in, in_seq, closed, k)
    ), u AS (
        UPDATE lanes AS l SET done_seq = greatest(l.done_seq, v.done),
            pending = l.pending - v.n, attempts = 0, event_token = NULL, event_until = NULL,
            next_seq = CASE WHEN l.last_seq > greatest(l.done_seq, v.done) THEN coalesce(
                (SELECT min(i.seq) FROM inbox i WHERE i.phone_number_id = l.phone_number_id
                 AND i.wa_id = l.wa_id AND i.seq > greatest(l.done_seq, v.done)),
                l.last_seq) END,
            last_inbound_at = greatest(l.last_inbound_at, v.last_in),
            inbound_seq = greatest(l.inbound_seq, v.in_seq),
            closed_seq = greatest(l.closed_seq, v.closed)
        FROM v WHERE l.phone_number_id = v.p AND l.wa_id = v.w AND l.event_token = v.token
        RETURNING v.k::integer AS k, l.next_seq IS NOT NULL AS waiting
    )
    SELECT array_agg(u.k ORDER BY u.k), array_agg(u.waiting ORDER BY u.k)
    INTO owned, waiting FROM u;
    IF owned IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO event_results (seq, status, error, attempts, processed_at)
    SELECT r.seq, r.status, r.error, _attempts[r.lane], _now
    FROM unnest(_r_lane, _r_seq, _r_status, _r_error) AS r(lane, seq, status, error)
    WHERE r.lane = ANY(owned)
    ON CONFLICT (seq) DO UPDATE SET status = excluded.status, error = excluded.error,
        attempts = excluded.attempts, processed_at = excluded.processed_at;
    INSERT INTO sessions (phone_number_id, wa_id, conversation, state, data, version, updated_at)
    SELECT _p[k], _w[k], _conversation[k], _state[k], _data[k], _version[k], _now
    FROM unnest(owned) AS k WHERE _conversation[k] IS NOT NULL ORDER BY _p[k], _w[k]
    ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET conversation = excluded.conversation,
        state = excluded.state, data = excluded.data, version = excluded.version,
        updated_at = excluded.updated_at;
    INSERT INTO outbox (phone_number_id, wa_id, idempotency_key, type, payload, cause,
        status, when_closed, fallback, instead_of, next_attempt_at, created_at)
    SELECT _p[v.lane], _w[v.lane], v.k, v.t, v.payload, v.cause, v.status, v.when_closed,
        v.fallback, v.instead_of, _now, _now
    FROM unnest(_s_lane, _s_key, _s_type, _s_payload, _s_cause, _s_status, _s_when,
        _s_fallback, _s_instead) WITH ORDINALITY
        AS v(lane, k, t, payload, cause, status, when_closed, fallback, instead_of, n)
    WHERE v.lane = ANY(owned)
    ORDER BY v.n
    ON CONFLICT (idempotency_key) DO NOTHING;
    SELECT array_agg(DISTINCT v.lane) INTO queued
    FROM unnest(_s_lane, _s_status) AS v(lane, status)
    WHERE v.status = 'pending' AND v.lane = ANY(owned);
    -- a status applied in order replaces only a lower rank: the first of the highest wins
    INSERT INTO message_status (message_id, status, rank, timestamp, errors, updated_at)
    SELECT DISTINCT ON (m.id) m.id, m.status, m.rank, m.at, m.error, _now
    FROM unnest(_m_lane, _m_id, _m_status, _m_rank, _m_time, _m_error) WITH ORDINALITY
        AS m(lane, id, status, rank, at, error, n)
    WHERE m.lane = ANY(owned)
    ORDER BY m.id, m.rank DESC, m.n
    ON CONFLICT (message_id) DO UPDATE SET status = excluded.status, rank = excluded.rank,
        timestamp = excluded.timestamp, errors = excluded.errors,
        updated_at = excluded.updated_at
    WHERE excluded.rank > message_status.rank;
    -- refused first: a message of the user's in the same turn releases them
    SELECT array_agg(r.p), array_agg(r.w) INTO moved_p, moved_w
    FROM (SELECT DISTINCT x.p, x.w FROM botkit_refuse_v1(
        ARRAY(SELECT x.id FROM unnest(_x_lane, _x_id) AS x(lane, id) WHERE x.lane = ANY(owned)),
        _now, true) AS x) AS r;
    -- the user wrote: sends held for that go out
    WITH released AS (
        UPDATE outbox AS o SET status = 'pending', next_attempt_at = _now
        FROM unnest(owned) AS k
        WHERE _release_held[k] AND o.status = 'held' AND o.phone_number_id = _p[k]
            AND o.wa_id = _w[k]
        RETURNING o.phone_number_id AS p, o.wa_id AS w
    ), every AS (
        SELECT * FROM unnest(coalesce(moved_p, '{{}}'), coalesce(moved_w, '{{}}')) AS m(p, w)
        UNION SELECT * FROM released
    )
    SELECT array_agg(e.p), array_agg(e.w) INTO moved_p, moved_w FROM every e;
    IF moved_p IS NOT NULL THEN  -- moved lanes, and queued ones among them, from the rows
        PERFORM botkit_refresh_due_v1(
            array_cat(moved_p, ARRAY(SELECT _p[k] FROM unnest(queued) AS k)),
            array_cat(moved_w, ARRAY(SELECT _w[k] FROM unnest(queued) AS k)));
    ELSIF queued IS NOT NULL THEN  -- due now, unless a lane's first send waits already
        INSERT INTO send_lanes AS s (phone_number_id, wa_id, send_due)
        SELECT _p[k], _w[k], _now FROM unnest(queued) AS k ORDER BY _p[k], _w[k]
        ON CONFLICT (phone_number_id, wa_id) DO UPDATE
        SET send_due = coalesce(s.send_due, excluded.send_due);
    END IF;
    RETURN QUERY
    SELECT o.k, 1 + CASE WHEN o.waiting THEN 2 ELSE 0 END
        + CASE WHEN moved_p IS NOT NULL OR o.k = ANY(coalesce(queued, '{{}}')) THEN 4 ELSE 0 END
    FROM unnest(owned, waiting) AS o(k, waiting);
END
$fn$;

-- Claims up to _limit lanes whose first pending send is due, earliest first, and returns
-- their next sends (one per row; a lane with none has one row of NULL sends), each with the
-- lane's window and position.
CREATE OR REPLACE FUNCTION botkit_claim_sends_v1(
    _token text, _until float8, _now float8, _limit integer
) RETURNS TABLE (
    phone_number_id text, wa_id text, last_inbound_at float8, inbound_seq bigint,
    closed_seq bigint, lane_position bigint, seq bigint, idempotency_key text, type text,
    payload text, attempts integer, when_closed text, fallback text, media_id text
) LANGUAGE plpgsql AS $fn$
DECLARE
    ps text[]; ws text[];
BEGIN
    -- due and free (index send_lanes_free), and due with a claim that ran out
    -- (send_lanes_claimed), earliest first
    WITH free AS (
        SELECT s.phone_number_id, s.wa_id, s.send_due FROM send_lanes s
        WHERE s.send_due IS NOT NULL AND s.send_due <= _now AND s.send_token IS NULL
        ORDER BY s.send_due, s.phone_number_id, s.wa_id LIMIT _limit
        FOR UPDATE SKIP LOCKED
    ), lapsed AS (
        SELECT s.phone_number_id, s.wa_id, s.send_due FROM send_lanes s
        WHERE s.send_token IS NOT NULL AND s.send_until <= _now AND s.send_due <= _now
        ORDER BY s.send_until LIMIT _limit
        FOR UPDATE SKIP LOCKED
    ), c AS (
        SELECT * FROM (SELECT * FROM free UNION ALL SELECT * FROM lapsed) AS x
        ORDER BY x.send_due, x.phone_number_id, x.wa_id LIMIT _limit
    ), claimed AS (
        UPDATE send_lanes AS s SET send_token = _token, send_until = _until
        FROM c WHERE s.phone_number_id = c.phone_number_id AND s.wa_id = c.wa_id
        RETURNING s.phone_number_id, s.wa_id, s.send_due
    )
    SELECT array_agg(x.phone_number_id ORDER BY x.send_due, x.phone_number_id, x.wa_id),
        array_agg(x.wa_id ORDER BY x.send_due, x.phone_number_id, x.wa_id)
    INTO ps, ws FROM claimed x;
    IF ps IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT v.p, v.w, l.last_inbound_at, coalesce(l.inbound_seq, 0), l.closed_seq,
        coalesce(l.last_seq, 0), o.seq, o.idempotency_key, o.type, o.payload, o.attempts,
        o.when_closed, o.fallback, o.media_id
    FROM unnest(ps, ws) WITH ORDINALITY AS v(p, w, k)
    LEFT JOIN lanes l ON l.phone_number_id = v.p AND l.wa_id = v.w
    LEFT JOIN LATERAL (
        SELECT * FROM outbox x WHERE x.phone_number_id = v.p AND x.wa_id = v.w
        AND x.status = 'pending' ORDER BY x.seq LIMIT {LANE_ITEMS}
    ) AS o ON true
    ORDER BY v.k, o.seq;
END
$fn$;

-- Records the delivery attempts of several lanes (a group commit), each if its token still
-- holds the lane's sends, and frees those lanes. Lane k's values are at index k of the lane
-- arrays; each result names its lane's index, and _fall_back per result is NULL, 'fallback'
-- or 'hold'. Returns the indexes of the lanes written (the others' claims were lost).
CREATE OR REPLACE FUNCTION botkit_record_v1(
    _p text[], _w text[], _token text[], _position bigint[], _closed boolean[], _now float8,
    _lane integer[], _seqs bigint[], _statuses text[], _attempts integer[], _ids text[],
    _errors text[], _retry_in float8[], _media text[], _fall_back text[]
) RETURNS TABLE (lane integer) LANGUAGE plpgsql AS $fn$
DECLARE
    owned integer[];
    late text[];
    moved_p text[]; moved_w text[];
BEGIN
    -- the batch's lanes first (the lock order: lanes, send_lanes, outbox rows), in key order:
    -- a completion of the same user (a status that refuses one of these sends, a message that
    -- releases held ones, a window that opens) runs wholly before or after this record, and
    -- each sees what the other wrote
    PERFORM 1 FROM lanes l WHERE (l.phone_number_id, l.wa_id) IN (SELECT * FROM unnest(_p, _w))
        ORDER BY l.phone_number_id, l.wa_id FOR UPDATE;
    -- the lanes whose sends each token still holds, locked in key order
    SELECT array_agg(x.k) INTO owned FROM (
        SELECT v.k::integer AS k FROM send_lanes s
        JOIN unnest(_p, _w, _token) WITH ORDINALITY AS v(p, w, token, k)
            ON s.phone_number_id = v.p AND s.wa_id = v.w AND s.send_token = v.token
        ORDER BY s.phone_number_id, s.wa_id FOR UPDATE OF s
    ) AS x;
    IF owned IS NULL THEN
        RETURN;
    END IF;
    -- a 403 closes the window as of the claim
    UPDATE lanes AS l SET closed_seq = greatest(l.closed_seq, _position[k])
    FROM unnest(owned) AS k
    WHERE _closed[k] AND l.phone_number_id = _p[k] AND l.wa_id = _w[k];
    UPDATE outbox AS o SET status = v.status, attempts = v.attempts,
        provider_message_id = v.id, error = v.error,
        next_attempt_at = CASE WHEN v.retry_in IS NULL THEN o.next_attempt_at
            ELSE _now + v.retry_in END,
        sent_at = CASE WHEN v.status IN ('sent', 'failed') THEN _now END, media_id = v.media
    FROM unnest(_lane, _seqs, _statuses, _attempts, _ids, _errors, _retry_in, _media,
        _fall_back) AS v(lane, seq, status, attempts, id, error, retry_in, media, fall_back)
    WHERE v.fall_back IS NULL AND v.lane = ANY(owned) AND o.seq = v.seq
        AND o.phone_number_id = _p[v.lane] AND o.wa_id = _w[v.lane];
    UPDATE outbox AS o SET instead_of = o.type, type = o.fallback::json ->> 'type',
        payload = (o.fallback::json -> 'payload')::text,
        idempotency_key = o.idempotency_key || '-fb', when_closed = 'fail', fallback = NULL,
        status = 'pending', attempts = 0, next_attempt_at = _now, provider_message_id = NULL,
        error = v.error, sent_at = NULL
    FROM unnest(_lane, _seqs, _errors, _fall_back) AS v(lane, seq, error, fall_back)
    WHERE v.fall_back = 'fallback' AND v.lane = ANY(owned) AND o.seq = v.seq
        AND o.phone_number_id = _p[v.lane] AND o.wa_id = _w[v.lane];
    UPDATE outbox AS o SET status = 'held', idempotency_key = o.idempotency_key || '-held',
        provider_message_id = NULL, error = v.error, sent_at = NULL
    FROM unnest(_lane, _seqs, _errors, _fall_back) AS v(lane, seq, error, fall_back)
    WHERE v.fall_back = 'hold' AND v.lane = ANY(owned) AND o.seq = v.seq
        AND o.phone_number_id = _p[v.lane] AND o.wa_id = _w[v.lane];
    -- refusals stored before their send's result: applied now
    WITH gone AS (
        DELETE FROM refusals WHERE message_id IN (
            SELECT v.id FROM unnest(_lane, _ids) AS v(lane, id)
            WHERE v.lane = ANY(owned) AND v.id IS NOT NULL)
        RETURNING message_id
    ) SELECT array_agg(message_id) INTO late FROM gone;
    IF late IS NOT NULL THEN
        SELECT array_agg(r.p), array_agg(r.w) INTO moved_p, moved_w
        FROM (SELECT DISTINCT x.p, x.w FROM botkit_refuse_v1(late, _now, false) AS x) AS r;
    END IF;
    -- held sends go out if the window is open now: of the lanes moved, and of those that
    -- held a send on a window read at claim time (the user may have written since)
    UPDATE outbox AS o SET status = 'pending', next_attempt_at = _now FROM lanes l
    WHERE o.status = 'held' AND l.phone_number_id = o.phone_number_id AND l.wa_id = o.wa_id
        AND (o.phone_number_id, o.wa_id) IN (
            SELECT * FROM unnest(coalesce(moved_p, '{{}}'), coalesce(moved_w, '{{}}'))
            UNION SELECT _p[v.lane], _w[v.lane] FROM unnest(_lane, _fall_back) AS v(lane, f)
                WHERE v.f = 'hold' AND v.lane = ANY(owned))
        AND l.last_inbound_at + {WINDOW_SECONDS} > _now
        AND (l.closed_seq IS NULL OR l.closed_seq < l.inbound_seq);
    UPDATE send_lanes AS s SET send_token = NULL, send_until = NULL,
        send_due = (SELECT o.next_attempt_at FROM outbox o
            WHERE o.phone_number_id = s.phone_number_id AND o.wa_id = s.wa_id
            AND o.status = 'pending' ORDER BY o.seq LIMIT 1)
    FROM unnest(owned) AS k WHERE s.phone_number_id = _p[k] AND s.wa_id = _w[k];
    IF moved_p IS NOT NULL THEN  -- the other lanes whose sends moved
        SELECT array_agg(m.p), array_agg(m.w) INTO moved_p, moved_w
        FROM unnest(moved_p, moved_w) AS m(p, w)
        WHERE (m.p, m.w) NOT IN (SELECT _p[k], _w[k] FROM unnest(owned) AS k);
        IF moved_p IS NOT NULL THEN
            PERFORM botkit_refresh_due_v1(moved_p, moved_w);
        END IF;
    END IF;
    RETURN QUERY SELECT unnest(owned);
END
$fn$;
"""

# schema step 4: the add without the notice in its transaction (v1 stays for processes of
# the version before, during a rolling deploy)
ADD_V2 = _add_function("botkit_add_v2", notify=False)

# schema step 6: the claim of sends with their causes (v1 stays, as above)
CLAIM_SENDS_V2 = f"""
-- Claims up to _limit lanes whose first pending send is due, earliest first, and returns
-- their next sends (one per row; a lane with none has one row of NULL sends), each with the
-- lane's window and position. v2 returns each send's cause too (the event id its log line
-- names); v1 stays for the processes of an older botkit during a rolling deploy.
CREATE OR REPLACE FUNCTION botkit_claim_sends_v2(
    _token text, _until float8, _now float8, _limit integer
) RETURNS TABLE (
    phone_number_id text, wa_id text, last_inbound_at float8, inbound_seq bigint,
    closed_seq bigint, lane_position bigint, seq bigint, idempotency_key text, type text,
    payload text, attempts integer, when_closed text, fallback text, media_id text,
    cause text
) LANGUAGE plpgsql AS $fn$
DECLARE
    ps text[]; ws text[];
BEGIN
    -- due and free (index send_lanes_free), and due with a claim that ran out
    -- (send_lanes_claimed), earliest first
    WITH free AS (
        SELECT s.phone_number_id, s.wa_id, s.send_due FROM send_lanes s
        WHERE s.send_due IS NOT NULL AND s.send_due <= _now AND s.send_token IS NULL
        ORDER BY s.send_due, s.phone_number_id, s.wa_id LIMIT _limit
        FOR UPDATE SKIP LOCKED
    ), lapsed AS (
        SELECT s.phone_number_id, s.wa_id, s.send_due FROM send_lanes s
        WHERE s.send_token IS NOT NULL AND s.send_until <= _now AND s.send_due <= _now
        ORDER BY s.send_until LIMIT _limit
        FOR UPDATE SKIP LOCKED
    ), c AS (
        SELECT * FROM (SELECT * FROM free UNION ALL SELECT * FROM lapsed) AS x
        ORDER BY x.send_due, x.phone_number_id, x.wa_id LIMIT _limit
    ), claimed AS (
        UPDATE send_lanes AS s SET send_token = _token, send_until = _until
        FROM c WHERE s.phone_number_id = c.phone_number_id AND s.wa_id = c.wa_id
        RETURNING s.phone_number_id, s.wa_id, s.send_due
    )
    SELECT array_agg(x.phone_number_id ORDER BY x.send_due, x.phone_number_id, x.wa_id),
        array_agg(x.wa_id ORDER BY x.send_due, x.phone_number_id, x.wa_id)
    INTO ps, ws FROM claimed x;
    IF ps IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT v.p, v.w, l.last_inbound_at, coalesce(l.inbound_seq, 0), l.closed_seq,
        coalesce(l.last_seq, 0), o.seq, o.idempotency_key, o.type, o.payload, o.attempts,
        o.when_closed, o.fallback, o.media_id, o.cause
    FROM unnest(ps, ws) WITH ORDINALITY AS v(p, w, k)
    LEFT JOIN lanes l ON l.phone_number_id = v.p AND l.wa_id = v.w
    LEFT JOIN LATERAL (
        SELECT * FROM outbox x WHERE x.phone_number_id = v.p AND x.wa_id = v.w
        AND x.status = 'pending' ORDER BY x.seq LIMIT {LANE_ITEMS}
    ) AS o ON true
    ORDER BY v.k, o.seq;
END
$fn$;
"""
