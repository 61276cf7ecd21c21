"""Online serving: reads at inference time, pushes, and the stores behind them.

What it owns:

- ``reads.py``: ``/get-online-features`` (the ``feast serve`` request and answer), validated against
  the registry, read through Feast's online store, on-demand views computed per request.
- ``push.py``: **where a push is validated**: the push gate built per push source from the feature
  views it feeds plus the repo's pandera push schemas, strict or quarantine.
- ``push_write.py``: a validated push's writes, all or nothing: online, appended offline (temp file +
  rename under a write intent), the acknowledgement; and the recovery of a push a crash cut short.
- ``quarantine.py``: the quarantine table of rejected push rows (lineage database).
- ``receipts.py``: the answers of pushes sent with an ``Idempotency-Key`` (lineage database), so a
  push resent after a lost answer is written once.
- ``writes.py``: **the one write path into the online store** (:func:`~service.online.writes.write_online`),
  used by pushes and the materializer: nanosecond rows to the ordered stores, Feast's plain ``datetime``
  contract to any other store.
- ``stores/``: the ordered online stores (SQLite, Redis) that never let an older row overwrite a newer
  one (``type: service.online.stores.sqlite.OrderedSqliteOnlineStore`` / ``...redis.OrderedRedisOnlineStore``),
  and the readiness probe.

May import: Feast, ``lineage``, the shared shell modules ``service.settings``, ``service.clock``,
``service.run_events``, ``service.value_types``, ``service.intents`` and ``service.storage``, and from
:mod:`service.training` only its public names (the retrieval plan, on-demand views, the timestamp
parser, the row order of ``offline/order.py``). Never the routers or the app.
"""

# module -> the names other capability packages may import from it
PUBLIC: dict[str, frozenset[str]] = {
    "service.online.writes": frozenset({"write_online"}),
}
