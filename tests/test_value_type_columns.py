"""The column fast paths give exactly what the per-value type rules give, on every Feast type.

``service.value_types.json_problems`` / ``from_json_column`` / ``to_json_column`` against
``json_problem`` / ``from_json`` / ``to_json`` called value by value; the Parquet/Arrow key checks of
``service.training.entity_rows.typed_column`` against a brute-force reference; the audit's footer
count of null created timestamps against DuckDB counting the rows. Values are compared with their
Python types (``1``, ``1.0`` and ``True`` are different answers), NaN equal to NaN.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from service.formats import _iso, frame_to_records
from service.training.entity_rows import typed_column
from service.training.offline.audit import _created_unknown
from service.training.offline.views import ViewSpec
from service.value_types import (
    FLOAT32_MAX,
    INTEGER_RANGE,
    SCALAR_OF_LIST,
    from_json,
    from_json_column,
    is_missing,
    json_problem,
    json_problems,
    to_json,
    to_json_column,
    type_name,
)

V = ValueType
SCALARS = [V.INT32, V.INT64, V.FLOAT, V.DOUBLE, V.STRING, V.BYTES, V.BOOL, V.UNIX_TIMESTAMP]
TYPES = [*SCALARS, *SCALAR_OF_LIST, V.UNKNOWN]

# JSON values as a request carries them: every kind, edges of every range
JSON_EDGES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    0.0,
    -0.0,
    1.5,
    1.111,
    1e308,
    -1e308,
    FLOAT32_MAX,
    FLOAT32_MAX * 1.0000001,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "EWR",
    "1001",
    "aGVsbG8=",
    "aGVsbG8",
    "not base64!",
    "2013-05-01T13:00:00Z",
    "2013-05-01T09:30:00-04:00",
    "2013-05-01T13:00:00",
    "yesterday",
    [],
    [1, 2],
    [1.5, None],
    ["a", "b"],
    ["aGk="],
    [True],
    ["2013-05-01T13:00:00Z"],
    {"a": 1},
]
json_values = st.one_of(
    st.sampled_from(JSON_EDGES),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=3), st.none()), max_size=3),
)
# columns that are mostly of one kind (the fast path's case), sometimes with an odd value in them
homogeneous = st.one_of(
    st.lists(st.text(max_size=4), max_size=8),
    st.lists(st.integers(-(2**64), 2**64), max_size=8),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8),
    st.lists(st.booleans(), max_size=8),
)


@st.composite
def columns(draw: st.DrawFn) -> list[Any]:
    column: list[Any] = draw(homogeneous)
    for _ in range(draw(st.integers(0, 2))):
        column.insert(draw(st.integers(0, len(column))), draw(json_values))
    return column


def outcome(compute: Any) -> Any:
    """What ``compute()`` gives: its value typed, or the exception type it raises (the rule refuses
    some values it is never handed, such as a timestamp beyond year 9999; the column must too)."""
    try:
        return typed(compute())
    except (OverflowError, OSError, ValueError) as exc:
        return ("raises", type(exc))


def typed(value: Any) -> Any:
    """A value with its Python type spelled out, recursively (NaN made comparable)."""
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float):  # by its spelling: NaN equal to NaN, -0.0 apart from 0.0
        return ("float", repr(value))
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(values=columns(), vtype=st.sampled_from(TYPES))
def test_json_problems_is_json_problem_per_value(values: list[Any], vtype: ValueType) -> None:
    try:
        expected = [(i, p) for i, v in enumerate(values) if (p := json_problem(v, vtype))]
    except OverflowError:  # the rule itself cannot look at an int too large for a float (Float types)
        with pytest.raises(OverflowError):
            json_problems(values, vtype)
        return
    assert json_problems(values, vtype) == expected


@pytest.mark.parametrize("vtype", TYPES, ids=str)
def test_json_problems_edges(vtype: ValueType) -> None:
    for value in JSON_EDGES:
        for column in ([value], [value, None], ["EWR", value], [1, value], [1.5, value], [True, value]):
            try:
                expected = [(i, p) for i, v in enumerate(column) if (p := json_problem(v, vtype))]
            except OverflowError:
                continue
            assert json_problems(column, vtype) == expected, column


@settings(max_examples=300, deadline=None)
@given(values=columns(), vtype=st.sampled_from(TYPES))
def test_from_json_column_is_from_json_per_value(values: list[Any], vtype: ValueType) -> None:
    accepted = [v for v in values if _accepted(v, vtype)]  # from_json takes values json_problem accepted
    assert typed(from_json_column(accepted, vtype)) == typed([from_json(v, vtype) for v in accepted])


def _accepted(value: Any, vtype: ValueType) -> bool:
    try:
        return json_problem(value, vtype) is None
    except OverflowError:
        return False


def test_from_json_column_converts_bytes_timestamps_and_lists() -> None:
    assert from_json_column(["aGk=", None], V.BYTES) == [b"hi", None]
    stamp = datetime(2013, 5, 1, 13, 30, tzinfo=UTC)
    assert from_json_column(["2013-05-01T09:30:00-04:00"], V.UNIX_TIMESTAMP) == [stamp]
    assert from_json_column([["aGk="], None], V.BYTES_LIST) == [[b"hi"], None]
    column = ["EWR", None]
    assert from_json_column(column, V.STRING) == column and from_json_column(column, V.STRING) is not column


# stored and computed values as online reads and training-set frames hand them to to_json
STORED: list[Any] = [
    None,
    True,
    False,
    0,
    7,
    -(2**63),
    2**63 - 1,
    2**64,
    1.111,
    1.1109999418258667,
    0.1,
    -0.0,
    3.4028234663852886e38,
    1e300,
    float("nan"),
    float("inf"),
    float("-inf"),
    "EWR",
    "",
    b"\x00\xff",
    b"",
    np.float32(1.111),
    np.float64(2.5),
    np.int64(2**62),
    np.int32(-5),
    np.bool_(True),
    np.float32("nan"),
    np.float64("inf"),
    datetime(2013, 5, 1, 13, 0, tzinfo=UTC),
    datetime(2013, 5, 1, 13, 0),
    pd.Timestamp("2013-05-01T13:00:00.123456789Z"),
    pd.NaT,
    pd.NA,
    np.datetime64("NaT"),
    1367413200,
    [1.111, 2.5],
    (1, 2),
    np.array([1.111, 2.0], dtype=np.float32),
    [b"ab"],
    ["x", "y"],
    [],
    [datetime(2013, 5, 1, tzinfo=UTC)],
    [1367413200],
    [float("nan")],
]
stored_values = st.one_of(
    st.sampled_from(STORED),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.booleans(),
    st.none(),
)
stored_columns = st.one_of(
    st.lists(stored_values, max_size=8),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8),
    st.lists(st.integers(-(2**63), 2**63 - 1) | st.none(), max_size=8),
    st.lists(st.text(max_size=3) | st.none(), max_size=8),
)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # Float32 of 1e300: inf
@settings(max_examples=400, deadline=None)
@given(values=stored_columns, vtype=st.sampled_from([*TYPES, None]))
def test_to_json_column_is_to_json_per_value(values: list[Any], vtype: ValueType | None) -> None:
    assert outcome(lambda: to_json_column(values, vtype)) == outcome(lambda: [to_json(v, vtype) for v in values])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("vtype", [*TYPES, None], ids=str)
def test_to_json_column_edges(vtype: ValueType | None) -> None:
    for value in STORED:
        for column in ([value], [value, None], [1.5, value], [3, value], ["a", value], [float("nan"), value]):
            expected = outcome(lambda: [to_json(v, vtype) for v in column])  # noqa: B023 (called at once)
            assert outcome(lambda: to_json_column(column, vtype)) == expected, column  # noqa: B023


def test_to_json_column_float32_and_timestamps_at_their_precision() -> None:
    assert to_json_column([1.1109999418258667, None, float("nan")], V.FLOAT) == [1.111, None, None]
    assert to_json_column([1.1109999418258667], V.DOUBLE) == [1.1109999418258667]
    signed = to_json_column([0.0, -0.0, 1.1109999418258667, -0.0, 0.0, float("nan")], V.FLOAT)
    assert typed(signed) == typed([0.0, -0.0, 1.111, -0.0, 0.0, None])
    assert to_json_column([1367413200, None], V.UNIX_TIMESTAMP) == ["2013-05-01T13:00:00Z", None]
    assert to_json_column([2**63 - 1, -(2**63)], V.INT64) == [2**63 - 1, -(2**63)]


# Parquet/Arrow key columns: typed_column's checks against a brute-force reference
def reference_problems(name: str, values: list[Any], vtype: ValueType) -> list[dict[str, Any]]:
    if vtype in INTEGER_RANGE:
        low, high = INTEGER_RANGE[vtype]
        return [
            {"row": i, "field": name, "problem": f"{v} does not fit in {type_name(vtype)}"}
            for i, v in enumerate(values)
            if not is_missing(v) and not low <= int(v) <= high
        ]
    want = str if vtype == V.STRING else bytes
    return [
        {"row": i, "field": name, "problem": f"must be {type_name(vtype)}, got {type(v).__name__}"}
        for i, v in enumerate(values)
        if not (is_missing(v) or isinstance(v, want))
    ]


INTEGER_COLUMNS = [
    pd.Series([1, 2, 3], dtype="int8"),
    pd.Series([1, None, 3], dtype="Int16"),
    pd.Series([2**31 - 1, -(2**31)], dtype="int64"),
    pd.Series([2**31, 0, -(2**31) - 1], dtype="int64"),
    pd.Series([2**63 - 1, None, -(2**63)], dtype="Int64"),
    pd.Series([0, 2**63 - 1], dtype="uint64"),
    pd.Series([0, 2**63, 2**64 - 1, 5], dtype="uint64"),
    pd.Series([2**32 - 1, None], dtype="UInt32"),
    pd.Series([7, None, 2**64 - 1], dtype="UInt64"),
    pd.Series([1, 2], dtype=pd.ArrowDtype(pa.int64())),
    pd.Series([2**40, None], dtype=pd.ArrowDtype(pa.int64())),
]


@pytest.mark.parametrize("vtype", [V.INT32, V.INT64], ids=str)
@pytest.mark.parametrize("col", INTEGER_COLUMNS, ids=lambda c: f"{c.dtype}:{c.tolist()}")
def test_typed_column_integer_range(col: pd.Series, vtype: ValueType) -> None:
    out, problems = typed_column("k", col, vtype)
    expected = reference_problems("k", col.astype(object).tolist(), vtype)
    assert problems == expected
    if not expected:
        assert out.dtype == ("Int32" if vtype == V.INT32 else "Int64")
        as_sent = col.astype(object).where(col.notna(), None).tolist()
        assert out.astype(object).where(out.notna(), None).tolist() == as_sent


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(-(2**63), 2**63 - 1) | st.none(), min_size=1, max_size=10).filter(
        lambda vs: any(v is not None for v in vs)
    ),
    vtype=st.sampled_from([V.INT32, V.INT64]),
)
def test_typed_column_integer_property(values: list[int | None], vtype: ValueType) -> None:
    col = pd.Series(values, dtype="Int64")
    assert typed_column("k", col, vtype)[1] == reference_problems("k", col.astype(object).tolist(), vtype)


STRING_COLUMNS: list[list[Any]] = [
    ["EWR", "JFK"],
    ["EWR", None],
    [None, "a", float("nan")],
    ["EWR", b"JFK", None],
    [b"a", b"b"],
    [b"a", None, "x"],
    ["a", 3],
    ["a", np.str_("b")],
    [b"a", np.bytes_(b"b")],
]


@pytest.mark.parametrize("vtype", [V.STRING, V.BYTES], ids=str)
@pytest.mark.parametrize("values", STRING_COLUMNS, ids=repr)
def test_typed_column_string_and_bytes(values: list[Any], vtype: ValueType) -> None:
    col = pd.Series(values, dtype="object")
    out, problems = typed_column("k", col, vtype)
    assert problems == reference_problems("k", values, vtype)
    assert out is col


# the audit's count of source rows whose created timestamp is null
def _spec(path: Path) -> ViewSpec:
    return ViewSpec(
        name="v",
        path=path,
        join_keys=("k",),
        features=("x",),
        timestamp_field="event_timestamp",
        created_field="created",
        ttl=None,
        columns={"k": "k", "x": "x"},
        definition=None,  # type: ignore[arg-type]
    )


def _duckdb_count(path: Path) -> int:
    glob = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    with duckdb.connect() as con:
        row = con.execute('SELECT count(*) - count("created") FROM read_parquet(?)', [glob]).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("statistics", [True, False], ids=["footer", "no-statistics"])
def test_created_unknown_counts_null_created(tmp_path: Path, statistics: bool) -> None:
    created = [datetime(2024, 1, 1, tzinfo=UTC), None, None, datetime(2024, 1, 2, tzinfo=UTC), None]
    table = pa.table(
        {
            "k": ["a", "b", "c", "d", "e"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "event_timestamp": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 5, pa.timestamp("ns", "UTC")),
            "created": pa.array(created, pa.timestamp("ns", "UTC")),
        }
    )
    one = tmp_path / "one.parquet"
    pq.write_table(table, one, row_group_size=2, write_statistics=statistics)
    assert _created_unknown(_spec(one)) == _duckdb_count(one) == 3
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    pq.write_table(table, folder / "a.parquet", row_group_size=3, write_statistics=statistics)
    pq.write_table(table.slice(0, 2), folder / "sub" / "b.parquet", write_statistics=statistics)
    assert _created_unknown(_spec(folder)) == _duckdb_count(folder) == 4


def test_frame_to_records_spells_each_timestamp_as_the_rule_does() -> None:
    stamps = pd.Series(
        pd.to_datetime(
            ["2013-05-01T13:00:00.123456789Z", None, "2013-05-01T09:00:00-04:00", "1677-09-22T00:12:43.145224193Z"] * 3,
            utc=True,
            format="ISO8601",
        )
    )
    frame = pd.DataFrame({"t": stamps, "x": np.array([1.1109999418258667, np.nan, -0.0, 0.0] * 3, dtype="float32")})
    records = frame_to_records(frame)
    assert [r["t"] for r in records] == [None if pd.isna(t) else _iso(t) for t in stamps]
    assert typed([r["x"] for r in records]) == typed([to_json(v, V.FLOAT) for v in frame["x"].tolist()])
    assert records[0] == {"t": "2013-05-01T13:00:00.123456789Z", "x": 1.111}
