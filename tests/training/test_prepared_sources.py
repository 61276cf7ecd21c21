"""Prepared sources (service/training/offline/prepared.py): joining over the kept ranked/frontier tables
answers exactly what joining straight from the Parquet files answers, before and after a source file
changes (replaced by rename, or rewritten in place), and stale preparations are dropped."""

import os
import shutil
from dataclasses import replace

import pandas as pd
import pytest
from feast import FeatureStore

from service.training.offline import engine
from service.training.offline.prepared import PREPARED
from service.training.offline.views import plan_retrieval, service_references


@pytest.fixture
def setup(built_repo, tmp_path):
    store = FeatureStore(repo_path=str(built_repo))
    plan = plan_retrieval(store, service_references(store, "delay_model_v1"), "delay_model_v1")
    views = []
    for v in plan.views:  # private copies of the sources, free to change
        copy = tmp_path / v.path.name
        shutil.copy(v.path, copy)
        views.append(replace(v, path=copy))
    flights = pd.read_parquet(built_repo / "data" / "flights.parquet").sample(3000, random_state=7)
    entity = flights[["origin", "carrier", "event_timestamp"]].reset_index(drop=True)
    entity["event_timestamp"] = entity["event_timestamp"].astype("datetime64[ns, UTC]")
    return tuple(views), entity


def straight(entity, views, monkeypatch, created_filter=True):
    monkeypatch.setenv("FEASTLINE_PREPARED_SOURCE_MB", "0")  # the join reads the files itself
    try:
        return engine.join_views(entity, views, created_filter)
    finally:
        monkeypatch.delenv("FEASTLINE_PREPARED_SOURCE_MB")


@pytest.mark.parametrize("created_filter", [True, False])
def test_prepared_join_equals_the_straight_join(setup, monkeypatch, created_filter):
    views, entity = setup
    reference = straight(entity, views, monkeypatch, created_filter)
    assert reference.filter(like="__temp").notna().sum().iloc[0] > 2000  # the sample matches real weather
    for _ in range(2):  # prepares, then reuses
        pd.testing.assert_frame_equal(engine.join_views(entity, views, created_filter), reference)


@pytest.mark.parametrize("by_rename", [True, False])
def test_a_changed_source_is_prepared_anew(setup, monkeypatch, by_rename):
    views, entity = setup
    before = engine.join_views(entity, views)
    path = views[0].path
    source = pd.read_parquet(path)
    source[views[0].columns["temp"]] = source[views[0].columns["temp"]] + 1.5
    if by_rename:
        source.to_parquet(path.with_suffix(".tmp"), index=False)
        os.replace(path.with_suffix(".tmp"), path)
    else:
        source.to_parquet(path, index=False)
    after = engine.join_views(entity, views)
    pd.testing.assert_frame_equal(after, straight(entity, views, monkeypatch))
    name = f"{views[0].name}__temp"
    matched = before[name].notna()
    assert (after.loc[matched, name] - before.loc[matched, name]).round(9).eq(1.5).all()
    live = [e for e in PREPARED._entries.values() if not e.stale]
    assert len(PREPARED._entries) == len(live)  # the preparation of the old file was dropped


def test_a_view_listing_its_join_key_as_a_feature(setup, monkeypatch):
    """Feast's pushed_locations view has ``location_id`` both as key and schema field (found by Feast's
    push test): the key column is answered as the feature, as the query answers it."""
    views, entity = setup
    views = tuple(replace(v, features=(*v.features, v.join_keys[0])) for v in views)
    got = engine.join_views(entity, views)
    pd.testing.assert_frame_equal(got, straight(entity, views, monkeypatch))
    name = f"{views[0].name}__{views[0].join_keys[0]}"
    matched = got[name].notna()
    assert matched.sum() > 2000 and (got.loc[matched, name] == entity.loc[matched, views[0].join_keys[0]]).all()
