"""Prometheus metrics of one app: requests, latency, recommended actions, fallbacks, feedback.

Each app gets its own :class:`Metrics` (its own registry), so that several apps in one process
(tests) never share a counter. With ``paycadence serve --workers N`` (N > 1) the command points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start; each worker then
writes its values there and ``/metrics``, whichever worker answers, adds them up over all the
workers (prometheus_client's multiprocess mode).

Metric names (docs/operations.md lists them with their labels):

- ``paycadence_http_requests_total{route, method, status}``
- ``paycadence_http_request_duration_seconds{route}`` (histogram, seconds)
- ``paycadence_http_requests_in_progress{method}``
- ``paycadence_recommendations_total{action}``
- ``paycadence_fallback_recommendations_total``
- ``paycadence_feedback_rows_stored_total{table}``
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

#: The label of requests that matched no route (so that scanned paths add no series).
UNMATCHED = "unmatched"
#: Latency buckets, seconds: a health check takes milliseconds, 1,000 debtors take seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The collectors of one app, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "paycadence_http_requests", "HTTP requests answered, by route template, method and "
            "status code.", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "paycadence_http_request_duration_seconds", "Time from the request's arrival to "
            "its last response byte handed to the server, by route template (seconds).",
            ["route"], buckets=BUCKETS, registry=self.registry)
        self.in_progress = Gauge(
            "paycadence_http_requests_in_progress", "Requests being served now, by method.",
            ["method"], multiprocess_mode="livesum", registry=self.registry)
        self.actions = Counter(
            "paycadence_recommendations", "Recommendations returned by /recommend, by action.",
            ["action"], registry=self.registry)
        self.fallbacks = Counter(
            "paycadence_fallback_recommendations", "Recommendations answered by the rule-based "
            "fallback (model_version 'fallback').", registry=self.registry)
        self.feedback_rows = Counter(
            "paycadence_feedback_rows_stored", "Rows /feedback stored (duplicates excluded), by "
            "table.", ["table"], registry=self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (``route`` is the route's template)."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def count_recommendations(self, recommendations: list[dict]) -> None:
        """Count the actions of a /recommend answer, and those the fallback answered."""
        for action, n in Tally(r["action"] for r in recommendations).items():
            self.actions.labels(action).inc(n)
        fallback = sum(r["model_version"] == "fallback" for r in recommendations)
        if fallback:
            self.fallbacks.inc(fallback)

    def count_feedback(self, stored: dict[str, int]) -> None:
        """Count the rows a /feedback call stored, by table."""
        for table, n in stored.items():
            if n:
                self.feedback_rows.labels(table).inc(n)

    def exposition(self) -> bytes:
        """The Prometheus text format: this app's registry, or every worker's values."""
        path = _multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        _forget_dead_workers(Path(path))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry)


def _forget_dead_workers(path: Path) -> None:
    """Drop the live gauges of workers that are gone (a restarted worker gets a new pid)."""
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
