"""Schemathesis hooks for ``tests/test_openapi_conformance.py``: the request rules the OpenAPI document
states in words because JSON Schema cannot state them, applied to the requests schemathesis generates
as *valid* (positive mode), so that "valid per the document" means "valid per the documented rules".

Each rule is one the operation's description (or the README) gives, and each needs either the
registry or two fields at once:

- ``POST /training-sets``: options go in the query only with a Parquet/Arrow body; with one, exactly
  one of ``feature_service`` and ``features``, and the body is a Parquet file or Arrow stream of the
  entity table; entity rows carry the join keys and request fields of the features asked for.
- ``POST /get-online-features``: ``entities`` holds exactly the join keys and request fields of the
  features asked for, one value each.
- ``POST /push``: ``df`` holds the push source's columns (the view's schema).
- ``POST /materialize``, ``/materialize-incremental``: ``start < end <= the service clock``, times from
  1677-09-22 on. Windows are also kept to the data's last day and lookbacks to two days, so that each
  job stays small (the materializer has its own tests); this is about cost, not validity.
- ``POST /monitoring/drift``: a window's ``start`` before its ``end``; entity rows with the baseline's
  join keys; ``features`` among the baseline's columns; with a binary body, one baseline in the query.
- ``GET /monitoring/online-log``, ``POST /monitoring/parity``: ``start < end``; the window is the
  replay clock's first second (what the online log holds).
- Two features of the same name need ``full_feature_names`` (else their columns would collide), and
  ``timezone`` names an IANA timezone.

A name the registry does not hold is left as generated: the route answers 404 before any of these
rules apply. Negative (invalid-by-design) requests are never changed. The registry facts below are
those of ``feature_repo/definitions.py`` (the repo the test serves).
"""

import io
from typing import Any
from zoneinfo import available_timezones

import pandas as pd
import schemathesis

CLOCK = "2013-12-31T00:00:00Z"  # the service clock of the served replay (tests.conftest.REPLAY_NOW)
LAST_DAY = "2013-12-30T00:00:00Z"
LOG_END = "2013-12-31T00:00:01Z"
ENTITY_VALUES: dict[str, Any] = {"origin": "EWR", "carrier": "UA", "tailnum": "N14228", "sched_year": 2013}
VIEW_KEYS = {
    "origin_weather": ("origin",),
    "origin_weather_fresh": ("origin",),
    "carrier_daily_stats": ("carrier",),
    "plane_profile": ("tailnum",),
    "plane_age": ("tailnum", "sched_year"),  # on-demand: plane_profile's key and the request field
}
SERVICE_VIEWS = {
    "delay_model_v1": ("origin_weather", "carrier_daily_stats"),
    "delay_model_v1_live": ("origin_weather_fresh", "carrier_daily_stats"),
    "delay_model_v2": ("origin_weather", "carrier_daily_stats", "plane_profile", "plane_age"),
}
WEATHER = {"temp": 31.0, "dewp": 12.0, "humid": 45.0, "wind_dir": 320.0, "wind_speed": 12.7, "precip": 0.0}
PUSH_ROWS = {
    "weather_push": {
        "origin": ["JFK"],
        "event_timestamp": ["2013-12-30T23:30:00Z"],
        **{name: [value] for name, value in {**WEATHER, "pressure": 1021.0, "visib": 10.0}.items()},
    }
}
PARQUET = "application/vnd.apache.parquet"
ARROW = "application/vnd.apache.arrow.stream"


def _positive(case: Any) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _views(feature_service: Any, features: Any) -> list[str] | None:
    """The views a selection reads, or None when it names anything the registry does not hold (a 404)."""
    if isinstance(feature_service, str) and feature_service:
        return list(SERVICE_VIEWS[feature_service]) if feature_service in SERVICE_VIEWS else None
    views = [f.partition(":")[0] for f in features or [] if isinstance(f, str)]
    return views if views and all(v in VIEW_KEYS for v in views) else None


def _keys(views: list[str]) -> list[str]:
    return list(dict.fromkeys(key for view in views for key in VIEW_KEYS[view]))


def _collide(features: Any) -> bool:
    names = [f.partition(":")[2] for f in features or [] if isinstance(f, str)]
    return len(names) != len(set(names))


def _entity_frame(views: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({key: [ENTITY_VALUES[key]] for key in _keys(views)})
    frame["event_timestamp"] = pd.Timestamp("2013-05-01T13:00:00Z")
    return frame


def _table_bytes(frame: pd.DataFrame, media_type: str) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    if media_type == PARQUET:
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def _known_timezone(options: dict[str, Any]) -> None:
    if options.get("timezone") is not None and options["timezone"] not in available_timezones():
        options["timezone"] = "America/New_York"


def _training_set(case: Any) -> None:
    if case.media_type in (PARQUET, ARROW):
        query = dict(case.query or {})
        _known_timezone(query)
        if query.get("feature_service") and query.get("features"):
            del query["features"]
        if not query.get("feature_service") and not query.get("features"):
            query["feature_service"] = "delay_model_v1"
        if _collide(query.get("features")):
            query["full_feature_names"] = True
        case.query = query
        views = _views(query.get("feature_service"), query.get("features")) or ["origin_weather"]
        case.body = _table_bytes(_entity_frame(views), case.media_type)
    elif isinstance(case.body, dict):
        case.query = {}
        body = case.body
        _known_timezone(body)
        views = _views(body.get("feature_service"), body.get("features"))
        if views is not None:
            keys = {key: ENTITY_VALUES[key] for key in _keys(views)}
            body["entity_rows"] = [{**keys, "event_timestamp": "2013-05-01T13:00:00Z"}]
            if _collide(body.get("features")):
                body["full_feature_names"] = True


def _online(case: Any) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    views = _views(body.get("feature_service"), body.get("features"))
    if views is not None:
        body["entities"] = {key: [ENTITY_VALUES[key]] for key in _keys(views)}
        if _collide(body.get("features")):
            body["full_feature_names"] = True


def _push(case: Any) -> None:
    body = case.body
    if isinstance(body, dict) and body.get("push_source_name") in PUSH_ROWS:
        body["df"] = {k: list(v) for k, v in PUSH_ROWS[body["push_source_name"]].items()}


def _materialize(case: Any) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    if "start" in body:
        body["start"], body["end"] = LAST_DAY, CLOCK
    else:
        for name in ("end", "default_start"):
            if body.get(name) is not None:
                body[name] = CLOCK if name == "end" else LAST_DAY
        if isinstance(body.get("lookback_seconds"), int | float):
            body["lookback_seconds"] = int(body["lookback_seconds"]) % (2 * 86400)


def _drift(case: Any) -> None:
    """``POST /monitoring/drift``: a window's start before its end; entity rows carrying the join keys of
    the baseline (every stored set here is ``delay_model_v1``'s); features named as its columns; with a
    Parquet/Arrow body, exactly one of ``baseline_training_set_id`` and ``model_name`` + ``model_version``
    in the query and the entity table as the body."""
    rows = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}]
    if case.media_type in (PARQUET, ARROW):
        query = dict(case.query or {})
        _known_timezone(query)
        if query.get("baseline_training_set_id") is not None:
            query.pop("model_name", None)
            query.pop("model_version", None)
        elif query.get("model_name") is None or query.get("model_version") is None:
            query["model_name"], query["model_version"] = "conformance", "1"
        if query.get("features"):
            query["features"] = ["temp"]
        case.query = query
        case.body = _table_bytes(_entity_frame(["origin_weather", "carrier_daily_stats"]), case.media_type)
        return
    body = case.body
    if not isinstance(body, dict):
        return
    case.query = {}
    _known_timezone(body)
    if body.get("features"):
        body["features"] = ["temp"]
    target = body.get("target")
    if isinstance(target, dict) and isinstance(target.get("window"), dict):
        target["window"] = {"start": LAST_DAY, "end": CLOCK}
    if isinstance(target, dict) and target.get("entity_rows"):
        target["entity_rows"] = rows


def _log_window(case: Any) -> None:
    query = case.query
    if isinstance(query, dict) and "start" in query and "end" in query:
        query["start"], query["end"] = CLOCK, LOG_END


def _parity(case: Any) -> None:
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("window"), dict):
        body["window"] = {"start": CLOCK, "end": LOG_END}


RULES = {
    ("POST", "/monitoring/drift"): _drift,
    ("POST", "/training-sets"): _training_set,
    ("POST", "/get-online-features"): _online,
    ("POST", "/push"): _push,
    ("POST", "/materialize"): _materialize,
    ("POST", "/materialize-incremental"): _materialize,
    ("GET", "/monitoring/online-log"): _log_window,
    ("POST", "/monitoring/parity"): _parity,
}


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Generated valid requests (fuzzing, coverage)."""
    rule = RULES.get((case.method.upper(), case.path))
    if rule is not None and _positive(case):
        rule(case)
    return case


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    """The examples phase: cases assembled from the document's examples and defaults, all meant valid."""
    for case in examples:
        rule = RULES.get((case.method.upper(), case.path))
        if rule is not None and (case.meta is None or _positive(case)):
            rule(case)
