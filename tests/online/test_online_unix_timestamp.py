"""``UnixTimestamp`` features online are answered as ``feast serve`` 0.67 answers them: integer seconds
since the epoch (Feast's ``unix_timestamp_val``, whole seconds; a finer source time floored), and a list
of them for ``Array(UnixTimestamp)``, so Feast's remote online client hands users the same ``int`` it
gets from ``feast serve`` (it got an ISO string). Training sets keep their documented ISO 8601 format.

Also: ``feastline serve --repo`` prints a "try:" request built from the repo's own first feature
service, which that server answers (it printed the demo's ``delay_model_v1``).

The expected values come from the repo's data (tests/shop_repo.py) and, for the wire format, from Feast's
own response serializer (``feast.feature_server_utils``).
"""

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from feast import FeatureStore, RepoConfig
from feast.feature_server_utils import _value_to_native
from feast.protos.feast.types.Value_pb2 import Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.live_server import live_server
from tests.repo_gen_files import apply_repo
from tests.shop_repo import (
    CUSTOMERS,
    NOW,
    epoch_seconds,
    latest_profile,
    materialize,
    online,
    profile_rows,
    write_shop_repo,
    z,
)

FEATURES = ["customer_profile:signup_ts", "customer_profile:seen_ts"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = write_shop_repo(tmp_path_factory.mktemp("unix_ts") / "shop")
    apply_repo(repo)
    with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as c:
        materialize(c)
    return repo


@pytest.fixture(scope="module")
def client(shop: Path):  # type: ignore[no-untyped-def]
    with NoServerErrorClient(create_app(Settings(repo=shop, now=NOW))) as c:
        yield c


def newest(customer: int) -> dict:
    row = latest_profile(profile_rows(), customer, NOW, created_cut=False)
    assert row is not None
    return row


def test_online_unix_timestamps_are_epoch_seconds_as_feast_serve_answers(client: NoServerErrorClient) -> None:
    got = online(client, FEATURES, {"customer_id": CUSTOMERS})
    for i, customer in enumerate(CUSTOMERS):
        row = newest(customer)
        seconds = epoch_seconds(row["signup_ts"])
        assert got["signup_ts"]["values"][i] == seconds
        # what Feast's feature server writes for the stored proto, byte for byte the same JSON value
        assert got["signup_ts"]["values"][i] == _value_to_native(ValueProto(unix_timestamp_val=seconds))
        listed = [epoch_seconds(t) for t in row["seen_ts"]]
        assert got["seen_ts"]["values"][i] == listed
        assert got["seen_ts"]["values"][i] == _value_to_native(
            ValueProto(unix_timestamp_list_val=Int64List(val=listed))
        )
    assert all(type(v) is int for v in got["signup_ts"]["values"])
    # the row whose signup has a fraction of a second: floored online (Feast keeps whole seconds)
    assert newest(CUSTOMERS[-1])["signup_ts"].microsecond == 700_000


def test_training_sets_keep_iso_timestamps(client: NoServerErrorClient) -> None:
    rows = [{"customer_id": c, "event_timestamp": z(NOW)} for c in CUSTOMERS]
    response = client.post("/training-sets", json={"features": FEATURES, "entity_rows": rows})
    assert response.status_code == 201, response.text
    for customer, answer in zip(CUSTOMERS, response.json()["rows"], strict=True):
        row = latest_profile(profile_rows(), customer, NOW)
        assert answer["signup_ts"] == z(row["signup_ts"])  # fractions of a second kept offline
        assert answer["seen_ts"] == [z(t) for t in row["seen_ts"]]


def test_remote_client_and_the_printed_example(shop: Path, tmp_path: Path) -> None:
    """Over a real socket: Feast's remote online client gets ints, and ``serve``'s "try:" request works."""
    log = tmp_path / "serve.log"
    with live_server(shop, log, now=NOW) as url:
        client_repo = tmp_path / "client"
        client_repo.mkdir()
        shutil.copy(shop / "feature_store.yaml", client_repo / "feature_store.yaml")
        config = RepoConfig(
            project="shop",
            provider="local",
            registry=str(shop / "data" / "registry.db"),
            online_store={"type": "remote", "path": url},
            entity_key_serialization_version=3,
            repo_path=str(client_repo),
        )
        answer = (
            FeatureStore(config=config)
            .get_online_features(features=FEATURES, entity_rows=[{"customer_id": c} for c in CUSTOMERS])
            .to_dict()
        )
        printed = re.search(r"try:\n\s+curl -s -X POST (\S+) .*\n\s+-d '(.*)'", log.read_text())
        assert printed is not None, log.read_text()
        assert printed.group(1) == f"{url}/training-sets"
        example = json.loads(printed.group(2))
        tried = httpx.post(printed.group(1), json=example, timeout=60)
    assert answer["signup_ts"] == [epoch_seconds(newest(c)["signup_ts"]) for c in CUSTOMERS]
    assert all(type(v) is int for v in answer["signup_ts"])
    assert answer["seen_ts"] == [[epoch_seconds(t) for t in newest(c)["seen_ts"]] for c in CUSTOMERS]
    assert example["feature_service"] == "shop_v1"  # the repo's first feature service, not the demo's
    assert set(example["entity_rows"][0]) == {"customer_id", "event_timestamp", "amount", "channel"}
    assert tried.status_code == 201, tried.text
    assert tried.json()["rows"][0]["score"] is not None  # the example names an entity that has data
