"""Optional Prometheus metrics (METRICS_PORT): updates, reply latency, deliveries, backlog."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from telegram.ext import Application

UPDATES = Counter("backcalm_updates_total", "Telegram updates handled")
REPLY_LATENCY = Histogram(
    "backcalm_update_seconds",
    "Time to handle one update, replies included",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DELIVERIES = Counter("backcalm_deliveries_total", "Scheduled messages by outcome", ["outcome"])
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


def serve(port: int) -> None:
    """Expose /metrics on `port` (a daemon thread)."""
    start_http_server(port)
