"""The ``type:`` paths of feastline's stores in ``feature_store.yaml`` are a public interface: the paths
from before the capability packages (``service.offline...``, ``service.online_stores...``) and the new ones
(``service.training.offline...``, ``service.online.stores...``) both work with Feast's own CLI and SDK."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from feast import FeatureStore

from tests.conftest import copy_repo

FEAST = Path(sys.executable).parent / "feast"
NEW = {
    "offline": "service.training.offline.feast_store.FeastlineOfflineStore",
    "online": "service.online.stores.sqlite.OrderedSqliteOnlineStore",
}
OLD = {
    "offline": "service.offline.feast_store.FeastlineOfflineStore",
    "online": "service.online_stores.sqlite.OrderedSqliteOnlineStore",
}


def with_types(repo: Path, types: dict[str, str]) -> None:
    config = repo / "feature_store.yaml"
    text = config.read_text()
    text = re.sub(r"(online_store:\n  type: )\S+", rf"\g<1>{types['online']}", text)
    text = re.sub(r"(offline_store:\n  type: )\S+", rf"\g<1>{types['offline']}", text)
    config.write_text(text)
    assert types["online"] in text and types["offline"] in text


def feast(repo: Path, *args: str) -> str:
    done = subprocess.run([str(FEAST), *args], cwd=repo, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_old_paths_name_the_same_classes() -> None:
    from service.offline import feast_store as old_offline
    from service.online.stores import redis as new_redis
    from service.online.stores import sqlite as new_sqlite
    from service.online_stores import redis as old_redis
    from service.online_stores import sqlite as old_sqlite
    from service.training.offline import feast_store as new_offline

    assert old_offline.FeastlineOfflineStore is new_offline.FeastlineOfflineStore
    assert old_offline.FeastlineOfflineStoreConfig is new_offline.FeastlineOfflineStoreConfig
    assert old_sqlite.OrderedSqliteOnlineStore is new_sqlite.OrderedSqliteOnlineStore
    assert old_redis.OrderedRedisOnlineStore is new_redis.OrderedRedisOnlineStore


@pytest.mark.slow
@pytest.mark.parametrize("types", [NEW, OLD], ids=["new-paths", "old-paths"])
def test_feast_plan_apply_and_read_with_either_path(built_repo: Path, tmp_path: Path, types: dict[str, str]) -> None:
    repo = tmp_path / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets", "lineage.db"))
    with_types(repo, types)

    assert "feastline" in feast(repo, "plan")
    feast(repo, "apply")

    store = FeatureStore(repo_path=str(repo))
    assert type(store._get_provider().offline_store).__name__ == "FeastlineOfflineStore"
    assert type(store._get_provider().online_store).__name__ == "OrderedSqliteOnlineStore"
    # the materialized online store of the session's repo reads back through the configured class
    read = store.get_online_features(features=["origin_weather:temp"], entity_rows=[{"origin": "JFK"}]).to_dict()
    reference = FeatureStore(repo_path=str(built_repo)).get_online_features(
        features=["origin_weather:temp"], entity_rows=[{"origin": "JFK"}]
    )
    assert read == reference.to_dict()
    assert read["temp"][0] is not None
