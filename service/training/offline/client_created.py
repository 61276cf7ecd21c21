"""Feature rows whose created timestamp the pusher gave rather than the service (``allow_client_created``).

The created-timestamp cut-off of training sets trusts a row's ``created``: a pushed row normally gets
the service clock, the moment feastline took it. A push made with ``allow_client_created: true`` keeps
the created times it carries, which nothing here can verify (a backdated one lets a later value into
an earlier training example). Such rows are recorded, as they are appended offline, in a ledger
beside the batch source, and the leakage audit of every training set counts, per view, the joined
rows that came from it (``feature_rows_client_created``).

The ledger of a source at ``path`` (a Parquet file or a folder of them) is the Parquet file
``.<name>.feastline-client-created`` next to it: no ``*.parquet`` glob and no folder source reads it.
It holds, per recorded row, the join-key columns (in the batch file's names), ``__event_ts_ns`` and
``__created_ts_ns`` (int64 nanoseconds UTC), ``__push_id`` and ``__received_at``.
"""

import threading
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

EVENT_NS, CREATED_NS, PUSH_ID, RECEIVED_AT = "__event_ts_ns", "__created_ts_ns", "__push_id", "__received_at"
_LOCK = threading.Lock()


def ledger_path(source: Path) -> Path:
    """Where the client-created rows of the batch source at ``source`` are recorded."""
    return source.parent / f".{source.name}.feastline-client-created"


def record_client_created(source: Path, rows: pa.Table) -> None:
    """Append ``rows`` (key columns, ``__event_ts_ns``, ``__created_ts_ns``, ``__push_id``,
    ``__received_at``) to the ledger of ``source``, all or nothing (written aside, then renamed in)."""
    path = ledger_path(source)
    with _LOCK:
        table = pa.concat_tables([pq.read_table(path), rows], promote_options="permissive") if path.exists() else rows
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table, tmp)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)


def client_created_matches(
    source: Path,
    key_columns: dict[str, str],
    keys: pd.DataFrame,
    feature_ts: pd.Series,
    created_ts: pd.Series,
) -> int:
    """How many of the joined rows came from client-created rows of ``source`` (0 without a ledger).

    Args:
        key_columns: entity-table key name -> the batch file's column name (the view's field mapping).
        keys: the entity rows' key columns (entity-table names), aligned with ``feature_ts``/``created_ts``.
        feature_ts / created_ts: the event and created time of the feature row each entity row was
            joined to (UTC; null when none matched).

    A joined row is counted when a recorded row has the same keys, event time and created time.
    """
    path = ledger_path(source)
    matched = feature_ts.notna().to_numpy()
    if not path.exists() or not matched.any():
        return 0
    columns = [key_columns[k] for k in keys.columns]
    ledger = pq.read_table(path, columns=[*columns, EVENT_NS, CREATED_NS]).to_pandas()
    ledger = ledger.drop_duplicates()
    joined = pd.DataFrame({c: keys[k].to_numpy()[matched] for k, c in key_columns.items() if k in keys})
    joined[EVENT_NS] = _ns(feature_ts[matched])
    joined[CREATED_NS] = _ns(created_ts[matched])  # a null created (NaT) matches no recorded row
    for c in columns:  # keys compared as text: an Int64 entity column meets an int64 ledger column
        joined[c], ledger[c] = _text(joined[c]), _text(ledger[c])
    return int(len(joined.merge(ledger, on=[*columns, EVENT_NS, CREATED_NS], how="inner")))


def _ns(stamps: pd.Series) -> "pd.Series[int]":
    return pd.Series(stamps.to_numpy(dtype="datetime64[ns]").view("int64"))


def _text(keys: pd.Series) -> pd.Series:
    """Key values as comparable text (bytes as hex, so they are never decoded)."""
    return keys.map(lambda v: f"b:{v.hex()}" if isinstance(v, bytes) else f"v:{v}").astype(object)
