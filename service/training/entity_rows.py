"""Turn JSON entity rows into a validated entity DataFrame (pandera), or list every problem.

Shape out: one row per input row, in input order; the join-key columns and request fields in the
pandas dtype of their declared Feast type (:mod:`service.value_types`), ``event_timestamp`` as
``datetime64[ns, UTC]``, every other column (labels) exactly as sent. Nothing is coerced silently:
a naive timestamp is refused unless the request names the timezone to assume.
"""

import math
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from feast.value_type import ValueType

from service.training.offline.errors import EntityRowsInvalid
from service.training.offline.views import RetrievalPlan
from service.value_types import (
    INTEGER_RANGE,
    column_problems,
    from_json_column,
    is_missing,
    json_problem,
    pandas_dtype,
    type_name,
)

TS = "event_timestamp"


INT64 = (-(2**63), 2**63 - 1)
EXACT_IN_FLOAT = 2**53  # integers beyond ±2**53 lose digits as float64
SCALARS = (str, int, float, bool)
ISO_EXAMPLE = "2013-05-01T13:00:00Z"
# ISO 8601 extended date and time: "T" or a space between them, seconds and up to 9 decimals optional,
# then "Z", an offset (+hh:mm, +hhmm, +hh) or nothing (naive: refused unless a timezone is named).
ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?")
ISO_8601_AWARE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)")


def timestamp_problem(value: Any, assume_tz: ZoneInfo | None) -> tuple[pd.Timestamp | None, str | None]:
    """Parse one JSON timestamp strictly: ``(aware UTC pd.Timestamp, None)`` or ``(None, why it is refused)``.

    ``value`` must be an ISO 8601 string with ``Z`` or an offset; a naive one is localized to
    ``assume_tz`` (refused when that is ``None``, or when the wall time does not exist or is ambiguous
    there). Shared with the push gate (:mod:`service.online.push`), which passes ``assume_tz=None``.
    """
    if value is None:
        return None, "is null; give an ISO 8601 timestamp such as 2013-05-01T13:00:00Z"
    if not isinstance(value, str):
        return None, f"must be an ISO 8601 string, got {type(value).__name__} {value!r}"
    if not ISO_8601.fullmatch(value):
        return None, (
            f"{value!r} is not an ISO 8601 timestamp; write it as {ISO_EXAMPLE} "
            "(date, 'T' or a space, time, then 'Z' or an offset such as '-04:00')"
        )
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        return None, f"{value!r} is not an ISO 8601 timestamp between 1677-09-22 and 2262-04-11"
    if pd.isna(ts):
        return None, f"{value!r} is not a timestamp"
    if ts.tzinfo is None:
        if assume_tz is None:
            return None, (
                f"{value!r} has no timezone; end it with 'Z' or an offset such as '+00:00', "
                'or set "timezone" in the request to say which to assume'
            )
        try:
            ts = ts.tz_localize(assume_tz, ambiguous="raise", nonexistent="raise")
        except Exception:  # pytz NonExistentTimeError / AmbiguousTimeError are not ValueErrors
            return None, (
                f"{value!r} does not exist or is ambiguous in {assume_tz} (a daylight-saving change); "
                "give it an explicit offset"
            )
    try:
        return ts.tz_convert("UTC").as_unit("ns"), None
    except (ValueError, OverflowError):
        return None, f"{value!r} is outside the supported range 1677-09-22 to 2262-04-11"


def parse_timestamps(values: list[Any], assume_tz: ZoneInfo | None) -> tuple[pd.Series, list[tuple[int, str]]]:
    """Parse a column of JSON timestamps as :func:`timestamp_problem` parses each one, in linear time.

    Returns:
        ``(stamps, problems)``: ``stamps`` a ``datetime64[ns, UTC]`` Series of ``len(values)`` (NaT
        where refused), ``problems`` ``(position, why)`` for each refused value (a null included),
        in position order.

    The strings of the accepted shape are parsed by one vectorised ``pd.to_datetime``; a value it
    cannot parse, and any value that is not such a string, goes through :func:`timestamp_problem`,
    so the answers and messages are the same as value by value.
    """
    n = len(values)
    if n and all(type(v) is str and ISO_8601_AWARE.fullmatch(v) for v in values):  # the usual body: one call
        parsed = pd.to_datetime(pd.Series(values, dtype="object"), format="ISO8601", utc=True, errors="coerce")
        if not parsed.isna().any():  # else the general path below, which gives each refusal its reason
            return parsed.astype("datetime64[ns, UTC]"), []
    column = pd.Series(values, dtype="object")
    stamps = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    is_text = np.fromiter((type(v) is str for v in values), bool, n)
    text = column[is_text].astype(str)
    aware = text[text.str.fullmatch(ISO_8601_AWARE.pattern)]
    if len(aware):
        stamps.loc[aware.index] = pd.to_datetime(aware, format="ISO8601", utc=True, errors="coerce")
    if assume_tz is not None:
        naive = text[~text.index.isin(aware.index) & text.str.fullmatch(ISO_8601.pattern).to_numpy()]
        if len(naive):
            parsed = pd.to_datetime(naive, format="ISO8601", errors="coerce")
            if isinstance(parsed.dtype, pd.DatetimeTZDtype):  # cannot be: no offsets; keep the slow path
                parsed = pd.Series(pd.NaT, index=naive.index, dtype="datetime64[ns]")
            local = parsed.dt.tz_localize(assume_tz, ambiguous="NaT", nonexistent="NaT")
            stamps.loc[naive.index] = local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    problems: list[tuple[int, str]] = []
    for i in np.flatnonzero(stamps.isna().to_numpy()):  # refused, or left to the value-by-value parser
        ts, problem = timestamp_problem(values[i], assume_tz)
        if problem is not None:
            problems.append((int(i), problem))
        else:
            stamps.iloc[i] = ts
    return stamps, problems


def _scalar_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, SCALARS):
        return f"must be a string, number, boolean or null, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return f"{value} does not fit in a 64-bit integer"
    return None


def _passthrough_column(name: str, values: list[Any], problems: list[dict[str, Any]]) -> pd.Series | None:
    """A column exactly as sent: integers (with nulls) stay integers (Int64); numbers mixing integers
    and decimals are float64; booleans boolean; strings object. A value that is not a scalar, or a
    column mixing kinds (e.g. numbers and strings), is a problem, never coerced."""
    bad = [(i, p) for i, v in enumerate(values) if (p := _scalar_problem(v))]
    problems.extend({"row": i, "field": name, "problem": p} for i, p in bad)
    if bad:
        return None
    kinds: dict[str, int] = {}
    for i, v in enumerate(values):
        if v is not None:
            k = "boolean" if isinstance(v, bool) else "number" if isinstance(v, int | float) else "string"
            kinds.setdefault(k, i)
    if len(kinds) > 1:
        first = ", ".join(f"{k} at row {i}" for k, i in kinds.items())
        problems.append({"row": None, "field": name, "problem": f"mixes kinds of values across rows ({first})"})
        return None
    if "number" in kinds:
        if all(isinstance(v, int) for v in values if v is not None):
            return pd.Series(values, dtype="Int64")
        lossy = [i for i, v in enumerate(values) if isinstance(v, int) and abs(v) > EXACT_IN_FLOAT]
        problems.extend(
            {
                "row": i,
                "field": name,
                "problem": f"{values[i]} would lose digits as a decimal (the column mixes integers and decimals; "
                "integers beyond ±2**53 cannot be made decimal exactly): send it as a string, or no decimals",
            }
            for i in lossy
        )
        if lossy:
            return None
        return pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
    if "boolean" in kinds:
        return pd.Series(values, dtype="boolean")
    return pd.Series(values, dtype="object")


def entity_frame(rows: list[dict[str, Any]], plan: RetrievalPlan, timezone: str | None = None) -> pd.DataFrame:
    """Validate ``rows`` for ``plan`` and build the entity DataFrame.

    Checks, for every row: ``event_timestamp`` present and timezone-aware (or ``timezone`` given);
    every join key of the plan's views present, a JSON value of its declared Feast type or null
    (null matches no feature row; see :mod:`service.value_types`: an ``Int64`` key is a JSON
    integer, never ``"1001"``, ``1001.0`` or ``true``); every request field of the plan's on-demand
    views present, not null, a value of its declared type. Join keys and request fields come out in
    their type's pandas dtype (``Int64``, ``object`` str/bytes, ``float32``, ``datetime64[ns, UTC]``...).

    Raises:
        EntityRowsInvalid: lists every problem as ``{"row", "field", "problem"}``.
    """
    if not rows:
        raise EntityRowsInvalid([{"row": None, "field": "entity_rows", "problem": "is empty"}])
    try:
        assume = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        raise EntityRowsInvalid(
            [{"row": None, "field": "timezone", "problem": f"{timezone!r} is not an IANA timezone"}]
        ) from None
    problems: list[dict[str, Any]] = []
    required = [TS, *plan.join_keys, *plan.request_fields]
    for i, row in enumerate(rows):
        problems.extend({"row": i, "field": f, "problem": "is missing"} for f in required if f not in row)
    names = list(dict.fromkeys(k for row in rows for k in row))
    columns_in: dict[str, pd.Series | None] = {}
    for c in names:
        values = [row.get(c) for row in rows]
        if c in required:
            columns_in[c] = pd.Series(values, dtype="object")
            continue
        problems.extend(
            {"row": i, "field": c, "problem": "is missing (other rows have it; send null for no value)"}
            for i, row in enumerate(rows)
            if c not in row
        )
        columns_in[c] = _passthrough_column(c, values, problems)
    frame = pd.DataFrame({c: col for c, col in columns_in.items() if col is not None})
    for f in required:
        if f not in frame.columns:
            frame[f] = pd.Series([None] * len(rows), dtype="object")
    stamps, ts_problems = parse_timestamps(frame[TS].tolist(), assume)
    problems.extend({"row": i, "field": TS, "problem": p} for i, p in ts_problems if TS in rows[i])
    declared = plan.key_types | plan.request_types
    # the values as sent: null is None, a JSON NaN stays NaN (a problem for every declared type)
    present = pd.DataFrame({name: pd.Series([row.get(name) for row in rows], dtype="object") for name in declared})
    for name, vtype in declared.items():
        problems.extend(
            {"row": i, "field": name, "problem": p} for i, p in column_problems(present[name].tolist(), vtype)
        )
    for f in plan.request_fields:
        problems.extend(
            {"row": i, "field": f, "problem": "is null"} for i, r in enumerate(rows) if f in r and r[f] is None
        )
    if problems:
        raise EntityRowsInvalid(sorted(problems, key=lambda p: (p["row"] is None, p["row"] or 0, p["field"])))
    frame[TS] = stamps.set_axis(frame.index)
    for name, vtype in declared.items():
        frame[name] = _declared_column(from_json_column(present[name].tolist(), vtype), vtype)
    return frame


def _declared_column(values: list[Any], vtype: ValueType) -> pd.Series:
    """Checked values as a column of ``vtype``'s pandas dtype (nulls kept as missing values)."""
    dtype = pandas_dtype(vtype)
    if vtype == ValueType.UNIX_TIMESTAMP:
        return pd.to_datetime(pd.Series(values, dtype="object"), utc=True).astype(dtype)
    if dtype == np.dtype("object"):
        return pd.Series(values, dtype="object")
    if dtype in (np.dtype("float32"), np.dtype("float64")):
        return pd.Series([np.nan if v is None else v for v in values], dtype=dtype)
    return pd.Series(values, dtype=dtype)


EXTRA_KINDS = "strings, numbers, booleans or timezone-aware timestamps"


def _rows_where(mask: Any) -> list[int]:
    return [int(i) for i in np.flatnonzero(np.asarray(mask, dtype=bool))]


def _localize(col: pd.Series, timezone: str) -> pd.Series:
    return col.dt.tz_localize(ZoneInfo(timezone), ambiguous="raise", nonexistent="raise").dt.tz_convert("UTC")


def _table_column_problems(name: str, col: pd.Series, timezone: str | None) -> tuple[pd.Series, list[dict[str, Any]]]:
    """An extra (pass-through) column of a Parquet/Arrow entity table, and its problems.

    Kept as sent: booleans, integers, floats (NaN is a missing value, written as null in JSON; ±inf
    is refused), strings, timezone-aware timestamps; naive timestamps only with ``timezone`` (then
    UTC). Nested values (lists, structs, maps), bytes, dates, decimals and durations are refused."""
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return col, []
    if pd.api.types.is_float_dtype(dtype):
        rows = _rows_where(np.isinf(col.to_numpy(dtype="float64", na_value=np.nan)))
        return col, [
            {
                "row": i,
                "field": name,
                "problem": f"is {col.iloc[i]}; only finite numbers (or NaN/null for a missing value) are accepted",
            }
            for i in rows
        ]
    if isinstance(dtype, pd.DatetimeTZDtype):
        return col, []
    if pd.api.types.is_datetime64_dtype(dtype):
        if timezone is None:
            problem = "timestamps have no timezone; store them with a timezone or pass ?timezone=<IANA name>"
            return col, [{"row": None, "field": name, "problem": problem}]
        try:
            return _localize(col, timezone), []
        except Exception as exc:  # unknown zone, or a local time that does not exist / is ambiguous there
            return col, [{"row": None, "field": name, "problem": f"cannot be read in {timezone!r}: {exc}"}]
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        values = col.astype(object).tolist()
        if set(map(type, values)) <= {str, type(None)}:  # the usual case, without a look at each value
            return col, []
        problems = []
        for i, v in enumerate(values):
            if v is None or isinstance(v, str) or (isinstance(v, float) and math.isnan(v)):
                continue
            if isinstance(v, list | tuple | np.ndarray):
                what = "a nested value (a list)"
            elif isinstance(v, dict):
                what = "a nested value (a struct or map)"
            else:
                what = f"a value of type {type(v).__name__}"
            problems.append({"row": i, "field": name, "problem": f"is {what}; send {EXTRA_KINDS}"})
        return col, problems
    return col, [{"row": None, "field": name, "problem": f"has unsupported type {dtype}; send {EXTRA_KINDS}"}]


def _fits(col: pd.Series, low: int, high: int) -> bool:
    """Every value of the integer column ``col`` (nulls aside; not all null) lies in ``[low, high]``:
    by its dtype's range, else by its minimum and maximum (compared as Python integers, exactly)."""
    dtype = col.dtype
    info = np.iinfo(dtype.numpy_dtype if isinstance(dtype, pd.api.extensions.ExtensionDtype) else dtype)
    if low <= int(info.min) and int(info.max) <= high:
        return True
    return low <= int(col.min()) and int(col.max()) <= high


def typed_column(name: str, col: pd.Series, vtype: ValueType) -> tuple[pd.Series, list[dict[str, Any]]]:
    """A join-key or request-field column of a Parquet/Arrow table checked against its declared type,
    and converted to that type's pandas dtype. Only a column type holding exactly the declared values
    is taken (an int32 column for an ``Int64`` key, a float32 one for ``Float64``); a column of another
    kind (strings for an integer key, floats for an integer) is refused, never cast, and so is ±inf in a
    float column (rows named; NaN is a null). All-null: taken."""
    dtype = col.dtype
    kind = None
    if col.isna().all():
        return col.astype(pandas_dtype(vtype)) if vtype in INTEGER_RANGE else col, []
    if vtype in INTEGER_RANGE and pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        low, high = INTEGER_RANGE[vtype]
        if not _fits(col, low, high):  # then find the rows that do not
            values = col.astype(object)
            out = [i for i, v in enumerate(values.tolist()) if not is_missing(v) and not low <= int(v) <= high]
            if out:
                return col, [
                    {"row": i, "field": name, "problem": f"{values.iloc[i]} does not fit in {type_name(vtype)}"}
                    for i in out
                ]
        return col.astype(pandas_dtype(vtype)), []
    if vtype in (ValueType.FLOAT, ValueType.DOUBLE) and pd.api.types.is_float_dtype(dtype):
        if vtype == ValueType.DOUBLE or dtype == np.dtype("float32"):
            infinite = _rows_where(np.isinf(col.to_numpy(dtype="float64", na_value=np.nan)))
            if infinite:  # a value of neither type (JSON refuses it the same way)
                return col, [
                    {"row": i, "field": name, "problem": json_problem(float(col.iloc[i]), vtype)} for i in infinite
                ]
            return col.astype(pandas_dtype(vtype)), []
        kind = "a float32 column"
    elif vtype == ValueType.BOOL and pd.api.types.is_bool_dtype(dtype):
        return col.astype(pandas_dtype(vtype)), []
    elif vtype == ValueType.UNIX_TIMESTAMP and isinstance(dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert("UTC").astype(pandas_dtype(vtype)), []
    elif vtype in (ValueType.STRING, ValueType.BYTES) and dtype == np.dtype("object"):
        want = str if vtype == ValueType.STRING else bytes
        values = col.tolist()
        if set(map(type, values)) <= {want, type(None)}:  # the usual case, without a call per value
            return col, []
        bad = [i for i, v in enumerate(values) if not (is_missing(v) or isinstance(v, want))]
        return col, [
            {"row": i, "field": name, "problem": f"must be {type_name(vtype)}, got {type(col.iloc[i]).__name__}"}
            for i in bad
        ]
    elif (
        vtype == ValueType.STRING and pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    ):
        return col.astype(object), []
    elif vtype == ValueType.UNKNOWN:
        return col, []
    kind = kind or f"a column of {type_name(vtype).removeprefix('a ').removeprefix('an ')}"
    return col, [{"row": None, "field": name, "problem": f"must be {kind} (declared {vtype.name}), got {dtype}"}]


def entity_frame_from_table(frame: pd.DataFrame, plan: RetrievalPlan, timezone: str | None = None) -> pd.DataFrame:
    """Validate an entity table that came as Parquet or Arrow (any size) and normalise it.

    At least one row. ``event_timestamp`` must be a timestamp column, timezone-aware (or ``timezone``
    given), no nulls; each join key a column of its declared Feast type (an integer column of any
    width that holds the values for ``Int32``/``Int64``, strings for ``String``, bytes for ``Bytes``,
    aware timestamps for ``UnixTimestamp``; nulls allowed: they match nothing), converted to that
    type's pandas dtype; each request field likewise, without nulls (NaN is one) or ±inf. Other
    columns pass through unchanged if they hold booleans, integers, floats (NaN is a missing value;
    ±inf is refused), strings or timezone-aware
    timestamps (naive ones only with ``timezone``); nested values, bytes, dates, decimals and
    durations are refused. Timestamps come out as ``datetime64[ns, UTC]``.

    Raises:
        EntityRowsInvalid: every problem, with the rows it concerns (the first 100 listed, all counted).
    """
    if len(frame) == 0:
        raise EntityRowsInvalid([{"row": None, "field": "entity_rows", "problem": "is empty (the table has no rows)"}])
    frame = frame.reset_index(drop=True)
    problems: list[dict[str, Any]] = []
    required = [TS, *plan.join_keys, *plan.request_fields]
    problems.extend({"row": None, "field": f, "problem": "column is missing"} for f in required if f not in frame)
    if TS in frame:
        ts = frame[TS]
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            frame[TS] = ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        elif pd.api.types.is_datetime64_dtype(ts.dtype) and timezone:
            try:
                frame[TS] = _localize(ts, timezone).astype("datetime64[ns, UTC]")
            except ZoneInfoNotFoundError:
                problems.append({"row": None, "field": "timezone", "problem": f"{timezone!r} is not an IANA timezone"})
            except Exception as exc:  # pytz NonExistentTimeError / AmbiguousTimeError are not ValueErrors
                problems.append({"row": None, "field": TS, "problem": f"cannot be read in {timezone!r}: {exc}"})
        elif pd.api.types.is_datetime64_dtype(ts.dtype):
            problems.append(
                {
                    "row": None,
                    "field": TS,
                    "problem": "timestamps have no timezone; store them as "
                    "timestamp[ns, tz=UTC] or pass ?timezone=<IANA name> to say which to assume",
                }
            )
        else:
            problems.append({"row": None, "field": TS, "problem": f"must be a timestamp column, got {ts.dtype}"})
        problems.extend({"row": i, "field": TS, "problem": "is null"} for i in _rows_where(frame[TS].isna()))
    for name, vtype in (plan.key_types | plan.request_types).items():
        if name in frame:
            frame[name], found = typed_column(name, frame[name], vtype)
            problems.extend(found)
            if name in plan.request_types:
                problems.extend(
                    {"row": i, "field": name, "problem": "is null"} for i in _rows_where(frame[name].isna())
                )
    for name in frame.columns:
        if name not in required:
            frame[name], found = _table_column_problems(str(name), frame[name], timezone)
            problems.extend(found)
    if problems:
        raise EntityRowsInvalid(problems)
    return frame
