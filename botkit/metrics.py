"""Prometheus metrics: every metric botkit keeps, and how a process serves them (the only
importer of prometheus_client).

A `Metrics` belongs to a `Runtime` (one per process in a deployment; one per simulator in
tests). Counters and histograms are bumped on the hot paths through pre-bound label children
(a dict lookup and a lock, no formatting); gauges of the store (pending work and its age) are
read when scraped, by the web process (botkit.web.metrics). Labels are low-cardinality only:
never a phone number, a wa_id, a message id or an event id.

`botkit run` runs a web process and a worker child: `multiprocess()` gives them a private
directory (PROMETHEUS_MULTIPROC_DIR, made for the run and removed at its end) where each
process keeps its figures in a file of its own, so that one scrape of the web process adds
up both, and a worker that died and was restarted keeps counting from what it had (its dead
file stays). Without that directory (tests, the simulator, `botkit dev`) figures are kept in
this process's memory, in the runtime's own registry. `Metrics.off()` counts nothing at all
(BOTKIT_METRICS=off).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, Protocol, TypeVar, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import (
    multiprocess as _multiprocess,
)
from prometheus_client import (
    values as _values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. The acknowledgement is a store commit (milliseconds); a turn runs handlers; a send is
# a request to the provider; a rate-limit wait is up to a second or so under the provider's limits.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TURN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Label values that come from code (conversation, state, handler, message type) are few; those
# that come from the provider (a delivery status, an error code) are checked, so that a
# misbehaving provider cannot grow a series per value.
MAX_VALUES = 200  # distinct label combinations of one metric; past it, "other"
OTHER = "other"
_CODE = re.compile(r"[0-9]{1,7}")
DELIVERY_STATUSES = frozenset({"accepted", "sent", "delivered", "read", "failed", "deleted"})


class _Counts(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Observes(Protocol):
    def observe(self, amount: float) -> None: ...


class _Nothing:
    """A counter or histogram that keeps nothing (metrics off)."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        """Counts nothing."""

    def observe(self, amount: float) -> None:
        """Keeps nothing."""


NOTHING = _Nothing()


C = TypeVar("C", _Counts, _Observes)


class _Family(Generic[C]):
    """A labelled metric's children, bound once per label values and kept (at most MAX_VALUES);
    without a metric (metrics off), every child keeps nothing."""

    __slots__ = ("_bound", "_labels")
    _labels: Callable[..., C] | None
    _bound: dict[tuple[str, ...], C]

    def __init__(self, labels: Callable[..., C] | None) -> None:
        self._labels = labels
        self._bound = {}

    def child(self, *values: str) -> C:
        """The child for these label values (made the first time)."""
        found = self._bound.get(values)
        if found is not None:
            return found
        if self._labels is None:
            return cast(C, NOTHING)
        if len(self._bound) >= MAX_VALUES:
            values = tuple(OTHER for _ in values)
            found = self._bound.get(values)
            if found is not None:
                return found
        made = self._bound[values] = self._labels(*values)
        return made


WEBHOOK_OUTCOMES = ("accepted", "duplicate", "400", "401", "413", "500", "503")
SEND_RETRY_REASONS = ("5xx", "network", "429")
FALLBACK_REASONS = ("closed_window", "403")


class Metrics:
    """Every metric one process keeps (see docs/operating.md for what each means)."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.multiprocess = enabled and multiprocess_directory() is not None
        # In multiprocess mode the figures go to this process's files and are read back from
        # them by whoever serves the scrape; in one process, from this registry.
        self.registry: CollectorRegistry | None = None
        if enabled and not self.multiprocess:
            self.registry = CollectorRegistry(auto_describe=True)
        self._webhooks = self._counter(
            "botkit_webhook_requests_total",
            "POST /webhook requests by outcome: accepted (new events stored), duplicate (all "
            "seen before), or the error status answered",
            ["outcome"],
        )
        self._webhook_events = self._counter(
            "botkit_webhook_events_total",
            "Events in acknowledged webhooks: accepted (new) or duplicate",
            ["outcome"],
        )
        self._ack = self._histogram(
            "botkit_webhook_ack_duration_seconds",
            "Time from a POST /webhook request to its answer (the events stored)",
            [],
            ACK_BUCKETS,
        )
        self._events = self._counter(
            "botkit_events_processed_total",
            "Inbox events whose turn was committed, by kind (message, status, trigger, timer, "
            "other) and outcome (done, failed, ignored)",
            ["kind", "outcome"],
        )
        self._turns = self._histogram(
            "botkit_turn_duration_seconds",
            "Time a user's turn took (their claimed events run through the handlers), by "
            "conversation and the state it started in",
            ["conversation", "state"],
            TURN_BUCKETS,
        )
        self._handler_errors = self._counter(
            "botkit_handler_errors_total",
            "Events a handler failed (raised, timed out, or left what cannot be stored), by "
            "conversation and handler",
            ["conversation", "handler"],
        )
        self._sends = self._counter(
            "botkit_sends_total",
            "Send attempts by message type and outcome: sent, failed, retry (5xx or network), "
            "rate_limited (429), fallback (its template goes instead), held",
            ["type", "outcome"],
        )
        self._send_seconds = self._histogram(
            "botkit_send_duration_seconds",
            "Time of one POST /messages request to the provider (not the rate-limit wait)",
            [],
            SEND_BUCKETS,
        )
        self._retries = self._counter(
            "botkit_send_retries_total",
            "Sends scheduled again, by reason: 5xx, network, 429",
            ["reason"],
        )
        self._ratelimit = self._histogram(
            "botkit_ratelimit_wait_seconds",
            "Time a request waited for the rate limiter (per number and per key) before going",
            [],
            WAIT_BUCKETS,
        )
        self._fallbacks = self._counter(
            "botkit_template_fallbacks_total",
            "Free-form sends replaced by their fallback template, by reason: closed_window "
            "(known before sending), 403 (the provider refused it)",
            ["reason"],
        )
        self._refusals = self._counter(
            "botkit_window_refusals_total",
            "Failed delivery statuses with error 131047 (re-engagement: the window was "
            "closed); each sends its message's fallback template, holds it, or fails it",
            [],
        )
        self._statuses = self._counter(
            "botkit_delivery_statuses_total",
            "Delivery statuses received, by status and provider error code (empty: none)",
            ["status", "code"],
        )
        self._restarts = self._counter(
            "botkit_worker_restarts_total",
            "Times the worker child of `botkit run` exited unasked and was started again",
            [],
        )
        for outcome in WEBHOOK_OUTCOMES:  # present from the start, at 0: rate() needs a start
            self._webhooks.child(outcome)
        for reason in SEND_RETRY_REASONS:
            self._retries.child(reason)
        for reason in FALLBACK_REASONS:
            self._fallbacks.child(reason)
        self._refusals.child()
        self._restarts.child()
        self._ack_child = self._ack.child()
        self._send_child = self._send_seconds.child()
        self._wait_child = self._ratelimit.child()

    @classmethod
    def off(cls) -> Metrics:
        """Metrics that keep nothing (BOTKIT_METRICS=off)."""
        return cls(enabled=False)

    def _counter(self, name: str, doc: str, labels: list[str]) -> _Family[_Counts]:
        if not self.enabled:
            return _Family(None)
        metric = Counter(name, doc, labels, registry=self.registry)
        return _Family(metric.labels if labels else lambda: metric)

    def _histogram(
        self, name: str, doc: str, labels: list[str], buckets: tuple[float, ...]
    ) -> _Family[_Observes]:
        if not self.enabled:
            return _Family(None)
        metric = Histogram(name, doc, labels, registry=self.registry, buckets=buckets)
        return _Family(metric.labels if labels else lambda: metric)

    # -- the webhook (web process) ------------------------------------------------------------

    def webhook(self, outcome: str, seconds: float, new: int = 0, duplicates: int = 0) -> None:
        """One POST /webhook answered: its outcome, how long it took, and its events."""
        self._webhooks.child(outcome).inc()
        self._ack_child.observe(seconds)
        if new:
            self._webhook_events.child("accepted").inc(new)
        if duplicates:
            self._webhook_events.child("duplicate").inc(duplicates)

    # -- the dispatcher (worker) --------------------------------------------------------------

    def turn(self, conversation: str, state: str, seconds: float) -> None:
        """A user's turn taken, starting in `state`."""
        self._turns.child(conversation, state).observe(seconds)

    def event(self, kind: str, outcome: str) -> None:
        """An event's outcome committed."""
        self._events.child(kind, outcome).inc()

    def handler_error(self, conversation: str, handler: str) -> None:
        """A handler failed its event."""
        self._handler_errors.child(conversation, handler).inc()

    def delivery_status(self, status: str, code: str | None) -> None:
        """A delivery status committed (`code`: the provider's first error code, if any)."""
        status = status if status in DELIVERY_STATUSES else OTHER
        code = "" if code is None else code if _CODE.fullmatch(code) else OTHER
        self._statuses.child(status, code).inc()

    def window_refusal(self) -> None:
        """A failed status said the window was closed (131047)."""
        self._refusals.child().inc()

    # -- the outbox and the sender (worker) ---------------------------------------------------

    def send(self, type: str, outcome: str) -> None:
        """A send attempt's outcome."""
        self._sends.child(type, outcome).inc()

    def retry(self, reason: str) -> None:
        """A send scheduled again: 5xx, network or 429."""
        self._retries.child(reason).inc()

    def fallback(self, reason: str) -> None:
        """A free-form send replaced by its template: closed_window or 403."""
        self._fallbacks.child(reason).inc()

    def send_seconds(self, seconds: float) -> None:
        """One request to the provider's POST /messages."""
        self._send_child.observe(seconds)

    def rate_limit_wait(self, seconds: float) -> None:
        """Time a request waited for the rate limiter."""
        self._wait_child.observe(seconds)

    # -- the supervisor (web process) ---------------------------------------------------------

    def worker_restarted(self) -> None:
        """The worker child exited unasked and is started again."""
        self._restarts.child().inc()

    # -- serving ------------------------------------------------------------------------------

    def render(self, gauges: list[Gauge]) -> bytes:
        """The scrape: this process's figures (and, in multiprocess mode, every process's of
        the directory, dead ones included), then `gauges` read for this scrape."""
        registry = CollectorRegistry(auto_describe=False)
        if self.multiprocess:
            _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        elif self.registry is not None:
            registry.register(_Forward(self.registry))
        registry.register(_Gauges(gauges))
        return generate_latest(registry)


class Gauge:
    """A gauge read at scrape time: name, help, and its samples (label values -> value)."""

    __slots__ = ("doc", "labels", "name", "samples")

    def __init__(
        self,
        name: str,
        doc: str,
        samples: dict[tuple[str, ...], float],
        labels: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.doc = doc
        self.samples = samples
        self.labels = labels


class _Gauges(Collector):
    def __init__(self, gauges: list[Gauge]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for gauge in self.gauges:
            family = GaugeMetricFamily(gauge.name, gauge.doc, labels=list(gauge.labels))
            for values, value in gauge.samples.items():
                family.add_metric(list(values), value)
            yield family


class _Forward(Collector):
    """Another registry's metrics, inside the scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


PREFIX = "botkit-metrics-"  # + the pid of the run that made it


def multiprocess_directory() -> str | None:
    """The directory processes share their figures through, if this process has one."""
    return os.environ.get(DIRECTORY_VARIABLE) or None


@contextlib.contextmanager
def multiprocess() -> Iterator[str]:
    """For the block, a fresh private directory where this process and the children it starts
    (which inherit the variable) keep their figures; removed at the end.

    Call it before the process makes its `Metrics`: prometheus_client chose how to keep values
    when it was imported, and is told here to keep them in the directory from now on.
    """
    _remove_orphans(Path(tempfile.gettempdir()))
    directory = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    previous = os.environ.get(DIRECTORY_VARIABLE)
    os.environ[DIRECTORY_VARIABLE] = directory
    kept = _values.ValueClass
    # prometheus_client reads values.ValueClass each time a child is made (values.py keeps it
    # a module attribute for that): from here on, children are kept in mmap'd files.
    _values.ValueClass = _values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        yield directory
    finally:
        _values.ValueClass = kept
        if previous is None:
            os.environ.pop(DIRECTORY_VARIABLE, None)
        else:
            os.environ[DIRECTORY_VARIABLE] = previous
        shutil.rmtree(directory, ignore_errors=True)


def _remove_orphans(folder: Path) -> None:
    """Removes the directories of runs that were killed (SIGKILL: no `finally` ran): each is
    named after the pid of the `botkit run` that made it, and that process is gone."""
    for found in folder.glob(f"{PREFIX}*-*"):
        pid = found.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(found, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean
        return True
    return True


def process_exited(pid: int) -> None:
    """Bookkeeping after a child process that kept figures in the directory exited (its
    counters stay: they are totals since the start of the run)."""
    directory = multiprocess_directory()
    if directory is not None:
        _multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


__all__ = ["CONTENT_TYPE", "Gauge", "Metrics", "multiprocess", "process_exited"]
