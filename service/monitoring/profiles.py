"""Training-set profiles: the baseline a drift report compares a target against.

Every training set gets one when it is created, stored beside it as ``<id>.profile.json`` (written to a
temporary file and renamed: a reader sees the whole profile or none) and summarised in its lineage
node (attribute ``profile``). One entry per column of the set (join keys, features, labels and other
pass-through columns; the ``event_timestamp`` too, without bins):

- every column: ``name``, ``role`` (``join_key`` / ``event_timestamp`` / ``feature`` / ``passthrough``),
  ``feature`` (``view:feature`` for a feature column, else null), ``dtype``, ``kind``, ``count`` (rows),
  ``nulls`` (missing values; NaN is missing), ``degenerate`` (``"all_null"``, ``"all_equal"`` or null);
- ``kind: "numeric"`` (floats; integers with more than ``CATEGORICAL_MAX_DISTINCT`` distinct values):
  ``min``, ``max``, ``mean``, ``std`` (sample, ddof 1; null below 2 values) over the finite values,
  ``infinite`` (±inf values: in the outer bins, not in the statistics), ``quantiles`` (the 11
  equal-frequency edges, quantiles 0, 0.1, ..., 1 of the finite values, numpy's linear method),
  ``bin_edges`` (the inner edges e1..e9 with ties collapsed) and ``counts`` (one per bin). The bins are
  right-closed and open at both ends: ``(-inf, e1], (e1, e2], ..., (e9, +inf)``, so any target value
  has a bin. Tied inner edges (``precip`` is 0 for most rows) collapse into one and are recorded in
  ``ties`` (``[{"value", "quantiles"}]``), leaving fewer bins. An **all-equal** column (every value
  ``v``) gets the edges ``[nextafter(v, -inf), v]``: three bins, below ``v``, exactly ``v``, above ``v``;
- ``kind: "categorical"`` (strings, booleans, integers with at most ``CATEGORICAL_MAX_DISTINCT``
  distinct values): ``distinct``, ``categories`` (the ``TOP_K`` most frequent values, most frequent
  first, ties by value), ``counts`` (theirs) and ``other`` (values outside the top k);
- ``kind: "timestamp"``: ``min`` and ``max`` (ISO 8601 UTC); ``kind: "other"`` (lists, bytes): counts only.

An **all-null** column has ``degenerate: "all_null"`` and no bins (``bin_edges``/``categories`` empty,
``counts`` ``[]``): drift against it is defined in :mod:`service.monitoring.drift`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service.storage import write_atomically

QUANTILES = tuple(i / 10 for i in range(11))
TOP_K = 20
CATEGORICAL_MAX_DISTINCT = 20
PROFILE_VERSION = 1


def column_roles(
    columns: list[str], join_keys: tuple[str, ...], requested: tuple[tuple[str, str], ...], full_feature_names: bool
) -> dict[str, tuple[str, str | None]]:
    """Column name -> (role, ``view:feature`` or None) for the columns of a training set."""
    features = {(f"{v}__{f}" if full_feature_names else f): f"{v}:{f}" for v, f in requested}
    roles: dict[str, tuple[str, str | None]] = {}
    for name in columns:
        if name in features:
            roles[name] = ("feature", features[name])
        elif name in join_keys:
            roles[name] = ("join_key", None)
        elif name == "event_timestamp":
            roles[name] = ("event_timestamp", None)
        else:
            roles[name] = ("passthrough", None)
    return roles


Factorized = tuple[np.ndarray, Any]  # pandas.factorize: (codes, -1 where missing; the distinct values)


def _is_text_like(dtype: Any) -> bool:
    return bool(pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype))


def column_kind(col: pd.Series, factorized: Factorized | None = None) -> str:
    """``numeric``, ``categorical``, ``timestamp`` or ``other`` (see the module docstring); an object
    column's kind is read from its distinct values (``factorized``: ``pandas.factorize(col)``, if at hand)."""
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if pd.api.types.is_float_dtype(dtype):
        return "numeric"
    if pd.api.types.is_integer_dtype(dtype):
        return "categorical" if col.nunique(dropna=True) <= CATEGORICAL_MAX_DISTINCT else "numeric"
    if _is_text_like(dtype):
        uniques = (factorized or pd.factorize(col))[1]  # the distinct values: a few, not one per row
        inferred = pd.api.types.infer_dtype(uniques, skipna=True)
        if inferred in ("string", "boolean", "empty"):
            return "categorical"
        if inferred == "integer":
            return "categorical" if len(uniques) <= CATEGORICAL_MAX_DISTINCT else "numeric"
    return "other"


def numeric_values(col: pd.Series) -> np.ndarray:
    """The non-missing values of a numeric column as float64 (±inf kept)."""
    dtype = col.dtype
    if (isinstance(dtype, np.dtype) and dtype.kind in "fiu") or dtype.name in _NULLABLE_NUMBERS:
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)  # as dropna then to_numpy, without a Series
        return values[~np.isnan(values)]
    return col.dropna().to_numpy(dtype=np.float64)


_NULLABLE_NUMBERS = frozenset(
    {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64"}
)


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The bin of each value on right-closed bins ``(-inf, e1], (e1, e2], ..., (ek, +inf)``."""
    return np.searchsorted(edges, values, side="left")


def sorted_counts(edges: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """The counts of :func:`bin_index`'s bins for values already sorted: ``len(edges)`` binary searches
    (the bin ``(e_(i-1), e_i]`` holds ``#(x <= e_i) - #(x <= e_(i-1))``) instead of one per value."""
    at_or_below = np.searchsorted(ordered, edges, side="right")
    return np.diff(np.concatenate([[0], at_or_below, [len(ordered)]]))


def numeric_bins(values: np.ndarray) -> dict[str, Any]:
    """Quantile edges, collapsed inner edges, ties and counts of ``values`` (finite or ±inf, no NaN)."""
    values = np.sort(values)  # once: the quantiles, the counts (and the caller's statistics) use it sorted
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"quantiles": [], "bin_edges": [], "ties": [], "counts": [], "degenerate": "all_null"}
    quantiles = np.quantile(finite, QUANTILES)
    inner = quantiles[1:-1]
    if finite.min() == finite.max():
        v = float(finite[0])
        edges = np.array([np.nextafter(v, -np.inf), v])
        ties = [{"value": v, "quantiles": list(QUANTILES[1:-1])}]
        degenerate: str | None = "all_equal"
    else:
        edges = np.unique(inner)
        ties = [
            {"value": float(e), "quantiles": [q for q, x in zip(QUANTILES[1:-1], inner, strict=True) if x == e]}
            for e in edges
            if int(np.count_nonzero(inner == e)) > 1
        ]
        degenerate = None
    counts = sorted_counts(edges, values)
    return {
        "quantiles": [float(q) for q in quantiles],
        "bin_edges": [float(e) for e in edges],
        "ties": ties,
        "counts": [int(c) for c in counts],
        "degenerate": degenerate,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def categorical_bins(col: pd.Series, factorized: Factorized | None = None) -> dict[str, Any]:
    """Top-k categories (most frequent first, ties by value) with counts, the rest as ``other``."""
    if factorized is not None:
        codes, uniques = factorized
        tally = np.bincount(codes[codes >= 0], minlength=len(uniques))
        items = list(zip(list(uniques), tally.tolist(), strict=True))
    else:
        items = list(col.dropna().value_counts().items())
    if not items:
        return {"distinct": 0, "categories": [], "counts": [], "other": 0, "degenerate": "all_null"}
    ordered = sorted(items, key=lambda kv: (-int(kv[1]), str(kv[0])))
    top = ordered[:TOP_K]
    return {
        "distinct": len(ordered),
        "categories": [_json_value(k) for k, _ in top],
        "counts": [int(n) for _, n in top],
        "other": int(sum(int(n) for _, n in ordered[TOP_K:])),
        "degenerate": "all_equal" if len(ordered) == 1 else None,
    }


def _iso(ts: Any) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat().replace("+00:00", "Z")


def column_profile(name: str, col: pd.Series, role: str, feature: str | None) -> dict[str, Any]:
    """The profile entry of one column (see the module docstring for its keys)."""
    try:
        factorized = pd.factorize(col) if _is_text_like(col.dtype) else None  # one hashing pass for text columns
        kind = column_kind(col, factorized)
    except TypeError:  # unhashable values (an Array feature's lists): counted, never binned
        factorized, kind = None, "other"
    nulls = int(np.count_nonzero(factorized[0] < 0)) if factorized is not None else int(col.isna().sum())
    out: dict[str, Any] = {
        "name": name,
        "role": role,
        "feature": feature,
        "dtype": str(col.dtype),
        "kind": kind,
        "count": len(col),
        "nulls": nulls,
        "degenerate": "all_null" if nulls == len(col) else None,
    }
    if kind == "numeric":
        values = numeric_values(col)
        finite = values[np.isfinite(values)]
        out["infinite"] = int(values.size - finite.size)
        out["min"] = float(finite.min()) if finite.size else None
        out["max"] = float(finite.max()) if finite.size else None
        out["mean"] = float(finite.mean()) if finite.size else None
        out["std"] = float(finite.std(ddof=1)) if finite.size > 1 else None
        out.update(numeric_bins(values))
    elif kind == "categorical":
        out.update(categorical_bins(col, factorized))
    elif kind == "timestamp":
        values = col.dropna()
        out["min"] = _iso(values.min()) if len(values) else None
        out["max"] = _iso(values.max()) if len(values) else None
    if nulls == len(col):
        out["degenerate"] = "all_null"
    return out


def build_profile(frame: pd.DataFrame, roles: Mapping[str, tuple[str, str | None]]) -> dict[str, Any]:
    """``{"version", "row_count", "columns": [<column profile>, ...]}`` in the frame's column order."""
    columns = [
        column_profile(str(name), frame[name], *roles.get(str(name), ("passthrough", None))) for name in frame.columns
    ]
    return {"version": PROFILE_VERSION, "row_count": len(frame), "columns": columns}


def profile_path(data_path: str | Path) -> Path:
    """Where the profile of the training set stored at ``data_path`` (``<id>.parquet``) lives."""
    path = Path(data_path)
    return path.with_name(f"{path.stem}.profile.json")


def write_profile(profile: Mapping[str, Any], path: Path) -> None:
    """Write ``profile`` as JSON at ``path``, all or nothing (temporary file in the same folder + rename)."""
    data = json.dumps(profile, allow_nan=False, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda fh: fh.write(data))


def read_profile(path: Path) -> dict[str, Any] | None:
    """The stored profile, or None when the file does not exist."""
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def lineage_summary(profile: Mapping[str, Any]) -> dict[str, Any]:
    """What the training set's lineage node carries of its profile: per column its kind, counts, the
    statistics and the bins (everything but the raw quantiles and ties, which stay in the file)."""
    keep = ("kind", "role", "count", "nulls", "degenerate", "min", "max", "mean", "std", "bin_edges", "categories")
    keep += ("counts", "other")
    return {
        "version": profile["version"],
        "row_count": profile["row_count"],
        "columns": {c["name"]: {k: c[k] for k in keep if k in c} for c in profile["columns"]},
    }


def profile_training_set(frame: pd.DataFrame, plan: Any, full_feature_names: bool) -> dict[str, Any]:
    """The profile of a training set: ``frame`` is its data, ``plan`` its retrieval plan (``RetrievalPlan``)."""
    roles = column_roles([str(c) for c in frame.columns], tuple(plan.join_keys), plan.requested, full_feature_names)
    return build_profile(frame, roles)


def store_profile(frame: pd.DataFrame, plan: Any, full_feature_names: bool, data_path: Path) -> dict[str, Any]:
    """Profile a training set being created and store the profile beside its data (``profile_path``).

    Returns:
        the summary its lineage node carries (``lineage_summary``).
    """
    profile = profile_training_set(frame, plan, full_feature_names)
    write_profile(profile, profile_path(data_path))
    return lineage_summary(profile)


_PROFILERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="feastline-profile")
"""Profiles computed beside a training set's creation (at most two at once; callers wait for theirs)."""


def start_profile(frame: pd.DataFrame, plan: Any, full_feature_names: bool, data_path: Path) -> Future[dict[str, Any]]:
    """:func:`store_profile` on a profiler thread, so that it runs while the caller writes the set's
    Parquet files (numpy's sort and pyarrow's writer release the GIL): the caller takes ``.result()``
    (the lineage summary, or the profile's exception) before it records the set."""
    return _PROFILERS.submit(store_profile, frame, plan, full_feature_names, data_path)
