"""The point-in-time engine against a slow, obvious reference, on generated data.

The reference (``reference_choice``) reads the contract of ``service/training/offline/engine.py`` literally: for
each entity row it walks the view's rows in file order, keeps those that satisfy every condition and
takes the greatest ``(event_ts, created_ts, file_row)``. Hypothesis draws tiny sources whose
timestamps come from a handful of minute offsets, so equal event times, rows exactly at the entity
time, rows exactly at ``entity_ts - ttl`` and backfills (created after the entity time) are common.
Every feature row carries a unique ``rid`` so a difference names the row that was taken.
"""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.training.offline.engine import JoinOptions, get_training_frame, join_views
from service.training.offline.views import OnDemandSpec, RetrievalPlan, ViewSpec

BASE = pd.Timestamp("2024-03-01 09:00", tz="UTC")
FEATURE_KEYS = ["A", "B", "C"]
ENTITY_KEYS = [*FEATURE_KEYS, "D"]  # "D" never has a feature row
VIEW_KEYS = {"a": ("origin",), "b": ("carrier",), "c": ("origin", "carrier")}
FEATURES = ("x", "rid")  # x: float (sometimes null), rid: the row's unique id
TTLS = [None, timedelta(seconds=30), timedelta(minutes=1), timedelta(seconds=90), timedelta(minutes=3)]


def minutes(m: float) -> pd.Timestamp:
    return BASE + pd.Timedelta(minutes=m)


@dataclass(frozen=True)
class Source:
    """A generated view: its rows in file order and how it is declared."""

    name: str
    keys: tuple[str, ...]
    rows: tuple[dict, ...]  # join keys, event_timestamp, created, x, rid
    has_created: bool
    ttl: timedelta | None
    row_group_size: int | None = None

    def write(self, folder: Path) -> ViewSpec:
        """Write the Parquet file (without ``created`` if the source has none) and return its spec."""
        columns = {k: pa.array([r[k] for r in self.rows], pa.string()) for k in self.keys}
        columns["event_timestamp"] = pa.array([r["event_timestamp"] for r in self.rows], pa.timestamp("ns", "UTC"))
        if self.has_created:
            columns["created"] = pa.array([r["created"] for r in self.rows], pa.timestamp("ns", "UTC"))
        columns["x"] = pa.array([r["x"] for r in self.rows], pa.float64())
        columns["rid"] = pa.array([r["rid"] for r in self.rows], pa.int64())
        path = folder / f"{self.name}.parquet"
        pq.write_table(pa.table(columns), path, row_group_size=self.row_group_size)
        return ViewSpec(
            name=self.name,
            path=path,
            join_keys=self.keys,
            features=FEATURES,
            timestamp_field="event_timestamp",
            created_field="created" if self.has_created else None,
            ttl=self.ttl,
            columns={c: c for c in (*self.keys, *FEATURES)},
            definition=None,  # type: ignore[arg-type]  # only on-demand views use their definition
        )


def reference_choice(source: Source, entity: dict, created_filter: bool) -> dict | None:
    """The row the contract picks for one entity row, or None: a plain loop over the file."""
    t = entity["event_timestamp"]
    best, best_rank = None, None
    for file_row, row in enumerate(source.rows):
        if any(row[k] != entity[k] for k in source.keys):
            continue
        if row["event_timestamp"] > t:
            continue
        if source.ttl is not None and row["event_timestamp"] < t - source.ttl:
            continue
        if created_filter and source.has_created and row["created"] > t:
            continue
        created = row["created"] if source.has_created else BASE  # no column: ties go to file order
        rank = (row["event_timestamp"], created, file_row)
        if best_rank is None or rank > best_rank:
            best, best_rank = row, rank
    return best


def same(actual: object, expected: object) -> bool:
    if pd.isna(expected):
        return bool(pd.isna(actual))
    return not pd.isna(actual) and actual == expected


def differences(
    result: pd.DataFrame, entity_df: pd.DataFrame, sources: list[Source], created_filter: bool
) -> list[str]:
    """Every cell where the engine and the reference disagree, described for a human."""
    found = []
    for pos, entity in enumerate(entity_df.to_dict("records")):
        for s in sources:
            row = reference_choice(s, entity, created_filter)
            expected = {
                f"{s.name}__rid": pd.NA if row is None else row["rid"],
                f"{s.name}__x": float("nan") if row is None or row["x"] is None else row["x"],
                f"{s.name}____feature_ts": pd.NaT if row is None else row["event_timestamp"],
            }
            if s.has_created or row is None:
                expected[f"{s.name}____created_ts"] = pd.NaT if row is None else row["created"]
            for column, want in expected.items():
                got = result[column].iloc[pos]
                if not same(got, want):
                    found.append(f"row {pos} {entity}: {column} engine={got!r} reference={want!r}")
    return found


def assert_matches_reference(
    entity_df: pd.DataFrame, sources: list[Source], created_filter: bool, folder: Path
) -> None:
    specs = tuple(s.write(folder) for s in sources)
    result = join_views(entity_df, specs, created_filter=created_filter)
    assert list(result.index) == list(entity_df.index)
    expected_columns = {f"{s.name}__{c}" for s in sources for c in (*FEATURES, "__feature_ts", "__created_ts")}
    assert set(result.columns) == expected_columns
    diff = differences(result, entity_df, sources, created_filter)
    assert not diff, "engine differs from the reference:\n" + "\n".join(diff)


# --- generated data ------------------------------------------------------------------------------


@st.composite
def sources(draw: st.DrawFn, names: tuple[str, ...]) -> list[Source]:
    """One Source per view name; event times on minutes 0..6, created up to 6 minutes later (backfill)
    or 2 minutes earlier."""
    out = []
    for n, name in enumerate(names, start=1):
        keys = VIEW_KEYS[name]
        raw = draw(
            st.lists(
                st.tuples(
                    st.tuples(*[st.sampled_from(FEATURE_KEYS)] * len(keys)),
                    st.integers(0, 6),  # event minute
                    st.integers(-2, 6),  # created - event, minutes
                    st.booleans(),  # x is null
                ),
                max_size=10,
            )
        )
        rows = tuple(
            {
                **dict(zip(keys, key_values, strict=True)),
                "event_timestamp": minutes(event),
                "created": minutes(event + delay),
                "x": None if x_null else rid + 0.25,
                "rid": rid,
            }
            for rid, (key_values, event, delay, x_null) in enumerate(raw, start=100 * n)
        )
        out.append(
            Source(
                name=name,
                keys=keys,
                rows=rows,
                has_created=draw(st.booleans()),
                ttl=draw(st.sampled_from(TTLS)),
                row_group_size=draw(st.sampled_from([None, 1, 3])),
            )
        )
    return out


@st.composite
def entity_frames(draw: st.DrawFn, extra: dict[str, st.SearchStrategy] | None = None) -> pd.DataFrame:
    """Entity rows on minutes -1..12 (30 s steps, some 1 ns off), duplicates included, with a non-default index."""
    base = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "origin": st.sampled_from(ENTITY_KEYS),
                    "carrier": st.sampled_from(ENTITY_KEYS),
                    "event_timestamp": st.builds(
                        lambda half, ns: minutes(half / 2) + pd.Timedelta(ns, "ns"),
                        st.integers(-2, 24),
                        st.sampled_from([0, 0, 0, -1, 1]),  # 1 ns either side of a feature time
                    ),
                    **(extra or {}),
                }
            ),
            min_size=1,
            max_size=12,
        )
    )
    repeats = draw(st.lists(st.integers(0, len(base) - 1), max_size=4))
    records = base + [base[i] for i in repeats]
    order = draw(st.permutations(range(len(records))))
    records = [records[i] for i in order]
    frame = pd.DataFrame(records)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
    frame["label"] = range(len(frame))  # passes through; not a join key
    frame.index = pd.Index([f"e{i}" for i in reversed(range(len(frame)))])
    return frame


view_names = st.lists(st.sampled_from(sorted(VIEW_KEYS)), min_size=1, max_size=3, unique=True).map(tuple)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), created_filter=st.booleans())
def test_join_views_matches_reference(data: st.DataObject, created_filter: bool, tmp_path: Path) -> None:
    srcs = data.draw(view_names.flatmap(sources), label="sources")
    entity_df = data.draw(entity_frames(), label="entity_df")
    assert_matches_reference(entity_df, srcs, created_filter, tmp_path)


# --- on-demand view: computed after the join -----------------------------------------------------

_origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING)
_view_a = FeatureView(
    name="a",
    entities=[_origin],
    ttl=timedelta(0),  # the engine takes the TTL from the ViewSpec, not from here
    schema=[Field(name="x", dtype=Float64), Field(name="rid", dtype=Int64)],
    source=FileSource(
        name="a_source",
        path="a.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)
_bump_request = RequestSource(name="bump_request", schema=[Field(name="bump", dtype=Float64)])


@on_demand_feature_view(
    sources=[_view_a, _bump_request], schema=[Field(name="x_plus_bump", dtype=Float64)], mode="pandas"
)
def a_plus(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=inputs.index)
    out["x_plus_bump"] = inputs["x"].astype("float64") + inputs["bump"].astype("float64")
    return out


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=st.data(),
    created_filter=st.booleans(),
    full_names=st.booleans(),
)
def test_on_demand_view_is_computed_after_the_join(
    data: st.DataObject, created_filter: bool, full_names: bool, tmp_path: Path
) -> None:
    (source,) = data.draw(sources(("a",)), label="source")
    bump = st.integers(-4, 4).map(lambda n: n / 2)
    entity_df = data.draw(entity_frames({"bump": bump}), label="entity_df")
    spec = OnDemandSpec(
        name="a_plus",
        features=("x_plus_bump",),
        source_features={"a": ("x",)},
        request_fields=("bump",),
        definition=a_plus,
    )
    plan = RetrievalPlan(
        views=(source.write(tmp_path),),
        on_demand=(spec,),
        requested=(("a", "rid"), ("a", "x"), ("a_plus", "x_plus_bump")),
    )
    options = JoinOptions(full_feature_names=full_names, created_filter=created_filter)
    result = get_training_frame(entity_df, plan, options)
    frame = getattr(result, "frame", result)

    names = ["a__rid", "a__x", "a_plus__x_plus_bump"] if full_names else ["rid", "x", "x_plus_bump"]
    assert list(frame.columns) == [*entity_df.columns, *names]
    pd.testing.assert_frame_equal(frame[list(entity_df.columns)], entity_df)
    diff = []
    for pos, entity in enumerate(entity_df.to_dict("records")):
        row = reference_choice(source, entity, created_filter)
        x = float("nan") if row is None or row["x"] is None else row["x"]
        expected = [pd.NA if row is None else row["rid"], x, x + entity["bump"]]
        for name, want in zip(names, expected, strict=True):
            got = frame[name].iloc[pos]
            if not same(got, want):
                diff.append(f"row {pos} {entity}: {name} engine={got!r} reference={want!r}")
    assert not diff, "engine differs from the reference:\n" + "\n".join(diff)


# --- the edge cases, one by one ------------------------------------------------------------------


def row(rid: int, origin: str, event: float, created: float | None = None, x: float | None = 0.0) -> dict:
    created = event if created is None else created
    return {
        "origin": origin,
        "event_timestamp": minutes(event),
        "created": minutes(created),
        "x": x,
        "rid": rid,
    }


def entities(*rows: tuple[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "origin": [o for o, _ in rows],
            "event_timestamp": pd.Series([minutes(m) for _, m in rows], dtype="datetime64[ns, UTC]"),
        }
    )


def joined_rids(source: Source, entity_df: pd.DataFrame, tmp_path: Path, created_filter: bool = True):
    result = join_views(entity_df, (source.write(tmp_path),), created_filter=created_filter)
    return [None if pd.isna(v) else int(v) for v in result[f"{source.name}__rid"]], result


def test_duplicate_entity_rows_are_kept_in_input_order(tmp_path: Path) -> None:
    source = Source("a", ("origin",), (row(1, "A", 0), row(2, "A", 2), row(3, "B", 1)), True, None)
    entity_df = entities(("A", 3), ("B", 3), ("A", 3), ("A", 1), ("A", 3))
    entity_df.index = pd.Index([40, 30, 20, 10, 0])
    rids_, result = joined_rids(source, entity_df, tmp_path)
    assert rids_ == [2, 3, 2, 1, 2]
    assert list(result.index) == [40, 30, 20, 10, 0]


def test_row_exactly_at_the_entity_time_is_taken(tmp_path: Path) -> None:
    source = Source("a", ("origin",), (row(1, "A", 0), row(2, "A", 2), row(3, "A", 3)), True, None)
    rids_, result = joined_rids(source, entities(("A", 2)), tmp_path)
    assert rids_ == [2]
    assert result["a____feature_ts"].iloc[0] == minutes(2)


def test_row_exactly_at_entity_time_minus_ttl_is_taken_and_one_second_older_is_not(tmp_path: Path) -> None:
    ttl = timedelta(minutes=2)
    at_bound = Source("a", ("origin",), (row(1, "A", 3),), True, ttl)
    assert joined_rids(at_bound, entities(("A", 5)), tmp_path)[0] == [1]
    too_old = Source("a", ("origin",), (row(1, "A", 3 - 1 / 60),), True, ttl)
    rids_, result = joined_rids(too_old, entities(("A", 5)), tmp_path)
    assert rids_ == [None]
    assert result[["a__x", "a____feature_ts", "a____created_ts"]].isna().all(axis=None)


def test_entity_before_any_feature_row_gets_nulls(tmp_path: Path) -> None:
    source = Source("a", ("origin",), (row(1, "A", 2), row(2, "A", 4)), True, None)
    rids_, result = joined_rids(source, entities(("A", 1)), tmp_path)
    assert rids_ == [None]
    assert result[["a__x", "a____feature_ts", "a____created_ts"]].isna().all(axis=None)


def test_key_without_feature_rows_gets_nulls(tmp_path: Path) -> None:
    source = Source("a", ("origin",), (row(1, "A", 0),), True, None)
    rids_, result = joined_rids(source, entities(("D", 5), ("A", 5)), tmp_path)
    assert rids_ == [None, 1]
    assert result[["a__x", "a____feature_ts", "a____created_ts"]].iloc[0].isna().all()


def test_backfilled_row_is_invisible_until_it_was_created(tmp_path: Path) -> None:
    # rid 2 describes minute 3 but was written at minute 10: an entity at minute 5 must get rid 1.
    source = Source("a", ("origin",), (row(1, "A", 1), row(2, "A", 3, created=10)), True, None)
    assert joined_rids(source, entities(("A", 5), ("A", 10)), tmp_path)[0] == [1, 2]
    assert joined_rids(source, entities(("A", 5)), tmp_path, created_filter=False)[0] == [2]


def test_equal_event_times_go_to_the_latest_created_then_the_later_file_row(tmp_path: Path) -> None:
    rows = (row(1, "A", 2, created=3), row(2, "A", 2, created=4), row(3, "A", 2, created=3))
    source = Source("a", ("origin",), rows, True, None, row_group_size=1)
    assert joined_rids(source, entities(("A", 5), ("A", 3.5)), tmp_path)[0] == [2, 3]


def test_without_created_column_equal_event_times_go_to_the_later_file_row(tmp_path: Path) -> None:
    rows = (row(1, "A", 2, created=9), row(2, "A", 2, created=0), row(3, "A", 1))
    source = Source("a", ("origin",), rows, False, None, row_group_size=2)
    assert joined_rids(source, entities(("A", 5)), tmp_path)[0] == [2]


def test_matched_row_with_null_feature_keeps_its_timestamps(tmp_path: Path) -> None:
    source = Source("a", ("origin",), (row(1, "A", 0), row(2, "A", 1, x=None)), True, None)
    rids_, result = joined_rids(source, entities(("A", 5)), tmp_path)
    assert rids_ == [2]
    assert pd.isna(result["a__x"].iloc[0])
    assert result["a____feature_ts"].iloc[0] == minutes(1)


def test_sub_microsecond_timestamps_respect_the_contract(tmp_path: Path) -> None:
    # Regression: on DuckDB TIMESTAMPTZ (microseconds) the row at T+400ns was joined to T+300ns.
    r = {**row(1, "A", 0), "event_timestamp": BASE + pd.Timedelta(400, "ns")}
    source = Source("a", ("origin",), (r,), False, None)
    at = [BASE + pd.Timedelta(300, "ns"), BASE + pd.Timedelta(400, "ns")]
    entity_df = pd.DataFrame({"origin": ["A", "A"], "event_timestamp": pd.Series(at)})
    rids_, result = joined_rids(source, entity_df, tmp_path)
    assert rids_ == [None, 1]
    assert result["a____feature_ts"].iloc[1] == BASE + pd.Timedelta(400, "ns")
