"""Feature monitoring (issue #12): is the model still seeing the data it was trained on?

What it owns:

- ``profiles.py``: the profile of every training set, computed when the set is created and stored
  beside it (per column: count, nulls, min/max/mean/std, the baseline bins of numeric columns, the
  top-k frequencies of categorical ones); part of the set's lineage node.
- ``distances.py``: PSI, Jensen-Shannon distance, KS and chi-square of a target against a column's
  baseline bins and rows (scipy).
- ``drift.py``: drift reports of a target (a training set, a window of the online log, entity rows)
  against a baseline training set or the one a model was trained on; verdicts from PSI thresholds
  (tags ``feastline.psi_warn`` / ``feastline.psi_drift`` on the feature view or feature); lineage
  and OpenLineage; the data the monitoring page draws (``histograms``). ``baseline_rows.py``: the
  baselines' sorted numeric columns for KS, kept between reports in a bounded LRU (a stored set never
  changes).
- ``reports.py``: stored drift reports and the latest PSI per feature (exported at ``/metrics``).
- ``window.py``: the entity rows of a window of the online log (read through ``online_log.py``).
- ``online_log.py``: the online feature log: what ``/get-online-features`` served (request id, service
  clock time, sequence number, feature service, entity keys, values, statuses), sampled per feature
  service, queued in memory and written to Parquet partitions by a background thread, with retention;
  ``read_log`` reads a window of it back; ``online_install.py`` wires it into the app.
- ``parity.py``: online/offline parity: the logged requests of a window replayed through the
  point-in-time engine at their logged times, compared value by value, each mismatch with its most
  likely cause; the latest match rates as Prometheus gauges.
- ``freshness.py``: per online feature view, the newest event time held online, its age at the
  service clock and the view's objective (tag ``feastline.freshness_slo``, e.g. ``2h``);
  ``GET /monitoring/freshness`` and the ``/metrics`` freshness gauges.
- ``page.py``: the monitoring page (``GET /monitoring/view``, ``feastline monitor --out``): a drift
  report's histograms and PSI chart as inline SVG, with parity and freshness tables, in one HTML page;
  ``tables.py``: the reports as tables of text cells, what the page and ``feastline monitor`` both show.
- ``errors.py``: this package's errors and their HTTP statuses.

May import: Feast, ``lineage``, the shared shell modules (``service.settings``, ``service.clock``,
``service.run_events``, ``service.value_types``, ``service.storage``) and ``service.training`` through its ``PUBLIC``
names (a drift target is joined point in time exactly as a training set is). Never the routers,
the app, or the HTTP error table. ``tests/test_layering.py`` checks this.
"""

# module -> the names other capability packages may import from it
PUBLIC: dict[str, frozenset[str]] = {
    "service.monitoring.profiles": frozenset(
        {"store_profile", "start_profile", "profile_path"}
    ),  # training sets are profiled when created
}
