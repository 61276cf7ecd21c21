"""The one order of feature rows, shared by the training-set engine, the materializer and the online stores.

For one entity key of one feature view, row ``a`` is *newer* than row ``b`` when, in this order:

1. its event timestamp is greater (compared in full: int64 nanoseconds since the epoch, UTC);
2. on equal event timestamps, it has a created timestamp and ``b`` has none: a null ``created`` in a
   source that has a created column means "knowledge time unknown", which ranks below any known one;
3. both have one: its created timestamp is greater;
4. full tie: it comes later (later in the source file offline; the later write online).

The same key, :func:`order_key`, is the ``ORDER BY`` of the engine (``RANK_ORDER``) and the materializer
(``LATEST_FIRST``), and the comparison of the ordered online stores. Under the created cut-off of
training sets (the default), a row whose ``created`` is null is never available, as under Feast's own
``filter_by_created_timestamp``; it is counted in the leakage audit.
"""

from datetime import UTC, datetime

import pandas as pd

NO_CREATED_NS = -(2**63)  # below every created timestamp an int64 holds: "created unknown" ranks lowest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(ts: datetime) -> int:
    """Nanoseconds since the epoch of ``ts`` (naive = UTC, as in Feast); a ``pd.Timestamp`` keeps its ns."""
    if isinstance(ts, pd.Timestamp):
        return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).value)
    aware = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def order_key(event_ts: datetime, created_ts: datetime | None) -> tuple[int, int]:
    """The sort key of a row: ``(event ns, created ns)``, a missing created as :data:`NO_CREATED_NS`.

    Greater is newer; a full tie is decided by arrival (the later one wins) by the caller.
    """
    return to_ns(event_ts), NO_CREATED_NS if created_ts is None else to_ns(created_ts)


def rank_order(event: str, created: str, *rows: str) -> str:
    """SQL ``ORDER BY`` items, oldest first, for the columns ``event``, ``created`` (may be null), then the
    position columns ``rows`` (e.g. the file name of a directory source, then the row in the file)."""
    return ", ".join([f"{event} ASC", f"{created} ASC NULLS FIRST", *(f"{r} ASC" for r in rows)])


def latest_first(event: str, created: str | None, *rows: str) -> str:
    """SQL ``ORDER BY`` items, newest first (the reverse of :func:`rank_order`)."""
    items = [f"{event} DESC", *([f"{created} DESC NULLS LAST"] if created else []), *(f"{r} DESC" for r in rows)]
    return ", ".join(items)
