"""Online reads: validate a ``feast serve``-style request, then read through Feast's online store.

Request and response JSON are those of ``feast serve``'s ``POST /get-online-features``:
``{"entities": {"origin": ["EWR"], ...}, "feature_service": "delay_model_v1"}`` (or ``"features"``),
answered as ``{"metadata": {"feature_names": [...]}, "results": [{"values", "statuses",
"event_timestamps"}, ...]}`` with one result per name, entity keys first. Values as ``feast serve``
answers them: see :mod:`service.value_types`, except ``UnixTimestamp`` features, which are integer
epoch seconds as in ``feast serve`` (:func:`epoch_seconds_json`), not ISO 8601 strings.
"""

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.feature_view import DUMMY_ENTITY_VAL
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType
from pydantic import BaseModel, ConfigDict, Field

from service.training.offline.engine import apply_on_demand
from service.training.offline.views import RetrievalPlan, ViewSpec, plan_retrieval, service_references
from service.value_types import (
    column_problems,
    from_json_column,
    is_infinite,
    is_missing,
    json_problem,
    pandas_dtype,
    to_json_column,
    type_name,
)


class OnlineFeaturesRequest(BaseModel):
    """The body of ``feast serve``'s ``/get-online-features`` (Feast 0.67's ``GetOnlineFeaturesRequest``).

    Strict: wrong JSON types are 422, and so is a key that is not one of Feast's fields. A Feast field
    feastline does not act on (``include_feature_view_version_metadata``) is accepted and ignored.
    """

    model_config = ConfigDict(strict=True, extra="forbid")

    entities: dict[str, list[Any]] = Field(description="join key (and request field) -> values, one per entity")
    feature_service: str | None = None
    features: list[str] = Field(default_factory=list, description="'view:feature' references")
    full_feature_names: bool = False
    include_feature_view_version_metadata: bool = Field(
        False,
        description="sent by Feast 0.67's remote online client; accepted and ignored (feastline keeps no "
        "feature view versions, so the answer's metadata is the same either way)",
    )


class OnlineRequestInvalid(Exception):
    """An online request that cannot be answered: lists every problem as ``{"field", "row", "problem"}``."""

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        self.field = problems[0]["field"]
        super().__init__(f"{len(problems)} problem(s); first: {problems[0]['field']}: {problems[0]['problem']}")

    def details(self) -> dict[str, Any]:
        return {"problems": self.problems[:100], "problem_count": len(self.problems)}


class OnlineBatchTooLarge(Exception):
    """More entities in one online read than ``FEASTLINE_MAX_ONLINE_ENTITIES``: 413, nothing read."""

    field = "entities"

    def __init__(self, entities: int, limit: int):
        self.entities, self.limit = entities, limit
        super().__init__(
            f"{entities:,} entities in one read, more than the {limit:,} allowed (FEASTLINE_MAX_ONLINE_ENTITIES); "
            "split the batch"
        )

    def details(self) -> dict[str, Any]:
        return {"entities": self.entities, "limit": self.limit}


def _references(store: FeatureStore, req: OnlineFeaturesRequest) -> list[str]:
    if req.feature_service and req.features:
        raise OnlineRequestInvalid(
            [{"field": "features", "row": None, "problem": "give feature_service or features, not both"}]
        )
    if req.feature_service:
        return service_references(store, req.feature_service)
    if not req.features:
        raise OnlineRequestInvalid([{"field": "features", "row": None, "problem": "give feature_service or features"}])
    return req.features


def validate_online_request(store: FeatureStore, req: OnlineFeaturesRequest) -> tuple[list[str], RetrievalPlan]:
    """Check the request against the registry; return the feature references to read.

    Raises:
        OnlineRequestInvalid: a join key or request field missing, a key in ``entities`` that is
            neither (never ignored), lists of unequal length, a value that is not of the key's or
            field's declared Feast type (:mod:`service.value_types`; a string or ``1001.0`` for an
            ``Int64`` key), or a null.
        UnknownFeatureService / UnknownFeature: the service or a feature does not exist.
    """
    refs = _references(store, req)
    plan = plan_retrieval(store, refs, req.feature_service)
    problems: list[dict[str, Any]] = []
    names = [r if req.full_feature_names else r.partition(":")[2] for r in refs]
    if len(set(refs)) < len(refs):
        twice = sorted(r for r, n in Counter(refs).items() if n > 1)
        problems.append(
            {"field": "features", "row": None, "problem": f"{twice} requested more than once; list each feature once"}
        )
    elif len(set(names)) < len(names) and (clashes := sorted(n for n, k in Counter(names).items() if k > 1)):
        problems.append(
            {
                "field": "features",
                "row": None,
                "problem": f"{clashes} appear in more than one view; ask for full_feature_names=true",
            }
        )
    allowed = (*plan.join_keys, *plan.request_fields)
    for key in allowed:
        if key not in req.entities:
            problems.append({"field": f"entities.{key}", "row": None, "problem": "is missing"})
    problems += [
        {
            "field": f"entities.{key}",
            "row": None,
            "problem": "is neither a join key of the requested views nor a request field of their on-demand "
            f"views (expected {list(allowed)})",
        }
        for key in req.entities
        if key not in allowed
    ]
    lengths = {k: len(v) for k, v in req.entities.items()}
    if len(set(lengths.values())) > 1:
        problems.append({"field": "entities", "row": None, "problem": f"lists differ in length: {lengths}"})
    if not req.entities or not any(lengths.values()):
        problems.append({"field": "entities", "row": None, "problem": "no entities given"})
    for key, vtype in (plan.key_types | plan.request_types).items():
        values = req.entities.get(key, [])
        if None not in values:  # the usual case, checked as a column
            problems += [
                {"field": f"entities.{key}", "row": i, "problem": p} for i, p in column_problems(values, vtype)
            ]
            continue
        for i, v in enumerate(values):
            # a null cannot be looked up (training sets allow it for keys: null features)
            p = f"must be {type_name(vtype)}, got null" if v is None else json_problem(v, vtype)
            if p:
                problems.append({"field": f"entities.{key}", "row": i, "problem": p})
    if problems:
        raise OnlineRequestInvalid(problems)
    return refs, plan


class OnlineValueNotRepresentable(Exception):
    """A computed (on-demand) value is ±inf, which JSON cannot carry: 406, listing ``{"field", "row"}``."""

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        self.field = problems[0]["field"]
        rows = sorted({p["row"] for p in problems})[:20]
        fields = sorted({p["field"] for p in problems})
        super().__init__(f"JSON cannot carry the infinite values of {fields} at rows {rows}")

    def details(self) -> dict[str, Any]:
        return {"problems": self.problems[:100], "problem_count": len(self.problems)}


def _typed(values: list[Any], vtype: ValueType) -> pd.Series:
    """Checked JSON request-field values as a column of their declared type's pandas dtype."""
    converted = from_json_column(values, vtype)
    dtype = pandas_dtype(vtype)
    if vtype == ValueType.UNIX_TIMESTAMP:
        return pd.to_datetime(pd.Series(converted, dtype="object"), utc=True).astype(dtype)
    return pd.Series(converted, dtype=dtype)


class OnlineStoreUnavailable(Exception):
    """The online store did not answer (connection refused, timed out, locked): retry later."""

    field = None

    def __init__(
        self, reason: str, retry_after: int, reason_type: str = "unknown", probe: dict[str, Any] | None = None
    ):
        self.retry_after, self.reason_type, self.probe = retry_after, reason_type, probe
        super().__init__(f"the online store is unavailable: {reason}; retry in {retry_after} s")

    def details(self) -> dict[str, Any]:
        """``retry_after_seconds``, and ``online_store`` (the readiness probe's result) when a probe failed."""
        return {"retry_after_seconds": self.retry_after, "online_store": self.probe}


EPOCH = "1970-01-01T00:00:00Z"
STORE_ERRORS: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, OSError, sqlite3.OperationalError)
try:  # redis-py's errors do not derive from the builtin ConnectionError
    import redis.exceptions as redis_errors

    STORE_ERRORS += (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError)
except ImportError:  # pragma: no cover - redis is a pinned dependency
    pass


def _iso(ts: datetime) -> str:
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _absent(event_ts: datetime, data: dict[str, Any] | None) -> bool:
    """Feast's Redis store answers a key with no row for this view as (epoch 0, all values empty)."""
    return event_ts.timestamp() == 0 and not any(v.WhichOneof("val") for v in (data or {}).values())


def _row_state(event_ts: datetime | None, data: dict[str, Any] | None, ttl: Any, now: datetime) -> tuple[str, str]:
    """(status, event timestamp) of one entity's stored row as a whole, before looking at single values.

    ``NOT_FOUND`` (no row, or one dated after ``now``), ``OUTSIDE_MAX_AGE`` (older than ``ttl`` at
    ``now``), else ``PRESENT``; the per-value status may still become ``NULL_VALUE``/``NOT_FOUND``.
    """
    if event_ts is None or _absent(event_ts, data):
        return "NOT_FOUND", EPOCH
    aware = event_ts if event_ts.tzinfo else event_ts.replace(tzinfo=UTC)
    if aware > now:  # a replay pinned before the stored row: that value did not exist yet at `now`
        return "NOT_FOUND", EPOCH
    if ttl and now - aware > ttl:
        return "OUTSIDE_MAX_AGE", _iso(aware)
    return "PRESENT", _iso(aware)


# Feast's own converter writes a null UnixTimestamp (NaT) as this sentinel rather than an empty value
NULL_UNIX_TIMESTAMP = -(2**63)


def _cell(state: tuple[str, str], data: dict[str, Any] | None, feature: str) -> tuple[Any, str, str]:
    """(value, status, event timestamp) of one stored feature value, given its row's ``_row_state``
    (the value as Feast's Python type; :func:`service.value_types.to_json` answers it)."""
    status, stamp = state
    proto = (data or {}).get(feature)
    if proto is None:
        return None, "NOT_FOUND", EPOCH
    if status != "PRESENT":
        return None, status, stamp
    kind = proto.WhichOneof("val")
    if kind is None or (kind == "unix_timestamp_val" and proto.unix_timestamp_val == NULL_UNIX_TIMESTAMP):
        return None, "NULL_VALUE", stamp
    return python_value(proto, kind), "PRESENT", stamp


# Value kinds Feast's ``feast_value_type_to_python_type`` answers as the field itself (no feature type
# hint, no conversion): read directly, which is most of an online read's values; any other kind
# (timestamps, lists, maps, JSON, UUIDs, decimals...) goes through Feast.
PLAIN_KINDS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "string_val", "bytes_val", "bool_val"})


def python_value(proto: Any, kind: str | None) -> Any:
    """``feast_value_type_to_python_type(proto)``, given ``kind = proto.WhichOneof("val")``."""
    return getattr(proto, kind) if kind in PLAIN_KINDS else feast_value_type_to_python_type(proto)


_KEY_PROTOS: dict[tuple[ValueType, type, Any], Any] = {}
_KEY_PROTOS_MAX = 100_000


def key_protos(values: list[Any], vtype: ValueType) -> list[Any]:
    """``python_values_to_proto_values(values, vtype)`` for the join-key values of one key (checked
    values of ``vtype``, all of one Python type), each value converted by Feast once and then kept:
    an entity key is read again and again. The protos are copied into each ``EntityKey``, never changed."""
    missing = [v for t, v in dict.fromkeys((type(v), v) for v in values) if (vtype, t, v) not in _KEY_PROTOS]
    if missing:
        if len(_KEY_PROTOS) + len(missing) > _KEY_PROTOS_MAX:
            _KEY_PROTOS.clear()
        for v, proto in zip(missing, python_values_to_proto_values(missing, vtype), strict=True):
            _KEY_PROTOS[(vtype, type(v), v)] = proto
    return [_KEY_PROTOS[(vtype, type(v), v)] for v in values]


_EPOCH_SECONDS_TYPES = frozenset({ValueType.UNIX_TIMESTAMP, ValueType.UNIX_TIMESTAMP_LIST})
_EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_seconds_json(value: Any, vtype: ValueType | None = None) -> Any:
    """A ``UnixTimestamp`` value (or a list of them) as ``feast serve`` answers it: integer seconds since
    the epoch (Feast's ``unix_timestamp_val``, which keeps whole seconds; a finer time is floored);
    missing as None. Feast's remote online client turns that integer back into Feast's value, as from
    ``feast serve``; training sets answer ISO 8601 instead (:func:`service.value_types.to_json`)."""
    if isinstance(value, list | tuple | np.ndarray):
        return [epoch_seconds_json(v) for v in value]
    if is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return int(value.value // 1_000_000_000)  # naive = UTC, as everywhere in Feast
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return (aware - _EPOCH_DT) // timedelta(seconds=1)
    if isinstance(value, np.datetime64):
        return int(pd.Timestamp(value).value // 1_000_000_000)
    return int(value)


def _column(values: list[Any], statuses: list[str], stamps: list[str]) -> dict[str, Any]:
    return {"values": values, "statuses": statuses, "event_timestamps": stamps}


def _read_view(
    store: FeatureStore, spec: ViewSpec, req: OnlineFeaturesRequest, n: int, now: datetime, names: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Read one view for all ``n`` entities: the response columns and the raw values (for on-demand views).

    Entities are deduplicated on their join-key values first (a batch of 100 rows usually names a
    handful of distinct origins or carriers), so protobuf conversion, the store read and the value
    conversion happen once per distinct entity, then fan out to the requested rows.
    """
    fv = spec.definition
    key_columns = [from_json_column(req.entities[k], spec.types.get(k, ValueType.UNKNOWN)) for k in spec.join_keys]
    distinct: dict[tuple[Any, ...], int] = {}
    order = [distinct.setdefault(key, len(distinct)) for key in zip(*key_columns, strict=True)]
    if not spec.join_keys:  # a view without entities: one row for everyone, keyed as Feast keys it
        distinct, order = {(): 0}, [0] * n
    key_types = {c.name: c.dtype.to_value_type() for c in fv.entity_columns}
    position = {k: j for j, k in enumerate(spec.join_keys)}
    protos = [  # per store key (the view's own join keys, projection undone), one value per distinct entity
        key_protos(
            [DUMMY_ENTITY_VAL if column is None else key[position[column]] for key in distinct],
            key_types.get(name, ValueType.STRING),  # Feast's dummy key of a view without entities is a string
        )
        for name, column in spec.store_keys.items()
    ]
    join_keys = list(spec.store_keys)
    keys = [EntityKeyProto(join_keys=join_keys, entity_values=list(values)) for values in zip(*protos, strict=True)]
    rows = store._get_provider().online_read(store.config, fv, keys, list(spec.features))
    columns: dict[str, dict[str, Any]] = {}
    raw: dict[str, list[Any]] = {}
    states = [_row_state(event_ts, data, spec.ttl, now) for event_ts, data in rows]
    for feature in spec.features:
        cells = [_cell(state, data, feature) for state, (_, data) in zip(states, rows, strict=True)]
        values = [cells[i][0] for i in order]
        raw[f"{spec.name}__{feature}"] = values
        if f"{spec.name}:{feature}" in names:
            vtype = spec.types.get(feature)
            if vtype in _EPOCH_SECONDS_TYPES:
                answered = [epoch_seconds_json(cell[0], vtype) for cell in cells]
            else:
                answered = to_json_column([cell[0] for cell in cells], vtype)  # once per entity
            columns[names[f"{spec.name}:{feature}"]] = _column(
                [answered[i] for i in order], [cells[i][1] for i in order], [cells[i][2] for i in order]
            )
    return columns, raw


def read_online(
    store: FeatureStore,
    req: OnlineFeaturesRequest,
    now: datetime,
    retry_after: int = 5,
    max_entities: int | None = None,
) -> dict[str, Any]:
    """Validate and read; the response dict shaped as ``feast serve`` shapes it.

    Per value a status: ``PRESENT``; ``NULL_VALUE`` (the stored value is null); ``NOT_FOUND`` (no row
    for that entity, or only one dated after ``now``, as in a replay pinned before the data's end);
    ``OUTSIDE_MAX_AGE`` (the row is older than the view's TTL at ``now``: its value is
    withheld as null, its event timestamp still reported). Entity keys come first, then features in
    request order (a feature service: its declared order).

    Raises:
        OnlineBatchTooLarge: a list in ``entities`` is longer than ``max_entities`` (checked first).
        OnlineRequestInvalid, UnknownFeatureService, UnknownFeature: see ``validate_online_request``.
        OnlineStoreUnavailable: the online store cannot be reached (answered as 503 + Retry-After).
        OnlineValueNotRepresentable: an on-demand view computed ±inf, which JSON cannot carry (406,
            naming the feature and rows); NaN is answered as null with status ``NULL_VALUE``.
    """
    longest = max((len(v) for v in req.entities.values()), default=0)
    if max_entities is not None and longest > max_entities:
        raise OnlineBatchTooLarge(longest, max_entities)
    refs, plan = validate_online_request(store, req)
    n = len(next(iter(req.entities.values())))
    names = {r: (r.replace(":", "__", 1) if req.full_feature_names else r.partition(":")[2]) for r in refs}
    columns: dict[str, dict[str, Any]] = {}
    raw: dict[str, list[Any]] = {}
    try:
        for spec in plan.views:
            cols, values = _read_view(store, spec, req, n, now, names)
            columns |= cols
            raw |= values
    except STORE_ERRORS as exc:
        raise OnlineStoreUnavailable(f"{type(exc).__name__}: {exc}", retry_after, type(exc).__name__) from exc
    infinite: list[dict[str, Any]] = []
    for spec in plan.on_demand:
        joined = pd.DataFrame(raw)
        requests = pd.DataFrame(
            {f: _typed(req.entities[f], spec.types.get(f, ValueType.UNKNOWN)) for f in spec.request_fields}
        )
        out = apply_on_demand(joined, requests, spec)
        for feature in spec.features:
            if f"{spec.name}:{feature}" not in names:
                continue
            computed = out[f"{spec.name}__{feature}"].tolist()
            infinite += [
                {"field": names[f"{spec.name}:{feature}"], "row": i, "problem": f"is {v}, which JSON cannot carry"}
                for i, v in enumerate(computed)
                if is_infinite(v)
            ]
            vtype = spec.types.get(feature)
            if vtype in _EPOCH_SECONDS_TYPES:
                values = [epoch_seconds_json(v, vtype) for v in computed]
            else:
                values = to_json_column(computed, vtype)
            statuses = ["NULL_VALUE" if is_missing(v) else "PRESENT" for v in computed]  # NaN is a null value
            columns[names[f"{spec.name}:{feature}"]] = _column(values, statuses, [EPOCH] * n)
    if infinite:
        raise OnlineValueNotRepresentable(infinite)
    entity_names = [k for k in req.entities if k in plan.join_keys]
    results = [_column(list(req.entities[k]), ["PRESENT"] * n, [EPOCH] * n) for k in entity_names]
    ordered = [names[r] for r in refs]
    results += [columns[name] for name in ordered]
    return {"metadata": {"feature_names": entity_names + ordered}, "results": results}
