"""The column-at-once checks give exactly the answers of the value-by-value ones they replace.

``column_problems`` (value types) against ``json_problem`` on each value, and ``parse_timestamps``
(entity rows, pushes) against ``timestamp_problem`` on each value, on generated columns mixing
valid values, nulls, wrong kinds, non-finite and out-of-range numbers, and timestamp spellings.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from service.training.entity_rows import parse_timestamps, timestamp_problem
from service.value_types import column_problems, json_problem

V = ValueType
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**31, -(2**31) - 1, 2**63, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3.5e38, -3.5e38, 1.111]),
    st.text(max_size=4),
    st.lists(st.integers(-3, 3), max_size=2),
)
# a column is usually of one kind, with a few odd values in it
COLUMNS = st.one_of(
    st.lists(SCALARS, max_size=30),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=30).flatmap(
        lambda xs: st.lists(SCALARS, max_size=3).map(lambda odd: xs + odd)
    ),
    st.lists(st.integers(-(2**40), 2**40), max_size=30).flatmap(
        lambda xs: st.lists(st.one_of(st.none(), st.integers()), max_size=3).map(lambda odd: odd + xs)
    ),
)
TYPES = [V.INT32, V.INT64, V.FLOAT, V.DOUBLE, V.STRING, V.BOOL, V.BYTES, V.INT64_LIST, V.UNIX_TIMESTAMP]


@settings(max_examples=150, deadline=None)
@given(values=COLUMNS, vtype=st.sampled_from(TYPES))
def test_column_problems_are_json_problem_value_by_value(values: list, vtype: ValueType) -> None:
    expected = [(i, p) for i, v in enumerate(values) if (p := json_problem(v, vtype))]
    assert column_problems(values, vtype) == expected


BASE = datetime(2013, 5, 1, 13, 0, tzinfo=UTC)
SPELLINGS = [
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%SZ",
    "%Y-%m-%dT%H:%MZ",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%dT%H:%M:%S+05",
    "%Y-%m-%dT%H:%M:%S-0400",
    "%Y-%m-%dT%H:%M:%S-04:00",
    "%Y-%m-%dT%H:%M:%S",  # naive
    "%Y-%m-%d %H:%M",  # naive
    "%d/%m/%Y %H:%M",  # not ISO 8601
]
STAMP = st.one_of(
    st.builds(
        lambda minutes, fmt: (BASE + timedelta(minutes=minutes)).strftime(fmt),
        st.integers(-(10**6), 10**6),
        st.sampled_from(SPELLINGS),
    ),
    st.sampled_from(
        [
            "2262-04-12T00:00:00Z",
            "1677-09-21T00:00:00Z",
            "2013-02-30T00:00:00Z",
            "2013-05-01T25:00:00Z",
            "2013-05-01T13:00:00+24:00",
            "2013-05-01T13:00:00.123456789Z",
            "2013-03-10T02:30:00",  # does not exist in New York
            "2013-11-03T01:30:00",  # ambiguous in New York
            "",
            "now",
        ]
    ),
    st.none(),
    st.integers(),
    st.floats(),
)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(STAMP, max_size=25), zone=st.sampled_from([None, "America/New_York", "UTC"]))
def test_parse_timestamps_is_timestamp_problem_value_by_value(values: list, zone: str | None) -> None:
    assume = ZoneInfo(zone) if zone else None
    stamps, problems = parse_timestamps(values, assume)
    assert str(stamps.dtype) == "datetime64[ns, UTC]" and len(stamps) == len(values)
    expected_problems = []
    for i, v in enumerate(values):
        ts, problem = timestamp_problem(v, assume)
        if problem is None:
            assert stamps.iloc[i] == ts, (v, stamps.iloc[i], ts)
        else:
            assert pd.isna(stamps.iloc[i])
            expected_problems.append((i, problem))
    assert problems == expected_problems
