"""A small Feast repo written the way a new user writes one (the 2026-12-02 new-user trial), for tests.

``customer_profile`` (``Int64`` key ``customer_id``; ``Float32`` ``score`` held as float64 in the file,
``Array(Float32)`` ``recent_amounts`` held as ``list<float>`` (as the new user's file) and ``weights``
held as ``list<double>`` (doubles that are not float32 values), ``Array(Int64)``, ``UnixTimestamp``
``signup_ts`` (one with a fraction of a second), ``Array(UnixTimestamp)``, ``String``), an on-demand view
over it and a request source (``amount`` ``Float64``, ``channel`` ``String``), and ``customer_clicks``
fed by a push source over a batch file whose event column is ``timestamp[us]`` (``event_time``,
created ``ingested_at``). Feature services ``shop_v1`` (profile + on-demand) and ``shop_v2_clicks``.

:func:`write_shop_repo` writes it with a chosen online store section; :func:`apply_repo` (in process)
applies it. The data are built here, so tests compute their expected values from the same frames.
"""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

NOW = datetime(2024, 3, 1, tzinfo=UTC)
CUSTOMERS = [1, 2, 3, 2**53 + 1]
ORDERED_SQLITE = "  type: service.online.stores.sqlite.OrderedSqliteOnlineStore\n  path: data/online_store.db\n"
PLAIN_SQLITE = "  type: sqlite\n  path: data/online_store.db\n"  # Feast's own store, not feastline's


def ordered_redis(connection: str = "127.0.0.1:6379") -> str:
    return f'  type: service.online.stores.redis.OrderedRedisOnlineStore\n  connection_string: "{connection}"\n'


DEFINITIONS = """
from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Float32, Float64, Int64, String, UnixTimestamp
from feast.value_type import ValueType

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

profile_source = FileSource(
    name="profile_source", path="data/profile.parquet", timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
customer_profile = FeatureView(
    name="customer_profile", entities=[customer], ttl=timedelta(days=30), source=profile_source, online=True,
    schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="score", dtype=Float32),
        Field(name="recent_amounts", dtype=Array(Float32)),
        Field(name="weights", dtype=Array(Float32)),
        Field(name="recent_ids", dtype=Array(Int64)),
        Field(name="signup_ts", dtype=UnixTimestamp),
        Field(name="seen_ts", dtype=Array(UnixTimestamp)),
        Field(name="name", dtype=String),
    ],
)

clicks_batch = FileSource(
    name="clicks_batch", path="data/clicks.parquet", timestamp_field="event_time",
    created_timestamp_column="ingested_at",
)
clicks_push = PushSource(name="clicks_push", batch_source=clicks_batch)
customer_clicks = FeatureView(
    name="customer_clicks", entities=[customer], ttl=timedelta(days=30), source=clicks_push, online=True,
    schema=[
        Field(name="customer_id", dtype=Int64), Field(name="clicks", dtype=Int64), Field(name="dwell", dtype=Float32),
    ],
)

txn_request = RequestSource(
    name="txn_request", schema=[Field(name="amount", dtype=Float64), Field(name="channel", dtype=String)]
)


@on_demand_feature_view(
    sources=[customer_profile, txn_request],
    schema=[Field(name="amount_x2", dtype=Float64), Field(name="is_web", dtype=Bool)],
    mode="pandas",
)
def txn_features(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=inputs.index)
    out["amount_x2"] = inputs["amount"] * 2.0
    out["is_web"] = inputs["channel"] == "web"
    return out


shop_v1 = FeatureService(name="shop_v1", features=[customer_profile, txn_features])
shop_v2_clicks = FeatureService(name="shop_v2_clicks", features=[customer_clicks])
"""

STORE_YAML = """project: {project}
provider: local
registry: data/registry.db
online_store:
{online_store}offline_store:
  type: service.training.offline.feast_store.FeastlineOfflineStore
entity_key_serialization_version: 3
auth:
  type: no_auth
"""

CLICKS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("clicks", pa.int64()),
        ("dwell", pa.float32()),
    ]
)


def profile_rows() -> pd.DataFrame:
    """Four rows per customer over the ten days before :data:`NOW`, each known an hour after its event."""
    rng = np.random.default_rng(10)
    rows = []
    for customer in CUSTOMERS:
        for day in (10, 7, 4, 1):
            ts = pd.Timestamp(NOW - timedelta(days=day, hours=int(rng.integers(0, 12))))
            signup = pd.Timestamp(1_600_000_000 + int(rng.integers(0, 10**7)), unit="s", tz="UTC")
            rows.append(
                {
                    "customer_id": customer,
                    "event_timestamp": ts,
                    "created": ts + timedelta(hours=1),
                    "score": round(float(rng.uniform(0, 100)), 3),
                    "recent_amounts": [round(float(v), 3) for v in rng.uniform(0, 100, size=int(rng.integers(0, 4)))],
                    "weights": [float(v) for v in rng.uniform(-1, 1, size=2)],
                    "recent_ids": [int(v) for v in rng.integers(-(2**62), 2**62, size=2)] + [2**63 - 1],
                    "signup_ts": signup,
                    "seen_ts": [signup, signup + timedelta(days=1)],
                    "name": f"customer-{customer}-{day}",
                }
            )
    rows[-1]["signup_ts"] = rows[-1]["signup_ts"] + timedelta(milliseconds=700)  # online: floored to seconds
    rows[-1]["recent_amounts"] = [14.799, 71.268, 0.1]  # the new user's values
    return pd.DataFrame(rows)


def clicks_rows() -> pa.Table:
    t0 = NOW - timedelta(days=2)
    rows = [{"customer_id": c, "event_time": t0, "ingested_at": t0, "clicks": c % 100, "dwell": 0.5} for c in CUSTOMERS]
    return pa.Table.from_pylist(rows, schema=CLICKS_SCHEMA)


def write_shop_repo(folder: Path, online_store: str = ORDERED_SQLITE, project: str = "shop") -> Path:
    """Write the repo into ``folder`` (created) with ``online_store`` as the body of its ``online_store:``
    section; ``score`` and ``weights`` in the file wider than declared (float64). Returns ``folder``."""
    (folder / "data").mkdir(parents=True)
    (folder / "definitions.py").write_text(DEFINITIONS)
    (folder / "feature_store.yaml").write_text(STORE_YAML.format(project=project, online_store=online_store))
    profile = profile_rows()
    schema = pa.schema(
        [
            ("customer_id", pa.int64()),
            ("event_timestamp", pa.timestamp("ns", tz="UTC")),
            ("created", pa.timestamp("ns", tz="UTC")),
            ("score", pa.float64()),
            ("recent_amounts", pa.list_(pa.float32())),
            ("weights", pa.list_(pa.float64())),
            ("recent_ids", pa.list_(pa.int64())),
            ("signup_ts", pa.timestamp("ns", tz="UTC")),
            ("seen_ts", pa.list_(pa.timestamp("ns", tz="UTC"))),
            ("name", pa.string()),
        ]
    )
    pq.write_table(
        pa.Table.from_pandas(profile, schema=schema, preserve_index=False), folder / "data" / "profile.parquet"
    )
    pq.write_table(clicks_rows(), folder / "data" / "clicks.parquet")
    return folder


def latest_profile(profile: pd.DataFrame, customer: int, t: datetime, created_cut: bool = True) -> dict | None:
    """The README's contract, literally: the customer's row with the greatest (event_ts, created) among
    rows with ``t - 30 days <= event_ts <= t`` (and ``created <= t`` under the cut-off); None if none."""
    rows = profile[(profile.customer_id == customer) & (profile.event_timestamp <= t)]
    rows = rows[rows.event_timestamp >= t - timedelta(days=30)]
    if created_cut:
        rows = rows[rows.created <= t]
    if rows.empty:
        return None
    return rows.sort_values(["event_timestamp", "created"]).iloc[-1].to_dict()


def f32(value: float) -> float:
    """The decimal a Float32 value is answered with: the shortest one that round-trips the float32."""
    return float(str(np.float32(value)))


def epoch_seconds(ts: pd.Timestamp) -> int:
    """Whole seconds since the epoch, floored (Feast's ``unix_timestamp_val``)."""
    return int(pd.Timestamp(ts).value // 10**9)


def z(ts: datetime) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def materialize(client: Any, end: datetime = NOW) -> dict:
    """``POST /materialize`` of every view from a month before :data:`NOW` to ``end``; the finished job."""
    body = {"start": z(NOW - timedelta(days=30)), "end": z(end), "feature_views": None}
    response = client.post("/materialize", json=body)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{response.json()['id']}").json()
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "completed", job
    return dict(job)


def online(client: Any, features: list[str], entities: dict[str, list]) -> dict[str, dict]:
    """``POST /get-online-features``: feature name -> its result (values, statuses, event_timestamps)."""
    response = client.post("/get-online-features", json={"features": features, "entities": entities})
    assert response.status_code == 200, response.text
    body = response.json()
    return dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))


def push(client: Any, df: dict[str, list], to: str = "online") -> Any:
    return client.post("/push", json={"push_source_name": "clicks_push", "df": df, "to": to})
