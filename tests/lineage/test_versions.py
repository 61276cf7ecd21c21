"""Versions, history and migrations of LineageStore (SQLite and, marked integration, PostgreSQL),
and once end to end: ``feastline apply`` of a changed repo, then ``as_of`` over HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from lineage import Edge, LineageStore, Node, NodeKind, NodeNotFound, NodeRef, Relation
from lineage.migrations import version_table
from lineage.versions import HashChange, VersionNotFound
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient, copy_repo
from tests.lineage.conftest import StoreFactory

SOURCE = NodeRef(NodeKind.DATA_SOURCE, "weather_source")
VIEW = NodeRef(NodeKind.FEATURE_VIEW, "origin_weather")
TEMP = NodeRef(NodeKind.FEATURE, "origin_weather.temp")
WIND = NodeRef(NodeKind.FEATURE, "origin_weather.wind")
SERVICE = NodeRef(NodeKind.FEATURE_SERVICE, "delay_v1")
TRAINING = NodeRef(NodeKind.TRAINING_SET, "ts1")


def registry_v1() -> tuple[list[Node], list[Edge]]:
    nodes = [Node(SOURCE, "s" * 64), Node(VIEW, "a" * 64, {"ttl": 3}), Node(TEMP, "t" * 64), Node(SERVICE, "f" * 64)]
    edges = [
        Edge(SOURCE, VIEW, Relation.READS),
        Edge(VIEW, TEMP, Relation.DEFINES),
        Edge(TEMP, SERVICE, Relation.INCLUDES),
    ]
    return nodes, edges


def registry_v2() -> tuple[list[Node], list[Edge]]:
    """The view changed (hash), ``temp`` replaced by ``wind``."""
    nodes = [Node(SOURCE, "s" * 64), Node(VIEW, "b" * 64, {"ttl": 4}), Node(WIND, "w" * 64), Node(SERVICE, "f" * 64)]
    edges = [
        Edge(SOURCE, VIEW, Relation.READS),
        Edge(VIEW, WIND, Relation.DEFINES),
        Edge(WIND, SERVICE, Relation.INCLUDES),
    ]
    return nodes, edges


def test_first_version_adds_everything(store: LineageStore) -> None:
    nodes, edges = registry_v1()
    version = store.record_version(nodes, edges)
    assert (version.number, version.source, version.node_count, version.edge_count) == (1, "feast apply", 4, 3)
    assert version.diff.added_nodes == tuple(sorted(n.ref for n in nodes))
    assert version.diff.added_edges == tuple(sorted(edges))
    assert version.diff.removed_nodes == version.diff.changed_nodes == version.diff.removed_edges == ()
    assert store.list_versions() == [version]
    assert store.get_version(1) == version


def test_as_of_the_previous_version_shows_the_old_definition_and_edges(store: LineageStore) -> None:
    store.record_version(*registry_v1())
    first_done = datetime.now(UTC)
    time.sleep(0.01)
    second = store.record_version(*registry_v2())

    assert second.number == 2
    assert second.diff.changed_nodes == (HashChange(VIEW, "a" * 64, "b" * 64),)
    assert second.diff.added_nodes == (WIND,)
    assert second.diff.removed_nodes == (TEMP,)
    assert set(second.diff.added_edges) == {Edge(VIEW, WIND, Relation.DEFINES), Edge(WIND, SERVICE, Relation.INCLUDES)}
    assert set(second.diff.removed_edges) == {
        Edge(VIEW, TEMP, Relation.DEFINES),
        Edge(TEMP, SERVICE, Relation.INCLUDES),
    }

    now = store.load_graph()
    assert now.node(VIEW).definition_hash == "b" * 64 and TEMP not in now
    for as_of in (1, first_done):
        old = store.load_graph(as_of=as_of)
        assert old.node(VIEW) == Node(VIEW, "a" * 64, {"ttl": 3})
        assert old.edges() == sorted(registry_v1()[1])
        assert WIND not in old
    assert store.load_graph(as_of=2).edges() == sorted(registry_v2()[1])
    assert len(store.load_graph(as_of=datetime(2000, 1, 1, tzinfo=UTC))) == 0
    with pytest.raises(VersionNotFound):
        store.load_graph(as_of=3)
    with pytest.raises(VersionNotFound):
        store.get_version(3)
    with pytest.raises(NodeNotFound):  # ended, not in the current graph
        store.get_node(TEMP)


def test_unchanged_apply_has_an_empty_diff_and_keeps_other_nodes(store: LineageStore) -> None:
    store.record_version(*registry_v1())
    store.save([Node(TRAINING, None, {"row_count": 3})], [Edge(SERVICE, TRAINING, Relation.TRAINED_ON)])
    store.update_attributes(VIEW, last_materialization={"end": "2013-12-31"})
    again = store.record_version(*registry_v1())
    assert again.diff.counts() == dict.fromkeys(again.diff.counts(), 0)
    graph = store.load_graph()
    assert TRAINING in graph and Edge(SERVICE, TRAINING, Relation.TRAINED_ON) in graph.edges()
    # the training set is not part of the registry graph: never reported, never ended by an apply
    assert TRAINING not in store.record_version(*registry_v2()).diff.removed_nodes
    assert TRAINING in store.load_graph()


def test_non_apply_writes_are_in_the_history(store: LineageStore) -> None:
    store.record_version(*registry_v1())
    store.save([Node(TRAINING, None, {"row_count": 3})], [Edge(SERVICE, TRAINING, Relation.TRAINED_ON)])
    store.update_attributes(TRAINING, row_count=4)
    assert TRAINING not in store.load_graph(as_of=1)
    assert store.graph_as_of(datetime.now(UTC) + timedelta(days=1)).node(TRAINING).attributes["row_count"] == 4
    assert store.load_graph(as_of=datetime.now(UTC)).nodes() == store.load_graph().nodes()


def test_removed_node_ends_its_other_edges_too(store: LineageStore) -> None:
    store.record_version(*registry_v1())
    store.save([Node(TRAINING)], [Edge(TEMP, TRAINING, Relation.TRAINED_ON)])
    saved = datetime.now(UTC)
    time.sleep(0.01)
    store.record_version(*registry_v2())
    assert Edge(TEMP, TRAINING, Relation.TRAINED_ON) not in store.load_graph().edges()
    assert Edge(TEMP, TRAINING, Relation.TRAINED_ON) in store.load_graph(as_of=saved).edges()
    assert TRAINING in store.load_graph()


def test_current_graph_is_cached_until_a_write(store: LineageStore) -> None:
    store.record_version(*registry_v1())
    first = store.current_graph()
    assert store.current_graph() is first
    other = LineageStore(store._engine.url.render_as_string(hide_password=False), table_prefix=store.table_prefix)
    try:  # a write through another store (process) invalidates the cache too
        other.update_attributes(VIEW, owner="bo")
    finally:
        other.dispose()
    fresh = store.current_graph()
    assert fresh is not first and fresh.node(VIEW).attributes["owner"] == "bo"
    assert store.graph_as_of(1) is store.graph_as_of(1)


def test_failed_version_writes_nothing(store: LineageStore) -> None:
    store.record_version(*registry_v1())
    before, token = store.load_graph().edges(), store.change_token()
    with pytest.raises(NodeNotFound):
        store.record_version([Node(VIEW)], [Edge(VIEW, TEMP, Relation.DEFINES)])
    assert store.load_graph().edges() == before and store.change_token() == token
    assert [v.number for v in store.list_versions()] == [1]


def test_migrations_run_on_a_fresh_database_and_are_idempotent(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.record_version(*registry_v1())
    url = store._engine.url.render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            revision = conn.execute(text(f"SELECT version_num FROM {version_table(store.table_prefix)}")).scalar_one()
        tables = {t for t in inspect(engine).get_table_names() if t.startswith(store.table_prefix)}
    finally:
        engine.dispose()
    assert revision == "0003"
    suffixes = {"alembic_version", "lineage_nodes", "lineage_edges", "lineage_changes"}
    suffixes |= {"lineage_node_history", "lineage_edge_history", "lineage_versions"}
    assert tables == {store.table_prefix + s for s in suffixes}
    again = store_factory(store.table_prefix)  # runs `upgrade head` again: a no-op
    again.create_all()
    assert again.list_versions() == store.list_versions()
    assert again.load_graph(as_of=1).nodes() == store.load_graph().nodes()


def test_a_database_from_before_the_migrations_is_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE lineage_nodes (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, "
                "definition_hash TEXT, attributes TEXT NOT NULL, updated_at DATETIME NOT NULL)"
            )
        )
        conn.execute(
            text(
                "CREATE TABLE lineage_edges (source TEXT REFERENCES lineage_nodes(id), target TEXT "
                "REFERENCES lineage_nodes(id), relation TEXT, PRIMARY KEY (source, target, relation))"
            )
        )
        conn.execute(
            text(
                "INSERT INTO lineage_nodes VALUES ('feature_view:origin_weather', 'feature_view', "
                "'origin_weather', NULL, '{}', '2024-01-01 00:00:00')"
            )
        )
    engine.dispose()
    with LineageStore(url) as store:
        assert store.get_node(VIEW) == Node(VIEW)
        assert store.load_graph(as_of=datetime.now(UTC)).nodes() == [Node(VIEW)]
        version = store.record_version([Node(VIEW, "a" * 64)], [])
        assert version.diff.added_nodes == (VIEW,)  # not recorded by an apply before


@pytest.mark.slow
def test_apply_of_a_changed_view_is_a_new_version_over_http(built_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_repo(built_repo, repo)
    with NoServerErrorClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as client:
        before = client.get("/lineage/versions").json()["versions"][-1]["number"]
        old = client.get("/lineage/nodes/feature_view:origin_weather").json()
        definitions = repo / "definitions.py"
        source = definitions.read_text()
        marker = 'name="origin_weather",\n    entities=[origin],\n    ttl=timedelta(hours=3),'
        assert marker in source
        definitions.write_text(source.replace(marker, marker.replace("hours=3", "hours=4")))
        feastline = Path(sys.executable).parent / "feastline"
        done = subprocess.run(
            [str(feastline), "apply", "--repo", str(repo)], check=True, capture_output=True, text=True
        )
        assert f"lineage version {before + 1} recorded" in done.stdout

        new = client.get("/lineage/nodes/feature_view:origin_weather").json()
        assert new["definition_hash"] != old["definition_hash"]
        then = client.get("/lineage/nodes/feature_view:origin_weather", params={"as_of": before}).json()
        assert then["definition_hash"] == old["definition_hash"]
        version = client.get(f"/lineage/versions/{before + 1}").json()
        changed = {c["id"]: c for c in version["diff"]["changed_nodes"]}
        assert changed["feature_view:origin_weather"] == {
            "id": "feature_view:origin_weather",
            "before": old["definition_hash"],
            "after": new["definition_hash"],
        }
        assert version["counts"]["removed_nodes"] == 0
        up_then = client.get("/lineage/nodes/feature_view:origin_weather/upstream", params={"as_of": before}).json()
        assert {n["id"] for n in up_then["nodes"]} >= {"data_source:origin_weather_source", "entity:origin"}


def test_impact_path_and_versions_over_http(client) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/lineage/nodes/feature:origin_weather.temp/impact").json()
    assert body["node"]["id"] == "feature:origin_weather.temp"
    impacted = [n["id"] for n in body["impact"]]
    assert "feature_service:delay_model_v1" in impacted and impacted == sorted(impacted)
    assert all(n["kind"] in {"feature_service", "training_set", "model"} for n in body["impact"])
    raw, service = "raw_table:nycflights13.weather", "feature_service:delay_model_v1"
    path = client.get("/lineage/path", params={"source": service, "target": raw}).json()["path"]
    assert path[0] == raw and path[-1] == service and len(path) > 2
    unrelated = {"source": "raw_table:nycflights13.planes", "target": "feature_view:origin_weather"}
    assert client.get("/lineage/path", params=unrelated).json() == {"path": [], "direction": None}
    versions = client.get("/lineage/versions").json()["versions"]
    assert versions[0]["number"] == 1 and versions[0]["source"] == "feast apply" and "diff" not in versions[0]
    first = client.get("/lineage/versions/1").json()
    assert "feature_view:origin_weather" in first["diff"]["added_nodes"]
    as_of = client.get("/lineage/nodes/feature_view:origin_weather/downstream", params={"as_of": 1}).json()
    assert "feature:origin_weather.temp" in {n["id"] for n in as_of["nodes"]}
    at_time = client.get("/lineage/nodes/feature_view:origin_weather", params={"as_of": first["created_at"]})
    assert at_time.status_code == 200


@pytest.mark.parametrize("as_of", ["yesterday", "0", "-1", "2024-01-01T00:00:00"])
def test_bad_as_of_is_a_422_naming_it(client, as_of: str) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/lineage/nodes/feature_view:origin_weather/upstream", params={"as_of": as_of})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert "as_of" in answer.json()["field"]


def test_unknown_version_or_node_is_a_404(client) -> None:  # type: ignore[no-untyped-def]
    for url, params in [
        ("/lineage/versions/9999", {}),
        ("/lineage/nodes/feature_view:origin_weather", {"as_of": 9999}),
        ("/lineage/nodes/feature:nope/impact", {}),
        ("/lineage/path", {"source": "feature:nope", "target": "feature_view:origin_weather"}),
    ]:
        answer = client.get(url, params=params)
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json", url
    assert "as_of" in client.get("/lineage/nodes/feature_view:origin_weather", params={"as_of": 9999}).json()["detail"]


def test_an_unchanged_graph_records_no_version_when_asked(store: LineageStore) -> None:
    nodes, edges = registry_v1()
    first = store.record_version(nodes, edges)
    assert store.record_version(nodes, edges, skip_if_unchanged=True) is None
    assert store.list_versions() == [first]
    # the same definitions with a new attribute (a new pipeline run's counts): saved, still no version
    with_counts = [Node(n.ref, n.definition_hash, {**n.attributes, "rows": 7}) if n.ref == SOURCE else n for n in nodes]
    assert store.record_version(with_counts, edges, skip_if_unchanged=True) is None
    assert store.get_node(SOURCE).attributes == {"rows": 7} and store.list_versions() == [first]
    assert store.graph_as_of(1).node(SOURCE).attributes == {}  # the version's own state is kept
    second = store.record_version(*registry_v2(), skip_if_unchanged=True)  # a real change: a version
    assert second is not None and second.number == 2 and second.diff.changed_nodes
    assert store.record_version(nodes, edges).number == 3  # without the option: always a version
