"""Drift reports: a target's features against the training set a model was trained on.

The **baseline** is a stored training set (``{"training_set_id"}``, or ``{"model": {"name", "version"}}``:
the set the model was registered on, through lineage), with its profile
(:mod:`service.monitoring.profiles`) and its stored rows. The **target** is another stored set, the
requests the online log holds in a window, or entity rows; the last two are joined point in time
with the baseline's features and options, exactly as a training set would be
(:func:`service.training.training_sets.compute`).

Per feature (a column of the baseline, by its name in the set; by default every numeric or
categorical feature column): PSI and JS on the baseline's bins, KS (numeric, on the baseline's stored
rows) or chi-square (categorical), the null rate on each side (:mod:`service.monitoring.distances`).
Missing values are left out of the distributions and reported as null rates.

**Verdict** per feature from its PSI: ``drift`` when ``psi >= drift``, ``warn`` when ``psi >= warn``,
else ``ok``; the thresholds are ``0.1`` / ``0.2`` unless the feature's tags or its feature view's tags
say otherwise: ``feastline.psi_warn`` and ``feastline.psi_drift`` (numbers, ``0 <= warn <= drift``; a
feature's own tag wins over its view's). p-values are reported, never used for the verdict: at
300,000 rows every trivial shift is "significant". **Degenerate columns**: PSI, JS and the test are
null when a side has no values (all missing); the verdict is then ``ok`` if both sides have none and
``drift`` if only one does (values appeared or disappeared). The report's verdict is the worst of its
features'.

A report is stored (:mod:`service.monitoring.reports`), attached to the lineage nodes of the baseline
training set, the model and each feature whose verdict is ``drift`` (attribute ``last_drift``), and
emitted as an OpenLineage run (job ``drift``) with ``dataQualityMetrics`` input facets on both sides and
the ``feastline_drift`` facet on the target.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from feast import FeatureStore
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from lineage import MODEL_NAME_MAX_LENGTH, MODEL_NAME_PATTERN, LineageStore, NodeKind, NodeNotFound, NodeRef
from lineage import openlineage as ol
from service.monitoring import distances
from service.monitoring.baseline_rows import sorted_columns
from service.monitoring.profiles import build_profile, column_roles, profile_path, read_profile, write_profile
from service.monitoring.reports import DriftReports
from service.monitoring.window import entity_rows_in_window
from service.run_events import openlineage_for
from service.settings import Settings
from service.training.catalog import TrainingSetCatalog, TrainingSetNotFound, TrainingSetRecord
from service.training.entity_rows import entity_frame, entity_frame_from_table
from service.training.offline.views import RetrievalPlan
from service.training.training_sets import TrainingSetOptions, compute, resolve

DEFAULT_WARN, DEFAULT_DRIFT = 0.1, 0.2
WARN_TAG, DRIFT_TAG = "feastline.psi_warn", "feastline.psi_drift"
VERDICTS = ("ok", "warn", "drift")  # in order of severity
MAX_ASSESS_THREADS = 4  # columns assessed at once (at most one per CPU)


class DriftRequestInvalid(Exception):
    """A drift request that cannot be answered as asked (422): names the field."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")

    def details(self) -> dict[str, Any]:
        return {"problems": [{"row": None, "field": self.field, "problem": self.problem}]}


class ThresholdTagInvalid(Exception):
    """A ``feastline.psi_warn`` / ``feastline.psi_drift`` tag in the repo that is not a usable threshold (409)."""

    def __init__(self, owner: str, tag: str, value: str, problem: str):
        self.owner, self.tag, self.value = owner, tag, value
        self.field = f"tags.{tag}"
        super().__init__(f"{owner}: tag {tag}={value!r} {problem}")

    def details(self) -> dict[str, Any]:
        return {"owner": self.owner, "tag": self.tag, "value": self.value}


# -- the request ----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _exactly_one(schema: dict[str, Any]) -> None:
    """JSON Schema of a model whose optional fields are alternatives: each present one non-null, and
    exactly one present (``oneOf`` of ``required``), as its validator checks."""
    for name, prop in schema["properties"].items():
        if "anyOf" in prop:
            kept = [b for b in prop["anyOf"] if b.get("type") != "null"]
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            schema["properties"][name] = {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}
    schema["oneOf"] = [{"required": [name]} for name in schema["properties"]]


class ModelBaseline(_Strict):
    name: str = Field(
        min_length=1, max_length=MODEL_NAME_MAX_LENGTH, pattern=MODEL_NAME_PATTERN, examples=["delay_baseline"]
    )
    version: str = Field(min_length=1, max_length=MODEL_NAME_MAX_LENGTH, pattern=MODEL_NAME_PATTERN, examples=["1"])


class BaselineIn(_Strict):
    """Exactly one of ``training_set_id`` and ``model``."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_exactly_one)

    training_set_id: str | None = Field(None, min_length=1, examples=["ts-0123456789abcdef"])
    model: ModelBaseline | None = None

    @model_validator(mode="after")
    def _one(self) -> BaselineIn:
        if (self.training_set_id is None) == (self.model is None):
            raise ValueError("give exactly one of training_set_id and model")
        return self


class WindowIn(_Strict):
    """``start <= logged_at < end`` (ISO 8601 with an offset or Z)."""

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> WindowIn:
        if not self.start < self.end:
            raise ValueError("start must be before end")
        return self


class TargetIn(_Strict):
    """Exactly one of ``training_set_id``, ``window`` and ``entity_rows``."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_exactly_one)

    training_set_id: str | None = Field(None, min_length=1)
    window: WindowIn | None = None
    entity_rows: list[dict[str, Any]] | None = Field(
        None,
        min_length=1,
        description="joined point in time with the baseline's features, as POST /training-sets would",
    )

    @model_validator(mode="after")
    def _one(self) -> TargetIn:
        if sum(x is not None for x in (self.training_set_id, self.window, self.entity_rows)) != 1:
            raise ValueError("give exactly one of training_set_id, window and entity_rows")
        return self


class DriftRequest(_Strict):
    """``POST /monitoring/drift`` JSON body."""

    baseline: BaselineIn
    target: TargetIn
    features: list[str] | None = Field(
        None,
        description="columns of the baseline training set to assess (default: every numeric or categorical "
        "feature column)",
        examples=[["temp", "dewp"]],
    )
    timezone: str | None = Field(None, description="IANA timezone assumed for naive timestamps of entity_rows")


# -- thresholds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    warn: float
    drift: float
    source: str  # "default", "feature_view:<name>" or "feature:<view>.<feature>"

    def verdict(self, psi: float) -> str:
        return "drift" if psi >= self.drift else "warn" if psi >= self.warn else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"warn": self.warn, "drift": self.drift, "source": self.source}


def _tag(owner: str, tags: Mapping[str, str], name: str) -> float | None:
    if name not in tags:
        return None
    try:
        value = float(tags[name])
    except ValueError:
        raise ThresholdTagInvalid(owner, name, tags[name], "is not a number") from None
    if not np.isfinite(value) or value < 0:
        raise ThresholdTagInvalid(owner, name, tags[name], "must be a finite number >= 0")
    return value


def thresholds_of(plan: RetrievalPlan) -> dict[str, tuple[Thresholds, str]]:
    """``view:feature`` -> (its PSI thresholds, its lineage node id ``feature:<view>.<feature>``).

    Raises:
        ThresholdTagInvalid: a tag is not a finite number >= 0, or warn > drift (409).
    """
    out: dict[str, tuple[Thresholds, str]] = {}
    for spec in (*plan.views, *plan.on_demand):
        fv = spec.definition
        view_owner = f"feature_view:{fv.name}"
        view_tags = dict(fv.tags or {})
        view = (_tag(view_owner, view_tags, WARN_TAG), _tag(view_owner, view_tags, DRIFT_TAG))
        for f in fv.features:
            owner = f"feature:{fv.name}.{f.name}"
            tags = dict(getattr(f, "tags", None) or {})
            own = (_tag(owner, tags, WARN_TAG), _tag(owner, tags, DRIFT_TAG))
            warn = own[0] if own[0] is not None else view[0]
            drift = own[1] if own[1] is not None else view[1]
            source = (
                owner
                if any(v is not None for v in own)
                else view_owner
                if any(v is not None for v in view)
                else "default"
            )
            th = Thresholds(DEFAULT_WARN if warn is None else warn, DEFAULT_DRIFT if drift is None else drift, source)
            if th.warn > th.drift:
                raise ThresholdTagInvalid(source, WARN_TAG, str(th.warn), f"is above {DRIFT_TAG}={th.drift}")
            out[f"{spec.name}:{f.name}"] = (th, owner)
    return out


# -- one column -------------------------------------------------------------------------------------


def column_drift(
    profile: Mapping[str, Any],
    baseline: pd.Series | None,
    target: pd.Series,
    th: Thresholds,
    *,
    baseline_sorted: np.ndarray | None = None,
) -> dict[str, Any]:
    """The drift of one column.

    Args:
        profile: the column's baseline profile entry (bins, counts).
        baseline: the column's stored baseline rows (for KS; missing values included); may be None
            when ``baseline_sorted`` is given.
        target: the target's column (missing values included).
        baseline_sorted: the baseline's values for KS already without missing values and sorted
            (float64; :mod:`service.monitoring.baseline_rows`), used instead of ``baseline``.

    Returns:
        ``{"name", "feature", "kind", "psi", "js", "test", "statistic", "p_value", "null_rate_baseline",
        "null_rate_target", "verdict", "thresholds", "values_baseline", "values_target", "bins"}``;
        ``bins`` is ``{"edges" | "categories", "baseline_counts", "target_counts"}`` (categories end
        with ``other``).

    Raises:
        DriftRequestInvalid: the target column does not hold values of the baseline's kind (422).
    """
    return _column_drift(profile, baseline, target, th, baseline_sorted)[0]


def _column_drift(
    profile: Mapping[str, Any],
    baseline: pd.Series | None,
    target: pd.Series,
    th: Thresholds,
    baseline_sorted: np.ndarray | None,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """(:func:`column_drift`, the target's values sorted without missing ones: numeric columns, else None)."""
    name = str(profile["name"])
    t: np.ndarray | None = None
    kind = profile["kind"]
    bins: dict[str, Any]
    if kind == "numeric":
        try:
            t = np.sort(_present(target))  # sorted once: the counts and KS use it
        except (TypeError, ValueError):
            raise DriftRequestInvalid(
                f"features.{name}", f"the target's values are not numbers ({target.dtype})"
            ) from None
        edges = list(profile["bin_edges"])
        b_counts = np.asarray(profile["counts"], dtype=np.int64)
        t_counts = distances.numeric_counts(edges, t, presorted=True) if edges else np.zeros(0, dtype=np.int64)
        bins = {"edges": edges}
        test = "ks"
        n_t = len(t)
    else:
        target_values = target.dropna()
        categories = list(profile["categories"])
        b_counts = np.asarray([*profile["counts"], profile["other"]], dtype=np.int64)
        t_counts = distances.categorical_counts(categories, target_values)
        bins = {"categories": [*categories, "other"]}
        test = "chi2"
        n_t = len(target_values)
    n_b = int(b_counts.sum())  # a baseline without values has no bins at all
    psi = js = statistic = p_value = None
    if n_b and n_t:
        psi, js = distances.psi(b_counts, t_counts), distances.js_distance(b_counts, t_counts)
        if t is not None:
            if baseline_sorted is None:
                assert baseline is not None
                baseline_sorted = np.sort(baseline.dropna().to_numpy(dtype=np.float64))
            statistic, p_value = distances.ks_test(baseline_sorted, t, presorted=True)
        else:
            statistic, p_value = distances.chi2_test(b_counts, t_counts)
        verdict = th.verdict(psi)
    else:  # degenerate: a side without values (see the module docstring)
        verdict = "ok" if n_b == n_t == 0 else "drift"
    item = {
        "name": name,
        "feature": profile.get("feature"),
        "kind": kind,
        "psi": psi,
        "js": js,
        "test": test if p_value is not None else None,
        "statistic": statistic,
        "p_value": p_value,
        "null_rate_baseline": profile["nulls"] / profile["count"] if profile["count"] else None,
        "null_rate_target": float(target.isna().mean()) if len(target) else None,
        "verdict": verdict,
        "thresholds": th.to_dict(),
        "values_baseline": n_b,
        "values_target": n_t,
        "bins": {**bins, "baseline_counts": b_counts.tolist(), "target_counts": t_counts.tolist()},
    }
    return item, t


def _present(column: pd.Series) -> np.ndarray:
    """``column.dropna().to_numpy(dtype=np.float64)`` (a float64 column without the copy into a Series).

    Raises:
        TypeError, ValueError: values that are not numbers.
    """
    if column.dtype == np.float64:
        values = column.to_numpy()
        return values[~np.isnan(values)]
    return column.dropna().to_numpy(dtype=np.float64)


def _target_metrics(profile: Mapping[str, Any], target: pd.Series, t: np.ndarray | None) -> dict[str, Any]:
    """:func:`_metrics` of one target column, from its sorted values ``t`` (numeric) when given."""
    if t is None:
        return _metrics([dict(profile)], target.to_frame(profile["name"]))[profile["name"]]
    m: dict[str, Any] = {"nullCount": len(target) - len(t), "count": len(t)}
    lo, hi = np.searchsorted(t, -np.inf, side="right"), np.searchsorted(t, np.inf, side="left")
    if lo < hi:  # the finite values' extremes
        m |= {"min": float(t[lo]), "max": float(t[hi - 1])}
    return m


def worst(verdicts: list[str]) -> str:
    """The most severe of ``verdicts`` (``ok`` < ``warn`` < ``drift``)."""
    return max(verdicts, key=VERDICTS.index)


# -- baseline and target ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    record: TrainingSetRecord
    profile: dict[str, Any]
    model: str | None  # "name@version" when given as a model
    options: TrainingSetOptions
    plan: RetrievalPlan

    def column(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.profile["columns"] if c["name"] == name), None)


def baseline_profile(record: TrainingSetRecord, plan: RetrievalPlan) -> dict[str, Any]:
    """The stored profile of ``record``; a set stored before profiles existed is profiled now from its
    stored rows and the profile stored (as at creation)."""
    path = profile_path(record.data_path)
    profile = read_profile(path)
    if profile is None:
        frame = pd.read_parquet(record.data_path)
        full = bool(record.options.get("full_feature_names"))
        roles = column_roles([str(c) for c in frame.columns], tuple(plan.join_keys), plan.requested, full)
        profile = build_profile(frame, roles)
        write_profile(profile, path)
    return profile


def resolve_baseline(
    spec: BaselineIn, store: FeatureStore, catalog: TrainingSetCatalog, lineage: LineageStore, root: Path
) -> Baseline:
    """The baseline training set of a request (``root``: the training-sets folder).

    Raises:
        NodeNotFound: no such model (404, field ``baseline.model``).
        TrainingSetNotFound / TrainingSetDeleted: 404 / 410 (field ``baseline.training_set_id``).
    """
    model = None
    ts_id = spec.training_set_id
    if spec.model is not None:
        model = f"{spec.model.name}@{spec.model.version}"
        try:
            node = lineage.get_node(NodeRef(NodeKind.MODEL, model))
        except NodeNotFound as exc:
            exc.field = "baseline.model"  # type: ignore[attr-defined]
            raise
        ts_id = str(node.attributes["training_set_id"])
    assert ts_id is not None
    try:
        record = catalog.get(ts_id).located(root)
    except TrainingSetNotFound as exc:
        exc.field = "baseline.model" if model else "baseline.training_set_id"  # type: ignore[misc]
        raise
    try:
        record.check_present()
    except Exception as exc:
        exc.field = "baseline.model" if model else "baseline.training_set_id"  # type: ignore[attr-defined]
        raise
    opts = TrainingSetOptions(**record.options)
    _, plan = resolve(store, opts)
    return Baseline(record, baseline_profile(record, plan), model, opts, plan)


@dataclass(frozen=True)
class Target:
    frame: pd.DataFrame
    describe: dict[str, Any]  # {"kind", ...}: what the report says the target was
    dataset: str  # its OpenLineage dataset name (before the report id is known: may hold "{id}")


def join_target(baseline: Baseline, entity_df: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Entity rows (validated) joined point in time with the baseline's features and options (by the
    engine ``settings`` choose: see ``training_sets.compute``)."""
    return compute(entity_df, baseline.plan, baseline.options, settings).frame


def target_of(
    spec: TargetIn | pd.DataFrame,
    baseline: Baseline,
    catalog: TrainingSetCatalog,
    settings: Settings,
    timezone: str | None = None,
    columns: list[str] | None = None,
) -> Target:
    """The target frame: a stored set's rows, the online log's window joined, or entity rows (a JSON
    list in ``spec.entity_rows``, or an already-read table as ``spec``) joined.

    ``columns``: of a stored set, read only these (those it has); every row is read either way.

    Raises:
        TrainingSetNotFound / TrainingSetDeleted (``target.training_set_id``), EntityRowsInvalid,
        OnlineLogUnavailable (409), DriftRequestInvalid (an empty window).
    """
    plan = baseline.plan
    if isinstance(spec, pd.DataFrame):
        frame = join_target(baseline, entity_frame_from_table(spec, plan, timezone), settings)
        return Target(frame, {"kind": "entity_rows", "row_count": len(frame)}, "entity_rows:{id}")
    if spec.training_set_id is not None:
        try:
            record = catalog.get(spec.training_set_id).located(settings.training_sets_path)
            record.check_present()
        except Exception as exc:
            exc.field = "target.training_set_id"  # type: ignore[attr-defined]
            raise
        if columns is not None:
            held = set(pq.read_schema(record.data_path).names)
            columns = [c for c in columns if c in held]
        frame = pd.read_parquet(record.data_path, columns=columns)
        if frame.columns.empty:  # none of the columns held: the row count still counts
            frame = pd.DataFrame(index=pd.RangeIndex(pq.ParquetFile(record.data_path).metadata.num_rows))
        return Target(
            frame,
            {"kind": "training_set", "training_set_id": record.id, "row_count": len(frame)},
            f"training_set:{record.id}",
        )
    if spec.window is not None:
        start, end = spec.window.start.astimezone(UTC), spec.window.end.astimezone(UTC)
        log = entity_rows_in_window(settings, start, end)
        if log.empty:
            raise DriftRequestInvalid("target.window", "the online log holds no requests in this window")
        service = baseline.record.feature_service
        if service and "feature_service" in log.columns:
            logged = sorted(str(s) for s in log["feature_service"].dropna().unique())
            log = log[log["feature_service"] == service]
            if log.empty:
                raise DriftRequestInvalid(
                    "target.window",
                    f"the online log holds no requests for feature service {service!r} (the baseline's) in this "
                    f"window; it holds requests for {logged}",
                )
        wanted = ["event_timestamp", *plan.join_keys, *plan.request_fields]
        entity_df = entity_frame_from_table(log[[c for c in wanted if c in log.columns]].reset_index(drop=True), plan)
        frame = join_target(baseline, entity_df, settings)
        window = {"start": _z(start), "end": _z(end)}
        return Target(
            frame,
            {"kind": "window", **window, "row_count": len(frame)},
            f"online_log:{window['start']}/{window['end']}",
        )
    assert spec.entity_rows is not None
    frame = join_target(baseline, entity_frame(spec.entity_rows, plan, timezone), settings)
    return Target(frame, {"kind": "entity_rows", "row_count": len(frame)}, "entity_rows:{id}")


def _z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the report -------------------------------------------------------------------------------------

ASSESSED_KINDS = ("numeric", "categorical")


def columns_to_assess(baseline: Baseline, features: list[str] | None) -> list[dict[str, Any]]:
    """The profile entries to assess: ``features`` (column names, or ``view:feature`` references),
    else every numeric or categorical feature column of the baseline.

    Raises:
        DriftRequestInvalid: a name the baseline does not hold, a column named twice (by its name or its
            ``view:feature`` reference), or a column that is neither numeric nor categorical (``features.<i>``).
    """
    columns = baseline.profile["columns"]
    if features is None:
        chosen = [c for c in columns if c["role"] == "feature" and c["kind"] in ASSESSED_KINDS]
        if not chosen:
            raise DriftRequestInvalid("features", "the baseline has no numeric or categorical feature column")
        return chosen
    if not features:
        raise DriftRequestInvalid("features", "is empty; leave it out to assess every feature")
    out = []
    for i, name in enumerate(features):
        col = next((c for c in columns if name in (c["name"], c.get("feature"))), None)
        if col is None:
            raise DriftRequestInvalid(f"features.{i}", f"{name!r} is not a column of training set {baseline.record.id}")
        if any(c is col for c in out):
            raise DriftRequestInvalid(f"features.{i}", f"{name!r} names column {col['name']!r} again; list each once")
        if col["kind"] not in ASSESSED_KINDS:
            raise DriftRequestInvalid(
                f"features.{i}", f"{name!r} is a {col['kind']} column: neither numeric nor categorical"
            )
        out.append(col)
    return out


def assess(baseline: Baseline, target: pd.DataFrame, columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One :func:`column_drift` item per column, with its ``node`` (lineage id of the feature, or null).

    Raises:
        DriftRequestInvalid: the target lacks a column (``target``), or holds values of another kind.
        ThresholdTagInvalid: see :func:`thresholds_of`.
    """
    return _assess(baseline, target, columns)[0]


def _assess(
    baseline: Baseline, target: pd.DataFrame, columns: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(:func:`assess`, the target's :func:`_metrics` per column, measured on the way)."""
    missing = [c["name"] for c in columns if c["name"] not in target.columns]
    if missing:
        raise DriftRequestInvalid("target", f"has no column {', '.join(map(repr, missing))}")
    thresholds = thresholds_of(baseline.plan)
    # numeric columns with values: KS needs the baseline's rows, sorted (cached: a stored set never changes)
    numeric = [c["name"] for c in columns if c["kind"] == "numeric" and c["count"] > c["nulls"]]
    rows = sorted_columns(baseline.record.data_path, numeric) if numeric else {}
    empty = np.zeros(0, dtype=np.float64)

    def one(col: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        th, node = thresholds.get(col.get("feature") or "", (Thresholds(DEFAULT_WARN, DEFAULT_DRIFT, "default"), None))
        column = target[col["name"]]
        item, t = _column_drift(col, None, column, th, rows.get(col["name"], empty))
        return {**item, "node": node}, _target_metrics(col, column, t)

    # per column: sorting, counting and the KS p-value run in numpy/scipy code that releases the GIL
    workers = min(len(columns), os.cpu_count() or 1, MAX_ASSESS_THREADS)
    if workers <= 1:
        done = [one(col) for col in columns]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="feastline-drift") as pool:
            done = list(pool.map(one, columns))  # in column order; the first column's error in order is raised
    return [item for item, _ in done], {col["name"]: m for col, (_, m) in zip(columns, done, strict=True)}


def _metrics(columns: list[dict[str, Any]], frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """Per column ``nullCount``, ``count``, ``min``, ``max`` (and the baseline's ``quantiles``), from the
    profile (``frame`` None) or measured on ``frame``."""
    out: dict[str, dict[str, Any]] = {}
    for c in columns:
        if frame is None:
            m: dict[str, Any] = {"nullCount": c["nulls"], "count": c["count"] - c["nulls"]}
            if c["kind"] == "numeric":
                m |= {"min": c.get("min"), "max": c.get("max")}
                if c.get("quantiles"):
                    m["quantiles"] = {f"{q:g}": v for q, v in zip(np.linspace(0, 1, 11), c["quantiles"], strict=True)}
        else:
            col = frame[c["name"]]
            m = {"nullCount": int(col.isna().sum()), "count": int(col.notna().sum())}
            if c["kind"] == "numeric" and m["count"]:
                values = col.dropna().to_numpy(dtype=np.float64)
                finite = values[np.isfinite(values)]
                if finite.size:
                    m |= {"min": float(finite.min()), "max": float(finite.max())}
        out[c["name"]] = m
    return out


def public(report: Mapping[str, Any]) -> dict[str, Any]:
    """The answer of ``POST /monitoring/drift`` and ``GET /monitoring/drift/{id}``: the stored report
    without the bins (those are for the page: :func:`histograms`)."""
    return {**report, "features": [{k: v for k, v in f.items() if k != "bins"} for f in report["features"]]}


def histograms(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the monitoring page draws, per feature of a stored report: ``{"name", "kind", "edges"
    (numeric: inner bin edges, bins right-closed, open at both ends) | "categories" (categorical, last
    ``other``), "baseline_counts", "target_counts", "psi", "verdict", "thresholds": {"warn", "drift"}}``."""
    out = []
    for f in report["features"]:
        bins = f["bins"]
        shape = {"edges": bins["edges"]} if "edges" in bins else {"categories": bins["categories"]}
        out.append(
            {
                "name": f["name"],
                "kind": f["kind"],
                **shape,
                "baseline_counts": bins["baseline_counts"],
                "target_counts": bins["target_counts"],
                "psi": f["psi"],
                "verdict": f["verdict"],
                "thresholds": {"warn": f["thresholds"]["warn"], "drift": f["thresholds"]["drift"]},
            }
        )
    return out


def run_drift(
    request: DriftRequest | tuple[BaselineIn, pd.DataFrame, list[str] | None, str | None],
    store: FeatureStore,
    catalog: TrainingSetCatalog,
    lineage: LineageStore,
    reports: DriftReports,
    settings: Settings,
) -> dict[str, Any]:
    """Compute, store, attach to lineage and emit one drift report.

    Args:
        request: the JSON body, or (baseline, entity table read from a Parquet/Arrow body, features,
            timezone).

    Returns:
        the stored report: ``{"id", "created_at", "verdict", "baseline": {"training_set_id", "model",
        "row_count"}, "target": {"kind", ...,"row_count"}, "features": [<column_drift item> + "node"]}``.

    Raises:
        see :func:`resolve_baseline`, :func:`target_of`, :func:`columns_to_assess`, :func:`assess`.
    """
    started = datetime.now(UTC)
    if isinstance(request, DriftRequest):
        spec, target_spec, features, tz = request.baseline, request.target, request.features, request.timezone
    else:
        spec, target_spec, features, tz = request
    baseline = resolve_baseline(spec, store, catalog, lineage, settings.training_sets_path)
    columns = columns_to_assess(baseline, features)
    target = target_of(target_spec, baseline, catalog, settings, tz, [c["name"] for c in columns])
    items, target_metrics = _assess(baseline, target.frame, columns)
    drift_id = f"drift-{uuid.uuid4().hex[:16]}"
    created = datetime.now(UTC)
    report = {
        "id": drift_id,
        "created_at": _z(created),
        "verdict": worst([f["verdict"] for f in items]),
        "baseline": {
            "training_set_id": baseline.record.id,
            "model": baseline.model,
            "row_count": baseline.record.row_count,
        },
        "target": target.describe,
        "features": items,
    }
    reports.add(report, created)
    _attach(lineage, report)
    dataset = target.dataset.replace("{id}", drift_id)
    events = ol.drift_events(
        str(uuid.uuid4()),
        started,
        datetime.now(UTC),
        f"training_set:{baseline.record.id}",
        dataset,
        (baseline.record.row_count, _metrics(columns, None)),
        (len(target.frame), target_metrics),
        report,
    )
    openlineage_for(lineage).emit_all(events)
    return report


def _attach(lineage: LineageStore, report: Mapping[str, Any]) -> None:
    """``last_drift`` on the baseline's node, the model's and each drifting feature's, in one transaction
    (nodes not stored, e.g. a feature since removed from the repo, are left out)."""
    summary = {"id": report["id"], "verdict": report["verdict"], "created_at": report["created_at"]}
    refs = [NodeRef(NodeKind.TRAINING_SET, report["baseline"]["training_set_id"])]
    if report["baseline"]["model"]:
        refs.append(NodeRef(NodeKind.MODEL, report["baseline"]["model"]))
    updates: dict[NodeRef, dict[str, Any]] = {ref: {"last_drift": summary} for ref in refs}
    for f in report["features"]:
        if f["verdict"] == "drift" and f["node"]:
            drifted = {**summary, "psi": f["psi"], "feature_verdict": f["verdict"]}
            updates[NodeRef.parse(f["node"])] = {"last_drift": drifted}
    # a few indexed lookups, not the whole graph (every report writes, so a cached graph is always stale)
    lineage.update_attributes_of({ref: attrs for ref, attrs in updates.items() if _stored(lineage, ref)})


def _stored(lineage: LineageStore, ref: NodeRef) -> bool:
    try:
        lineage.get_node(ref)
    except NodeNotFound:
        return False
    return True
