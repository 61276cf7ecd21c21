"""How a join key is compared: in the one domain of its declared Feast type, on both sides.

DuckDB compares a ``VARCHAR`` with a ``BIGINT`` by casting the text to an integer, so left alone it would
match the entity ``"01001"`` to the source's ``1001`` (and fail on ``"abc"``). feastline never lets it
guess: each key is compared in the domain of its declared type, and each side is put into that domain by
a rule that is injective (two different values never become equal):

- ``String``: text as it is; an **integer** is taken by its canonical decimal spelling (``1001`` ->
  ``"1001"``, ``-5`` -> ``"-5"``: no sign for positives, no leading zeros). The spelling of an integer is
  unique, so ``1001`` matches ``"1001"`` and never ``"01001"``, ``"+1001"`` or ``" 1001"``. This is how
  Feast's own tests declare a ``String`` key over integer data (``driver_id`` as integers in the source
  and the entity frame), and it matches exactly the rows Feast's File store matches there: integers equal
  as integers are equal as spellings. The reverse (text into an integer key) is refused: ``"01001"`` and
  ``"1001"`` would both become ``1001``.
- ``Int32`` / ``Int64``: an integer column of any width, compared as integers (exact across widths).
- ``Bytes``: a binary column. ``UnixTimestamp``: a timestamp column.
- no declared type (``UNKNOWN``): the source column as it is.

A column of nulls only (Parquet's null type, e.g. a push source's file before any push) holds no key
and is taken for any declared type. A source column of another kind is refused
(:class:`SourceKeyTypeMismatch`) before any row is joined.

Where each side is admitted: the entity frame of Feast's SDK path may hold an integer column for a ``String``
key (``FeastlineRetrievalJob``); HTTP bodies stay strict (a JSON integer, or an integer column of a Parquet
or Arrow body, for a ``String`` key is a 422).
"""

from collections.abc import Callable

import duckdb
import pandas as pd
from feast.value_type import ValueType

from service.training.offline.errors import SourceKeyTypeMismatch
from service.training.offline.views import ViewSpec

_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def key_domains(views: tuple[ViewSpec, ...]) -> dict[str, ValueType]:
    """Each join key (by its entity-table name) -> the declared type it is compared in: the first view's
    that declares it (``UNKNOWN`` when none does), the same as ``RetrievalPlan.key_types``."""
    keys = dict.fromkeys(k for v in views for k in v.join_keys)
    return {k: next((v.types[k] for v in views if k in v.types), ValueType.UNKNOWN) for k in keys}


def is_integer_type(duckdb_type: str) -> bool:
    """Whether a DuckDB column type (as ``DESCRIBE`` spells it) holds integers."""
    return duckdb_type in _INTEGER_TYPES


def source_column_types(con: duckdb.DuckDBPyConnection, parquet_glob: str) -> dict[str, str]:
    """The DuckDB type of each column of the Parquet files ``parquet_glob`` names (``DESCRIBE``)."""
    rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{parquet_glob.replace(chr(39), chr(39) * 2)}')")
    return {str(name): str(kind).strip('"') for name, kind, *_ in rows.fetchall()}  # DuckDB quotes "NULL"


_HOLDS: dict[ValueType, Callable[[str], bool]] = {  # declared type -> the source column types that hold it
    ValueType.STRING: lambda t: t == "VARCHAR" or is_integer_type(t),  # integers: by their canonical spelling
    ValueType.INT32: is_integer_type,
    ValueType.INT64: is_integer_type,
    ValueType.BYTES: lambda t: t == "BLOB",
    ValueType.UNIX_TIMESTAMP: lambda t: t.startswith("TIMESTAMP"),
}


def source_key_sql(view: str, key: str, column: str, physical: str, declared: ValueType) -> str:
    """The SQL expression of source ``column`` (DuckDB type ``physical``) in ``declared``'s domain.

    Raises:
        SourceKeyTypeMismatch: the column's type does not hold values of the declared type (see the module).
    """
    col = _q(column)
    if declared == ValueType.UNKNOWN or physical == "NULL":  # NULL: a column of nulls only, matching nothing
        return col
    holds = _HOLDS.get(declared)
    if holds is None or not holds(physical):
        raise SourceKeyTypeMismatch(view, key, column, physical, declared.name)
    if declared == ValueType.STRING and is_integer_type(physical):
        return f"CAST({col} AS VARCHAR)"  # canonical decimal: DuckDB spells -5, 0, 1001 (no '+', no zeros)
    return col


def canonical_decimal(col: pd.Series) -> pd.Series:
    """An integer column as the canonical decimal spelling of each value (object dtype; nulls stay null)."""
    return pd.Series([None if pd.isna(v) else str(int(v)) for v in col.astype(object)], index=col.index, dtype=object)


def entity_key_column(col: pd.Series, declared: ValueType) -> pd.Series:
    """An entity key column in ``declared``'s domain: an integer column for a ``String`` key becomes its
    canonical decimal spelling; any other column is returned as it is (validated before, see the callers)."""
    is_int = pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
    if declared == ValueType.STRING and is_int:
        return canonical_decimal(col)
    return col
