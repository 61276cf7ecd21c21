"""A Python client for the feastline service, on httpx: one method per route, pandas in and out.

    from feastline.client import FeastlineClient

    with FeastlineClient("http://127.0.0.1:8000", timeout=60) as fl:
        ts = fl.create_training_set(entity_df, feature_service="delay_model_v1")
        ts.frame                      # pandas, the declared dtypes (float32 stays float32, Int64 keeps nulls)
        online = fl.get_online_features({"origin": ["EWR"], "carrier": ["UA"]}, feature_service="delay_model_v1")
        online.to_frame()             # one row per entity, one column per feature

Tables travel as Parquet (or an Arrow IPC stream, ``wire="arrow"``), so the frames come back with the
dtypes the registry declares, timestamps as ``datetime64[ns, UTC]``; JSON answers come back as the
dicts and lists the service sends (their shapes are in the OpenAPI document, ``/docs``). Every answer
with status >= 400 raises a :mod:`feastline.errors` exception carrying the problem details (``.status``,
``.title``, ``.detail``, ``.field``, ``.problems``, ``.problem``); no answer raises
:class:`~feastline.errors.TransportError` (:class:`~feastline.errors.Timeout` after ``timeout``).

Times given as ``datetime`` must be timezone-aware; the client never assumes a timezone (a naive one is
sent as it is, and the service refuses it with a 422 that says how to mark it). The client holds no
state beyond its connection pool; it is safe to share between threads as httpx's ``Client`` is.
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from feastline.errors import FeastlineError, JobFailed, Timeout, TransportError, error_for

JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
WIRE_TYPES = {"parquet": PARQUET, "arrow": ARROW_STREAM, "json": JSON}
Wire = Literal["parquet", "arrow", "json"]
AsOf = int | str | datetime | None
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class TrainingSet:
    """A stored training set: its id and fingerprint, and its rows.

    Attributes:
        frame: one row per entity row, in input order: the entity columns, then the features.
        audit: the leakage audit when the answer was JSON (``wire="json"``); for a binary answer, None
            (``client.training_set(id)["audit"]`` has it).
    """

    id: str
    fingerprint: str
    frame: pd.DataFrame
    audit: dict[str, Any] | None = None


@dataclass(frozen=True)
class OnlineFeatures:
    """``POST /get-online-features``'s answer (``raw``, as ``feast serve`` gives it), and views of it.

    ``feature_names`` lists the join keys first, then the features; ``values``, ``statuses`` and
    ``event_timestamps`` map each name to one entry per entity, in request order.
    """

    raw: dict[str, Any]

    @property
    def feature_names(self) -> list[str]:
        return list(self.raw["metadata"]["feature_names"])

    def _by_name(self, key: str) -> dict[str, list[Any]]:
        return {name: list(result[key]) for name, result in zip(self.feature_names, self.raw["results"], strict=True)}

    @property
    def values(self) -> dict[str, list[Any]]:
        return self._by_name("values")

    @property
    def statuses(self) -> dict[str, list[str]]:
        """``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND`` or ``OUTSIDE_MAX_AGE`` per name and entity."""
        return self._by_name("statuses")

    @property
    def event_timestamps(self) -> dict[str, list[str]]:
        return self._by_name("event_timestamps")

    def to_frame(self) -> pd.DataFrame:
        """One row per entity, one column per name, the values as the JSON gave them (null: None)."""
        return pd.DataFrame(self.values, columns=self.feature_names)


class FeastlineClient:
    """A synchronous client for one feastline service.

    Args:
        base_url: the service, e.g. ``http://127.0.0.1:8000``.
        timeout: seconds (or an ``httpx.Timeout``) for each request to connect, send and answer; one
            call can override it with its own ``timeout=``. Training sets over large tables need more
            than the default 30 s.
        headers: sent with every request (an ``Authorization`` for a gateway in front of the service).
        http: an ``httpx.Client`` to use instead of opening one (its base URL, timeout and headers then
            apply, and the caller closes it), e.g. Starlette's ``TestClient`` over the app in tests.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
    ):
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def __enter__(self) -> FeastlineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # --- the wire ---------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send one request; the answer if its status is below 400.

        The escape hatch for a route this client has no method for; every method goes through it.

        Raises:
            ApiError: the answer's status is 400 or more (the subclass for its status: NotFound, ...).
            Timeout: no answer within the timeout. TransportError: no answer at all.
        """
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        query = _params(params) if params is not None else None
        try:
            response = self._http.request(
                method, path, params=query, json=json, content=content, headers=headers, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise Timeout(f"{method} {path}: no answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise error_for(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, headers={"accept": JSON}, **kwargs).json()

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self._json(method, path, **kwargs)
        if not isinstance(answer, dict):
            raise FeastlineError(f"{method} {path}: expected a JSON object, got {type(answer).__name__}")
        return answer

    def _list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        answer = self._json(method, path, **kwargs)
        if not isinstance(answer, list):
            raise FeastlineError(f"{method} {path}: expected a JSON array, got {type(answer).__name__}")
        return answer

    # --- health and metrics -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /health``: liveness, ``{"status": "ok", "project", "feature_views", "feature_services", ...}``."""
        return self._object("GET", "/health")

    def ready(self) -> dict[str, Any]:
        """``GET /health/ready``: ``{"status": "ready", "online_store": {...}}``.

        Raises:
            ServiceUnavailable: the online store cannot be reached now (``.problem["online_store"]``
                has the probe's result, ``.retry_after`` when to ask again).
        """
        return self._object("GET", "/health/ready")

    def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text."""
        return self.request("GET", "/metrics").text

    def freshness(self) -> dict[str, Any]:
        """``GET /monitoring/freshness``: ``{"now", "feature_views": [{"name", "newest_event_time",
        "age_seconds", "objective_seconds", "objective_problem", "status"}]}``, each online view's age
        (seconds, at the service clock) against its objective (tag ``feastline.freshness_slo``);
        ``status`` is ``ok``, ``late`` or ``unknown``."""
        return self._object("GET", "/monitoring/freshness")

    def drift(
        self,
        baseline: Mapping[str, Any],
        target: Mapping[str, Any],
        features: Sequence[str] | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
    ) -> dict[str, Any]:
        """``POST /monitoring/drift``: a drift report of ``target`` (``{"training_set_id"}``, ``{"window":
        {"start", "end"}}`` or ``{"entity_rows": [...]}``) against ``baseline`` (``{"training_set_id"}`` or
        ``{"model": {"name", "version"}}``): ``{"id", "verdict", "features": [{"name", "psi", "js", "test",
        "p_value", "null_rate_baseline", "null_rate_target", "verdict"}, ...]}``."""
        body: dict[str, Any] = {"baseline": dict(baseline), "target": dict(target)}
        if features is not None:
            body["features"] = list(features)
        return self._object("POST", "/monitoring/drift", json=body, timeout=timeout)

    def drift_report(self, drift_id: str) -> dict[str, Any]:
        """``GET /monitoring/drift/{id}``: a stored drift report."""
        return self._object("GET", f"/monitoring/drift/{_segment(drift_id)}")

    def monitoring_view(self, drift_id: str) -> str:
        """``GET /monitoring/view?drift=ID``: the HTML page drawing a stored drift report (histograms, PSI
        chart), with the latest parity reports and the freshness table."""
        return self.request("GET", "/monitoring/view", params={"drift": drift_id}).text

    def training_set_profile(self, ts_id: str) -> dict[str, Any]:
        """``GET /training-sets/{id}/profile``: the profile stored with the set (per column statistics and
        the baseline bins)."""
        return self._object("GET", f"/training-sets/{_segment(ts_id)}/profile")

    def online_log(
        self, start: str, end: str, feature_service: str | None = None, *, wire: Wire = "parquet"
    ) -> pd.DataFrame:
        """``GET /monitoring/online-log``: the online reads logged in ``[start, end)`` (ISO 8601 UTC)."""
        params = {"start": start, "end": end, **({"feature_service": feature_service} if feature_service else {})}
        response = self.request("GET", "/monitoring/online-log", params=params, headers={"accept": WIRE_TYPES[wire]})
        if wire == "json":
            answer = response.json()
            return pd.DataFrame(answer["rows"], columns=answer["columns"])
        return _read_table(response)

    def parity(
        self, feature_service: str, start: str, end: str, *, timeout: float | httpx.Timeout | None = None
    ) -> dict[str, Any]:
        """``POST /monitoring/parity``: the online reads logged in ``[start, end)`` replayed point in time
        and compared value by value (match rates, statuses, mismatches with their likely cause)."""
        body = {"feature_service": feature_service, "window": {"start": start, "end": end}}
        return self._object("POST", "/monitoring/parity", json=body, timeout=timeout)

    # --- training sets ----------------------------------------------------------------------------------

    def create_training_set(
        self,
        entities: pd.DataFrame | Sequence[Mapping[str, Any]],
        *,
        feature_service: str | None = None,
        features: Sequence[str] | None = None,
        full_feature_names: bool = False,
        timezone: str | None = None,
        allow_created_after_entity: bool = False,
        wire: Wire = "parquet",
        timeout: float | httpx.Timeout | None = None,
    ) -> TrainingSet:
        """``POST /training-sets``: build, audit and store a point-in-time-correct training set.

        Args:
            entities: the entity table: a DataFrame (sent as Parquet, or an Arrow stream with
                ``wire="arrow"``; ``event_timestamp`` a timezone-aware datetime column, or naive with
                ``timezone``), or a list of row dicts (sent as JSON entity rows: ``event_timestamp`` an
                ISO 8601 string with ``Z`` or an offset). Other columns (labels) pass through.
            feature_service, features: what to join: a feature service, or ``view:feature`` references.
            full_feature_names: name the feature columns ``view__feature``.
            timezone: IANA name assumed for naive timestamps (else they are refused).
            allow_created_after_entity: lift the ``created <= event_timestamp`` rule (recorded in the audit).
            wire: the answer's format: ``"parquet"`` (default) or ``"arrow"`` give the declared dtypes;
                ``"json"`` gives JSON's types (timestamps as ISO strings) and the audit.

        Returns:
            The stored training set; ``frame`` has ``len(entities)`` rows in input order.

        Raises:
            NotFound: unknown feature service or feature. Unprocessable: invalid entity rows (every bad row
            in ``.problems``). Conflict: the leakage audit failed. PayloadTooLarge: too many rows for JSON.
        """
        options = {
            "feature_service": feature_service,
            "features": list(features or []),
            "full_feature_names": full_feature_names,
            "timezone": timezone,
            "allow_created_after_entity": allow_created_after_entity,
        }
        accept = {"accept": WIRE_TYPES[wire]}
        if isinstance(entities, pd.DataFrame):
            media = ARROW_STREAM if wire == "arrow" else PARQUET
            response = self.request(
                "POST",
                "/training-sets",
                params={k: v for k, v in options.items() if v not in (None, [], False)},
                content=_table_bytes(entities, media),
                headers={"content-type": media, **accept},
                timeout=timeout,
            )
        else:
            body = {**{k: v for k, v in options.items() if v not in (None, [])}, "entity_rows": list(entities)}
            response = self.request("POST", "/training-sets", json=body, headers=accept, timeout=timeout)
        if wire == "json":
            answer = response.json()
            frame = pd.DataFrame(answer["rows"], columns=answer["columns"])
            return TrainingSet(answer["id"], answer["fingerprint"], frame, answer["audit"])
        return TrainingSet(
            response.headers["x-training-set-id"],
            response.headers["x-training-set-fingerprint"],
            _read_table(response),
        )

    def training_set(self, ts_id: str) -> dict[str, Any]:
        """``GET /training-sets/{id}``: metadata (fingerprint, inputs' hashes, options, audit), no rows."""
        return self._object("GET", f"/training-sets/{_segment(ts_id)}")

    def training_sets(self, **params: Any) -> dict[str, Any]:
        """``GET /training-sets``: stored sets, newest first, one page (``params`` go in the query:
        ``feature_service``, ``model``, ``created_after``/``created_before``, ``include_deleted``,
        ``limit``, ``offset``); ``{"total", "limit", "offset", "next_offset", "training_sets"}``."""
        return self._object("GET", "/training-sets", params=params or None)

    def delete_training_set(self, ts_id: str) -> dict[str, Any]:
        """``DELETE /training-sets/{id}``: remove its data, keep its record and lineage (marked deleted).

        Raises:
            Conflict: a registered model was trained on it (409, ``used_by`` in the problem).
        """
        return self._object("DELETE", f"/training-sets/{_segment(ts_id)}")

    def training_set_data(
        self, ts_id: str, *, wire: Wire = "parquet", timeout: float | httpx.Timeout | None = None
    ) -> pd.DataFrame:
        """``GET /training-sets/{id}/data``: the stored rows (Parquet and Arrow: the declared dtypes)."""
        response = self.request(
            "GET", f"/training-sets/{_segment(ts_id)}/data", headers={"accept": WIRE_TYPES[wire]}, timeout=timeout
        )
        if wire == "json":
            answer = response.json()
            return pd.DataFrame(answer["rows"], columns=answer["columns"])
        return _read_table(response)

    def reproduce_training_set(self, ts_id: str, *, timeout: float | httpx.Timeout | None = None) -> dict[str, Any]:
        """``POST /training-sets/{id}/reproduce``: recompute now; ``identical``, ``data_identical``,
        ``inputs_identical``, what changed."""
        return self._object("POST", f"/training-sets/{_segment(ts_id)}/reproduce", timeout=timeout)

    # --- online, push, quarantine -----------------------------------------------------------------------

    def get_online_features(
        self,
        entities: Mapping[str, Sequence[Any]],
        *,
        feature_service: str | None = None,
        features: Sequence[str] | None = None,
        full_feature_names: bool = False,
    ) -> OnlineFeatures:
        """``POST /get-online-features`` (``feast serve``'s body): the latest values, TTL enforced.

        Args:
            entities: join key (and request field) -> one value per entity, e.g. ``{"origin": ["EWR"]}``.

        Raises:
            Unprocessable: a key missing or of the wrong type. ServiceUnavailable: the store is unreachable.
        """
        body: dict[str, Any] = {
            "entities": {key: [_json_value(v) for v in values] for key, values in entities.items()},
            "full_feature_names": full_feature_names,
        }
        if feature_service is not None:
            body["feature_service"] = feature_service
        if features is not None:
            body["features"] = list(features)
        return OnlineFeatures(self._object("POST", "/get-online-features", json=body))

    def push(
        self,
        push_source_name: str,
        rows: pd.DataFrame | Mapping[str, Sequence[Any]],
        *,
        to: Literal["online", "offline", "online_and_offline"] = "online",
        **options: Any,
    ) -> dict[str, Any]:
        """``POST /push``: rows to a push source, validated first.

        Args:
            rows: a DataFrame or ``{column: [values]}`` in the view's names (join keys, features, the
                source's timestamp column); timestamps as aware datetimes or ISO strings with an offset.
            options: any other field of the body, sent as given.

        Returns:
            ``{"rows_received", "rows_accepted", "rows_quarantined", "quarantined", "policy", "to", ...}``.

        Raises:
            Unprocessable: strict policy and a bad row (nothing written), or a missing/unknown column.
            ServiceUnavailable: the online store is unreachable (nothing acknowledged: resend).
        """
        body = {"push_source_name": push_source_name, "df": _columns(rows), "to": to, **options}
        return self._object("POST", "/push", json=body)

    def quarantine(self, source: str, **params: Any) -> dict[str, Any]:
        """``GET /quarantine/{source}``: rejected rows of a push source or a pipeline table (``params``
        go in the query)."""
        return self._object("GET", f"/quarantine/{_segment(source)}", params=params or None)

    # --- materialization --------------------------------------------------------------------------------

    def materialize(
        self, start: datetime | str, end: datetime | str, *, feature_views: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """``POST /materialize``: queue ``[start, end)``; the job (``id``, ``status``: queued)."""
        body: dict[str, Any] = {"start": _time(start), "end": _time(end)}
        if feature_views is not None:
            body["feature_views"] = list(feature_views)
        return self._object("POST", "/materialize", json=body)

    def materialize_incremental(
        self,
        *,
        end: datetime | str | None = None,
        lookback_seconds: int | None = None,
        feature_views: Sequence[str] | None = None,
        default_start: datetime | str | None = None,
    ) -> dict[str, Any]:
        """``POST /materialize-incremental``: queue each view from its last end (minus the lookback)."""
        body: dict[str, Any] = {}
        if end is not None:
            body["end"] = _time(end)
        if lookback_seconds is not None:
            body["lookback_seconds"] = lookback_seconds
        if feature_views is not None:
            body["feature_views"] = list(feature_views)
        if default_start is not None:
            body["default_start"] = _time(default_start)
        return self._object("POST", "/materialize-incremental", json=body)

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}``: ``status`` (queued, running, completed, failed), ``progress``, ``views``."""
        return self._object("GET", f"/jobs/{_segment(job_id)}")

    def wait_for_job(self, job_id: str, *, timeout: float = 600.0, poll_seconds: float = 0.5) -> dict[str, Any]:
        """Poll ``GET /jobs/{id}`` until the job has finished; its final state.

        Raises:
            JobFailed: the job ended ``failed``.
            TimeoutError: still queued or running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] == "completed":
                return job
            if job["status"] == "failed":
                raise JobFailed(job)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(poll_seconds)

    # --- models -----------------------------------------------------------------------------------------

    def register_model(
        self, name: str, version: str, training_set_id: str, metrics: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
        """``POST /models``: the lineage node ``model:<name>@<version>``, trained on the training set.

        Raises:
            NotFound: unknown training set. Conflict: this name@version is registered already.
        """
        body = {"name": name, "version": version, "training_set_id": training_set_id, "metrics": dict(metrics or {})}
        return self._object("POST", "/models", json=body)

    def models(self) -> list[dict[str, Any]]:
        """``GET /models``: every registered model (lineage nodes), sorted by id."""
        return self._list("GET", "/models")

    def model(self, name: str, version: str) -> dict[str, Any]:
        """``GET /models/{name}/{version}``."""
        return self._object("GET", f"/models/{_segment(name)}/{_segment(version)}")

    # --- lineage ----------------------------------------------------------------------------------------

    def node(self, node_id: str, *, as_of: AsOf = None) -> dict[str, Any]:
        """``GET /lineage/nodes/{id}``: ``{"id", "kind", "name", "definition_hash", "attributes"}``."""
        return self._object("GET", f"/lineage/nodes/{_segment(node_id)}", params={"as_of": _as_of(as_of)})

    def upstream(self, node_id: str, *, depth: int | None = None, as_of: AsOf = None) -> dict[str, Any]:
        """``GET /lineage/nodes/{id}/upstream``: ``{"nodes", "edges"}`` the node comes from."""
        params = {"depth": depth, "as_of": _as_of(as_of)}
        return self._object("GET", f"/lineage/nodes/{_segment(node_id)}/upstream", params=params)

    def downstream(self, node_id: str, *, depth: int | None = None, as_of: AsOf = None) -> dict[str, Any]:
        """``GET /lineage/nodes/{id}/downstream``: ``{"nodes", "edges"}`` built from the node."""
        params = {"depth": depth, "as_of": _as_of(as_of)}
        return self._object("GET", f"/lineage/nodes/{_segment(node_id)}/downstream", params=params)

    def impact(self, node_id: str, *, as_of: AsOf = None) -> dict[str, Any]:
        """``GET /lineage/nodes/{id}/impact``: ``{"node", "impact"}``, every service, set and model downstream."""
        return self._object("GET", f"/lineage/nodes/{_segment(node_id)}/impact", params={"as_of": _as_of(as_of)})

    def lineage_path(self, source: str, target: str, *, as_of: AsOf = None) -> dict[str, Any]:
        """``GET /lineage/path``: ``{"path": [ids upstream -> downstream], "direction"}``."""
        return self._object("GET", "/lineage/path", params={"source": source, "target": target, "as_of": _as_of(as_of)})

    def versions(self) -> dict[str, Any]:
        """``GET /lineage/versions``: ``{"versions": [...], "note"}``, oldest first."""
        return self._object("GET", "/lineage/versions")

    def version(self, number: int) -> dict[str, Any]:
        """``GET /lineage/versions/{n}``: one version with its diff."""
        return self._object("GET", f"/lineage/versions/{int(number)}")

    def export_node_link(
        self, *, node: str | None = None, depth: int | None = None, direction: str | None = None, as_of: AsOf = None
    ) -> dict[str, Any]:
        """``GET /lineage/export/node-link``: ``networkx.node_link_data``-shaped JSON (whole graph without ``node``)."""
        return self._object("GET", "/lineage/export/node-link", params=_export(node, depth, direction, as_of))

    def export_graphml(
        self, *, node: str | None = None, depth: int | None = None, direction: str | None = None, as_of: AsOf = None
    ) -> str:
        """``GET /lineage/export/graphml``: the GraphML text."""
        return self.request("GET", "/lineage/export/graphml", params=_export(node, depth, direction, as_of)).text

    def export_svg(
        self, *, node: str | None = None, depth: int | None = None, direction: str | None = None, as_of: AsOf = None
    ) -> str:
        """``GET /lineage/export/svg``: the SVG text."""
        return self.request("GET", "/lineage/export/svg", params=_export(node, depth, direction, as_of)).text

    def lineage_view(self, node: str, *, depth: int | None = None, as_of: AsOf = None) -> str:
        """``GET /lineage/view``: the HTML page drawing the node's neighbourhood."""
        params = {"node": node, "depth": depth, "as_of": _as_of(as_of)}
        return self.request("GET", "/lineage/view", params=params).text

    def openlineage_events(
        self, *, job: str | None = None, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        """``GET /lineage/openlineage/events``: one page of OpenLineage RunEvents, newest first."""
        return self._list("GET", "/lineage/openlineage/events", params={"job": job, "limit": limit, "offset": offset})

    def iter_openlineage_events(self, *, job: str | None = None, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every OpenLineage RunEvent, newest first, page after page (``X-More-Events`` says when to stop)."""
        offset = 0
        while True:
            params = {"job": job, "limit": page_size, "offset": offset}
            response = self.request("GET", "/lineage/openlineage/events", params=params, headers={"accept": JSON})
            page = response.json()
            yield from page
            if response.headers.get("x-more-events") != "true" or not page:
                return
            offset += len(page)


# --- encoding ---------------------------------------------------------------------------------------------


def _params(params: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> list[tuple[str, str | int | float | bool | None]]:
    """Query parameters without the ones left out (None), lists repeated, booleans as ``true``/``false``."""
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in items:
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None:
                out.append((key, ("true" if v else "false") if isinstance(v, bool) else str(v)))
    return out


def _segment(value: str) -> str:
    """One URL path segment (``/`` and ``?`` encoded; ``:`` and ``@`` of node and model ids kept)."""
    return quote(str(value), safe=":@")


def _time(value: datetime | str) -> str:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def _as_of(value: AsOf) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return _time(value)
    return str(int(value))


def _export(node: str | None, depth: int | None, direction: str | None, as_of: AsOf) -> dict[str, Any]:
    return {"node": node, "depth": depth, "direction": direction, "as_of": _as_of(as_of)}


def _table_bytes(frame: pd.DataFrame, media_type: str) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    if media_type == PARQUET:
        pq.write_table(table, sink)
    else:
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def _read_table(response: httpx.Response) -> pd.DataFrame:
    """A Parquet or Arrow-stream answer as pandas, with the dtypes it was written with."""
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == ARROW_STREAM:
        return ipc.open_stream(io.BytesIO(response.content)).read_all().to_pandas()
    return pd.read_parquet(io.BytesIO(response.content))


def _json_value(value: Any) -> Any:
    """A value as the service's JSON takes it: aware timestamps as ISO 8601 (``Z`` for UTC), bytes as
    base64, missing values (None, NaN, NaT, pd.NA) as null, numpy scalars as Python numbers, lists kept."""
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_value(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):  # its isoformat keeps nanoseconds
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime):
        return _time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _columns(rows: pd.DataFrame | Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    items = rows.items() if isinstance(rows, pd.DataFrame) else rows.items()
    return {str(name): [_json_value(v) for v in values] for name, values in items}
