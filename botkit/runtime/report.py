"""The workers' structured log lines: one per event processed, one per send attempt.

An operator follows one inbound event by its ids: the `turn` line names the event, the
message it carried (or the outbound message a delivery status is about) and the idempotency
keys of the sends it queued; each `send` line names its key, the event that caused it and
the provider's message id; the `turn` line of a delivery status names that message id again.
docs/logging.md lists every field.

A turn's lines are written once the turn is committed (a line for a turn that was rolled
back, and runs again, would be a lie); a send's as soon as its attempt ends (the request went
out whatever the store records after). Each line is one call, skipped at once when its level
is off, so that logging costs a turn next to nothing (bench/webhook.py).
"""

from __future__ import annotations

import logging

from botkit.logsafe import Phone, SafeFormatter, direct, fields
from botkit.provider.sender import Exchange
from botkit.runtime.turn import Turn
from botkit.store.base import FAILED, HELD, PENDING, SENT, InboxLane, OutboxItem, OutboxLane

_OUTCOMES = {SENT: "sent", HELD: "held", FAILED: "failed"}


def log_turn(log: logging.Logger, conversation: str, lane: InboxLane, turn: Turn) -> None:
    """One `turn` line per event the committed `turn` ended: INFO, or ERROR for a failed
    event (with the handler's traceback when it raised)."""
    for report in turn.reports:
        level = logging.ERROR if report.outcome == FAILED else logging.INFO
        if not log.isEnabledFor(level):
            continue
        values: dict[str, object] = dict(
            log="turn",
            event_id=report.event_id,
            kind=report.kind,
            conversation=conversation,
            business=lane.phone_number_id,
            user=Phone(lane.wa_id),
            message_id=report.message_id,
            delivery=report.delivery,
            state_before=report.state_before,
            state_after=report.state_after,
            handler=report.handler,
            sent=len(report.sent),
            sent_types=list(report.sent),
            send_keys=list(report.keys),
            duration_ms=round(report.duration * 1000, 2),
            outcome=report.outcome,
            error=report.error,
            attempt=lane.attempts,
        )
        error = turn.errors.get(report.event_id)
        _emit(log, level, "turn %s", report.outcome, values, error)


def log_send(
    log: logging.Logger,
    lane: OutboxLane,
    item: OutboxItem,
    status: str,
    *,
    exchange: Exchange | None = None,
    message_id: str | None = None,
    error: BaseException | str | None = None,
    retry_in: float | None = None,
    fallback: str | None = None,
    level: int = logging.INFO,
    traceback: bool = False,
) -> None:
    """One `send` line for an attempt at `item` (or a send the closed window stopped before
    any request): its outcome (sent, retry, failed, held, fallback), the HTTP status and the
    provider's error code and message, the attempt's number and latency; with `traceback`,
    the error's (an error nothing expected)."""
    if not log.isEnabledFor(level):
        return
    outcome = fallback or ("retry" if status == PENDING else _OUTCOMES.get(status, status))
    latency = None if exchange is None or exchange.latency is None else exchange.latency * 1000
    values: dict[str, object] = dict(
        log="send",
        key=item.idempotency_key,
        event_id=item.cause,
        type=item.type,
        business=lane.phone_number_id,
        user=Phone(lane.wa_id),
        attempt=item.attempts + 1,
        outcome=outcome,
        http_status=None if exchange is None else exchange.status,
        provider_code=getattr(error, "code", None),
        error=None if error is None else str(error),
        message_id=message_id,
        latency_ms=None if latency is None else round(latency, 2),
        retry_in=None if retry_in is None else round(retry_in, 3),
    )
    exc_info = error if traceback and isinstance(error, BaseException) else None
    _emit(log, level, "send %s", outcome, values, exc_info)


def _emit(
    log: logging.Logger,
    level: int,
    message: str,
    arg: str,
    values: dict[str, object],
    error: BaseException | None,
) -> None:
    """`log.log(level, message, arg, exc_info=error, extra=values)` without the search of
    the stack for the caller's file and line (a fifth of a line's cost; the lines of this
    module say where they come from by their `log` field); where botkit's own log is the only
    one to see it, without a LogRecord at all (logsafe.direct: half the cost again)."""
    if error is None:
        sink = direct(log, level)
        formatter = None if sink is None else sink.formatter
        if sink is not None and isinstance(formatter, SafeFormatter):  # botkit's own log alone
            text = message % arg
            line = formatter.fields_line(logging.getLevelName(level), log.name, text, values)
            sink.write_line(line)
            return
    exc_info = None if error is None else (type(error), error, error.__traceback__)
    log.handle(
        log.makeRecord(
            log.name, level, __file__, 0, message, (arg,), exc_info, None, fields(**values)
        )
    )


__all__ = ["log_send", "log_turn"]
