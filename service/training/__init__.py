"""Training sets: from entity rows to a stored, reproducible, point-in-time-correct training set.

What it owns:

- ``entity_rows.py``: validation of the entity rows a client sends (JSON rows, Parquet or Arrow
  bodies) against the registry: join keys, ``event_timestamp``, pass-through label columns.
- ``training_sets.py``: creating a training set (resolve the feature service or feature list, join,
  store the Parquet files, catalog row, lineage node, OpenLineage run events) and reproducing one.
- ``catalog.py``: the training-set catalog table (lineage database).
- ``offline/``: the offline engine. ``views.py`` turns Feast definitions into a ``RetrievalPlan``;
  ``engine.py`` is **where a training set is joined** (one DuckDB ASOF join per feature view, the TTL
  and created-timestamp cut-off, on-demand views after the join); ``prepared.py`` each source's ranked rows
  and frontier, kept per state of its files (so a small set does not re-rank every source), and facts
  about source files (content hash, null-created count, column types) remembered likewise; ``lookup.py``
  the pick for small entity tables as array lookups over a prepared source; ``order.py`` the one order of
  feature rows (shared); ``keys.py`` how a join key is compared (in its declared type's domain; shared);
  ``audit.py`` the leakage audit;
  ``spark_engine.py`` the same join on Spark (``FEASTLINE_OFFLINE_ENGINE=spark``: one running
  ``max(struct(...))`` window per view instead of the ASOF join, the same answer);
  ``errors.py`` its errors; ``feast_store.py`` the Feast offline-store plug-in
  (``type: service.training.offline.feast_store.FeastlineOfflineStore``).

May import: Feast, ``lineage``, and the shared shell modules ``service.settings``, ``service.clock``,
``service.run_events``, ``service.value_types`` (Feast value types on the wire), ``service.intents``
(write intents) and ``service.storage`` (atomic files, crash points).
Never the routers, the app, or another capability package.

Other capability packages use it only through the names in :data:`PUBLIC`: online reads plan their
views and compute on-demand views with the same code as the join; the materializer reads a view's
batch source spec; the push gate parses timestamps as entity rows do; the materializer and the ordered
online stores order rows by the engine's own rule (``offline/order.py``: one definition of "newer",
so training sets, materialization and online reads pick the same row); the materializer keys rows as
the engine joins them (``offline/keys.py``). Monitoring joins a drift target's
rows point-in-time through the same path as a training set (``training_sets.compute``) and reads
the baseline training set's catalog row. ``tests/test_layering.py`` checks all of this.
"""

# module -> the names other capability packages may import from it
PUBLIC: dict[str, frozenset[str]] = {
    "service.training.offline.views": frozenset(
        {"RetrievalPlan", "ViewSpec", "plan_retrieval", "service_references", "batch_spec", "registry_version"}
    ),
    # monitoring's drift and parity join targets and logged reads through the training-set join
    "service.training.offline.engine": frozenset(
        {"apply_on_demand", "get_training_frame", "join_views", "JoinOptions"}
    ),
    "service.training.entity_rows": frozenset(
        {"timestamp_problem", "parse_timestamps", "entity_frame", "entity_frame_from_table"}
    ),
    "service.training.training_sets": frozenset({"TrainingSetOptions", "compute", "resolve"}),
    "service.training.catalog": frozenset({"TrainingSetCatalog", "TrainingSetNotFound", "TrainingSetRecord"}),
    "service.training.offline.order": frozenset({"order_key", "to_ns", "latest_first", "NO_CREATED_NS"}),
    "service.training.offline.keys": frozenset({"source_column_types", "source_key_sql"}),
    "service.training.offline.client_created": frozenset(
        {"record_client_created", "EVENT_NS", "CREATED_NS", "PUSH_ID", "RECEIVED_AT"}
    ),
}
