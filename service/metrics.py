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

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class _MetricsMiddleware:
    """Pure ASGI middleware (cheaper per request than ``BaseHTTPMiddleware``): times each HTTP request
    and counts it by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(path, scope["method"]).observe(time.perf_counter() - start)
            self.metrics.requests.labels(path, scope["method"], str(status["code"])).inc()


def install_metrics(app: FastAPI) -> Metrics:
    """Add the timing middleware; returns the app's ``Metrics`` (also on ``app.state.metrics``)."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return metrics
