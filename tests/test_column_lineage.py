"""Column-level lineage recorded by ``feastline apply``: feature <- source column <- raw column <- raw table,
field by field as each pipeline step declares it (``column_lineage``); the transform, with its quality
result, sits on the table-grain path (``raw_table -reads-> transform -writes-> data_source``).

Expected columns are computed from the steps' declared ``column_lineage``, not listed by hand.
"""

import pytest

from feature_repo.pipeline.steps import STEPS, Step

WIND = "feature:origin_weather.wind_speed"
SOURCE = "data_source:origin_weather_source"
SOURCE_WIND = "column:origin_weather_source.wind_speed"
RAW_TABLE = "raw_table:nycflights13.weather"
RAW_WIND = "column:nycflights13.weather.wind_speed"
RAW_DEWP = "column:nycflights13.weather.dewp"
TRANSFORM = "transform:origin_weather"
STEP = {s.name: s for s in STEPS}
WEATHER = STEP["origin_weather"]
FEEDING_STEPS = [s for s in STEPS if s.data_source]


def raw_columns_of(step: Step, output_column: str) -> set[str]:
    """The raw column ids ``step`` declares ``output_column`` is computed from."""
    return {f"column:{c}" for c in step.column_lineage.get(output_column, [])}


def all_raw_columns(step: Step) -> set[str]:
    return {f"column:{c}" for cols in step.column_lineage.values() for c in cols}


def upstream(client, node_id):
    body = client.get(f"/lineage/nodes/{node_id}/upstream").json()
    nodes = {n["id"]: n for n in body["nodes"]}
    edges = {(e["source"], e["target"], e["relation"]) for e in body["edges"]}
    return nodes, edges


def ids(body):
    return {n["id"] for n in body["nodes"]}


def step_features(client, step: Step) -> dict[str, str]:
    """``{feature id: output column}`` for the features reading a column of the source ``step`` writes."""
    prefix = f"column:{step.data_source}."
    down = client.get(f"/lineage/nodes/data_source:{step.data_source}/downstream").json()["nodes"]
    return {
        n["id"]: n["attributes"]["source_column"].removeprefix(prefix)
        for n in down
        if n["kind"] == "feature" and n["attributes"].get("source_column", "").startswith(prefix)
    }


def test_feature_upstream_reaches_its_declared_raw_column_and_no_other(client):
    nodes, edges = upstream(client, WIND)
    declared = raw_columns_of(WEATHER, step_features(client, WEATHER)[WIND])
    assert RAW_WIND in declared and declared <= set(nodes)
    others = all_raw_columns(WEATHER) - declared
    assert RAW_DEWP in others and not others & set(nodes)
    chain = [(RAW_TABLE, RAW_WIND, "defines"), (RAW_WIND, SOURCE_WIND, "derives"), (SOURCE_WIND, WIND, "derives")]
    assert set(chain) <= edges
    # the transform is upstream at table grain, through the data source that defines the column
    tables = [(RAW_TABLE, TRANSFORM, "reads"), (TRANSFORM, SOURCE, "writes"), (SOURCE, SOURCE_WIND, "defines")]
    assert set(tables) <= edges
    assert {n for n in nodes if n.startswith("column:origin_weather_source.")} == {SOURCE_WIND}
    assert "column:nycflights13.flights.dep_delay" not in nodes  # another transform's raw column


@pytest.mark.parametrize("step", FEEDING_STEPS, ids=lambda s: s.name)
def test_every_feature_upstream_holds_exactly_its_declared_raw_columns(client, step):
    features = step_features(client, step)
    assert features
    for feature, column in features.items():
        nodes, edges = upstream(client, feature)
        raw = {n for n, node in nodes.items() if node["kind"] == "column" and "raw_table" in node["attributes"]}
        assert raw == raw_columns_of(step, column), feature
        assert f"transform:{step.name}" in nodes
        touching = {(s, t) for s, t, _ in edges if "transform:" in s + t}
        assert not {(s, t) for s, t in touching if s.startswith("column:") or t.startswith("column:")}


def test_the_transform_on_the_path_carries_the_1048_mph_quality_failure(client):
    nodes, _ = upstream(client, WIND)
    quality = nodes[TRANSFORM]["attributes"]["quality"]
    assert quality["passed"] is False and quality["rows_quarantined"] == 1
    [failure] = quality["failures"]
    assert failure["row"] == 1009 and failure["column"] == "wind_speed"
    assert failure["value"] == pytest.approx(1048.36058)
    assert len(nodes[TRANSFORM]["definition_hash"]) == 64
    assert nodes[TRANSFORM]["attributes"]["column_lineage"] == WEATHER.column_lineage


def test_raw_column_downstream_reaches_only_the_features_declared_from_it(client):
    down = ids(client.get(f"/lineage/nodes/{RAW_DEWP}/downstream").json())
    features = step_features(client, WEATHER)
    assert WIND in features and "feature:origin_weather.dewp" in features
    for feature, column in features.items():
        assert (feature in down) == (RAW_DEWP in raw_columns_of(WEATHER, column)), feature
    assert WIND not in down and "feature:origin_weather.dewp" in down
    assert not {n for n in down if n.startswith("transform:")}


@pytest.fixture(scope="module")
def single_feature_training_sets(client) -> dict[str, str]:
    """``{feature id: training set id}``: one training set per feature, for wind_speed and dewp."""
    rows = [{"origin": "EWR", "event_timestamp": "2013-05-01T13:00:00Z"}]
    made = {}
    for name in ("wind_speed", "dewp"):
        body = {"features": [f"origin_weather:{name}"], "entity_rows": rows}
        response = client.post("/training-sets", json=body)
        assert response.status_code == 201, response.text
        made[f"feature:origin_weather.{name}"] = response.json()["id"]
    return made


def test_every_carrier_statistic_traces_to_what_places_a_flight_in_its_window(client):
    """A flight counts in a carrier's window by its carrier and when its outcome became known: its
    New York scheduled departure (year, month, day, sched_dep_time) plus its delay (as in
    tests/test_pipeline.py's brute-force check), so every statistic reads those raw columns."""
    window = {f"column:nycflights13.flights.{c}" for c in ("carrier", "year", "month", "day", "sched_dep_time")}
    window.add("column:nycflights13.flights.dep_delay")
    features = step_features(client, STEP["carrier_daily_stats"])
    assert {"feature:carrier_daily_stats.flights_7d", "feature:carrier_daily_stats.share_cancelled_7d"} <= set(features)
    for feature in features:
        nodes, _ = upstream(client, feature)
        assert window <= set(nodes), feature


@pytest.mark.parametrize("raw", [RAW_WIND, RAW_DEWP])
def test_raw_column_impact_holds_only_training_sets_of_features_declared_from_it(
    client, single_feature_training_sets, raw
):
    impact = {n["id"] for n in client.get(f"/lineage/nodes/{raw}/impact").json()["impact"]}
    features = step_features(client, WEATHER)
    for feature, ts_id in single_feature_training_sets.items():
        assert (f"training_set:{ts_id}" in impact) == (raw in raw_columns_of(WEATHER, features[feature])), feature


def test_path_from_a_raw_column_to_a_service_passes_only_through_its_own_columns_and_features(client):
    service = "feature_service:delay_model_v1"
    path = client.get("/lineage/path", params={"source": RAW_WIND, "target": service}).json()["path"]
    assert path[0] == RAW_WIND and path[-1] == service
    features = step_features(client, WEATHER)
    derived = {column for column, raws in WEATHER.column_lineage.items() if RAW_WIND in raw_columns_of(WEATHER, column)}
    allowed = {RAW_WIND} | {f"column:{WEATHER.data_source}.{c}" for c in derived}
    allowed |= {feature for feature, column in features.items() if column in derived}
    assert set(path[:-1]) <= allowed, path


@pytest.fixture(scope="module")
def trained(client) -> set[str]:
    """Training sets on both services and a model on one: the node ids table-grain lineage must reach."""
    rows = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}]
    made = {"feature_service:delay_model_v1", "feature_service:delay_model_v2"}
    for service in ("delay_model_v1", "delay_model_v2"):
        entity_rows = [dict(r, tailnum="N14228", sched_year=2013) for r in rows] if service.endswith("v2") else rows
        response = client.post("/training-sets", json={"feature_service": service, "entity_rows": entity_rows})
        assert response.status_code == 201, response.text
        ts_id = response.json()["id"]
        made.add(f"training_set:{ts_id}")
    model = client.post("/models", json={"name": "m_column_lineage", "version": "1", "training_set_id": ts_id})
    assert model.status_code == 201, model.text
    return made | {model.json()["id"]}


@pytest.mark.parametrize("start", [RAW_TABLE, SOURCE])
def test_table_grain_still_reaches_services_training_sets_and_models(client, trained, start):
    down = ids(client.get(f"/lineage/nodes/{start}/downstream").json())
    impact = {n["id"] for n in client.get(f"/lineage/nodes/{start}/impact").json()["impact"]}
    assert trained <= down and trained <= impact


def test_service_upstream_reaches_the_raw_table_through_transform_and_source(client):
    _, edges = upstream(client, "feature_service:delay_model_v1")
    chain = [
        (RAW_TABLE, TRANSFORM, "reads"),
        (TRANSFORM, SOURCE, "writes"),
        (SOURCE, "feature_view:origin_weather", "reads"),
    ]
    assert set(chain) <= edges


def test_column_nodes_carry_definition_hash_and_their_table(client):
    source = client.get(f"/lineage/nodes/{SOURCE_WIND}").json()
    assert source["kind"] == "column" and len(source["definition_hash"]) == 64
    attrs = source["attributes"]
    assert attrs["data_source"] == "origin_weather_source" and attrs["dtype"] == "float64"
    assert attrs["derived_from"] == sorted(raw_columns_of(WEATHER, "wind_speed"))
    assert attrs["transform"] == WEATHER.name
    raw = client.get(f"/lineage/nodes/{RAW_WIND}").json()
    assert raw["attributes"]["table"] == "nycflights13.weather" and raw["attributes"]["column"] == "wind_speed"
    feature = client.get(f"/lineage/nodes/{WIND}").json()
    assert feature["attributes"]["source_column"] == SOURCE_WIND and len(feature["definition_hash"]) == 64


def test_raw_columns_are_only_those_the_transform_uses(client):
    down = client.get(f"/lineage/nodes/{RAW_TABLE}/downstream?depth=1").json()
    raw_columns = {n["id"] for n in down["nodes"] if n["kind"] == "column"}
    assert raw_columns == all_raw_columns(WEATHER)
    assert "column:nycflights13.weather.year" not in raw_columns  # read by no output column


def test_on_demand_feature_derives_from_year_built_and_the_request_field(client):
    nodes, edges = upstream(client, "feature:plane_age.plane_age_years")
    assert ("feature:plane_profile.year_built", "feature:plane_age.plane_age_years", "derives") in edges
    assert ("column:flight_request.sched_year", "feature:plane_age.plane_age_years", "derives") in edges
    assert ("data_source:flight_request", "column:flight_request.sched_year", "defines") in edges
    assert nodes["column:flight_request.sched_year"]["attributes"]["request_field"] is True
    # and on down to the raw planes table, column by column
    [raw] = raw_columns_of(STEP["plane_profile"], "year_built")
    assert (raw, "column:plane_profile_source.year_built", "derives") in edges
    assert ("column:plane_profile_source.year_built", "feature:plane_profile.year_built", "derives") in edges


@pytest.mark.parametrize(
    "node_id",
    [
        "entity:origin",
        "feature_view:origin_weather",
        "on_demand_feature_view:plane_age",
        "feature_service:delay_model_v1",
    ],
)
def test_definitions_carry_owner_and_tags(client, node_id):
    node = client.get(f"/lineage/nodes/{node_id}").json()
    assert node["attributes"]["owner"] == "ml-platform@feastline.dev"
    assert isinstance(node["attributes"]["tags"], dict)
    assert len(node["definition_hash"]) == 64
