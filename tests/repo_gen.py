"""Small random Feast repos for property tests: hypothesis strategies, a writer and an in-process apply.

A :class:`RepoDef` is plain values: entities (join keys typed String, Int64, Int32 or Bytes), 1-4
feature views (1-2 entities each, so compound keys; one may have none), their rows in file order
(event times on a handful of minutes, so ties; a ``created`` column with nulls and ties), TTLs
(none, 0, or a few minutes), a feature service with a projection (``with_name``, a feature subset,
``with_join_key_map``), an on-demand view over a request source, a push source, the entity rows of a
training set and the service clock. :func:`write_repo` turns it into a folder Feast and feastline can
read (``definitions.py``, ``feature_store.yaml`` with feastline's stores, Parquet data) and
:func:`apply_repo` applies it: both in ``tests/repo_gen_files.py``, with the JSON wire encodings.

Which parts of the definition surface are drawn is a set of *kinds* (:data:`KINDS`). The default is
all of them; ``FEASTLINE_REPO_GEN_KINDS=base`` (or a comma list such as ``base,key_types``) narrows the
strategy while developing. ``base`` alone: String keys, Int64/Float64/String features, one entity per
view, plain ``FileSource`` files, no projection, on-demand view, push or null ``created``.
"""

import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from hypothesis import strategies as st

KINDS = frozenset(
    {
        "key_types",  # Int64, Int32 and Bytes join keys (else String only)
        "feature_types",  # Int32, Float32 (float32 or float64 in the file), Bool, UnixTimestamp features
        "arrays",  # Array(Int64), Array(Float64), Array(String), Array(Bool) features
        "compound",  # views keyed by two entities
        "entityless",  # a view without entities (global features)
        "created_nulls",  # null created timestamps
        "subsecond",  # event times a fraction of a second apart
        "projections",  # the feature service holds a with_name / with_join_key_map projection
        "on_demand",  # an on-demand view over a view and a request source
        "push",  # a push source feeding a view, pushed to and read back
        "source_mapping",  # a batch source with its own timestamp/created column names and a field mapping
        "directory_source",  # a FileSource whose path is a directory of Parquet files
    }
)
BASE = pd.Timestamp("2024-03-01 09:00", tz="UTC")
PROJECT = "repogen"
KEY_TYPES = ("String", "Int64", "Int32", "Bytes")
SCALAR_TYPES = ("Int64", "Float64", "String")
EXTRA_SCALAR_TYPES = ("Int32", "Float32", "Bool", "UnixTimestamp")
ARRAY_TYPES = ("Array(Int64)", "Array(Float64)", "Array(String)", "Array(Bool)")
REQUEST_TYPES = ("Int64", "Float64", "String", "Bool")
TTLS = (None, 0, 60, 150, 300)  # seconds; None: no ttl argument, 0: Feast's "no limit"
CLOCK_MINUTES = (7, 8, 9.5, 12)  # every event time is before the clock (data: minutes 0..6)


def kinds_from_env() -> frozenset[str]:
    """The kinds named by ``FEASTLINE_REPO_GEN_KINDS`` (comma list; ``base`` = none; unset = all)."""
    text = os.environ.get("FEASTLINE_REPO_GEN_KINDS")
    if text is None:
        return KINDS
    names = {n.strip() for n in text.split(",") if n.strip()} - {"base"}
    unknown = names - KINDS
    if unknown:
        raise ValueError(f"unknown FEASTLINE_REPO_GEN_KINDS {sorted(unknown)}; known: base, {', '.join(sorted(KINDS))}")
    return frozenset(names)


# --- the values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityDef:
    name: str
    key: str
    dtype: str  # one of KEY_TYPES
    pool: tuple[Any, ...]  # key values that have feature rows


@dataclass(frozen=True)
class FeatureDef:
    name: str
    dtype: str  # "Int64", "Float32", "Array(String)", ...
    file_type: str  # the Parquet column's type name (Float32 may be stored as Float64)

    @property
    def element(self) -> str:
        return self.dtype[6:-1] if self.dtype.startswith("Array(") else self.dtype


@dataclass(frozen=True)
class ViewDef:
    name: str
    entities: tuple[str, ...]  # entity names (empty: entity-less)
    features: tuple[FeatureDef, ...]
    rows: tuple[dict[str, Any], ...]  # join keys, "event_ts", "created" (Timestamp or None), features
    ttl: int | None  # seconds
    has_created: bool
    timestamp_column: str = "event_timestamp"
    created_column: str = "created"
    mapped: bool = False  # source columns are "src_<feature>", mapped by field_mapping
    layout: str = "file"  # "file" or "directory" (two part files, rows split in order)
    push: bool = False

    def source_column(self, feature: str) -> str:
        return f"src_{feature}" if self.mapped else feature


@dataclass(frozen=True)
class Projection:
    view: str
    alias: str
    features: tuple[str, ...]
    key_map: tuple[tuple[str, str], ...]  # (join key, entity-row column)


@dataclass(frozen=True)
class OnDemandDef:
    name: str
    view: str
    request_field: str
    request_dtype: str
    plus_of: str | None  # an Int64/Float64 feature of ``view``: plus = float(feature) + 1.0


@dataclass(frozen=True)
class RepoDef:
    entities: tuple[EntityDef, ...]
    views: tuple[ViewDef, ...]
    projection: Projection | None
    on_demand: OnDemandDef | None
    clock: pd.Timestamp
    entity_rows: tuple[dict[str, Any], ...]  # join keys (and aliases), "event_ts", request field
    pushes: tuple[dict[str, Any], ...] = field(default=())  # rows for the push view, in push order

    def entity(self, name: str) -> EntityDef:
        return next(e for e in self.entities if e.name == name)

    def view(self, name: str) -> ViewDef:
        return next(v for v in self.views if v.name == name)

    def keys(self, view: ViewDef) -> tuple[str, ...]:
        return tuple(self.entity(e).key for e in view.entities)

    @property
    def push_view(self) -> ViewDef | None:
        return next((v for v in self.views if v.push), None)

    def describe(self) -> str:
        """One line per definition, for failure messages."""
        lines = [f"clock {self.clock.isoformat()}"]
        lines += [f"entity {e.name} key {e.key}: {e.dtype} pool {e.pool}" for e in self.entities]
        for v in self.views:
            lines.append(
                f"view {v.name} keys {self.keys(v)} ttl {v.ttl} created {v.has_created} ts {v.timestamp_column} "
                f"mapped {v.mapped} layout {v.layout} push {v.push} "
                f"features {[(f.name, f.dtype, f.file_type) for f in v.features]} rows {len(v.rows)}"
            )
        if self.projection:
            lines.append(f"projection {self.projection}")
        if self.on_demand:
            lines.append(f"on demand {self.on_demand}")
        return "\n".join(lines)


# --- strategies ----------------------------------------------------------------------------------

KEY_POOLS: dict[str, st.SearchStrategy[Any]] = {
    "String": st.sampled_from(["a", "B", "1", "01", "ä", "a b"]),
    "Int64": st.sampled_from([0, 1, -1, 7, 1001, 2**53 + 1, -(2**63), 2**63 - 1]),
    "Int32": st.sampled_from([0, 1, -5, 7, 2**31 - 1, -(2**31)]),
    "Bytes": st.sampled_from([b"\x00", b"a", b"ab", b"\xff\x01", b"1"]),
}
UNSEEN_KEY = {"String": "zz", "Int64": 424242, "Int32": 4242, "Bytes": b"\xee"}


def scalar_values(dtype: str) -> st.SearchStrategy[Any]:
    """Values as Python objects; Float32 values are short decimals (the float32 nearest is what is held)."""
    return {
        "Int64": st.integers(-(2**63), 2**63 - 1),
        "Int32": st.integers(-(2**31), 2**31 - 1),
        "Float64": st.floats(allow_nan=False, allow_infinity=False, width=64),
        "Float32": st.integers(-99_999, 99_999).map(lambda n: n / 1000),
        "String": st.text(alphabet="abcXYZ019 _-é😀", max_size=5),
        "Bool": st.booleans(),
        "UnixTimestamp": st.integers(946_684_800, 1_893_456_000).map(lambda s: pd.Timestamp(s, unit="s", tz="UTC")),
    }[dtype]


def feature_values(feature: FeatureDef) -> st.SearchStrategy[Any]:
    if feature.dtype.startswith("Array("):
        return st.lists(scalar_values(feature.element), max_size=3)
    return scalar_values(feature.dtype)


@st.composite
def repos(draw: st.DrawFn, kinds: frozenset[str] = KINDS) -> RepoDef:  # noqa: C901 - one drawing recipe
    """A random :class:`RepoDef` using only the parts of the definition surface named in ``kinds``."""
    n_entities = draw(st.integers(1, 3))
    entities = []
    for i in range(n_entities):
        dtype = draw(st.sampled_from(KEY_TYPES)) if "key_types" in kinds else "String"
        pool = tuple(draw(st.lists(KEY_POOLS[dtype], min_size=1, max_size=3, unique=True)))
        entities.append(EntityDef(name=f"e{i}", key=f"k{i}_{dtype.lower()}", dtype=dtype, pool=pool))

    feature_types = list(SCALAR_TYPES)
    if "feature_types" in kinds:
        feature_types += EXTRA_SCALAR_TYPES
    if "arrays" in kinds:
        feature_types += ARRAY_TYPES
    n_views = draw(st.integers(1, 4))
    push_at = draw(st.integers(0, n_views - 1)) if "push" in kinds else None
    views = []
    for v in range(n_views):
        name = f"v{v}"
        entityless = "entityless" in kinds and v > 0 and draw(st.integers(0, 4)) == 0
        if entityless:
            names: tuple[str, ...] = ()
        else:
            width = draw(st.integers(1, 2)) if "compound" in kinds and n_entities > 1 else 1
            names = tuple(
                sorted(
                    draw(
                        st.lists(
                            st.sampled_from([e.name for e in entities]), min_size=width, max_size=width, unique=True
                        )
                    )
                )
            )
        features = []
        for i, dtype in enumerate(draw(st.lists(st.sampled_from(feature_types), min_size=1, max_size=3))):
            file_type = dtype
            if dtype == "Float32":
                file_type = draw(st.sampled_from(["Float32", "Float64"]))
            features.append(
                FeatureDef(
                    name=f"{name}_{dtype.replace('(', '_').replace(')', '').lower()}_{i}",
                    dtype=dtype,
                    file_type=file_type,
                )
            )
        has_created = draw(st.booleans())
        rows = []
        for _ in range(draw(st.integers(0, 8))):
            row: dict[str, Any] = {}
            for e in names:
                row[next(x for x in entities if x.name == e).key] = draw(
                    st.sampled_from(next(x for x in entities if x.name == e).pool)
                )
            event = BASE + pd.Timedelta(minutes=draw(st.integers(0, 6)))
            if "subsecond" in kinds:
                event += pd.Timedelta(milliseconds=draw(st.sampled_from([0, 0, 250, 500, 999])))
            row["event_ts"] = event
            created = event + pd.Timedelta(minutes=draw(st.integers(-2, 6)))
            if not has_created or ("created_nulls" in kinds and draw(st.integers(0, 4)) == 0):
                created = None
            row["created"] = created
            for f in features:
                row[f.name] = None if draw(st.integers(0, 5)) == 0 else draw(feature_values(f))
            rows.append(row)
        mapped = "source_mapping" in kinds and draw(st.booleans())
        views.append(
            ViewDef(
                name=name,
                entities=names,
                features=tuple(features),
                rows=tuple(rows),
                ttl=draw(st.sampled_from(TTLS)),
                has_created=has_created,
                timestamp_column="ts" if mapped else "event_timestamp",
                created_column="created_at" if mapped else "created",
                mapped=mapped,
                layout="directory" if "directory_source" in kinds and draw(st.booleans()) else "file",
                push=v == push_at and bool(names),
            )
        )

    projection = None
    keyed = [v for v in views if v.entities]
    if "projections" in kinds and keyed:
        target = draw(st.sampled_from(keyed))
        subset = draw(st.lists(st.sampled_from([f.name for f in target.features]), min_size=1, unique=True))
        keys = [next(e for e in entities if e.name == n).key for n in target.entities]
        mapped_keys = draw(st.lists(st.sampled_from(keys), unique=True))
        projection = Projection(
            view=target.name,
            alias=f"{target.name}_alias",
            features=tuple(f.name for f in target.features if f.name in subset),
            key_map=tuple((k, f"{k}_alias") for k in keys if k in mapped_keys),
        )

    on_demand = None
    if "on_demand" in kinds:
        base_view = draw(st.sampled_from(views))
        numeric = [f.name for f in base_view.features if f.dtype in ("Int64", "Float64")]
        on_demand = OnDemandDef(
            name="odfv",
            view=base_view.name,
            request_field="req",
            request_dtype=draw(st.sampled_from(REQUEST_TYPES)),
            plus_of=numeric[0] if numeric else None,
        )

    clock = BASE + pd.Timedelta(minutes=draw(st.sampled_from(CLOCK_MINUTES)))
    columns = [e for e in entities]
    entity_rows = []
    for _ in range(draw(st.integers(1, 6))):
        er: dict[str, Any] = {}
        for e in columns:
            er[e.key] = draw(st.sampled_from([*e.pool, UNSEEN_KEY[e.dtype]]))
        if projection:
            for key, alias in projection.key_map:
                dtype = next(e for e in entities if e.key == key)
                er[alias] = draw(st.sampled_from([*dtype.pool, UNSEEN_KEY[dtype.dtype]]))
        er["event_ts"] = draw(
            st.one_of(st.just(clock), st.integers(-2, 28).map(lambda half: BASE + pd.Timedelta(seconds=30 * half)))
        )
        if on_demand:
            er[on_demand.request_field] = draw(scalar_values(on_demand.request_dtype))
        entity_rows.append(er)

    pushes: list[dict[str, Any]] = []
    pv = next((v for v in views if v.push), None)
    if pv is not None:
        # subsecond: the second push is the same key, half a second OLDER (must not overwrite the first)
        older = "subsecond" in kinds and draw(st.booleans())
        for n in range(2):
            p: dict[str, Any] = {}
            for e in pv.entities:
                ent = next(x for x in entities if x.name == e)
                p[ent.key] = draw(st.sampled_from([*ent.pool, UNSEEN_KEY[ent.dtype]]))
            p["event_ts"] = clock - pd.Timedelta(seconds=30 - n)
            if older and n == 1:
                p.update({ent.key: pushes[0][ent.key] for ent in entities if ent.name in pv.entities})
                p["event_ts"] = pushes[0]["event_ts"] - pd.Timedelta(milliseconds=500)
            p["created"] = p["event_ts"] if pv.has_created else None
            for f in pv.features:
                p[f.name] = draw(feature_values(f))
            pushes.append(p)
    return RepoDef(
        entities=tuple(entities),
        views=tuple(views),
        projection=projection,
        on_demand=on_demand,
        clock=clock,
        entity_rows=tuple(entity_rows),
        pushes=tuple(pushes),
    )
