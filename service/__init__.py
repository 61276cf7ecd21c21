"""feastline's service: a thin HTTP shell over one package per capability.

- the shell: ``app.py`` (app factory), ``cli.py`` (``feastline ...``), ``deps.py``, ``errors.py`` (one
  table from domain errors to HTTP problems), ``formats.py`` (wire formats: JSON, Parquet, Arrow),
  ``settings.py``, ``clock.py``, ``metrics.py``, ``as_of.py``, ``feast_runtime.py``, ``routers/``,
  ``registry.py`` (the Feast registry read from immutable snapshots, written atomically), and
  ``value_types.py`` (each Feast value type on the wire: JSON check, dtype, answer), shared by the capabilities;
- ``run_events.py``: the emitter of OpenLineage run events for service runs (the event *model* is
  :mod:`lineage.openlineage`);
- capabilities: :mod:`service.training` (training sets and the offline engine), :mod:`service.online`
  (online reads, pushes, quarantine, ordered stores), :mod:`service.materialization` (materializer, jobs).

Imports run one way: routers -> capability packages -> ``lineage``; see each package's docstring.
"""

# Imported before Feast on purpose: `import feast` sets PROMETHEUS_MULTIPROC_DIR, which would make
# prometheus_client keep our metrics in mmap'd files (slower on every observation). prometheus_client
# picks its value store when first imported, so importing it first keeps our metrics in memory.
import prometheus_client  # noqa: F401
