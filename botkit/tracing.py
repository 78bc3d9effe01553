"""Traces through OpenTelemetry (the extra botkit[otel]): the only importer of opentelemetry.

One inbound event is one trace: the webhook request (`botkit.webhook`, continuing the
provider's `traceparent` header if it sent one), the event stored in the inbox
(`botkit.inbox`), its turn in a worker (`botkit.turn`), and each attempt at each message the
turn sent (`botkit.send`), each span the child of the one before. The workers may run in
another process, later: the trace crosses over in the store, as a W3C traceparent on the
inbox row (the inbox span's) and on the outbox row (the turn span's).

A runtime holds a `Tracing`, or None when traces are off; every hook in the hot paths is
`if tracing is not None`, so that without OpenTelemetry (or with BOTKIT_TRACING=off) traces
cost nothing (bench/tracing_cost.py). `Tracing.configured(mode)` decides, once per runtime:
`off`; `on` (OpenTelemetry must be installed); `auto` (the default): on when OpenTelemetry is
installed and set up, by the application (a TracerProvider set as the global one) or by its
environment (OTEL_TRACES_EXPORTER or an OTLP endpoint). Only opentelemetry-api is used: the
SDK and its exporters are the deployment's choice. docs/tracing.md has the spans' attributes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botkit.config import TRACING_MODES
from botkit.exceptions import ConfigError
from botkit.logsafe import masked_phone

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

log = logging.getLogger(__name__)

NAME = "botkit"

# What says OpenTelemetry is configured by the environment (auto mode): an exporter or an
# endpoint for traces. OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.
_ENVIRONMENT = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")  # fmt: skip

Attributes = Mapping[str, str | int | float | bool]


def installed() -> bool:
    """Whether opentelemetry-api can be imported."""
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


class Tracing:
    """The spans of one runtime, made with an OpenTelemetry tracer."""

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def of(cls, provider: TracerProvider) -> Tracing:
        """Spans through `provider` rather than the global one (tests; an application that
        keeps its own)."""
        return cls(provider.get_tracer(NAME))

    @classmethod
    def configured(
        cls, mode: str = "auto", environ: Mapping[str, str] = os.environ
    ) -> Tracing | None:
        """The runtime's tracing as BOTKIT_TRACING `mode` says (auto, on or off), or None
        when off; ConfigError for `on` without OpenTelemetry installed."""
        if mode not in TRACING_MODES:
            choices = ", ".join(TRACING_MODES)
            raise ConfigError([f"BOTKIT_TRACING must be one of {choices}; not {mode!r}"])
        if mode == "off":
            return None
        if not installed():
            if mode == "on":
                raise ConfigError(
                    [
                        "BOTKIT_TRACING=on, but OpenTelemetry is not installed: install "
                        "botkit[otel] (pip install 'botkit[otel]') or set BOTKIT_TRACING=off"
                    ]
                )
            return None
        from opentelemetry import trace

        if mode == "auto" and not _set_up(environ):
            return None
        log.info("traces on (BOTKIT_TRACING=%s): spans go to OpenTelemetry's TracerProvider", mode)
        return cls(trace.get_tracer(NAME))

    # -- the web process ------------------------------------------------------------------------

    @contextlib.contextmanager
    def webhook(self, traceparent: str | None, tracestate: str | None) -> Iterator[WebhookSpan]:
        """The span of one POST /webhook, current for the block: the child of the request's
        `traceparent` header, if it has a valid one."""
        from opentelemetry.trace import SpanKind

        parent = self._extract(traceparent, tracestate)
        attributes = {"http.request.method": "POST", "url.path": "/webhook"}
        with self._tracer.start_as_current_span(
            "botkit.webhook", parent, SpanKind.SERVER, attributes
        ) as span:
            yield WebhookSpan(span)

    @contextlib.contextmanager
    def inbox(self, events: list[tuple[str, str]]) -> Iterator[InboxSpans]:
        """A span per event being stored, (event id, kind) each, children of the current span
        (the webhook's, or a trigger request's): their traceparents go on the inbox rows."""
        from opentelemetry.trace import SpanKind

        spans = [
            self._tracer.start_span(
                "botkit.inbox",
                kind=SpanKind.PRODUCER,
                attributes={"botkit.event_id": event_id, "botkit.event.kind": kind},
            )
            for event_id, kind in events
        ]
        stored = InboxSpans(spans, [self._inject(span) for span in spans])
        try:
            yield stored
        except BaseException as exc:
            for span in spans:
                _failed(span, exc)
            raise
        finally:
            for span in spans:
                span.end()

    # -- the workers ----------------------------------------------------------------------------

    def turn(
        self, parent: str | None, start_ns: int, end_ns: int, attributes: Attributes, failed: bool
    ) -> str | None:
        """Records the span of one event's turn (already run: from `start_ns` to `end_ns`,
        nanoseconds since the epoch), the child of the inbox span `parent` (a traceparent);
        returns its own traceparent, for the sends it queued."""
        from opentelemetry.trace import SpanKind, StatusCode

        span = self._tracer.start_span(
            "botkit.turn", self._extract(parent), SpanKind.CONSUMER, attributes, start_time=start_ns
        )
        if failed:
            span.set_status(StatusCode.ERROR, str(attributes.get("botkit.error", "")))
        span.end(end_ns)
        return self._inject(span)

    @contextlib.contextmanager
    def send(self, parent: str | None, attributes: Attributes) -> Iterator[SendSpan]:
        """The span of one attempt at a send, current for the block: the child of the turn
        that queued it (`parent`, the traceparent stored with the send)."""
        from opentelemetry.trace import SpanKind

        with self._tracer.start_as_current_span(
            "botkit.send", self._extract(parent), SpanKind.CLIENT, attributes
        ) as span:
            yield SendSpan(span)

    # -- W3C trace context --------------------------------------------------------------------

    def _extract(self, traceparent: str | None, tracestate: str | None = None) -> Context | None:
        """The context a traceparent names (None: a new trace)."""
        if not traceparent:
            return None
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        return self._propagator.extract(carrier)

    def _inject(self, span: Span) -> str | None:
        """The traceparent of `span` (None when it records nothing and has no valid id)."""
        from opentelemetry.trace import set_span_in_context

        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, set_span_in_context(span))
        return carrier.get("traceparent")


class WebhookSpan:
    """The webhook request's span: what it answered."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def answered(self, status: int, accepted: int = 0, duplicates: int = 0) -> None:
        """The response's status and, for a 200, how many events were new and duplicates."""
        from opentelemetry.trace import StatusCode

        self.span.set_attribute("http.response.status_code", status)
        if status == 200:
            self.span.set_attribute("botkit.accepted", accepted)
            self.span.set_attribute("botkit.duplicates", duplicates)
        elif status >= 500:
            self.span.set_status(StatusCode.ERROR)


class InboxSpans:
    """The spans of events being stored, and the traceparents to store with them."""

    __slots__ = ("spans", "traceparents")

    def __init__(self, spans: list[Span], traceparents: list[str | None]) -> None:
        self.spans = spans
        self.traceparents = traceparents

    def stored(self, flags: list[bool]) -> None:
        """Which events were new (False: a duplicate, not stored again)."""
        for span, new in zip(self.spans, flags, strict=True):
            span.set_attribute("botkit.duplicate", not new)


class SendSpan:
    """A send attempt's span: how it ended."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def ended(self, attributes: Attributes, failed: bool) -> None:
        """The attempt's outcome and details; `failed`: the send failed for good."""
        from opentelemetry.trace import StatusCode

        self.span.set_attributes(attributes)
        if failed:
            self.span.set_status(StatusCode.ERROR, str(attributes.get("botkit.error", "")))


def user(wa_id: str) -> str:
    """A user's number as a span shows it: masked (botkit.logsafe's rule), never in clear."""
    return masked_phone(wa_id)


def _failed(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import StatusCode

    span.record_exception(exc)
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


def _set_up(environ: Mapping[str, str]) -> bool:
    """Whether OpenTelemetry is configured: a global TracerProvider set by the application
    (or by opentelemetry-instrument), or an exporter named by the environment."""
    from opentelemetry import trace

    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    provider: Any = trace.get_tracer_provider()
    if not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return True
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENVIRONMENT)


__all__ = ["InboxSpans", "SendSpan", "Tracing", "WebhookSpan", "installed", "user"]
