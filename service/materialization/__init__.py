"""Materialization: loading the latest offline row per entity key into the online store.

What it owns:

- ``materializer.py``: the materializer that replaces ``feast materialize`` (one DuckDB query per view,
  Feast's ``online_write_batch`` through the online package's write path, the registry's intervals
  updated as Feast does), its windows (full, incremental with a lookback) and the rule that a window
  never ends after the service clock.
- ``jobs.py``: **where a materialization job is run**: the job table (lineage database) and
  :func:`~service.materialization.jobs.run_job`, the body the ``/materialize`` routes' worker runs.
- ``runs.py``: recording a run view by view (its write intent's phases, lineage, OpenLineage events,
  job progress in one transaction per view) and settling a run a crash cut short.
- ``via_feast.py``: Feast's own ``FeatureStore.materialize`` run from inside the repo (tests, benchmarks).

The CLI (``feastline materialize``) and the routers share the materializer. May import: Feast,
``lineage``, the shared shell modules ``service.settings``, ``service.clock``, ``service.run_events``,
``service.registry``, ``service.value_types``, ``service.intents`` and ``service.storage``, and from
:mod:`service.training` only its public names (a view's batch source spec, the row order of
``offline/order.py``), and from :mod:`service.online` its public write path (``writes.write_online``: the
ordered stores, or Feast's contract for any other store). Never the routers or the app.
"""

# module -> the names other capability packages may import from it
PUBLIC: dict[str, frozenset[str]] = {}
