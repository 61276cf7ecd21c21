"""Feast value types on the wire: how a JSON value of each declared type is checked and read, and how a
stored value is answered. Shared by training sets, online reads and pushes, so that every route
follows the registry's declared type the same way.

Per Feast value type (``field.dtype.to_value_type()``):

- ``Int32`` / ``Int64``: a JSON integer in range (not ``1001.0``, a string or a boolean); answered as
  an integer; pandas ``Int32`` / ``Int64``.
- ``Float32`` / ``Float64``: a finite number; answered as the shortest decimal that round-trips the
  declared width (a Float32 1.111 is 1.111, even when held as float64); ``float32`` / ``float64``.
- ``String``: a string; ``object``.
- ``Bytes``: a base64 string (RFC 4648, padding required), answered as base64; ``object`` (bytes).
- ``Bool``: ``true`` / ``false``; ``boolean``.
- ``UnixTimestamp``: an ISO 8601 string with ``Z`` or an offset, answered as ISO 8601 UTC with
  ``Z`` (``/get-online-features`` answers integer epoch seconds instead, as ``feast serve`` does:
  ``service.online.reads.epoch_seconds_json``); ``datetime64[ns, UTC]``.
- ``Array(T)``: a JSON list of ``T`` values, no nulls inside (a bare value, e.g. a string for
  ``Array(String)``, is refused, never split into characters); answered as a list; ``object``.

``null`` is accepted where the caller allows it (a missing value); it is never a value of the type.
A value of the wrong type is refused, never cast: a string ``"1001"`` for an ``Int64`` key would
otherwise match whatever entity the cast lands on.
"""

import base64
import binascii
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from feast.value_type import ValueType

V = ValueType
INTEGER_RANGE = {V.INT32: (-(2**31), 2**31 - 1), V.INT64: (-(2**63), 2**63 - 1)}
FLOAT32_MAX = float(np.finfo(np.float32).max)
JOIN_KEY_TYPES = frozenset({V.STRING, V.BYTES, V.INT32, V.INT64, V.UNIX_TIMESTAMP})
SCALAR_OF_LIST = {
    V.INT32_LIST: V.INT32,
    V.INT64_LIST: V.INT64,
    V.FLOAT_LIST: V.FLOAT,
    V.DOUBLE_LIST: V.DOUBLE,
    V.STRING_LIST: V.STRING,
    V.BYTES_LIST: V.BYTES,
    V.BOOL_LIST: V.BOOL,
    V.UNIX_TIMESTAMP_LIST: V.UNIX_TIMESTAMP,
}
PANDAS_DTYPES: dict[ValueType, Any] = {
    V.INT32: pd.Int32Dtype(),
    V.INT64: pd.Int64Dtype(),
    V.FLOAT: np.dtype("float32"),
    V.DOUBLE: np.dtype("float64"),
    V.BOOL: pd.BooleanDtype(),
    V.STRING: np.dtype("object"),
    V.BYTES: np.dtype("object"),
    V.UNIX_TIMESTAMP: pd.DatetimeTZDtype("ns", "UTC"),
}
_NAMES = {
    V.INT32: "an integer (Int32)",
    V.INT64: "an integer (Int64)",
    V.FLOAT: "a finite number (Float32)",
    V.DOUBLE: "a finite number (Float64)",
    V.STRING: "a string",
    V.BYTES: "a base64 string (Bytes)",
    V.BOOL: "true or false",
    V.UNIX_TIMESTAMP: "an ISO 8601 timestamp with 'Z' or an offset",
}


def type_name(vtype: ValueType) -> str:
    """What a value of ``vtype`` must be, in words (for problem messages)."""
    if vtype in SCALAR_OF_LIST:
        return f"a list of {_NAMES[SCALAR_OF_LIST[vtype]].removeprefix('a ').removeprefix('an ')}"
    return _NAMES.get(vtype, str(vtype))


def pandas_dtype(vtype: ValueType) -> Any:
    """The pandas dtype a column of ``vtype`` is held in (``object`` for lists and unknown types)."""
    return PANDAS_DTYPES.get(vtype, np.dtype("object"))


def _timestamp(value: str) -> pd.Timestamp | None:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.isna(ts) or ts.tzinfo is None:
        return None
    return ts.tz_convert("UTC").as_unit("ns")


def json_problem(value: Any, vtype: ValueType) -> str | None:
    """Why the JSON ``value`` is not a value of ``vtype`` (``None``: it is, or it is null)."""
    if value is None:
        return None
    if vtype in SCALAR_OF_LIST:
        if not isinstance(value, list):
            return f"must be {type_name(vtype)}, got {value!r}"
        inner = SCALAR_OF_LIST[vtype]
        for j, item in enumerate(value):
            if item is None:
                return f"item {j} is null; a list of {type_name(inner)} holds no nulls"
            if p := json_problem(item, inner):
                return f"item {j}: {p}"
        return None
    ok: bool
    if vtype in INTEGER_RANGE:
        low, high = INTEGER_RANGE[vtype]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif vtype in (V.FLOAT, V.DOUBLE):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and _finite(value)
        ok = ok and (vtype == V.DOUBLE or abs(value) <= FLOAT32_MAX)
    elif vtype == V.STRING:
        ok = isinstance(value, str)
    elif vtype == V.BOOL:
        ok = isinstance(value, bool)
    elif vtype == V.BYTES:
        ok = isinstance(value, str) and _base64(value) is not None
    elif vtype == V.UNIX_TIMESTAMP:
        ok = isinstance(value, str) and _timestamp(value) is not None
    else:
        return None
    return None if ok else f"must be {type_name(vtype)}, got {value!r}"


_NONE = type(None)
_FAST_TYPES: dict[ValueType, frozenset[type]] = {
    V.INT32: frozenset({int}),
    V.INT64: frozenset({int}),
    V.FLOAT: frozenset({int, float}),
    V.DOUBLE: frozenset({int, float}),
    V.STRING: frozenset({str}),
    V.BOOL: frozenset({bool}),
}


def _bad_numbers(values: list[Any], vtype: ValueType, present: np.ndarray | None) -> np.ndarray | None:
    """Positions of out-of-range numbers among ``values`` (only ints, floats and, where ``present`` is
    given, Nones), checked on a NumPy array; None when the array cannot be built (e.g. an integer
    beyond 64 bits): the caller then checks value by value."""
    try:
        if vtype in INTEGER_RANGE:
            filled = values if present is None else [0 if v is None else v for v in values]
            ints = np.asarray(filled, dtype=np.int64)  # OverflowError beyond int64
            low, high = INTEGER_RANGE[vtype]
            bad = (ints < low) | (ints > high)
        else:
            filled = values if present is None else [0.0 if v is None else v for v in values]
            floats = np.asarray(filled, dtype=np.float64)  # OverflowError for an int beyond float64
            bad = ~np.isfinite(floats)
            if vtype == V.FLOAT:
                bad |= np.abs(floats) > FLOAT32_MAX
    except (OverflowError, ValueError, TypeError):
        return None
    return np.flatnonzero(bad if present is None else bad & present)


def column_problems(values: list[Any], vtype: ValueType) -> list[tuple[int, str]]:
    """``(position, problem)`` for each value of ``values`` that :func:`json_problem` refuses, in
    position order (nulls are not problems here), in time linear in ``len(values)``.

    Same answers as calling :func:`json_problem` on each value, but a column of the common kinds
    (numbers, strings, booleans) is checked on its set of Python types and a NumPy array, so only
    the refused values are visited one by one; other kinds (lists, bytes, timestamps) are checked
    value by value.
    """
    fast = _FAST_TYPES.get(vtype)
    if fast is not None:
        kinds = set(map(type, values))
        nulls = type(None) in kinds
        if kinds - {type(None)} <= fast:
            if vtype in (V.STRING, V.BOOL):
                return []
            present = np.fromiter((v is not None for v in values), bool, len(values)) if nulls else None
            bad = _bad_numbers(values, vtype, present)
            if bad is not None:
                return [(int(i), json_problem(values[i], vtype) or "") for i in bad]
    return [(i, p) for i, v in enumerate(values) if (p := json_problem(v, vtype))]


def _finite(value: int | float) -> bool:
    """A finite float64 (an integer beyond the float64 range is not: it cannot be held as one)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# perf's name for the same column check (tests/test_value_type_columns.py checks it against the rule)
json_problems = column_problems


def _base64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def from_json(value: Any, vtype: ValueType) -> Any:
    """A JSON value already accepted by :func:`json_problem` as the Python value Feast takes for
    ``vtype``: bytes for ``Bytes`` (base64 decoded), an aware UTC ``datetime`` for ``UnixTimestamp``,
    lists item by item, anything else unchanged."""
    if value is None:
        return None
    if vtype in SCALAR_OF_LIST:
        return [from_json(v, SCALAR_OF_LIST[vtype]) for v in value]
    if vtype == V.BYTES:
        return _base64(value)
    if vtype == V.UNIX_TIMESTAMP:
        ts = _timestamp(value)
        return None if ts is None else ts.to_pydatetime()
    return value


def from_json_column(values: list[Any], vtype: ValueType) -> list[Any]:
    """Checked JSON values of one column read as :func:`from_json` reads each: exactly
    ``[from_json(v, vtype) for v in values]`` (a new list), copied as is for the types whose values
    ``from_json`` leaves unchanged (all but ``Bytes``, ``UnixTimestamp`` and lists)."""
    if vtype in SCALAR_OF_LIST or vtype in (V.BYTES, V.UNIX_TIMESTAMP):
        return [from_json(v, vtype) for v in values]
    return list(values)


def is_infinite(value: Any) -> bool:
    """``value`` is ±inf (or a list holding one): JSON cannot carry it."""
    if isinstance(value, list | tuple | np.ndarray):
        return any(is_infinite(v) for v in value)
    return isinstance(value, float | np.floating) and math.isinf(value)


def is_missing(value: Any) -> bool:
    """``value`` is a missing value: None, NaN, NaT or pandas' NA (lists are never missing)."""
    if value is None or isinstance(value, list | tuple | np.ndarray):
        return value is None
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def to_json(value: Any, vtype: ValueType | None) -> Any:
    """A stored or computed value as answered in JSON, at the precision ``vtype`` declares.

    ``Float32``: the shortest decimal that round-trips the float32 (1.111, not 1.1109999418258667),
    also when the value was held as float64; ``Float64``: the shortest round-trip of the float64;
    ``Bytes``: base64; ``UnixTimestamp``: ISO 8601 UTC with ``Z``; lists item by item; numpy scalars
    as Python values; missing values (NaN, NaT, NA) as None. ±inf is returned as is (the caller refuses
    it, see :func:`is_infinite`).
    """
    # fast path for what online reads hand over most (hot: one call per answered value): the plain
    # Python scalars that answer as themselves; same result as the general path below
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return value
    if kind is int and vtype != V.UNIX_TIMESTAMP:
        return value
    if kind is float and vtype != V.FLOAT:
        return None if value != value else value  # NaN is missing; ±inf returned as is
    if isinstance(value, np.ndarray | tuple):
        value = list(value)
    if isinstance(value, list):
        inner = SCALAR_OF_LIST.get(vtype) if vtype is not None else None
        return [to_json(v, inner) for v in value]
    if is_missing(value):
        return None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | pd.Timestamp):
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.isoformat().replace("+00:00", "Z")
    if isinstance(value, np.generic):
        value = value.item()
    if vtype == V.FLOAT and isinstance(value, float) and math.isfinite(value):
        return float(str(np.float32(value)))
    if vtype == V.UNIX_TIMESTAMP and isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return value


_AS_THEMSELVES = frozenset({_NONE, str, bool})  # answered unchanged whatever the declared type


def to_json_column(values: list[Any], vtype: ValueType | None) -> list[Any]:
    """One column of stored or computed values as answered in JSON: exactly
    ``[to_json(v, vtype) for v in values]`` (a new list), without the per-value call for a column of
    plain Python scalars that answer as themselves (``None``, ``str``, ``bool``, ``int`` unless
    ``UnixTimestamp``, ``float`` unless ``Float32``: NaN as None), and a ``Float32`` column of floats
    spelled once per distinct value."""
    kinds = set(map(type, values))
    if kinds <= _AS_THEMSELVES or (vtype != V.UNIX_TIMESTAMP and kinds <= _AS_THEMSELVES | {int}):
        return list(values)
    if vtype not in (V.FLOAT, V.UNIX_TIMESTAMP) and kinds <= _AS_THEMSELVES | {int, float}:
        return [None if v != v else v for v in values]  # only a float NaN differs from itself
    if vtype == V.FLOAT and kinds <= {float, _NONE}:  # each distinct float32 spelled once (a column repeats them)
        spelled = {v: to_json(v, vtype) for v in set(values)}
        return [spelled[v] if v else to_json(v, vtype) for v in values]  # 0.0 == -0.0: both spelled apart
    return [to_json(v, vtype) for v in values]
