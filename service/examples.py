"""Example requests for the repo being served (the "try:" line ``feastline serve`` prints).

Built from the repo's own registry, so the example works on any Feast repo, not only the demo's.
"""

from datetime import datetime
from typing import Any

import pyarrow.parquet as pq
from feast import FeatureStore
from feast.value_type import ValueType

from service.training.offline.views import RetrievalPlan, plan_retrieval, service_references
from service.value_types import SCALAR_OF_LIST, to_json

V = ValueType
_PLACEHOLDER: dict[ValueType, Any] = {
    V.INT32: 1,
    V.INT64: 1,
    V.FLOAT: 1.0,
    V.DOUBLE: 1.0,
    V.STRING: "example",
    V.BOOL: True,
    V.BYTES: "AA==",
}
MAX_FEATURES = 5  # a repo without feature services: the first view's first features


def training_set_example(store: FeatureStore, now: datetime) -> dict[str, Any] | None:
    """A ``POST /training-sets`` body for ``store``'s repo, or None when it defines no feature.

    The features: the first feature service by name, else the first feature view's (by name) first
    :data:`MAX_FEATURES` features. One entity row: each join key and ``event_timestamp`` from the last
    row of the source of the first view that has the key (so the example finds data), else a
    placeholder of the key's declared type and ``now``; each request field a placeholder of its type.
    """
    services = sorted(fs.name for fs in store.list_feature_services())
    body: dict[str, Any]
    if services:
        body = {"feature_service": services[0]}
        plan = plan_retrieval(store, service_references(store, services[0]), services[0])
    else:
        views = sorted(store.list_feature_views(), key=lambda fv: fv.name)
        refs = [f"{fv.name}:{f.name}" for fv in views[:1] for f in fv.features[:MAX_FEATURES]]
        if not refs:
            return None
        body = {"features": refs}
        plan = plan_retrieval(store, refs, None)
    sampled, stamp = _sampled_keys(plan)
    timestamp = stamp or to_json(now, V.UNIX_TIMESTAMP)
    row: dict[str, Any] = {}
    for key, vtype in plan.key_types.items():
        row[key] = sampled[key] if key in sampled else _placeholder(vtype, timestamp)
    row["event_timestamp"] = timestamp
    for field, vtype in plan.request_types.items():
        row[field] = _placeholder(vtype, timestamp)
    return body | {"entity_rows": [row]}


def _placeholder(vtype: ValueType, timestamp: str) -> Any:
    if vtype in SCALAR_OF_LIST:
        return [_placeholder(SCALAR_OF_LIST[vtype], timestamp)]
    if vtype == V.UNIX_TIMESTAMP:
        return timestamp
    return _PLACEHOLDER.get(vtype, "example")


def _sampled_keys(plan: RetrievalPlan) -> tuple[dict[str, Any], str | None]:
    """Join-key values (JSON, by entity column) and the event time (ISO 8601) of the last row of a view's
    last source file, the first view with keys first; ({}, None) when no source can be read yet."""
    keys: dict[str, Any] = {}
    stamp = None
    for spec in sorted(plan.views, key=lambda v: not v.join_keys):
        missing = [k for k in spec.join_keys if k not in keys]
        files = spec.parquet_files()
        if not files or (stamp is not None and not missing):
            continue
        columns = [spec.columns[k] for k in missing] + [spec.timestamp_field]
        try:
            table = pq.read_table(files[-1], columns=columns)
        except (OSError, KeyError, ValueError):  # an unreadable file or a column it lacks: keep looking
            continue
        if table.num_rows == 0:
            continue
        last = table.slice(table.num_rows - 1).to_pylist()[0]
        if any(last[spec.columns[k]] is None for k in missing) or last[spec.timestamp_field] is None:
            continue
        keys |= {k: to_json(last[spec.columns[k]], spec.types.get(k)) for k in missing}
        stamp = stamp or to_json(last[spec.timestamp_field], V.UNIX_TIMESTAMP)
    return keys, stamp
