"""The leakage audit run on every training set, recomputed on the joined output itself.

Per view it counts rows matched and rows null (no feature row in TTL), the largest
``entity_ts - feature_ts``, and proves for every matched row that ``feature_ts <= entity_ts``,
``created_ts <= entity_ts`` (when the created filter is on and the source has a created column)
and ``feature_ts >= entity_ts - ttl``. Any violation raises ``LeakageDetected``: the caller
returns no data. Under the created filter it also counts the view's source rows whose ``created`` is
null (knowledge time unknown): the cut-off excluded them (``feature_rows_created_unknown``).
"""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from service.training.offline.client_created import client_created_matches, ledger_path
from service.training.offline.errors import RetrievalError
from service.training.offline.prepared import per_file_state
from service.training.offline.views import ViewSpec

TS = "event_timestamp"


@dataclass(frozen=True)
class ViewAudit:
    view: str
    rows_matched: int
    rows_null: int
    max_feature_age_seconds: float | None  # largest entity_ts - feature_ts over matched rows
    ttl_seconds: float | None
    created_filter: bool  # created_ts <= entity_ts enforced (False: turned off, or no created column)
    violations: dict[str, int]  # check name -> rows failing it (all zero in an answered request)
    feature_rows_created_unknown: int = 0  # source rows with a null created, excluded by the filter (0 when off)
    feature_rows_client_created: int = 0  # matched rows whose created time the pusher gave (allow_client_created)


@dataclass(frozen=True)
class LeakageAudit:
    rows: int
    created_filter_requested: bool
    views: tuple[ViewAudit, ...]

    @property
    def passed(self) -> bool:
        return not any(n for v in self.views for n in v.violations.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "passed": self.passed,
            "created_filter_requested": self.created_filter_requested,
            # rows joined to a feature row whose created time came from the pusher, not the service
            "client_created_rows": sum(v.feature_rows_client_created for v in self.views),
            "views": [asdict(v) for v in self.views],
        }


class LeakageDetected(RetrievalError):
    """The output violates the point-in-time contract: no data is returned."""

    field = None

    def __init__(self, audit: LeakageAudit):
        self.audit = audit
        bad = {v.view: {k: n for k, n in v.violations.items() if n} for v in audit.views}
        super().__init__(f"leakage audit failed: { ({k: v for k, v in bad.items() if v}) }")

    def details(self) -> dict[str, Any]:
        return {"audit": self.audit.to_dict()}


def audit_join(
    entity_ts: pd.Series,
    joined: pd.DataFrame,
    views: tuple[ViewSpec, ...],
    created_filter: bool,
    entity_keys: pd.DataFrame | None = None,
) -> LeakageAudit:
    """Audit ``joined`` (``join_views`` output, aligned with ``entity_ts``, UTC) for each view.

    ``entity_keys`` (the entity rows' join-key columns, aligned too) lets the audit count the joined
    rows whose created time a pusher gave (:mod:`service.training.offline.client_created`)."""
    audits = []
    ent = _ns(entity_ts)
    ent_known = ent != _NAT
    for v in views:
        feature_ts = joined[f"{v.name}____feature_ts"]
        created_ts = joined[f"{v.name}____created_ts"]
        feat, created = _ns(feature_ts), _ns(created_ts)
        matched = feat != _NAT
        both = matched & ent_known  # a comparison with a missing entity time holds for no row (pandas' NaT)
        age = ent[both] - feat[both]
        enforce_created = created_filter and v.created_field is not None
        ttl_ns = v.ttl // pd.Timedelta(1, "ns") if v.ttl else None
        unmatched = ~matched
        without_row = np.zeros(len(matched), dtype=bool)
        if unmatched.any():
            for f in v.features:
                without_row |= joined[f"{v.name}__{f}"].notna().to_numpy(dtype=bool) & unmatched
        violations = {
            "feature_ts_after_entity_ts": int((feat[both] > ent[both]).sum()),
            "created_ts_after_entity_ts": int(((created != _NAT) & both & (created > ent)).sum())
            if enforce_created
            else 0,
            "feature_older_than_ttl": int((age > ttl_ns).sum()) if ttl_ns is not None else 0,
            "values_without_feature_row": int(without_row.sum()),
        }
        n_matched = int(matched.sum())
        # ns exact, not µs; NaT's value (as pandas gives) when every matched row lacks its entity time
        max_age = (int(age.max()) if len(age) else pd.NaT.value) / 1e9 if n_matched else None
        audits.append(
            ViewAudit(
                view=v.name,
                rows_matched=n_matched,
                rows_null=len(matched) - n_matched,
                max_feature_age_seconds=max_age,
                ttl_seconds=v.ttl.total_seconds() if v.ttl else None,
                created_filter=enforce_created,
                feature_rows_created_unknown=_created_unknown(v) if enforce_created else 0,
                feature_rows_client_created=_client_created(v, entity_keys, feature_ts, created_ts),
                violations=violations,
            )
        )
    return LeakageAudit(len(entity_ts), created_filter, tuple(audits))


_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds


def _ns(stamps: pd.Series) -> np.ndarray:
    """A timestamp column (tz-aware or naive UTC, any unit) as int64 nanoseconds since the epoch, NaT as
    :data:`_NAT`: the audit compares plain integers (pandas' per-Series overhead dominated a small set)."""
    return np.asarray(stamps.to_numpy(dtype="datetime64[ns]")).view(np.int64)


def _client_created(v: ViewSpec, entity_keys: pd.DataFrame | None, feature_ts: pd.Series, created_ts: pd.Series) -> int:
    if entity_keys is None or v.created_field is None or not ledger_path(v.path).exists():
        return 0  # no ledger, no client-created row (checked before the keys are sliced: a small set's ms)
    keys = entity_keys[list(v.join_keys)]
    return client_created_matches(v.path, {k: v.columns[k] for k in v.join_keys}, keys, feature_ts, created_ts)


def _created_unknown(v: ViewSpec) -> int:
    """Rows of ``v``'s source whose created timestamp is null.

    Read from the Parquet footers of the source's files (the null count each row group records for
    the column: no data is read); when a file lacks the column or a row group its null count, DuckDB
    counts over the source's rows instead.
    """
    assert v.created_field is not None
    created = '"' + v.created_field.replace('"', '""') + '"'
    files = v.parquet_files()

    def count() -> int:
        nulls = _footer_null_count(files, v.created_field or "")
        if nulls is not None:
            return nulls
        with duckdb.connect() as con:
            row = con.execute(f"SELECT count(*) - count({created}) FROM read_parquet(?)", [v.parquet_glob]).fetchone()
        return int(row[0]) if row else 0

    return per_file_state(("created_unknown", v.created_field), files, count) if files else count()


def _footer_null_count(files: list[Path], column: str) -> int | None:
    """Nulls in the top-level ``column`` over ``files`` as their footers record them; None when a
    file has no such column or a row group carries no null count (then it must be counted)."""
    total = 0
    for path in files:
        meta = pq.read_metadata(path)
        index = next((i for i in range(meta.num_columns) if meta.schema.column(i).path == column), None)
        if index is None:
            return None
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(index).statistics
            if stats is None or not stats.has_null_count:
                return None
            total += stats.null_count
    return total
