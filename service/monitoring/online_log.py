"""Online feature logging: what ``/get-online-features`` served, kept as Parquet, off the request path.

Each answered read of a feature service whose sampling rate (the feature service's tag
``feastline.log_sample_rate``, a number in [0, 1]; ``FEASTLINE_ONLINE_LOG_SAMPLE_RATE`` for a service
without the tag, 0 by default) draws it becomes one **record**: a request id (also sent back as the
``X-Request-Id`` header), the service clock time of the read, a sequence number (increasing over the
life of the log folder: requests served at one pinned instant keep their order), the feature service,
the entity keys (join keys and request fields, as sent) and, per feature, the values, statuses and
event timestamps answered. Reads of a ``features`` list (no feature service) are not logged.

**Off the request path.** :meth:`OnlineLog.offer` only puts the record (a tuple of references to the
request's and the answer's lists) in a bounded in-memory queue (``FEASTLINE_ONLINE_LOG_QUEUE``
records) with ``put_nowait``: when the queue is full the record is dropped and counted, serving never
waits and never fails because of the log. A background thread sleeps
``FEASTLINE_ONLINE_LOG_FLUSH_SECONDS``, then takes every queued record off the queue (it never blocks
on the queue, so a request's put wakes no thread), turns them into Arrow columns (the values and
timestamps are converted there, not on the request path) and writes one Parquet file per feature
service and hour (temp file + ``os.replace``: a reader sees whole files or
none), and deletes hour partitions older than ``FEASTLINE_ONLINE_LOG_RETENTION_HOURS`` at the
service clock. :meth:`OnlineLog.close` (the app's shutdown) flushes what is queued.

**Layout.** ``<FEASTLINE_ONLINE_LOG_DIR>/feature_service=<name>/hour=<YYYY-MM-DDTHH>/part-<first
sequence>-<last sequence>.parquet``, one row per served entity (a batch of 100 entities is 100 rows of
one record).

**Counted** in ``/metrics``: ``feastline_online_log_records_total{feature_service, outcome}`` with
``outcome`` = ``logged`` (written to Parquet), ``dropped`` (queue full, or the record could not be
taken) or ``failed`` (the write failed; logged as an error); every sampled request is counted exactly
once, so sampled = logged + dropped + failed. ``feastline_online_log_queue_records`` is the queue's
depth at scrape time.
"""

import contextlib
import itertools
import logging
import os
import queue
import random
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.value_type import ValueType
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.clock import service_now
from service.settings import Settings
from service.training.offline.views import RetrievalPlan, plan_retrieval, registry_version, service_references

log = logging.getLogger(__name__)

SAMPLE_TAG = "feastline.log_sample_rate"
BASE_COLUMNS = ("request_id", "logged_at", "sequence", "row", "feature_service")
STATUS_SUFFIX = "__status"
EVENT_TS_SUFFIX = "__event_timestamp"
EPOCH = "1970-01-01T00:00:00Z"  # the event timestamp answered with NOT_FOUND and on-demand values
_PART = re.compile(r"^part-(\d+)-(\d+)\.parquet$")
_HOUR_FORMAT = "%Y-%m-%dT%H"
_STOP = object()


@dataclass(frozen=True)
class LogRecord:
    """One served read, as queued: references to the request's and the answer's lists (never copied
    on the request path; neither is changed after the answer is built)."""

    request_id: str
    logged_at: datetime
    sequence: int
    feature_service: str
    entities: dict[str, list[Any]]
    names: list[str]  # the answered feature names, in answer order
    results: list[dict[str, Any]]  # the answer's feature results: {"values", "statuses", "event_timestamps"}


# -- sampling --------------------------------------------------------------------------------------

_RATES: dict[tuple[int, str | None, str], float | None] = {}


def sample_rate(store: FeatureStore, feature_service: str, default: float) -> float:
    """The feature service's ``feastline.log_sample_rate`` tag (clamped to [0, 1]), else ``default``;
    cached until the registry changes. A tag that is not a number is ignored (warned once)."""
    key = (id(store), registry_version(store), feature_service)
    if key not in _RATES:
        if len(_RATES) > 1024:
            _RATES.clear()
        rate: float | None = None
        try:
            tag = store.get_feature_service(feature_service).tags.get(SAMPLE_TAG)
        except Exception:  # unknown service: the read itself answers 404, nothing is logged
            tag = None
        if tag is not None:
            try:
                rate = min(1.0, max(0.0, float(tag)))
            except ValueError:
                log.warning("feature service %s: tag %s=%r is not a number; ignored", feature_service, SAMPLE_TAG, tag)
        _RATES[key] = rate
    found = _RATES[key]
    return default if found is None else found


def feature_columns(plan: RetrievalPlan) -> list[str]:
    """The log's (and parity's) column name per requested feature, in request order: the feature's
    name, or ``view__feature`` for every feature when two share a name (as a training set names them
    with ``full_feature_names``; an online read of such a service needs full names anyway)."""
    short = [f for _, f in plan.requested]
    if len(set(short)) == len(short):
        return short
    return [f"{v}__{f}" for v, f in plan.requested]


# -- metrics ---------------------------------------------------------------------------------------


class _QueueDepth(Collector):
    def __init__(self, online_log: "OnlineLog"):
        self.online_log = online_log

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "feastline_online_log_queue_records", "online log records waiting for the background writer"
        )
        family.add_metric([], self.online_log.queue.qsize())
        yield family


# -- the log ---------------------------------------------------------------------------------------


class OnlineLog:
    """The online feature log of one app: a bounded queue, a background writer, Parquet partitions.

    ``offer`` is called on the online worker threads; ``start``/``close`` by the app's lifespan.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None):
        self.settings = settings
        self.root = settings.online_log_path
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=settings.online_log_queue)
        self.records = Counter(
            "feastline_online_log_records",
            "sampled online reads by what became of their log record (logged, dropped, failed)",
            ["feature_service", "outcome"],
            registry=registry,
        )
        if registry is not None:
            registry.register(_QueueDepth(self))
        self._sequence = itertools.count(self._next_sequence())
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # set by close(): the writer drains now instead of at its next flush
        self._store: FeatureStore | None = None
        self._random = random.Random()

    def _next_sequence(self) -> int:
        """One more than the highest sequence number already logged in the folder (0 for a new one)."""
        highest = -1
        if self.root.is_dir():
            for path in self.root.glob("feature_service=*/hour=*/part-*.parquet"):
                if m := _PART.match(path.name):
                    highest = max(highest, int(m.group(2)))
        return highest + 1

    # -- request path --

    def offer(
        self,
        store: FeatureStore,
        feature_service: str | None,
        entities: dict[str, list[Any]],
        answer: dict[str, Any],
        now: datetime,
    ) -> str:
        """Queue the record of one answered read if its feature service samples it; never blocks or raises.

        Args:
            feature_service: the request's ``feature_service`` (None: a ``features`` list, not logged).
            entities: the request's ``entities`` (join keys and request fields, values as sent).
            answer: the read's answer (``feast serve``'s shape: entity keys first, then the features).
            now: the service clock time the read used.

        Returns:
            the request id (sent as ``X-Request-Id`` whether the read is logged or not).
        """
        request_id = uuid.uuid4().hex
        if feature_service is None or not self.settings.online_log_enabled:
            return request_id
        try:
            rate = sample_rate(store, feature_service, self.settings.online_log_sample_rate)
            if rate <= 0.0 or (rate < 1.0 and self._random.random() >= rate):
                return request_id
            names = answer["metadata"]["feature_names"]
            keys = 0  # the answer's entity key columns come first
            while keys < len(names) and names[keys] in entities:
                keys += 1
            record = LogRecord(
                request_id,
                now,
                next(self._sequence),
                feature_service,
                entities,
                names[keys:],
                answer["results"][keys:],
            )
            self.queue.put_nowait(record)
        except queue.Full:
            self.records.labels(feature_service, "dropped").inc()
        except Exception:  # the log must never fail a read
            log.exception("online log: record of %s not taken", feature_service)
            self.records.labels(feature_service, "dropped").inc()
        return request_id

    # -- lifecycle --

    def start(self, store: FeatureStore) -> None:
        """Start the background writer (idempotent)."""
        self._store = store
        if self._thread is None or not self._thread.is_alive():
            self._wake.clear()
            self._thread = threading.Thread(target=self._run, name="feastline-online-log", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Flush every queued record to Parquet and stop the writer (the app's shutdown)."""
        if self._thread is None:
            return
        self._wake.set()  # the writer drains now (making room for the stop mark if the queue is full)
        while True:  # the stop mark must get in even if the queue is full: the writer is draining it
            try:
                self.queue.put(_STOP, timeout=0.1)
                self._wake.set()
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join(timeout)
        self._thread = None

    def flush(self) -> None:
        """Write what is queued now (for tests and benchmarks): close, then start again."""
        store = self._store
        self.close()
        if store is not None:
            self.start(store)

    # -- writer thread --

    def _run(self) -> None:
        # The writer sleeps a whole flush interval, then drains the queue: it never waits *on* the queue,
        # so a request's put_nowait wakes no thread and hands no GIL over (close() wakes it early).
        stop = False
        while not stop:
            self._wake.wait(self.settings.online_log_flush_seconds)
            buffer: list[LogRecord] = []
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                buffer.append(item)
                if len(buffer) >= 50_000:
                    self._write(buffer)
                    buffer = []
            if buffer:
                self._write(buffer)
            self._expire()

    def _write(self, records: list[LogRecord]) -> None:
        groups: dict[tuple[str, str], list[LogRecord]] = {}
        for r in records:
            groups.setdefault((r.feature_service, r.logged_at.astimezone(UTC).strftime(_HOUR_FORMAT)), []).append(r)
        for (service, hour), group in groups.items():
            try:
                write_partition(self.root, service, hour, group, self._store)
                self.records.labels(service, "logged").inc(len(group))
            except Exception:
                log.exception("online log: %d record(s) of %s not written", len(group), service)
                self.records.labels(service, "failed").inc(len(group))

    def _expire(self) -> None:
        retention = self.settings.online_log_retention_hours
        if retention <= 0:
            return
        try:
            expire_partitions(self.root, service_now(self.settings) - timedelta(hours=retention))
        except OSError:
            log.exception("online log: retention could not delete old partitions")


def _service_dir(root: Path, service: str) -> Path:
    return root / f"feature_service={quote(service, safe='')}"


def _arrow_type(vtype: ValueType | None) -> pa.DataType | None:
    """The Arrow type of a value as ``/get-online-features`` answers it (JSON: Bytes as base64,
    UnixTimestamp as epoch seconds), or None to let Arrow infer it."""
    scalar = {
        ValueType.FLOAT: pa.float64(),
        ValueType.DOUBLE: pa.float64(),
        ValueType.INT32: pa.int64(),
        ValueType.INT64: pa.int64(),
        ValueType.UNIX_TIMESTAMP: pa.int64(),
        ValueType.STRING: pa.string(),
        ValueType.BYTES: pa.string(),
        ValueType.BOOL: pa.bool_(),
    }
    if vtype is None:
        return None
    if vtype in scalar:
        return scalar[vtype]
    name = vtype.name
    if name.endswith("_LIST") and (inner := scalar.get(ValueType[name[: -len("_LIST")]])) is not None:
        return pa.list_(inner)
    return None


def _array(values: list[Any], vtype: ValueType | None) -> pa.Array:
    """Values answered in JSON as one Arrow column: of the declared type's Arrow type, else inferred,
    else (mixed or nested values Arrow cannot type) each value's JSON text."""
    arrow_type = _arrow_type(vtype)
    with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array(values, type=arrow_type)
    with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array(values)
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], type=pa.string())


def _stamps(values: list[str]) -> pa.Array:
    """Answered event timestamps (ISO 8601; the epoch for none) as timestamp[ns, UTC], the epoch as null.

    Each distinct text is parsed once (a batch's rows share a handful of event times): the values are
    dictionary-encoded by Arrow and the dictionary parsed, by Arrow when every text is in the form
    ``/get-online-features`` answers (``YYYY-MM-DDTHH:MM:SSZ``), else by pandas (any ISO 8601).
    """
    encoded = pa.array(values, pa.string()).dictionary_encode()
    distinct = encoded.dictionary
    stamp = pa.timestamp("ns", tz="UTC")
    parsed: pa.Array | None = None
    if pc.all(pc.match_substring_regex(distinct, _ANSWERED_STAMP)).as_py() is not False:
        with contextlib.suppress(pa.ArrowInvalid):
            parsed = pc.strptime(distinct, format="%Y-%m-%dT%H:%M:%SZ", unit="ns").cast(stamp)
    if parsed is None:
        texts = pd.Series(distinct.to_pylist(), dtype="object")
        as_pandas = pd.to_datetime(texts, utc=True, format="ISO8601")
        parsed = pa.array(as_pandas.astype("datetime64[ns, UTC]"), type=stamp)
    parsed = pc.if_else(pc.equal(distinct, EPOCH), pa.scalar(None, stamp), parsed)
    return parsed.take(encoded.indices)


_ANSWERED_STAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


def _types(store: FeatureStore | None, service: str) -> tuple[dict[str, ValueType], list[str] | None]:
    """(column -> declared type for keys, request fields and features; the feature columns by answer
    position), from the registry as it is now; ({}, None) when the service cannot be planned."""
    if store is None:
        return {}, None
    try:
        plan = plan_retrieval(store, service_references(store, service), service)
    except Exception:
        return {}, None
    columns = feature_columns(plan)
    types = plan.key_types | plan.request_types
    types |= {c: plan.feature_type(v, f) for c, (v, f) in zip(columns, plan.requested, strict=True)}
    return types, columns


def log_table(records: list[LogRecord], store: FeatureStore | None) -> pa.Table:
    """Records of one feature service as one table, one row per served entity, in record order: the
    base columns, the entity columns, then per feature its value, ``__status`` and ``__event_timestamp``.

    Built by the background writer, not on the request path: per-record values are repeated by Arrow
    ``take``s and lists concatenated by ``itertools.chain``, so the writer holds the GIL (which the
    online workers need) as briefly as it can.
    """
    service = records[0].feature_service
    types, canonical = _types(store, service)
    counts = [len(r.results[0]["values"]) if r.results else len(next(iter(r.entities.values()))) for r in records]
    total = sum(counts)
    owner = pa.array(np.repeat(np.arange(len(records), dtype=np.int64), counts))  # each row's record
    starts = np.cumsum([0, *counts[:-1]], dtype=np.int64)
    chain = itertools.chain.from_iterable
    columns: dict[str, pa.Array] = {
        "request_id": pa.array([r.request_id for r in records]).take(owner),
        "logged_at": pa.array([r.logged_at for r in records], type=pa.timestamp("ns", tz="UTC")).take(owner),
        "sequence": pa.array([r.sequence for r in records], pa.int64()).take(owner),
        "row": pa.array((np.arange(total, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32)),
        "feature_service": pa.array([service] * total, pa.string()),
    }
    entity_names = list(dict.fromkeys(k for r in records for k in r.entities))
    for key in entity_names:
        values = list(chain(r.entities.get(key, [None] * n) for r, n in zip(records, counts, strict=True)))
        columns[key] = _array(values, types.get(key))
    names = list(dict.fromkeys(n for r in records for n in r.names))
    answered = [dict(zip(r.names, r.results, strict=True)) for r in records]
    first = records[0]
    for name in names:
        column = name
        if canonical is not None and name in first.names and len(first.names) == len(canonical):
            column = canonical[first.names.index(name)]  # full names answered: the canonical column
        results = [a.get(name) for a in answered]
        pairs = list(zip(results, counts, strict=True))
        cells = list(chain(r["values"] if r is not None else [None] * n for r, n in pairs))
        statuses = list(chain(r["statuses"] if r is not None else [None] * n for r, n in pairs))
        stamps = list(chain(r["event_timestamps"] if r is not None else [EPOCH] * n for r, n in pairs))
        columns[column] = _array(cells, types.get(column))
        columns[column + STATUS_SUFFIX] = pa.array(statuses, pa.string())
        columns[column + EVENT_TS_SUFFIX] = _stamps(stamps)
    return pa.table(columns)


def write_partition(
    root: Path, service: str, hour: str, records: list[LogRecord], store: FeatureStore | None = None
) -> Path:
    """Write ``records`` (one feature service, one hour) as a new Parquet file of the hour's partition,
    through a temporary file renamed into place. Returns the file's path."""
    folder = _service_dir(root, service) / f"hour={hour}"
    folder.mkdir(parents=True, exist_ok=True)
    table = log_table(records, store)
    path = folder / f"part-{records[0].sequence:016d}-{records[-1].sequence:016d}.parquet"
    tmp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _hour_of(folder: Path) -> datetime | None:
    try:
        return datetime.strptime(folder.name.removeprefix("hour="), _HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def expire_partitions(root: Path, before: datetime) -> list[Path]:
    """Delete the hour partitions that end at or before ``before`` (every file in them). Returns them."""
    removed = []
    for folder in sorted(root.glob("feature_service=*/hour=*")):
        hour = _hour_of(folder)
        if hour is None or hour + timedelta(hours=1) > before:
            continue
        for f in folder.iterdir():
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()
        removed.append(folder)
    return removed


# -- reading ---------------------------------------------------------------------------------------


def _files(root: Path, start: datetime, end: datetime, feature_service: str | None) -> list[Path]:
    services = [_service_dir(root, feature_service)] if feature_service else sorted(root.glob("feature_service=*"))
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    files = []
    for service in services:
        for folder in sorted(service.glob("hour=*")):
            hour = _hour_of(folder)
            if hour is not None and first <= hour < end:
                files += sorted(p for p in folder.iterdir() if _PART.match(p.name))
    return files


_EARLIEST: datetime = pd.Timestamp.min.tz_localize(UTC).ceil("s").to_pydatetime()
_LATEST: datetime = pd.Timestamp.max.tz_localize(UTC).floor("s").to_pydatetime()


def _aware(value: datetime, name: str) -> datetime:
    """``value`` in UTC, clamped to the nanosecond timestamps' range (years 1677-2262): a window
    reaching past it holds no more logged reads."""
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a timezone (Z or an offset)")
    clamped: datetime = min(max(value.astimezone(UTC), _EARLIEST), _LATEST)
    return clamped


_INTS = {pa.int8(), pa.int16(), pa.int32(), pa.int64()}
SORT_KEYS = ("logged_at", "sequence", "row")


def pandas_types(t: pa.DataType) -> Any:
    """``to_pandas`` types of a log table: integers as Int64, booleans as boolean (nullable)."""
    return pd.Int64Dtype() if t in _INTS else pd.BooleanDtype() if t == pa.bool_() else None


def read_log_table(
    settings: Settings,
    start: datetime,
    end: datetime,
    feature_service: str | None = None,
    without_suffix: str | None = None,
) -> pa.Table | None:
    """:func:`read_log` as one Arrow table (the files read in parallel, Arrow releasing the GIL), sorted
    by ``logged_at``, ``sequence``, ``row``; None when the window holds no file.

    ``without_suffix``: leave out the columns whose names end with it (not read at all); the status
    columns are then read dictionary-encoded (as Parquet stores them: a few distinct texts).

    Raises:
        ValueError: ``start`` or ``end`` naive.
    """
    start, end = _aware(start, "start"), _aware(end, "end")
    bounds = pa.scalar(start, pa.timestamp("ns", tz="UTC")), pa.scalar(end, pa.timestamp("ns", tz="UTC"))

    def one(path: Path) -> pa.Table | None:
        try:
            if without_suffix is None:
                table = pq.read_table(path)
            else:
                names = [c for c in pq.read_schema(path).names if not c.endswith(without_suffix)]
                statuses = [c for c in names if c.endswith(STATUS_SUFFIX)]
                table = pq.read_table(path, columns=names, read_dictionary=statuses)
        except (OSError, pa.ArrowInvalid):  # deleted by retention meanwhile
            return None
        at = table.column("logged_at")
        return table.filter(pc.and_(pc.greater_equal(at, bounds[0]), pc.less(at, bounds[1])))

    files = _files(settings.online_log_path, start, end, feature_service)
    if len(files) > 1:
        with ThreadPoolExecutor(min(len(files), os.cpu_count() or 1, 4), thread_name_prefix="feastline-log") as pool:
            read = list(pool.map(one, files))
    else:
        read = [one(f) for f in files]
    tables = [t for t in read if t is not None]
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive")
    keys = [table.column(k).cast(pa.int64()).to_numpy() for k in SORT_KEYS]  # never null
    if not _ordered(*keys):  # the files in order (the usual case): nothing to move
        table = table.take(pa.array(np.lexsort(keys[::-1]), pa.int64()))  # lexsort is stable
    return table


def _ordered(at: np.ndarray, sequence: np.ndarray, row: np.ndarray) -> bool:
    """Whether the rows are already sorted by (at, sequence, row)."""
    a0, a1, s0, s1 = at[:-1], at[1:], sequence[:-1], sequence[1:]
    later = (a1 > a0) | ((a1 == a0) & ((s1 > s0) | ((s1 == s0) & (row[1:] >= row[:-1]))))
    return bool(later.all())


def read_log(settings: Settings, start: datetime, end: datetime, feature_service: str | None = None) -> pd.DataFrame:
    """The logged online reads with ``start <= logged_at < end``, one row per served entity.

    Args:
        settings: where the log is (``settings.online_log_path``).
        start, end: timezone-aware; compared with the service clock time each read was served at.
        feature_service: only this service's reads (default: every service's).

    Returns:
        columns ``request_id`` (str), ``logged_at`` (datetime64[ns, UTC]), ``sequence`` (Int64, one per
        request, increasing), ``row`` (Int64, the entity's position in its request),
        ``feature_service`` (str), the entity columns (join keys and request fields, values as sent in
        JSON), then per feature (named as a training set names it) the value answered (JSON form:
        UnixTimestamp as epoch seconds, Bytes as base64), ``<feature>__status`` (``PRESENT``,
        ``NULL_VALUE``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``) and ``<feature>__event_timestamp``
        (datetime64[ns, UTC], null when none was answered). Sorted by ``logged_at``, ``sequence``,
        ``row``. Integer and boolean columns are nullable (Int64, boolean); an empty window gives the
        base columns and no rows. Columns of several services are their union (null where absent).

    Raises:
        ValueError: ``start`` or ``end`` naive.
    """
    table = read_log_table(settings, start, end, feature_service)
    if table is None:
        return pd.DataFrame(
            {
                "request_id": pd.Series(dtype="object"),
                "logged_at": pd.Series(dtype="datetime64[ns, UTC]"),
                "sequence": pd.Series(dtype="Int64"),
                "row": pd.Series(dtype="Int64"),
                "feature_service": pd.Series(dtype="object"),
            }
        )
    frame: pd.DataFrame = table.to_pandas(types_mapper=pandas_types)
    return frame


def logged_services(settings: Settings) -> list[str]:
    """The feature services that have a partition in the log folder."""
    root = settings.online_log_path
    return sorted(unquote(p.name.removeprefix("feature_service=")) for p in root.glob("feature_service=*"))
