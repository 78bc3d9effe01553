"""What the workers' spans say (botkit.tracing makes them): a turn's, one per event it ran,
and a send attempt's. Only called when traces are on.

A turn's spans are recorded once it is taken, with the times its events ran, as children of
the inbox spans their events were stored under; the sends a turn queued carry their event's
turn span (its traceparent) to the outbox row, so that each attempt at them, in this worker
or another, later, is that span's child. Users' numbers are masked (botkit.logsafe's rule).
"""

from __future__ import annotations

from dataclasses import replace

from botkit.provider.sender import Exchange
from botkit.runtime.turn import EventReport, Turn
from botkit.store.base import FAILED, PENDING, InboxLane, OutboxItem, OutboxLane, SendOutcome
from botkit.tracing import Attributes, Tracing, user


def traced_turn(
    tracing: Tracing, conversation: str, lane: InboxLane, turn: Turn, started_ns: int
) -> Turn:
    """Records a `botkit.turn` span per event of `turn` (taken from `started_ns`, ns since the
    epoch); returns `turn` with each send carrying the traceparent of its event's span."""
    stored = {item.event_id: item.trace for item in lane.events}
    spans: dict[str, str | None] = {}
    at = started_ns
    for report in turn.reports:
        end = at + int(report.duration * 1e9)
        attributes = turn_attributes(conversation, lane, report)
        parent = stored.get(report.event_id)
        failed = report.outcome == FAILED
        spans[report.event_id] = tracing.turn(parent, at, end, attributes, failed)
        at = end
    outcome = turn.outcome
    if not outcome.sends:
        return turn
    sends = tuple(replace(send, trace=spans.get(send.cause)) for send in outcome.sends)
    return replace(turn, outcome=replace(outcome, sends=sends))


def turn_attributes(conversation: str, lane: InboxLane, report: EventReport) -> Attributes:
    """A turn span's attributes: the event, the user (masked), states, handler, outcome."""
    values: dict[str, str | int | None] = {
        "botkit.event_id": report.event_id,
        "botkit.event.kind": report.kind,
        "botkit.conversation": conversation,
        "botkit.business": lane.phone_number_id,
        "botkit.user": user(lane.wa_id),
        "botkit.message_id": report.message_id,
        "botkit.delivery": report.delivery,
        "botkit.state_before": report.state_before,
        "botkit.state_after": report.state_after,
        "botkit.handler": report.handler,
        "botkit.sent": len(report.sent),
        "botkit.outcome": report.outcome,
        "botkit.error": report.error,
        "botkit.attempt": lane.attempts,
    }
    return {name: value for name, value in values.items() if value is not None}


def send_attributes(lane: OutboxLane, item: OutboxItem) -> Attributes:
    """A send span's attributes as the attempt starts: the send, its cause, the user (masked)."""
    values: dict[str, str | int | None] = {
        "botkit.idempotency_key": item.idempotency_key,
        "botkit.message.type": item.type,
        "botkit.event_id": item.cause,
        "botkit.business": lane.phone_number_id,
        "botkit.user": user(lane.wa_id),
        "botkit.attempt": item.attempts + 1,
    }
    return {name: value for name, value in values.items() if value is not None}


def send_outcome(outcome: SendOutcome, exchange: Exchange) -> Attributes:
    """A send span's attributes as the attempt ends: outcome, HTTP status, provider's error."""
    result = outcome.fall_back or ("retry" if outcome.status == PENDING else outcome.status)
    values: dict[str, str | int | float | None] = {
        "botkit.outcome": result,
        "http.response.status_code": exchange.status,
        "botkit.provider_code": exchange.code,
        "botkit.provider_message_id": outcome.provider_message_id,
        "botkit.error": outcome.error,
        "botkit.retry_in": outcome.retry_in,
    }
    return {name: value for name, value in values.items() if value is not None}


__all__ = ["send_attributes", "send_outcome", "traced_turn", "turn_attributes"]
