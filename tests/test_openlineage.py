"""OpenLineage events: pipeline runs, training sets and materializations, validated against the official
OpenLineage JSON schemas.

``tests/openlineage_spec/`` holds the official spec files, vendored unmodified from
https://github.com/OpenLineage/OpenLineage (see the README.md there): ``OpenLineage.json`` 2-0-2 and the
file of every facet we emit, at the version its ``_schemaURL`` names. Every event is validated against
``OpenLineage.json#/$defs/RunEvent``, and every facet against the schema whose ``$id`` is its
``_schemaURL`` (without the fragment), ``$ref``s resolved across files by ``$id``; a facet whose schema
is missing fails. The one custom facet, ``feastline_quarantine``, is ours: its schema is
``lineage/schemas/QuarantineOutputDatasetFacet.json`` (the path its ``_schemaURL`` names).
"""

import functools
import json
import re
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from lineage import openlineage as ol
from service.run_events import OpenLineageEmitter, emit_pipeline_run
from service.settings import Settings

SPEC_DIR = Path(__file__).parent / "openlineage_spec"

# jsonschema checks "date-time" and "uri" only when its optional format packages are installed; they are
# not, so check them here (RFC 3339 date-time; absolute URI: scheme, then no spaces or RFC 3986 excluded)
FORMATS = jsonschema.FormatChecker(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*")
if "date-time" not in FORMATS.checkers:
    FORMATS.checks("date-time", raises=ValueError)(
        lambda v: not isinstance(v, str) or bool(_DATE_TIME.fullmatch(v) and datetime.fromisoformat(v.upper()))
    )
if "uri" not in FORMATS.checkers:
    FORMATS.checks("uri")(lambda v: not isinstance(v, str) or bool(_URI.fullmatch(v)))

# our custom facets' schemas ship with the package, at the path their _schemaURL names
CUSTOM_SCHEMAS: list[dict[str, Any]] = [
    json.loads(path.read_text()) for path in sorted((Path(ol.__file__).parent / "schemas").glob("*.json"))
]  # the quarantine facet's and the drift facet's


def _load_schemas() -> dict[str, dict[str, Any]]:
    """The vendored official files, and our custom facet's schema, by ``$id``."""
    docs = [json.loads(path.read_text()) for path in sorted(SPEC_DIR.rglob("*.json"))]
    docs.extend(CUSTOM_SCHEMAS)
    by_id = {doc["$id"]: doc for doc in docs}
    assert len(by_id) == len(docs), "two schema files with the same $id"
    return by_id


SCHEMAS = _load_schemas()
REGISTRY: Registry = Registry().with_resources((uri, Resource.from_contents(doc)) for uri, doc in SCHEMAS.items())
SPEC_ID: str = json.loads((SPEC_DIR / "OpenLineage.json").read_text())["$id"]
RUN_EVENT = f"{SPEC_ID}#/$defs/RunEvent"


@functools.cache
def _validator(url: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": url}, registry=REGISTRY, format_checker=FORMATS)


def _facet_groups(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each facet group of an event, with the spec's base type for facets there (``RunFacet``, ...)."""
    groups = [("RunFacet", event["run"].get("facets", {})), ("JobFacet", event["job"].get("facets", {}))]
    for ds in [*event.get("inputs", []), *event.get("outputs", [])]:
        groups += [
            ("DatasetFacet", ds.get("facets", {})),
            ("InputDatasetFacet", ds.get("inputFacets", {})),
            ("OutputDatasetFacet", ds.get("outputFacets", {})),
        ]
    return groups


def _all_facets(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for _, group in _facet_groups(event) for f in group.values()]


def validate_facet(kind: str, name: str, facet: dict[str, Any]) -> None:
    """``facet``, under key ``name`` of a group of ``kind`` facets, against the schema its ``_schemaURL`` names.

    Also: the schema extends ``kind`` (an input facet sits in ``inputFacets``, ...), and where the URL
    points into a spec file's ``$defs``, that file declares the facet under key ``name``.
    """
    url = facet["_schemaURL"]
    base, _, fragment = url.partition("#")
    assert base in SCHEMAS, f"facet {name!r}: no schema with $id {base} (vendor it into {SPEC_DIR})"
    _validator(url).validate(facet)
    schema = REGISTRY.resolver().lookup(url).contents
    spec_defs = f"{SPEC_ID}#/$defs/"
    refs = [part.get("$ref", "") for part in schema.get("allOf", [])]
    extends = {ref.removeprefix(spec_defs) for ref in refs if ref.startswith(spec_defs)}
    assert extends == {kind}, f"facet {name!r} ({url}) extends {extends}, but sits among {kind}s"
    if fragment:
        declared = SCHEMAS[base].get("properties", {})
        assert declared.get(name) == {"$ref": f"#{fragment}"}, f"{base} names its facet {sorted(declared)}"


def validate(event: dict[str, Any]) -> None:
    """``event`` against the official RunEvent, each facet against its own schema, plus feastline's rules."""
    _validator(RUN_EVENT).validate(event)
    assert event["schemaURL"] == RUN_EVENT == ol.RUN_EVENT_SCHEMA_URL
    assert event["eventTime"].endswith("Z"), event["eventTime"]  # we always emit UTC
    for kind, group in _facet_groups(event):
        for name, facet in group.items():
            validate_facet(kind, name, facet)
            assert facet["_producer"] == event["producer"]


def check_runs(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every event validates; every runId has exactly one START and one terminal event, START first in time."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        validate(event)
        runs.setdefault(event["run"]["runId"], []).append(event)
    for run_id, run in runs.items():
        types = sorted(e["eventType"] for e in run)
        assert types in (["COMPLETE", "START"], ["FAIL", "START"]), (run_id, types)
        start = next(e for e in run if e["eventType"] == "START")
        end = next(e for e in run if e["eventType"] != "START")
        assert start["job"] == end["job"] and start["eventTime"] <= end["eventTime"]
    return {run_id: [e["eventType"] for e in run] for run_id, run in runs.items()}


def test_vendored_spec_matches_what_we_emit():
    assert SPEC_ID == ol.SPEC_URL == "https://openlineage.io/spec/2-0-2/OpenLineage.json"
    official = {uri for uri in SCHEMAS if uri.startswith("https://openlineage.io/spec/facets/")}
    emitted = {url.partition("#")[0] for url in ol.FACET_SCHEMA_URLS.values()}
    custom = {schema["$id"] for schema in CUSTOM_SCHEMAS}
    assert official == emitted - custom, "a facet without its file, or a file we do not use"
    for url in ol.FACET_SCHEMA_URLS.values():
        assert REGISTRY.resolver().lookup(url).contents  # the fragment resolves too


def test_schema_rejects_a_broken_event():
    event = ol.run_event(ol.START, "0b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00", "j", "2024-01-01T00:00:00Z")
    validate(event)
    for broken in (
        {**event, "run": {"runId": "not-a-uuid"}},
        {k: v for k, v in event.items() if k != "producer"},
        {k: v for k, v in event.items() if k != "eventTime"},
        {**event, "eventTime": "2024-01-01 00:00"},
        {**event, "eventTime": "2024-13-01T00:00:00Z"},
        {**event, "producer": "not a uri"},
        {**event, "eventType": "DONE"},
        {**event, "job": {"name": "j"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)
    bad_facet = ol.dataset("x", facets={"schema": {"fields": []}})  # no _producer / _schemaURL
    with pytest.raises(jsonschema.ValidationError):
        validate({**event, "inputs": [bad_facet]})
    wrong_type = ol.dataset("x", facets={"dataQualityMetrics": ol.quality_facet(3, input_side=False)})
    wrong_type["facets"]["dataQualityMetrics"]["rowCount"] = "3"
    with pytest.raises(jsonschema.ValidationError, match="'3' is not of type 'integer'"):
        validate({**event, "outputs": [wrong_type]})
    no_lineage = ol.dataset("x", facets={"columnLineage": ol.facet("columnLineage")})  # "fields" is required
    with pytest.raises(jsonschema.ValidationError, match="'fields' is a required property"):
        validate({**event, "outputs": [no_lineage]})
    quarantine = ol.dataset("x", output_facets={"feastline_quarantine": ol.facet("feastline_quarantine", rowCount=1)})
    with pytest.raises(jsonschema.ValidationError, match="'rowsIn' is a required property"):
        validate({**event, "outputs": [quarantine]})


def test_a_facet_without_its_schema_file_fails():
    event = ol.run_event(ol.START, "0b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00", "j", "2024-01-01T00:00:00Z")
    unknown = ol.facet("schema", fields=[])
    unknown["_schemaURL"] = unknown["_schemaURL"].replace("/1-2-0/", "/9-9-9/")
    with pytest.raises(AssertionError, match="no schema with \\$id"):
        validate({**event, "inputs": [ol.dataset("x", facets={"schema": unknown})]})
    misplaced = ol.dataset("x", facets={"dataQualityMetrics": ol.quality_facet(3, input_side=True)})
    with pytest.raises(AssertionError, match="sits among DatasetFacets"):
        validate({**event, "inputs": [misplaced]})
    renamed = ol.dataset("x", facets={"columns": ol.schema_facet(["a"])})
    with pytest.raises(AssertionError, match="names its facet"):
        validate({**event, "inputs": [renamed]})


def test_every_facet_we_emit_validates():
    """Materialization (COMPLETE and FAIL) and training set events, built directly: every facet kind."""
    run_id, now = "0b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00", ol.datetime.now(ol.UTC)
    args = ("v", "s", "p_v", now, now)
    done = ol.materialization_events(run_id, *args, columns={"k": "int64", "f": None}, rows_in_window=3, rows_written=2)
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        failed = ol.materialization_events(run_id.replace("0b", "1b"), *args, error=exc)
        trace = ol.error_facet(exc, "Traceback ...")
    assert failed[1]["eventType"] == ol.FAIL
    assert failed[1]["run"]["facets"]["errorMessage"]["message"] == "RuntimeError: boom"
    ts_run = "2b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00"
    inputs = ol.training_set_inputs(["a", "b", "a"])
    output = ol.training_set_output("ts-1", {"x": "float64"}, 5, {"x": 1})
    training = [
        ol.run_event(ol.START, ts_run, ol.TRAINING_SET_JOB, now, inputs),
        ol.run_event(ol.COMPLETE, ts_run, ol.TRAINING_SET_JOB, now, inputs, [output]),
    ]
    ts_fail = "3b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00"
    training_failed = [
        ol.run_event(ol.START, ts_fail, ol.TRAINING_SET_JOB, now, inputs),
        ol.run_event(ol.FAIL, ts_fail, ol.TRAINING_SET_JOB, now, inputs, run_facets={"errorMessage": trace}),
    ]
    events = [*done, *failed, *training, *training_failed]
    assert sorted(check_runs(events).values()) == [["START", "COMPLETE"]] * 2 + [["START", "FAIL"]] * 2
    step = {
        "step": "s",
        "inputs": [{"table": "db.t", "rows": 4}],
        "output": {"table": "o", "columns": {"a": "int64"}},
        "data_source": "src",
        "column_lineage": {"a": ["db.t.a"]},
        "rows_in": 4,
        "rows_out": 3,
        "rows_quarantined": 1,
        "quality": {"passed": False, "failures": [{"check": "not_null", "column": "a", "row": 2}]},
        "started_at": "2024-01-01T00:00:00+01:00",
        "finished_at": "2024-01-01T00:01:00+01:00",
        "status": "completed",
    }
    events += ol.pipeline_step_events("4b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00", step, {"a": 0})
    report = {
        "id": "drift-1",
        "verdict": "drift",
        "features": [
            {
                "name": "x",
                "psi": 0.3,
                "js": 0.2,
                "test": "ks",
                "p_value": 0.01,
                "verdict": "drift",
                "thresholds": {"warn": 0.1, "drift": 0.2},
            },
            {
                "name": "y",
                "psi": None,
                "js": None,
                "test": None,
                "p_value": None,
                "verdict": "ok",
                "thresholds": {"warn": 0.1, "drift": 0.2},
            },
        ],
    }
    base = (5, {"x": {"nullCount": 1, "count": 4, "min": 0.0, "max": 3.0, "quantiles": {"0.5": 1.5}}})
    drift = ol.drift_events(
        "5b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00",
        now,
        now,
        "training_set:ts-1",
        "training_set:ts-2",
        base,
        (2, {}),
        report,
    )
    assert drift[1]["inputs"][1]["inputFacets"]["feastline_drift"]["features"][0]["pValue"] == 0.01
    events += drift
    check_runs(events)
    broken = {**drift[1]["inputs"][1]["inputFacets"]["feastline_drift"], "verdict": "bad"}
    with pytest.raises(jsonschema.ValidationError):
        validate_facet("InputDatasetFacet", "feastline_drift", broken)
    seen = {facet["_schemaURL"] for event in events for facet in _all_facets(event)}
    assert seen == set(ol.FACET_SCHEMA_URLS.values())


def test_pipeline_run_events(built_repo: Path):
    record = json.loads((built_repo / "data" / "pipeline_run.json").read_text())
    events = ol.pipeline_run_events(record, {record["steps"][0]["step"]: {"temp": 3}})
    runs = check_runs(events)
    assert len(runs) == len(record["steps"])
    assert {e["job"]["name"] for e in events} == {f"pipeline.{s['step']}" for s in record["steps"]}
    step = record["steps"][0]
    done = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"pipeline.{step['step']}")
    out = done["outputs"][0]
    assert out["name"] == f"data_source:{step['data_source']}"
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == list(step["output"]["columns"])
    lineage = out["facets"]["columnLineage"]["fields"]
    for col, sources in step["column_lineage"].items():
        got = [f"{f['name'].removeprefix('raw_table:')}.{f['field']}" for f in lineage[col]["inputFields"]]
        assert got == sources
    assert out["facets"]["dataQualityMetrics"]["rowCount"] == step["rows_out"]
    assert out["facets"]["dataQualityMetrics"]["columnMetrics"] == {"temp": {"nullCount": 3}}
    assert out["outputFacets"]["feastline_quarantine"]["rowCount"] == step["rows_quarantined"]
    assert done["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"] == step["inputs"][0]["rows"]
    assert ol.pipeline_run_events(record) == ol.pipeline_run_events(record)  # same runIds on re-export


def test_build_data_emits_into_the_lineage_db(built_repo: Path, tmp_path: Path):
    record = json.loads((built_repo / "data" / "pipeline_run.json").read_text())
    settings = Settings(repo=built_repo, lineage_url=f"sqlite:///{tmp_path / 'l.db'}")
    emit_pipeline_run(settings, record)
    stored = OpenLineageEmitter(settings.lineage_database_url)
    events = stored.events(limit=1000)
    assert len(events) == 2 * len(record["steps"])
    check_runs(events)
    measured = [e for e in events if e["eventType"] == "COMPLETE"][0]["outputs"][0]["facets"]["dataQualityMetrics"]
    assert measured["columnMetrics"], "null counts read from the Parquet statistics"
    stored.dispose()


def test_training_set_over_http_emits_start_and_complete(client):
    row = {"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-06-01T12:00:00Z"}
    response = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": [row]})
    assert response.status_code == 201, response.text
    ts_id = response.json()["id"]
    events = client.get("/lineage/openlineage/events", params={"job": "training_set", "limit": 1000}).json()
    mine = [e for e in events if any(o["name"] == f"training_set:{ts_id}" for o in e["outputs"])]
    assert len(mine) == 1
    run = [e for e in events if e["run"]["runId"] == mine[0]["run"]["runId"]]
    assert check_runs(run)
    assert [e["eventType"] for e in run] == ["COMPLETE", "START"]  # newest first
    assert run[1]["inputs"] and all(i["name"].startswith("data_source:") for i in run[1]["inputs"])
    out = mine[0]["outputs"][0]
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == response.json()["columns"]


def test_failed_training_set_emits_fail(client):
    before = len(client.get("/lineage/openlineage/events", params={"job": "training_set", "limit": 10000}).json())
    bad = {"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-06-01T12:00:00Z"}
    response = client.post(
        "/training-sets", json={"features": ["origin_weather:no_such_feature"], "entity_rows": [bad]}
    )
    assert response.status_code == 404  # refused before create_training_set: no run, no event
    after = client.get("/lineage/openlineage/events", params={"job": "training_set", "limit": 10000}).json()
    assert len(after) == before


def test_a_training_set_failing_inside_emits_fail_and_leaves_nothing(client, settings, monkeypatch):
    """A failure of ours during the join: START then FAIL (with the stack trace), no files, no catalog
    row, no lineage node, no open write intent."""
    import service.training.training_sets as ts
    from service.training.entity_rows import entity_frame

    state = client.app.state
    opts = ts.TrainingSetOptions(feature_service="delay_model_v1")
    refs, plan = ts.resolve(state.feature_store, opts)
    rows = [{"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-06-01T12:00:00Z"}]
    entity_df = entity_frame(rows, plan, None)

    def boom(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ts, "compute", boom)
    files_before = set(settings.training_sets_path.iterdir())
    with pytest.raises(RuntimeError):
        ts.create_training_set(
            state.feature_store,
            state.catalog,
            state.lineage,
            state.intents,
            opts,
            entity_df,
            plan,
            refs,
            settings.training_sets_path,
        )
    events = client.get("/lineage/openlineage/events", params={"job": "training_set", "limit": 2}).json()
    assert [e["eventType"] for e in events] == ["FAIL", "START"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    check_runs(events)
    error = events[0]["run"]["facets"]["errorMessage"]
    assert error["message"] == "RuntimeError: boom" and "Traceback" in error["stackTrace"]
    assert set(settings.training_sets_path.iterdir()) == files_before
    assert [i for i in state.intents.all() if i.kind == "training_set"] == []


def test_materialization_emits_per_view(client):
    body = {"start": "2013-12-01T00:00:00Z", "end": "2013-12-31T00:00:00Z", "feature_views": ["origin_weather"]}
    response = client.post("/materialize", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while client.get(f"/jobs/{job_id}").json()["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    events = client.get("/lineage/openlineage/events", params={"job": "materialize.origin_weather"}).json()
    latest = [e for e in events if e["run"]["runId"] == events[0]["run"]["runId"]]
    check_runs(latest)
    done = latest[0]
    assert done["eventType"] == "COMPLETE"
    assert done["inputs"][0]["name"].startswith("data_source:")
    assert done["outputs"][0]["name"].startswith("online_store:") and done["outputs"][0]["name"].endswith(
        "_origin_weather"
    )
    job = client.get(f"/jobs/{job_id}").json()
    assert done["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == job["progress"]["rows_written"]


def test_http_delivery_to_a_local_consumer():
    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        emitter = OpenLineageEmitter("sqlite://", f"http://127.0.0.1:{server.server_port}/")
        events = ol.materialization_events(
            "0b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00",
            "v",
            "s",
            "p_v",
            ol.datetime.now(ol.UTC),
            ol.datetime.now(ol.UTC),
            rows_in_window=3,
            rows_written=2,
        )
        emitter.emit_all(events)
    finally:
        server.shutdown()
        thread.join()
    assert [path for path, _ in received] == ["/api/v1/lineage"] * 2
    assert [event for _, event in received] == events
    check_runs(events)


def test_unreachable_consumer_never_fails():
    emitter = OpenLineageEmitter(None, "http://127.0.0.1:9", timeout=0.5)  # discard port: connection refused
    emitter.emit(ol.run_event(ol.START, "0b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00", "j", "2024-01-01T00:00:00Z"))
