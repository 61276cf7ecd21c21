"""``GET /health`` (liveness) and ``GET /health/ready`` (readiness: can the online store be reached,
and can the training-sets directory and the repo's data directory be written).

Both run on the ``health`` worker pool (service/workers.py), threads of their own: they answer while
online reads wait on a frozen store or every other worker is busy.
"""

from typing import Any

from fastapi import APIRouter

from service.deps import LineageDep, SettingsDep, StoreDep
from service.errors import at_field, problem_responses
from service.online.reads import OnlineStoreUnavailable
from service.online.stores.probe import probe_online_store
from service.openapi import HealthOut, ReadyOut
from service.settings import Settings
from service.storage import StorageUnavailable, probe_clears_by_itself, probe_writable
from service.workers import HealthRoute

router = APIRouter(tags=["health"], route_class=HealthRoute)

PROBE_TIMEOUT_SECONDS = 0.5  # connect + ping stay within a Kubernetes probe's default timeoutSeconds (1)


@router.get("/health", response_model=None, responses={200: {"model": HealthOut}})
def health(store: StoreDep, lineage: LineageDep, settings: SettingsDep) -> dict[str, Any]:
    """Liveness: the process serves requests, its registry is loaded and the lineage database answers.

    Always 200 ``{"status": "ok", "project", "repo", "feature_views", "feature_services",
    "lineage_nodes"}`` while the process works, whatever the state of the online store: an outage of
    the store is not cured by restarting feastline, so a liveness probe must not fail on it. Use
    ``GET /health/ready`` for the readiness probe and the load balancer's health check.
    """
    return {
        "status": "ok",
        "project": store.project,
        "repo": str(settings.repo_path),
        "feature_views": len(store.list_feature_views()),
        "feature_services": [fs.name for fs in store.list_feature_services()],
        "lineage_nodes": len(lineage.current_graph()),
    }


@router.get("/health/ready", response_model=None, responses={200: {"model": ReadyOut}, **problem_responses(503)})
def ready(store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Readiness: can this instance answer online reads, pushes and training sets now?

    One cheap check of the online store (Redis ``PING`` on a fresh connection, no retries; SQLite: the
    file opens read-only), 0.5 s per step, then of the folders the service writes (a small file
    created, flushed and removed in the training-sets directory and in the repo's data directory).
    Answers 200 ``{"status": "ready", "online_store": {"type", "reachable", "latency_ms", ...},
    "storage": {"training_sets_dir": "writable", "data_dir": "writable"}}`` (``reachable`` is null for
    a store type there is no probe for), or 503 ``application/problem+json``: with ``Retry-After``,
    ``field`` = ``online_store`` and the probe's result under ``online_store`` when the store cannot
    be reached; with ``field`` = ``training_sets_dir`` or ``data_dir`` and the ``reason`` when that
    folder cannot be written (``Retry-After`` only for a full disk, which may clear by itself). Take the
    instance out of rotation (Kubernetes ``readinessProbe``, load balancer health check), do not
    restart it; it is ready again by itself when the fault is cleared.
    """
    state = probe_online_store(store.config, PROBE_TIMEOUT_SECONDS)
    if state["reachable"] is False:
        down = OnlineStoreUnavailable(state["error"], settings.retry_after_seconds, state["error_type"], state)
        raise at_field(down, "online_store")
    storage = probe_storage(settings)  # on the health pool: a folder that hangs does not hold the event loop
    for field, (place, reason) in storage.items():
        if reason is not None:
            retry = settings.retry_after_seconds if probe_clears_by_itself(reason) else None
            raise at_field(StorageUnavailable(place, f"not writable: {reason}", retry), field)
    return {"status": "ready", "online_store": state, "storage": {k: "writable" for k in storage}}


STORAGE = {
    "training_sets_dir": "the training-sets directory (FEASTLINE_TRAINING_SETS_DIR)",
    "data_dir": "the repo's data directory",
}


def probe_storage(settings: Settings) -> dict[str, tuple[str, str | None]]:
    """Per folder the service writes to: (what it is, None if writable else what is wrong)."""
    folders = {"training_sets_dir": settings.training_sets_path, "data_dir": settings.data_dir}
    return {field: (STORAGE[field], probe_writable(folder)) for field, folder in folders.items()}
