"""Prometheus metrics at ``GET /metrics``: requests and latency per route, online-store errors, and
feature freshness per view. One registry per app (so several apps in one process do not collide).

- ``feastline_requests_total{route, method, status}``
- ``feastline_request_duration_seconds{route, method}`` (histogram, seconds)
- ``feastline_online_store_errors_total{error}``
- ``feastline_feature_freshness_seconds{feature_view}``: service clock minus the newest event time the
  online store is known to hold for the view (materialized interval end, or the newest pushed row);
  computed at scrape time.
"""

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "feastline_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "feastline_request_duration_seconds",
            "HTTP request latency, seconds",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "feastline_online_store_errors", "online store failures", ["error"], registry=self.registry
        )
        self.freshness = Gauge(
            "feastline_feature_freshness_seconds",
            "service clock minus the newest event time held online, seconds",
            ["feature_view"],
            registry=self.registry,
        )

    def render(self, freshness: dict[str, float]) -> Response:
        self.freshness.clear()
        for view, age in freshness.items():
            self.freshness.labels(feature_view=view).set(age)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> Metrics:
    """Add the timing middleware; returns the app's ``Metrics`` (also on ``app.state.metrics``)."""
    metrics = Metrics()
    app.state.metrics = metrics

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.latency.labels(path, request.method).observe(time.perf_counter() - start)
        metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        return response

    return metrics
