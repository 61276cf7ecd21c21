"""Training-set profiles: the bins and statistics equal a brute-force computation; degenerate columns are
handled as documented; the profile is stored beside the set (all or nothing), served and in lineage."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.monitoring.profiles import (
    QUANTILES,
    TOP_K,
    build_profile,
    column_profile,
    profile_path,
    read_profile,
    write_profile,
)


def brute_counts(inner: list[float], values: np.ndarray) -> list[int]:
    """Right-closed bins (-inf, e1], (e1, e2], ..., (ek, +inf), counted by comparisons."""
    bounds = [-np.inf, *inner, np.inf]
    return [int(np.sum((values > lo) & (values <= hi))) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def test_numeric_column_bins_are_equal_frequency_quantiles() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(50, 10, 5000).round(1)  # rounded: ties at the edges, as in real weather data
    col = pd.Series(np.concatenate([values, [np.nan] * 17]))
    p = column_profile("temp", col, "feature", "origin_weather:temp")
    edges = [float(np.quantile(values, q)) for q in QUANTILES]
    inner = sorted(set(edges[1:-1]))
    assert p["kind"] == "numeric" and p["nulls"] == 17 and p["count"] == 5017
    assert p["quantiles"] == pytest.approx(edges, abs=0, rel=0)
    assert p["bin_edges"] == inner
    assert p["counts"] == brute_counts(inner, values)
    assert sum(p["counts"]) == 5000
    assert p["min"] == values.min() and p["max"] == values.max()
    assert p["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert p["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert p["degenerate"] is None and p["ties"] == []


def test_tied_edges_collapse_and_are_recorded() -> None:
    values = np.array([0.0] * 850 + [0.01] * 50 + list(np.linspace(0.02, 1.0, 100)))  # like precip
    p = column_profile("precip", pd.Series(values), "feature", "origin_weather:precip")
    inner = np.quantile(values, QUANTILES)[1:-1]
    assert p["bin_edges"] == sorted(set(inner.tolist()))
    assert len(p["counts"]) == len(p["bin_edges"]) + 1 < 10
    zero_tie = next(t for t in p["ties"] if t["value"] == 0.0)
    assert zero_tie["quantiles"] == [q for q, e in zip(QUANTILES[1:-1], inner, strict=True) if e == 0.0]
    assert p["counts"] == brute_counts(p["bin_edges"], values)


def test_all_equal_column_gets_below_exactly_above_bins() -> None:
    p = column_profile("flag", pd.Series([3.5] * 40 + [None]), "feature", "v:flag")
    assert p["degenerate"] == "all_equal"
    assert p["bin_edges"] == [np.nextafter(3.5, -np.inf), 3.5]
    assert p["counts"] == [0, 40, 0]
    assert p["std"] == 0.0


def test_all_null_column_has_no_bins() -> None:
    p = column_profile("gone", pd.Series([np.nan] * 12), "feature", "v:gone")
    assert p["degenerate"] == "all_null"
    assert (p["bin_edges"], p["counts"], p["min"], p["mean"], p["std"]) == ([], [], None, None, None)
    q = column_profile("gone_s", pd.Series([None] * 3, dtype=object), "passthrough", None)
    assert q["degenerate"] == "all_null" and q["nulls"] == 3


def test_categorical_columns_top_k_and_other() -> None:
    names = [f"c{i:02d}" for i in range(30)]
    values = [n for i, n in enumerate(names) for _ in range(31 - i)]  # c00 most frequent
    p = column_profile("carrier", pd.Series(values + [None]), "join_key", None)
    assert p["kind"] == "categorical" and p["distinct"] == 30
    assert p["categories"] == names[:TOP_K] and p["counts"] == [31 - i for i in range(TOP_K)]
    assert p["other"] == sum(31 - i for i in range(TOP_K, 30))
    booleans = column_profile("label", pd.Series([True, False, True, None], dtype="boolean"), "passthrough", None)
    assert (booleans["kind"], booleans["categories"], booleans["counts"], booleans["other"]) == (
        "categorical",
        [True, False],
        [2, 1],
        0,
    )
    small_ints = column_profile("engines", pd.Series([1, 2, 2, 4], dtype="Int64"), "feature", "plane:engines")
    assert small_ints["kind"] == "categorical" and small_ints["categories"] == [2, 1, 4]
    many_ints = column_profile("seats", pd.Series(range(100), dtype="Int64"), "feature", "plane:seats")
    assert many_ints["kind"] == "numeric"
    one = column_profile("origin", pd.Series(["EWR"] * 5), "join_key", None)
    assert one["degenerate"] == "all_equal"


def test_write_profile_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ts-x.profile.json"
    write_profile({"version": 1, "row_count": 1, "columns": []}, path)
    with pytest.raises(ValueError):  # NaN is not JSON: the write fails midway
        write_profile({"version": 1, "row_count": 2, "columns": [{"mean": float("nan")}]}, path)
    assert read_profile(path) == {"version": 1, "row_count": 1, "columns": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts-x.profile.json"]  # no temporary file left


def test_profile_stored_served_and_in_lineage(client, settings) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"origin": o, "carrier": c, "event_timestamp": f"2013-03-0{d}T1{h}:00:00Z", "label_delayed": (d + h) % 2}
        for d in range(1, 8)
        for h in range(4)
        for o, c in (("EWR", "UA"), ("JFK", "B6"))
    ]
    made = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": rows})
    assert made.status_code == 201
    ts_id = made.json()["id"]
    record = client.get(f"/training-sets/{ts_id}").json()
    data = settings.training_sets_path / record["data_path"]  # catalog paths: relative to the training-sets folder
    stored = json.loads(profile_path(data).read_text())
    roles = {c["name"]: (c["role"], c["feature"]) for c in stored["columns"]}
    assert stored == build_profile(pd.read_parquet(data), roles)  # the stored rows' profile
    answer = client.get(f"/training-sets/{ts_id}/profile")
    assert answer.status_code == 200
    assert answer.json() == {"training_set_id": ts_id, **stored}
    by_name = {c["name"]: c for c in stored["columns"]}
    assert by_name["temp"]["role"] == "feature" and by_name["temp"]["feature"] == "origin_weather:temp"
    assert by_name["origin"]["role"] == "join_key" and by_name["label_delayed"]["role"] == "passthrough"
    assert by_name["event_timestamp"]["kind"] == "timestamp"
    assert by_name["event_timestamp"]["min"] == "2013-03-01T10:00:00Z"
    node = client.get(f"/lineage/nodes/training_set:{ts_id}").json()
    summary = node["attributes"]["profile"]
    assert summary["row_count"] == len(rows)
    assert summary["columns"]["temp"]["counts"] == by_name["temp"]["counts"]
    assert summary["columns"]["temp"]["bin_edges"] == by_name["temp"]["bin_edges"]
    missing = client.get("/training-sets/ts-nope/profile")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
