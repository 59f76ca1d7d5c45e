"""Optional Prometheus metrics (METRICS_PORT): updates, reply latency, deliveries, backlog.

Without METRICS_PORT nobody can read them, so prometheus_client is imported and the metrics
registered only when `serve` starts the exporter (importing it is a noticeable part of
start-up on a slow machine); until then every metric here ignores what it is told.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

from telegram.ext import Application


class Incrementable(Protocol):
    def inc(self, amount: float = 1.0) -> None: ...


class _Ignored:
    """What `labels()` gives back while metrics are off."""

    def inc(self, amount: float = 1.0) -> None:
        pass


_IGNORED = _Ignored()


class _Metric:
    """One metric: a no-op until `serve` creates the Prometheus object behind it."""

    kind: ClassVar[str]

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(buckets) if buckets is not None else None
        self.real: Any = None
        _ALL.append(self)

    def create(self) -> None:
        """Register the Prometheus metric (once)."""
        if self.real is not None:
            return
        import prometheus_client

        options: dict[str, Any] = {"labelnames": self.labelnames}
        if self.buckets is not None:
            options["buckets"] = self.buckets
        self.real = getattr(prometheus_client, self.kind)(self.name, self.documentation, **options)


_ALL: list[_Metric] = []


class Counter(_Metric):
    kind = "Counter"

    def inc(self, amount: float = 1.0) -> None:
        if self.real is not None:
            self.real.inc(amount)

    def labels(self, *values: str) -> Incrementable:
        if self.real is None:
            return _IGNORED
        child: Incrementable = self.real.labels(*values)
        return child


class Gauge(_Metric):
    kind = "Gauge"

    def set(self, value: float) -> None:
        if self.real is not None:
            self.real.set(value)


class Histogram(_Metric):
    kind = "Histogram"

    def observe(self, value: float) -> None:
        if self.real is not None:
            self.real.observe(value)

    def time(self) -> AbstractContextManager[object]:
        """Observe how long the `with` block takes."""
        if self.real is None:
            return contextlib.nullcontext()
        timer: AbstractContextManager[object] = self.real.time()
        return timer


UPDATES = Counter("backcalm_updates_total", "Telegram updates handled")
REPLY_LATENCY = Histogram(
    "backcalm_update_seconds",
    "Time to handle one update, replies included",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DELIVERIES = Counter(
    "backcalm_deliveries_total", "Scheduled messages by outcome", labelnames=["outcome"]
)
DUE_BACKLOG = Gauge("backcalm_due_backlog", "Scheduled messages due and not yet claimed")
TICK_SECONDS = Histogram(
    "backcalm_tick_seconds",
    "Duration of one delivery tick (claiming, not sending)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)


class MeasuredApplication(Application[Any, Any, Any, Any, Any, Any]):
    """The Application, counting and timing every update it processes."""

    async def process_update(self, update: object) -> None:
        started = time.perf_counter()
        try:
            await super().process_update(update)
        finally:
            UPDATES.inc()
            REPLY_LATENCY.observe(time.perf_counter() - started)


def enabled() -> bool:
    """Whether the metrics are being recorded (after `serve`)."""
    return all(metric.real is not None for metric in _ALL)


def serve(port: int) -> None:
    """Register the metrics and expose /metrics on `port` (a daemon thread)."""
    for metric in _ALL:
        metric.create()
    from prometheus_client import start_http_server

    start_http_server(port)
