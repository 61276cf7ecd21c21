"""Prometheus metrics at ``GET /metrics``: requests and latency per route, online-store errors, and
feature freshness per view. One registry per app (so several apps in one process do not collide).

- ``feastline_requests_total{route, method, status}``
- ``feastline_request_duration_seconds{route, method}`` (histogram, seconds)
- ``feastline_online_store_errors_total{error}``
- ``feastline_feature_freshness_seconds{feature_view}``: service clock minus the newest event time
  feastline wrote online for the view (offline rows up to the materialized interval end, or the newest
  row a push to this process wrote); computed at scrape time. It does not read the store: a flushed or
  failed-over store is seen by ``/health/ready`` and as ``NOT_FOUND`` answers, not here.
- ``feastline_drift_psi{feature_view, feature}``: the PSI of the newest drift report that assessed the
  feature (``POST /monitoring/drift``; no series while its PSI is undefined: a side without values);
- ``feastline_drift_verdict{feature_view, feature}``: that report's verdict for it, 0 ``ok``, 1 ``warn``,
  2 ``drift``. Both read from the stored reports at scrape time (every worker process agrees, and a
  restart loses nothing).
- ``feastline_feature_freshness_objective_seconds{feature_view}``: the view's freshness objective (tag
  ``feastline.freshness_slo``, ``service.monitoring.freshness``), seconds; no series without a valid one.
"""

import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
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
        self.freshness = _Freshness()
        self.registry.register(self.freshness)
        self.drift = _Drift()
        self.registry.register(self.drift)

    def render(
        self, freshness: dict[str, float], objectives: dict[str, float] | None = None, drift: Iterable[Any] = ()
    ) -> Response:
        """The exposition text, with ``freshness`` (seconds per view, computed by the caller),
        ``objectives`` (each view's freshness objective, seconds) and ``drift`` (the latest assessment per
        feature: ``service.monitoring.reports.LatestDrift`` items) as gauges."""
        self.freshness.values = dict(freshness)
        self.freshness.objectives = dict(objectives or {})
        self.drift.latest = list(drift)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _Freshness(Collector):
    """``feastline_feature_freshness_seconds{feature_view}`` and
    ``feastline_feature_freshness_objective_seconds{feature_view}``, a custom collector: the values are computed at
    scrape time, so a view that disappeared has no stale series (a labelled Gauge would need ``clear()``,
    which warns on every scrape once Feast has set PROMETHEUS_MULTIPROC_DIR in the environment)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.objectives: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "feastline_feature_freshness_seconds",
            "service clock minus the newest event time held online, seconds",
            labels=["feature_view"],
        )
        for view, age in sorted(self.values.items()):
            family.add_metric([view], age)
        yield family
        objective = GaugeMetricFamily(
            "feastline_feature_freshness_objective_seconds",
            "freshness objective of the view (tag feastline.freshness_slo), seconds",
            labels=["feature_view"],
        )
        for view, seconds in sorted(self.objectives.items()):
            objective.add_metric([view], seconds)
        yield objective


VERDICT_VALUES = {"ok": 0, "warn": 1, "drift": 2}


class _Drift(Collector):
    """``feastline_drift_psi`` and ``feastline_drift_verdict`` per feature, from the values handed to
    ``render`` (computed at scrape time, like freshness)."""

    def __init__(self) -> None:
        self.latest: list[Any] = []

    def collect(self) -> Iterator[Metric]:
        psi = GaugeMetricFamily(
            "feastline_drift_psi",
            "PSI of the feature in its newest drift report (baseline bins, eps 1e-6)",
            labels=["feature_view", "feature"],
        )
        verdict = GaugeMetricFamily(
            "feastline_drift_verdict",
            "verdict of the feature in its newest drift report: 0 ok, 1 warn, 2 drift",
            labels=["feature_view", "feature"],
        )
        for item in self.latest:
            view, _, feature = item.feature.partition(".")
            if item.psi is not None:
                psi.add_metric([view, feature], item.psi)
            verdict.add_metric([view, feature], VERDICT_VALUES[item.verdict])
        yield psi
        yield verdict


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
