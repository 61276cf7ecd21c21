"""SQLite online store whose writes keep the newest row per entity key (see the package docstring)."""

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from feast.entity import Entity
from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key, serialize_f32
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _initialize_conn,
    _quote_id,
    _table_id,
)
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.type_map import feast_value_type_to_python_type
from feast.types import FEAST_VECTOR_TYPES
from feast.utils import _get_feature_view_vector_field_metadata, to_naive_utc
from pydantic import StrictStr

from service.online.stores import newest_per_entity
from service.training.offline.order import NO_CREATED_NS, order_key

logger = logging.getLogger(__name__)

WriteRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

_NS = 1_000_000_000  # Feast's sqlite3 adapter stores timestamps as integer epoch seconds


class OrderedSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Config of :class:`OrderedSqliteOnlineStore`; the same fields as Feast's ``sqlite`` store."""

    type: StrictStr = "service.online.stores.sqlite.OrderedSqliteOnlineStore"  # type: ignore[assignment]


class OrderedSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store, except that an older row never overwrites a newer one.

    Tables, columns and value serialization are Feast's, so reads, ``feast apply`` and teardown are
    inherited unchanged; only :meth:`online_write_batch` differs.
    """

    _write_lock: Any = None  # a threading.Lock, made on first write
    _write_conn: Any = None  # the connection writes use, made on first write (see _get_write_conn)

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[WriteRow],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Write ``data`` so that, per entity key, the stored row is the newest one seen.

        Args:
            config: the repo config; ``config.online_store`` is an :class:`OrderedSqliteOnlineStoreConfig`.
            table: the feature view written to (one SQLite table per view).
            data: rows ``(entity_key, {feature: value}, event_ts, created_ts)``; naive timestamps are UTC;
                ``pd.Timestamp`` values keep their nanoseconds.
            progress: called with the number of input rows handled, as Feast's store does (once per row).

        Ordering rule (:mod:`service.training.offline.order`): inside the batch only the newest row per
        entity key is kept (a full tie keeps the later row). It then replaces the stored row only if it is
        not older: greater ``event_ts``, or equal with a greater-or-equal ``created_ts`` (missing =
        smallest). Feast's table keeps ``event_ts``/``created_ts`` as whole epoch seconds (its reader
        parses integers), so the full times, in nanoseconds, are kept in a side table
        ``<table>__feastline_order`` (entity key, event ns, created ns) that Feast never reads; a stored row
        without one (written by Feast's own store) is compared at its whole seconds. The compare and both
        writes are one ``BEGIN IMMEDIATE`` transaction, which holds SQLite's write lock from the first
        read, so two writers cannot both read the old row and then overwrite each other out of order.
        """
        conn = self._get_write_conn(config)
        table_name = _table_id(config.project, table, config.registry.enable_online_feature_view_versioning)
        columns, has_value_num_col = self._write_columns(config, conn, table_name)
        upsert_sql = _upsert_sql(table_name, columns)
        vector_enabled = config.online_store.vector_enabled
        vector_dtypes = {f.name: f.dtype for f in table.features}

        keys: dict[int, bytes] = {}

        def cached(row: WriteRow) -> bytes:  # each key is serialized once, not once per use
            if id(row) not in keys:
                keys[id(row)] = serialize_entity_key(
                    row[0], entity_key_serialization_version=config.entity_key_serialization_version
                )
            return keys[id(row)]

        rows = newest_per_entity(data, cached)
        if self._write_lock is None:
            self._write_lock = threading.Lock()
        with self._write_lock, conn:  # one connection per store; threads of one process take turns
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            winners = _newer_than_stored(conn, table_name, [(cached(r), *order_key(r[2], r[3])) for r in rows])
            params_list: list[tuple[Any, ...]] = []
            for row in rows:
                entity_key_bin = cached(row)
                if entity_key_bin not in winners:
                    continue
                _, values, event_ts, created_ts = row
                event_ts = _plain(to_naive_utc(event_ts))
                created_ts = None if created_ts is None else _plain(to_naive_utc(created_ts))
                for feature_name, val in values.items():
                    value_text, value_num = extract_text_and_num(val, has_value_num_col)
                    params: list[Any] = [entity_key_bin, feature_name, val.SerializeToString(), value_text]
                    if has_value_num_col:
                        params.append(value_num)
                    if vector_enabled:
                        params.append(_vector_value(table, vector_dtypes.get(feature_name), val))
                    params.extend([event_ts, created_ts])
                    params_list.append(tuple(params))
            conn.executemany(upsert_sql, params_list)  # one statement per (key, feature), in order
        if progress:
            for _ in rows:
                progress(1)
        if progress and len(data) > len(rows):
            progress(len(data) - len(rows))  # rows superseded inside the batch: handled, never written

    def _get_write_conn(self, config: RepoConfig) -> Any:
        """The connection of this store's writes, not shared with its reads (Feast's ``_get_conn``).

        A connection that also serves reads can hold SQLite's SHARED lock (another thread's read in
        progress) when ``BEGIN IMMEDIATE`` asks it for RESERVED; if another process's writer is then
        committing (RESERVED, waiting for EXCLUSIVE), SQLite answers "database is locked" at once
        instead of waiting (it would be a deadlock). A connection used only for writes holds no lock
        outside its own transaction, so it waits its busy timeout like any writer.
        """
        if self._write_conn is None:
            self._write_conn = _initialize_conn(self._get_db_path(config))
        return self._write_conn

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        """Feast's update, plus dropping the order side table of each deleted view's table."""
        super().update(config, tables_to_delete, tables_to_keep, entities_to_delete, entities_to_keep, partial)
        conn = self._get_conn(config)
        versioning = config.registry.enable_online_feature_view_versioning
        with conn:
            for table in tables_to_delete:
                name = _order_table(_table_id(config.project, table, versioning))
                conn.execute(f"DROP TABLE IF EXISTS {_quote_id(name)}")

    def _write_columns(self, config: RepoConfig, conn: Any, table_name: str) -> tuple[list[str], bool]:
        """The columns Feast's own ``online_write_batch`` writes, and whether ``value_num`` is among them."""
        has_value_num_col = False
        if getattr(config.online_store, "enable_openai_compatible_store", False):
            has_value_num_col = self._check_table_has_value_num(conn, table_name)
            if not has_value_num_col:
                logger.warning(
                    "enable_openai_compatible_store is True but table %r has no value_num column; "
                    "run `feast apply` to add it. Writing without value_num.",
                    table_name,
                )
        columns = ["entity_key", "feature_name", "value", "value_text"]
        if has_value_num_col:
            columns.append("value_num")
        if config.online_store.vector_enabled:
            columns.append("vector_value")
        columns.extend(["event_ts", "created_ts"])
        return columns, has_value_num_col


def _plain(ts: datetime) -> datetime:
    """A plain ``datetime`` (Feast's sqlite3 adapter is registered for it, not for ``pd.Timestamp``)."""
    return ts.to_pydatetime(warn=False) if isinstance(ts, pd.Timestamp) else ts


def _order_table(table_name: str) -> str:
    return f"{table_name}__feastline_order"


def _newer_than_stored(conn: Any, table_name: str, keyed: list[tuple[bytes, int, int]]) -> set[bytes]:
    """The entity keys of ``keyed`` ``(key, event ns, created ns)`` not older than what is stored; records
    their times in the side table. Runs inside the caller's write transaction."""
    order, tbl = _quote_id(_order_table(table_name)), _quote_id(table_name)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {order} (entity_key BLOB PRIMARY KEY, event_ns INTEGER NOT NULL, "
        "created_ns INTEGER NOT NULL)"
    )
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS feastline_batch (entity_key BLOB PRIMARY KEY, event_ns, created_ns)")
    conn.execute("DELETE FROM temp.feastline_batch")
    conn.executemany("INSERT INTO temp.feastline_batch VALUES (?, ?, ?)", keyed)
    # a stored time: the side table's, else Feast's whole seconds (a row Feast's own store wrote)
    stored_event = f"coalesce(o.event_ns, f.event_ts * {_NS})"
    stored_created = f"coalesce(o.created_ns, f.created_ts * {_NS}, {NO_CREATED_NS})"
    conn.execute(
        f"""DELETE FROM temp.feastline_batch WHERE entity_key IN (
            SELECT b.entity_key FROM temp.feastline_batch b
            LEFT JOIN {order} o ON o.entity_key = b.entity_key
            LEFT JOIN (SELECT entity_key, max(event_ts) AS event_ts, max(created_ts) AS created_ts FROM {tbl}
                       WHERE entity_key IN (SELECT entity_key FROM temp.feastline_batch) GROUP BY entity_key) f
                   ON f.entity_key = b.entity_key
            WHERE {stored_event} > b.event_ns
               OR ({stored_event} = b.event_ns AND {stored_created} > b.created_ns))"""
    )
    conn.execute(f"INSERT OR REPLACE INTO {order} SELECT entity_key, event_ns, created_ns FROM temp.feastline_batch")
    return {row[0] for row in conn.execute("SELECT entity_key FROM temp.feastline_batch")}


def _upsert_sql(table_name: str, columns: list[str]) -> str:
    """Feast's upsert of one (entity key, feature) row; the order was checked before (see the store)."""
    update_set = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("entity_key", "feature_name"))
    return (
        f"INSERT INTO {_quote_id(table_name)} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {update_set}"
    )


def _vector_value(table: FeatureView, dtype: Any, val: ValueProto) -> Any:
    """The ``vector_value`` column exactly as Feast's SQLite store fills it."""
    if dtype in FEAST_VECTOR_TYPES:
        length = getattr(_get_feature_view_vector_field_metadata(table), "vector_length", 512)
        return serialize_f32(val.float_list_val.val, length)
    return feast_value_type_to_python_type(val)
