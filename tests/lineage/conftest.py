"""Fixtures for the lineage tests: tiny named graphs and stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from lineage import Edge, LineageGraph, LineageStore, Node, NodeKind, NodeRef, Relation

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"

StoreFactory = Callable[..., LineageStore]

K = NodeKind
CHAIN_REFS = [
    NodeRef(K.RAW_TABLE, "nycflights13.weather"),
    NodeRef(K.TRANSFORM, "clean_weather"),
    NodeRef(K.DATA_SOURCE, "weather_parquet"),
    NodeRef(K.FEATURE_VIEW, "origin_weather"),
    NodeRef(K.FEATURE, "origin_weather.wind_speed"),
    NodeRef(K.FEATURE_SERVICE, "delay_model_v1"),
    NodeRef(K.TRAINING_SET, "delays_2013"),
    NodeRef(K.MODEL, "delay_classifier"),
]
CHAIN_RELATIONS = [
    Relation.READS,
    Relation.WRITES,
    Relation.READS,
    Relation.DEFINES,
    Relation.INCLUDES,
    Relation.TRAINED_ON,
    Relation.TRAINED_ON,
]


def build(refs: list[NodeRef], edges: list[Edge]) -> LineageGraph:
    graph = LineageGraph()
    for ref in refs:
        graph.add_node(Node(ref, attributes={"owner": "tests"}))
    for edge in edges:
        graph.add_edge(edge)
    return graph


@pytest.fixture
def chain() -> LineageGraph:
    """raw_table -> transform -> data_source -> view -> feature -> service -> training_set -> model."""
    edges = [Edge(a, b, r) for a, b, r in zip(CHAIN_REFS[:-1], CHAIN_REFS[1:], CHAIN_RELATIONS, strict=True)]
    return build(CHAIN_REFS, edges)


DIAMOND_TOP = NodeRef(K.FEATURE, "origin_weather.wind_speed")
DIAMOND_LEFT = NodeRef(K.FEATURE_SERVICE, "delay_v1")
DIAMOND_RIGHT = NodeRef(K.FEATURE_SERVICE, "delay_v2")
DIAMOND_BOTTOM = NodeRef(K.TRAINING_SET, "delays_2013")


@pytest.fixture
def diamond() -> LineageGraph:
    """One feature in two services, both feeding one training set."""
    edges = [
        Edge(DIAMOND_TOP, DIAMOND_LEFT, Relation.INCLUDES),
        Edge(DIAMOND_TOP, DIAMOND_RIGHT, Relation.INCLUDES),
        Edge(DIAMOND_LEFT, DIAMOND_BOTTOM, Relation.TRAINED_ON),
        Edge(DIAMOND_RIGHT, DIAMOND_BOTTOM, Relation.TRAINED_ON),
    ]
    return build([DIAMOND_TOP, DIAMOND_LEFT, DIAMOND_RIGHT, DIAMOND_BOTTOM], edges)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL URL; skips (or fails, with FEASTLINE_REQUIRE_SERVICES=1) if unreachable."""
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}"
        if os.environ.get("FEASTLINE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes fresh, empty stores on the parametrized backend; drops and disposes them at teardown."""
    made: list[LineageStore] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None

    def make(prefix: str | None = None) -> LineageStore:
        """A store on fresh tables, or on the tables of an earlier store if given its ``prefix``."""
        prefix = prefix or f"t{uuid.uuid4().hex[:12]}_"
        store = LineageStore(url or f"sqlite:///{tmp_path / prefix}.db", table_prefix=prefix)
        made.append(store)
        return store

    yield make
    for store in made:
        store.drop_all()
        store.dispose()


@pytest.fixture
def store(store_factory: StoreFactory) -> LineageStore:
    return store_factory()
