"""OpenLineage events: pipeline runs, training sets and materializations, validated against a JSON schema.

The schema below is transcribed from the OpenLineage 2-0-2 spec (``spec/OpenLineage.json``, RunEvent and
its $defs) and the facet specs we emit (SchemaDatasetFacet 1-2-0, ColumnLineageDatasetFacet 1-2-0,
DataQualityMetrics[Input]DatasetFacet, OutputStatisticsOutputDatasetFacet, ErrorMessageRunFacet),
restricted to what feastline emits. If ``FEASTLINE_OPENLINEAGE_SPEC_DIR`` points at a checkout of the
spec folder (``OpenLineage.json`` and ``facets/*.json``), events are also validated against the official
files, read from there (nothing is copied into this repo).
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lineage import openlineage as ol
from service.openlineage import OpenLineageEmitter, emit_pipeline_run
from service.settings import Settings

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _facet(props: dict[str, Any] | None = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """BaseFacet (``_producer``, ``_schemaURL`` required URIs) plus a facet's own properties."""
    return {
        "type": "object",
        "properties": {
            "_producer": {"type": "string", "format": "uri"},
            "_schemaURL": {"type": "string", "format": "uri"},
            "_deleted": {"type": "boolean"},
            **(props or {}),
        },
        "required": ["_producer", "_schemaURL", *required],
    }


_FIELD = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
    "required": ["name"],
}
_METRICS = {
    "rowCount": {"type": "integer"},
    "columnMetrics": {
        "type": "object",
        "additionalProperties": {"type": "object", "properties": {"nullCount": {"type": "integer"}}},
    },
}
_INPUT_FIELD = {
    "type": "object",
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "field": {"type": "string"}},
    "required": ["namespace", "name", "field"],
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "facet": _facet(),
        "dataset": {
            "type": "object",
            "properties": {
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "facets": {
                    "type": "object",
                    "properties": {
                        "schema": _facet({"fields": {"type": "array", "items": _FIELD}}),
                        "columnLineage": _facet(
                            {
                                "fields": {
                                    "type": "object",
                                    "additionalProperties": {
                                        "type": "object",
                                        "properties": {"inputFields": {"type": "array", "items": _INPUT_FIELD}},
                                        "required": ["inputFields"],
                                    },
                                }
                            },
                            ("fields",),
                        ),
                        "dataQualityMetrics": _facet(_METRICS, ("columnMetrics",)),
                    },
                    "additionalProperties": {"$ref": "#/$defs/facet"},
                },
                "inputFacets": {
                    "type": "object",
                    "properties": {"dataQualityMetrics": _facet(_METRICS, ("columnMetrics",))},
                    "additionalProperties": {"$ref": "#/$defs/facet"},
                },
                "outputFacets": {
                    "type": "object",
                    "properties": {"outputStatistics": _facet({"rowCount": {"type": "integer"}}, ("rowCount",))},
                    "additionalProperties": {"$ref": "#/$defs/facet"},
                },
            },
            "required": ["namespace", "name"],
        },
    },
    "type": "object",
    "properties": {
        "eventTime": {"type": "string", "format": "date-time", "pattern": "Z$"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"const": ol.RUN_EVENT_SCHEMA_URL},
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {
                    "type": "object",
                    "properties": {
                        "errorMessage": _facet(
                            {"message": {"type": "string"}, "programmingLanguage": {"type": "string"}},
                            ("message", "programmingLanguage"),
                        )
                    },
                    "additionalProperties": {"$ref": "#/$defs/facet"},
                },
            },
            "required": ["runId"],
        },
        "job": {
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}},
            "required": ["namespace", "name"],
        },
        "inputs": {"type": "array", "items": {"$ref": "#/$defs/dataset"}},
        "outputs": {"type": "array", "items": {"$ref": "#/$defs/dataset"}},
    },
    "required": ["eventTime", "producer", "schemaURL", "eventType", "run", "job"],
}


def _official_validator() -> Any:
    spec_dir = os.environ.get("FEASTLINE_OPENLINEAGE_SPEC_DIR")
    if not spec_dir:
        return None
    from referencing import Registry, Resource

    resources = []
    for path in [Path(spec_dir) / "OpenLineage.json", *sorted((Path(spec_dir) / "facets").glob("*.json"))]:
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    root = json.loads((Path(spec_dir) / "OpenLineage.json").read_text())
    return registry, root


OFFICIAL = _official_validator()


def _facet_schema_id(url: str) -> str:
    return url.split("#")[0]


def validate(event: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=FORMATS).validate(event)
    for group in _all_facets(event):
        assert group["_schemaURL"] and group["_producer"] == event["producer"]
    if OFFICIAL is not None:
        registry, root = OFFICIAL
        run_event = {"$ref": f"{root['$id']}#/$defs/RunEvent"}
        jsonschema.Draft202012Validator(run_event, registry=registry, format_checker=FORMATS).validate(event)
        for facet in _all_facets(event):  # each facet against its own spec file, where we have it
            url = facet["_schemaURL"]
            base = _facet_schema_id(url)
            try:
                registry.contents(base)
            except Exception:
                # same facet, spec file of another minor version: validate against the one in the spec dir
                name = base.rsplit("/", 1)[-1]
                match = [u for u in registry if u.endswith(f"/{name}")]
                if not match:
                    continue
                url = match[0] + "#" + url.split("#")[1]
            jsonschema.Draft202012Validator({"$ref": url}, registry=registry, format_checker=FORMATS).validate(facet)


def _all_facets(event: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [event["run"].get("facets", {}), event["job"].get("facets", {})]
    for ds in [*event.get("inputs", []), *event.get("outputs", [])]:
        groups += [ds.get("facets", {}), ds.get("inputFacets", {}), ds.get("outputFacets", {})]
    return [f for g in groups for f in g.values()]


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


def test_schema_rejects_a_broken_event():
    event = ol.run_event(ol.START, "0b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00", "j", "2024-01-01T00:00:00Z")
    validate(event)
    for broken in ({**event, "run": {"runId": "not-a-uuid"}}, {k: v for k, v in event.items() if k != "producer"}):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)
    bad_facet = ol.dataset("x", facets={"schema": {"fields": []}})  # no _producer / _schemaURL
    with pytest.raises(jsonschema.ValidationError):
        validate({**event, "inputs": [bad_facet]})


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


def test_fail_event_from_the_decorator():
    from service.openlineage import attach, emits_training_set_events

    class Lineage:
        pass

    emitter = OpenLineageEmitter("sqlite://")
    lineage = Lineage()
    attach(lineage, emitter)  # type: ignore[arg-type]

    @emits_training_set_events
    def create_training_set(lineage: Any, plan: Any) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        create_training_set(lineage, plan=None)
    events = emitter.events()
    assert [e["eventType"] for e in events] == ["FAIL", "START"]
    check_runs(events)
    assert events[0]["run"]["facets"]["errorMessage"]["message"] == "RuntimeError: boom"


def test_materialization_emits_per_view(client):
    body = {"start": "2013-12-01T00:00:00Z", "end": "2014-01-02T00:00:00Z", "feature_views": ["origin_weather"]}
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


def test_unreachable_consumer_never_fails():
    emitter = OpenLineageEmitter(None, "http://127.0.0.1:9", timeout=0.5)  # discard port: connection refused
    emitter.emit(ol.run_event(ol.START, "0b5e3d0e-7a0c-4b9e-9a86-1d2d2c1d2f00", "j", "2024-01-01T00:00:00Z"))
