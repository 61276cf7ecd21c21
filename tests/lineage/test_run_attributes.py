"""Attributes written by runs (``update_attributes``, e.g. ``last_materialization``) survive a re-apply
(``record_version``); attributes the apply writes are replaced by it (SQLite and, marked integration,
PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, text

from lineage import Edge, LineageStore, Node, NodeKind, NodeRef, Relation, migrations
from lineage.versions import HashChange

SOURCE = NodeRef(NodeKind.DATA_SOURCE, "weather_source")
VIEW = NodeRef(NodeKind.FEATURE_VIEW, "origin_weather")
LAST = {"job_id": "job-1", "start": "2013-01-01T00:00:00Z", "end": "2013-12-31T00:00:00Z", "rows_written": 3}


def registry(view_hash: str, **view_attrs: object) -> tuple[list[Node], list[Edge]]:
    return [Node(SOURCE, "s" * 64), Node(VIEW, view_hash, dict(view_attrs))], [Edge(SOURCE, VIEW, Relation.READS)]


def test_unchanged_reapply_keeps_run_attributes_and_writes_nothing_new(store: LineageStore) -> None:
    store.record_version(*registry("a" * 64, ttl=3, owner="ana"))
    store.update_attributes(VIEW, last_materialization=LAST)
    token = store.change_token()
    again = store.record_version(*registry("a" * 64, ttl=3, owner="ana"))
    assert again.diff.counts() == dict.fromkeys(again.diff.counts(), 0)
    assert store.get_node(VIEW) == Node(VIEW, "a" * 64, {"ttl": 3, "owner": "ana", "last_materialization": LAST})
    assert store.change_token() == token + 1  # one write: the version
    assert store.load_graph(as_of=2).node(VIEW) == store.get_node(VIEW)


def test_changed_definition_gets_its_hash_and_diff_and_keeps_run_attributes(store: LineageStore) -> None:
    store.record_version(*registry("a" * 64, ttl=3, owner="ana"))
    store.update_attributes(VIEW, last_materialization=LAST)
    changed = store.record_version(*registry("b" * 64, ttl=4))
    assert changed.diff.changed_nodes == (HashChange(VIEW, "a" * 64, "b" * 64),)
    # ttl replaced, owner (no longer written by the apply) gone, the run's attribute kept
    assert store.get_node(VIEW) == Node(VIEW, "b" * 64, {"ttl": 4, "last_materialization": LAST})
    assert store.load_graph(as_of=1).node(VIEW) == Node(VIEW, "a" * 64, {"ttl": 3, "owner": "ana"})
    assert store.load_graph(as_of=2).node(VIEW).attributes == {"ttl": 4, "last_materialization": LAST}


def test_a_run_may_overwrite_an_apply_attribute_until_the_next_apply(store: LineageStore) -> None:
    store.record_version(*registry("a" * 64, owner="ana"))
    store.update_attributes(VIEW, owner="bo", last_materialization=LAST)
    assert store.get_node(VIEW).attributes == {"owner": "bo", "last_materialization": LAST}
    store.record_version(*registry("a" * 64, owner="ana"))  # the apply owns "owner" again
    assert store.get_node(VIEW).attributes == {"owner": "ana", "last_materialization": LAST}
    store.record_version(*registry("a" * 64))  # and may drop it
    assert store.get_node(VIEW).attributes == {"last_materialization": LAST}


def test_a_later_run_replaces_the_run_attribute(store: LineageStore) -> None:
    store.record_version(*registry("a" * 64))
    store.update_attributes(VIEW, last_materialization=LAST)
    store.update_attributes(VIEW, last_materialization={**LAST, "job_id": "job-2"})
    store.record_version(*registry("a" * 64))
    assert store.get_node(VIEW).attributes == {"last_materialization": {**LAST, "job_id": "job-2"}}


def test_a_node_ended_and_re_added_starts_without_run_attributes(store: LineageStore) -> None:
    store.record_version(*registry("a" * 64))
    store.update_attributes(VIEW, last_materialization=LAST)
    store.record_version([Node(SOURCE, "s" * 64)], [])  # the view is removed from the repo
    store.record_version(*registry("a" * 64))  # and defined again: a new view, never materialized
    assert store.get_node(VIEW).attributes == {}


def test_upgrading_a_0002_database_makes_last_materialization_a_run_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        migrations.upgrade(conn, "", revision="0002")
        conn.execute(
            text(
                "INSERT INTO lineage_nodes (id, kind, name, definition_hash, attributes, updated_at, registry) "
                "VALUES (:id, 'feature_view', 'origin_weather', :hash, :attributes, '2024-01-01 00:00:00', 1)"
            ),
            {"id": str(VIEW), "hash": "a" * 64, "attributes": json.dumps({"ttl": 3, "last_materialization": LAST})},
        )
    engine.dispose()
    with LineageStore(url) as store:
        store.record_version(*registry("b" * 64, ttl=4))
        assert store.get_node(VIEW) == Node(VIEW, "b" * 64, {"ttl": 4, "last_materialization": LAST})
