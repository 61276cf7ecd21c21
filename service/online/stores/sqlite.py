"""SQLite online store whose writes keep the newest row per entity key (see the package docstring)."""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key, serialize_f32
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig, _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.type_map import feast_value_type_to_python_type
from feast.types import FEAST_VECTOR_TYPES
from feast.utils import _get_feature_view_vector_field_metadata, to_naive_utc
from pydantic import StrictStr

from service.online.stores import newest_per_entity

logger = logging.getLogger(__name__)

WriteRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

# Smaller than any stored timestamp (Feast's sqlite3 adapter stores them as integer epoch seconds), so a
# missing created_ts orders first.
_NO_CREATED = -(2**63)


class OrderedSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Config of :class:`OrderedSqliteOnlineStore`; the same fields as Feast's ``sqlite`` store."""

    type: StrictStr = "service.online.stores.sqlite.OrderedSqliteOnlineStore"  # type: ignore[assignment]


class OrderedSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store, except that an older row never overwrites a newer one.

    Tables, columns and value serialization are Feast's, so reads, ``feast apply`` and teardown are
    inherited unchanged; only :meth:`online_write_batch` differs.
    """

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[WriteRow],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Write ``data`` so that, per entity key and feature, the stored row is the newest one seen.

        Args:
            config: the repo config; ``config.online_store`` is an :class:`OrderedSqliteOnlineStoreConfig`.
            table: the feature view written to (one SQLite table per view).
            data: rows ``(entity_key, {feature: value}, event_ts, created_ts)``; naive timestamps are UTC.
            progress: called with the number of input rows handled, as Feast's store does (once per row).

        Ordering rule: inside the batch only the row with the greatest ``(event_ts, created_ts)`` per entity
        key is kept (a full tie keeps the later row). It then replaces the stored row only if its
        ``event_ts`` is greater, or equal with a greater-or-equal ``created_ts`` (missing = smallest). The
        check is the ``WHERE`` of the upsert itself, so it is atomic: two writers cannot both read the
        old row and then overwrite each other out of order. Without it a late push of stale data (a
        replay, a slow stream partition) would silently replace fresher values.

        Caveat: Feast stores ``event_ts`` in SQLite as whole epoch seconds, so two rows within the same
        second compare as equal event times and are ordered by ``created_ts``, then by arrival.
        """
        conn = self._get_conn(config)
        table_name = _table_id(config.project, table, config.registry.enable_online_feature_view_versioning)
        columns, has_value_num_col = self._write_columns(config, conn, table_name)
        upsert_sql = _ordered_upsert_sql(table_name, columns)
        vector_enabled = config.online_store.vector_enabled
        vector_dtypes = {f.name: f.dtype for f in table.features}

        def serialized(row: WriteRow) -> bytes:
            return serialize_entity_key(
                row[0], entity_key_serialization_version=config.entity_key_serialization_version
            )

        keys: dict[int, bytes] = {}

        def cached(row: WriteRow) -> bytes:  # each key is serialized once, not once per use
            if id(row) not in keys:
                keys[id(row)] = serialized(row)
            return keys[id(row)]

        rows = newest_per_entity(data, cached)
        params_list: list[tuple[Any, ...]] = []
        with conn:
            for row in rows:
                entity_key_bin = cached(row)
                _, values, event_ts, created_ts = row
                event_ts = to_naive_utc(event_ts)
                created_ts = None if created_ts is None else to_naive_utc(created_ts)
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


def _ordered_upsert_sql(table_name: str, columns: list[str]) -> str:
    """An upsert that replaces the stored row only when the incoming one is not older (see the store)."""
    tbl = _quote_id(table_name)
    update_set = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in ("entity_key", "feature_name"))
    return (
        f"INSERT INTO {tbl} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {update_set} "
        f"WHERE {tbl}.event_ts IS NULL OR excluded.event_ts > {tbl}.event_ts "
        f"OR (excluded.event_ts = {tbl}.event_ts "
        f"AND coalesce(excluded.created_ts, {_NO_CREATED}) >= coalesce({tbl}.created_ts, {_NO_CREATED}))"
    )


def _vector_value(table: FeatureView, dtype: Any, val: ValueProto) -> Any:
    """The ``vector_value`` column exactly as Feast's SQLite store fills it."""
    if dtype in FEAST_VECTOR_TYPES:
        length = getattr(_get_feature_view_vector_field_metadata(table), "vector_length", 512)
        return serialize_f32(val.float_list_val.val, length)
    return feast_value_type_to_python_type(val)
