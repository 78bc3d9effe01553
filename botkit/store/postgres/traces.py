"""The PostgreSQL store's trace contexts: a schema step that adds `traceparent` to the inbox
and the outbox, and the next version of each function that writes or claims them.

Each new function is the one before it with the column added (`_patched` applies each edit
exactly once, or fails at import: an edit that no longer fits its function is a bug found in
the first test, not a function silently left without the column). The functions before stay
for processes of the older botkit during a rolling deploy (functions.py says why).
"""

from __future__ import annotations

from botkit.store.postgres.functions import CLAIM_SENDS_V2, FUNCTIONS, _add_function

ADD = "botkit_add_v3"
CLAIM_EVENTS = "botkit_claim_events_v2"
COMPLETE = "botkit_complete_v2"
CLAIM_SENDS = "botkit_claim_sends_v3"


def _patched(sql: str, *edits: tuple[str, str]) -> str:
    """`sql` with each (old, new) replaced; old must occur exactly once."""
    for old, new in edits:
        if sql.count(old) != 1:
            raise RuntimeError(f"traces.py: {old!r} occurs {sql.count(old)} times, not once")
        sql = sql.replace(old, new)
    return sql


def _function(name: str) -> str:
    """The CREATE statement of function `name` in functions.py's FUNCTIONS."""
    start = FUNCTIONS.index(f"CREATE OR REPLACE FUNCTION {name}(")
    end = FUNCTIONS.index("$fn$;\n", start) + len("$fn$;\n")
    return FUNCTIONS[start:end]


_COLUMNS = """
ALTER TABLE inbox ADD COLUMN IF NOT EXISTS traceparent text;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
"""

_ADD = _patched(
    _add_function(ADD, notify=False),
    ("_envelopes text[], _now float8", "_envelopes text[], _now float8, _traces text[]"),
    ("_ws, _envelopes)", "_ws, _envelopes, _traces)"),
    ("p, w, envelope, n)", "p, w, envelope, trace, n)"),
    ("envelope,\n            received_at)", "envelope,\n            received_at, traceparent)"),
    ("v.envelope, _now FROM v", "v.envelope, _now, v.trace FROM v"),
)

_CLAIM_EVENTS = _patched(
    _function("botkit_claim_events_v1"),
    ("botkit_claim_events_v1(", f"{CLAIM_EVENTS}("),
    ("data text, version text\n)", "data text, version text, trace text\n)"),
    ("s.data, s.version\n", "s.data, s.version, i.traceparent\n"),
    ("x.kind, x.envelope FROM inbox x", "x.kind, x.envelope, x.traceparent FROM inbox x"),
)

_COMPLETE = _patched(
    _function("botkit_complete_v1"),
    ("botkit_complete_v1(", f"{COMPLETE}("),
    ("_s_instead text[],\n", "_s_instead text[], _s_trace text[],\n"),
    ("status, when_closed, fallback, instead_of, next_attempt_at, created_at)",
     "status, when_closed, fallback, instead_of, next_attempt_at, created_at, traceparent)"),
    ("v.fallback, v.instead_of, _now, _now\n", "v.fallback, v.instead_of, _now, _now, v.trace\n"),
    ("_s_fallback, _s_instead) WITH ORDINALITY", "_s_fallback, _s_instead, _s_trace) WITH ORDINALITY"),
    ("fallback, instead_of, n)", "fallback, instead_of, trace, n)"),
)  # fmt: skip

_CLAIM_SENDS = _patched(
    CLAIM_SENDS_V2,
    ("botkit_claim_sends_v2(", f"{CLAIM_SENDS}("),
    ("media_id text,\n    cause text\n)", "media_id text,\n    cause text, trace text\n)"),
    ("o.media_id, o.cause\n", "o.media_id, o.cause, o.traceparent\n"),
)

# the schema step (schema.py's STEPS): the columns, then the functions that use them
TRACES = "\n".join((_COLUMNS, _ADD, _CLAIM_EVENTS, _COMPLETE, _CLAIM_SENDS))

__all__ = ["ADD", "CLAIM_EVENTS", "CLAIM_SENDS", "COMPLETE", "TRACES"]
