"""The point-in-time pick for small entity tables, as array lookups over a prepared source.

The join's rule (engine docstring) reduces, per view, to: for an entity row with key ``k`` at time
``t``, take the frontier row of ``k`` with the greatest ``__avail <= t`` and the ranked row it names
(``__best``), then apply the TTL to that row's event time. The DuckDB query does this with an ASOF
join, which sorts the whole frontier on every request: most of a 100-row training set's join time.
Here the frontier and the ranked rows of a prepared source are kept as arrays, sorted once by
``(key, __avail)`` and ``(key, __rank)``, and a request does one binary search per entity row
(``numpy.searchsorted`` per distinct key) and one Arrow ``take``: the same rows, picked the same way.

Used when the entity table has at most :data:`SMALL_ROWS` rows and the view's join keys are strings
or integers on both sides (the keys are matched as Python values, exactly; any other key type, or a
string key against an integer column, goes through DuckDB, whose comparison rules then apply). The
answer is the DuckDB query's, column for column and type for type (tested against it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SMALL_ROWS = 20_000


@dataclass(frozen=True)
class Lookup:
    """A prepared source as arrays: ``rows`` (ranked rows sorted by key then rank: join keys, ``__ts``,
    ``__created``, features), ``avail``/``pos`` (frontier sorted by key then ``__avail``; ``pos``: the
    index in ``rows`` of the best row available from that time) and ``segments`` (key -> frontier slice)."""

    rows: pa.Table
    avail: np.ndarray
    pos: np.ndarray
    segments: dict[Any, tuple[int, int]]
    key_kinds: tuple[str, ...]  # "string" / "integer" per join key, in the view's order


def _kind(t: pa.DataType) -> str | None:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t):
        return "integer"
    return None


def build(con: Any, keys: list[str], ranked: str, frontier: str) -> Lookup | None:
    """Read a prepared source's tables (names ``ranked``, ``frontier``) into a :class:`Lookup`; None
    if a join key is neither a string nor an integer column."""
    q = ['"' + k.replace('"', '""') + '"' for k in keys]
    order = "".join(f"{k}, " for k in q)
    rows = con.sql(f"SELECT * EXCLUDE (__avail, __file, __frow) FROM {ranked} ORDER BY {order}__rank").to_arrow_table()
    kinds = tuple(_kind(rows.schema.field(k).type) for k in keys)
    if any(k is None for k in kinds):
        return None
    if keys:
        starts = (
            f"(SELECT {', '.join(q)}, min(__i) AS __start FROM "
            f"(SELECT {', '.join(q)}, row_number() OVER (ORDER BY {order}__rank) - 1 AS __i FROM {ranked}) "
            f"GROUP BY {', '.join(q)}) s"
        )
        on = " AND ".join(f"f.{k} = s.{k}" for k in q)
        sql = (
            f"SELECT {', '.join(f'f.{k}' for k in q)}, f.__avail, s.__start + f.__best - 1 AS __pos "
            f"FROM {frontier} f JOIN {starts} ON {on} ORDER BY {', '.join(f'f.{k}' for k in q)}, f.__avail"
        )
    else:
        sql = f"SELECT __avail, __best - 1 AS __pos FROM {frontier} ORDER BY __avail"
    front = con.sql(sql).to_arrow_table()
    avail = front.column("__avail").to_numpy()
    pos = front.column("__pos").to_numpy()
    if keys:
        frame = front.select(keys).to_pandas()
        groups = frame.groupby(keys if len(keys) > 1 else keys[0], sort=False, dropna=True).indices
        segments = {k: (int(i[0]), int(i[-1]) + 1) for k, i in groups.items()}
    else:
        segments = {(): (0, len(avail))}
    return Lookup(rows, avail, pos, segments, kinds)  # type: ignore[arg-type]


def usable(lookup: Lookup | None, entity: pd.DataFrame, keys: tuple[str, ...]) -> bool:
    """Whether the lookup gives the DuckDB answer for this entity table (size and key kinds)."""
    if lookup is None or len(entity) > SMALL_ROWS:
        return False
    for key, kind in zip(keys, lookup.key_kinds, strict=True):
        dtype = entity[key].dtype
        if kind == "integer" and not pd.api.types.is_integer_dtype(dtype):
            return False
        if kind == "string":
            values = entity[key].dropna()
            if not (pd.api.types.is_string_dtype(dtype) and all(isinstance(x, str) for x in values)):
                return False
    return True


def pick(lookup: Lookup, entity: pd.DataFrame, keys: tuple[str, ...], ttl_ns: int | None) -> dict[str, pa.Array]:
    """Per entity row (``entity``: the keys and ``__ts_ns``), the chosen row's ``__feature_ts``,
    ``__created_ts``, join keys and features, null where no row is available or it is older than the TTL."""
    n = len(entity)
    ts = entity["__ts_ns"].to_numpy(dtype=np.int64)
    chosen = np.full(n, -1, dtype=np.int64)
    if keys:
        groups = entity.groupby(list(keys) if len(keys) > 1 else keys[0], sort=False, dropna=True).indices
    else:
        groups = {(): np.arange(n)}
    for key, idx in groups.items():
        segment = lookup.segments.get(key)
        if segment is None:
            continue
        lo, hi = segment
        j = np.searchsorted(lookup.avail[lo:hi], ts[idx], side="right") - 1
        hit = j >= 0
        chosen[idx[hit]] = lookup.pos[lo + j[hit]]
    indices = pa.array(chosen, mask=chosen < 0)
    taken = lookup.rows.take(indices)
    feature_ts = taken.column("__ts")
    keep = pc.is_valid(feature_ts)
    if ttl_ns is not None:
        keep = pc.and_(keep, pc.greater_equal(feature_ts, pa.array(ts - ttl_ns)))
    keep = pc.fill_null(keep, False)
    out = {"__feature_ts": feature_ts, "__created_ts": taken.column("__created")}
    for name in dict.fromkeys(taken.column_names):  # features, and the keys (a view may list a key as a feature)
        if name not in ("__ts", "__created", "__rank"):
            out[name] = taken.column(name)
    return {name: pc.if_else(keep, col, pa.nulls(n, col.type)) for name, col in out.items()}
