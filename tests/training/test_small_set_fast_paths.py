"""The fast paths of a small training set give what the general code gives, value for value.

Each is checked against an independent reference: pandas' generic conversion for JSON columns, the
stdlib ``json`` for the orjson answer, the value-by-value parser for timestamps, a row-by-row Python
audit for the vectorised leakage audit, and SQLite's own pragmas for the lineage database's settings.
"""

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage.database import create_db_engine
from service.formats import _plain_column, json_answer
from service.training.entity_rows import parse_timestamps, timestamp_problem
from service.training.offline import audit

NAT = pd.NaT


@pytest.mark.parametrize(
    "col",
    [
        pd.Series([1, -2, 2**62], dtype="int64"),
        pd.Series([0, 255], dtype="uint8"),
        pd.Series([True, False]),
        pd.Series([1.5, np.nan, -0.0, 1e300], dtype="float64"),
        pd.Series([1, None, -(2**63)], dtype="Int64"),
        pd.Series([True, None], dtype="boolean"),
        pd.Series([1.25, None], dtype="Float64"),
        pd.Series([], dtype="float64"),
    ],
    ids=lambda c: str(c.dtype),
)
def test_plain_columns_are_pandas_generic_conversion(col: pd.Series) -> None:
    reference = col.astype(object).where(col.notna(), None).tolist()
    got = _plain_column(col)
    assert got == reference
    assert [type(v) for v in got] == [type(v) for v in reference]


def test_json_answer_is_the_stdlib_json_and_falls_back_on_what_orjson_refuses() -> None:
    content = {"id": "ts-1", "rows": [{"a": 1.1, "b": None, "c": "é", "d": True, "e": 2**63 + 1}], "n": -(2**63)}
    answer = json_answer(content, status_code=201, headers={"X-Training-Set-Id": "ts-1"})
    assert answer.status_code == 201 and answer.media_type == "application/json"
    assert answer.headers["X-Training-Set-Id"] == "ts-1"
    assert json.loads(answer.body) == content
    huge = {"v": 2**70}  # beyond 64 bits: orjson refuses, the stdlib encoder carries it
    assert json.loads(json_answer(huge).body) == huge


STAMPS = st.builds(
    lambda ns, offset, frac, sep: (
        (pd.Timestamp(ns, unit="ns", tz="UTC") + pd.Timedelta(minutes=offset)).strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        + (f".{frac}" if frac else "")
        + ("Z" if offset == 0 else f"{'-' if offset > 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}")
    ),
    st.integers(0, 2**62),
    st.sampled_from([0, 60, -330, 345]),
    st.sampled_from(["", "5", "123456", "123456789"]),
    st.sampled_from(["T", " "]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(STAMPS, min_size=1, max_size=30))
def test_timestamps_parsed_at_once_equal_the_value_by_value_parser(values: list[str]) -> None:
    stamps, problems = parse_timestamps(values, None)
    reference = [timestamp_problem(v, None) for v in values]
    assert problems == [(i, p) for i, (_, p) in enumerate(reference) if p is not None]
    assert stamps.dtype == "datetime64[ns, UTC]"
    assert list(stamps) == [NAT if ts is None else ts for ts, _ in reference]


def test_one_bad_timestamp_keeps_every_reason() -> None:
    values = ["2013-01-01T00:00:00Z", "2013-02-30T00:00:00Z", "2013-01-01T00:00:00"]
    stamps, problems = parse_timestamps(values, None)
    assert [i for i, _ in problems] == [1, 2]
    assert [p for _, p in problems] == [timestamp_problem(v, None)[1] for v in values[1:]]
    assert stamps.iloc[0] == pd.Timestamp("2013-01-01", tz="UTC") and stamps.iloc[1:].isna().all()


@dataclass(frozen=True)
class View:  # the fields of ViewSpec the audit reads
    name: str
    ttl: pd.Timedelta | None
    created_field: str | None
    features: tuple[str, ...] = ("a",)
    join_keys: tuple[str, ...] = ()
    path: Path = Path("/nonexistent/source.parquet")
    columns: dict[str, str] = field(default_factory=dict)


def reference_audit(ent: list, feat: list, created: list, values: list, v: View, created_filter: bool) -> dict:
    """The audit's counts, row by row in plain Python (None for a missing time or value)."""
    matched = [f is not None for f in feat]
    pairs = [(e, f) for e, f, m in zip(ent, feat, matched, strict=True) if m and e is not None]
    enforce = created_filter and v.created_field is not None
    ages = [e - f for e, f in pairs]
    return {
        "rows_matched": sum(matched),
        "rows_null": len(feat) - sum(matched),
        "max_feature_age_seconds": (max(ages).value / 1e9 if ages else NAT.value / 1e9) if any(matched) else None,
        "violations": {
            "feature_ts_after_entity_ts": sum(f > e for e, f in pairs),
            "created_ts_after_entity_ts": sum(
                c is not None and e is not None and m and c > e for e, c, m in zip(ent, created, matched, strict=True)
            )
            if enforce
            else 0,
            "feature_older_than_ttl": sum(a > v.ttl for a in ages) if v.ttl else 0,
            "values_without_feature_row": sum(not m and x is not None for m, x in zip(matched, values, strict=True)),
        },
    }


TIMES = st.integers(0, 10**6).map(lambda s: pd.Timestamp("2013-01-01", tz="UTC") + pd.Timedelta(s, "s"))


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), TIMES),
            st.one_of(st.none(), TIMES),
            st.one_of(st.none(), TIMES),
            st.one_of(st.none(), st.floats(-1, 1)),
        ),
        max_size=25,
    ),
    ttl=st.one_of(st.none(), st.integers(1, 10**6).map(lambda s: pd.Timedelta(s, "s"))),
    created_field=st.sampled_from([None, "created"]),
    created_filter=st.booleans(),
)
def test_vectorised_audit_counts_what_a_row_by_row_audit_counts(
    rows: list, ttl: pd.Timedelta | None, created_field: str | None, created_filter: bool
) -> None:
    ent, feat, created, values = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
    v = View("v", ttl, created_field)

    def stamps(xs: list) -> pd.Series:
        return pd.Series([NAT if x is None else x for x in xs], dtype="datetime64[ns, UTC]")

    joined = pd.DataFrame(
        {
            "v____feature_ts": stamps(feat),
            "v____created_ts": stamps(created),
            "v__a": pd.Series([np.nan if x is None else x for x in values], dtype="float64"),
        }
    )
    with pytest.MonkeyPatch.context() as mp:  # no source file: the null-created count is not what is tested
        mp.setattr(audit, "_created_unknown", lambda v: 0)
        got = audit.audit_join(stamps(ent), joined, (v,), created_filter).to_dict()["views"][0]
    want = reference_audit(ent, feat, created, values, v, created_filter)
    assert {k: got[k] for k in want} == want


def test_sqlite_lineage_database_is_wal_with_synchronous_normal(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    engine.dispose()
    with sqlite3.connect(path) as plain:  # the WAL mode is the file's; synchronous is per connection
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain.close()
