"""Drift reports: PSI, JS, KS and chi-square equal an independent computation (numpy brute force, scipy
only for distribution tails), degenerate and categorical columns included; on the real 2013 flights,
January-September against October-December, temp and dewp drift and humid, wind_speed, visib do not;
reports are stored, in lineage, in OpenLineage (validated against the spec) and in /metrics."""

import io
import math
import sys
import types
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from service.monitoring import distances
from service.monitoring import drift as drift_mod
from service.monitoring.drift import (
    Thresholds,
    ThresholdTagInvalid,
    column_drift,
    histograms,
    thresholds_of,
    worst,
)
from service.monitoring.profiles import column_profile
from service.run_events import openlineage_for
from tests.test_openlineage import check_runs

EPS = 1e-6
PARQUET = "application/vnd.apache.parquet"
WEATHER = ("temp", "dewp", "humid", "wind_speed", "visib", "precip", "pressure")
DEFAULT = Thresholds(0.1, 0.2, "default")


# -- independent references -----------------------------------------------------------------------


def ref_bins(baseline: np.ndarray) -> list[float]:
    """Inner edges: the 10 %, ..., 90 % quantiles of the baseline, ties collapsed (sorted set)."""
    return sorted({float(np.quantile(baseline, q / 10)) for q in range(1, 10)})


def ref_counts(inner: list[float], values: np.ndarray) -> np.ndarray:
    bounds = [-math.inf, *inner, math.inf]
    return np.array([np.sum((values > lo) & (values <= hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)])


def ref_psi(b: np.ndarray, t: np.ndarray) -> float:
    total = 0.0
    for bc, tc in zip(b, t, strict=True):
        pb, pt = max(bc / b.sum(), EPS), max(tc / t.sum(), EPS)
        total += (pt - pb) * math.log(pt / pb)
    return total


def ref_js(b: np.ndarray, t: np.ndarray) -> float:
    """sqrt(JS divergence), base 2, written out."""
    p, q = b / b.sum(), t / t.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray, y: np.ndarray) -> float:
        return sum(xi * math.log2(xi / yi) for xi, yi in zip(x, y, strict=True) if xi > 0)

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def ref_ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """max |F_a - F_b| over every observed value (the empirical CDFs compared everywhere they jump)."""
    points = np.unique(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), points, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), points, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def ref_chi2(b: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    table = np.vstack([b, t]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof))


def profiled(values: pd.Series) -> dict[str, Any]:
    return column_profile("x", values, "feature", "v:x")


# -- one column against the references ------------------------------------------------------------


def test_numeric_psi_js_ks_equal_the_references() -> None:
    rng = np.random.default_rng(12)
    base = pd.Series(np.concatenate([rng.normal(10, 2, 4000).round(1), [np.nan] * 40]))
    target = pd.Series(np.concatenate([rng.normal(11, 2.5, 3000).round(1), [np.nan] * 300]))
    out = column_drift(profiled(base), base, target, DEFAULT)
    b, t = base.dropna().to_numpy(), target.dropna().to_numpy()
    inner = ref_bins(b)
    bc, tc = ref_counts(inner, b), ref_counts(inner, t)
    assert out["bins"] == {"edges": inner, "baseline_counts": bc.tolist(), "target_counts": tc.tolist()}
    assert out["psi"] == pytest.approx(ref_psi(bc, tc), abs=1e-9)
    assert out["js"] == pytest.approx(ref_js(bc, tc), abs=1e-9)
    assert out["test"] == "ks"
    assert out["statistic"] == pytest.approx(ref_ks_statistic(b, t), abs=1e-9)
    assert out["p_value"] == pytest.approx(stats.ks_2samp(b, t).pvalue, abs=1e-9)
    assert out["null_rate_baseline"] == pytest.approx(40 / 4040, abs=1e-12)
    assert out["null_rate_target"] == pytest.approx(300 / 3300, abs=1e-12)
    assert out["verdict"] == ("drift" if out["psi"] >= 0.2 else "warn" if out["psi"] >= 0.1 else "ok")


@pytest.mark.parametrize("rounding", [1, None])
def test_ks_above_scipys_exact_limit_equals_ks_2samp(rounding: int | None) -> None:
    """Past 10,000 values a side the statistic is taken on the distinct values: the same figures as scipy."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 30_000), rng.normal(0.03, 1, 12_000)
    if rounding is not None:
        a, b = a.round(rounding), b.round(rounding)
    got = distances.ks_test(a, b)
    want = stats.ks_2samp(a, b)
    assert got[0] == pytest.approx(ref_ks_statistic(a, b), abs=1e-12)
    assert got == (pytest.approx(float(want.statistic), abs=1e-12), pytest.approx(float(want.pvalue), abs=1e-12))


def test_same_distribution_is_ok_and_values_outside_the_baseline_land_in_open_bins() -> None:
    base = pd.Series(np.arange(1000, dtype=float))
    same = column_drift(profiled(base), base, base.copy(), DEFAULT)
    assert same["psi"] == pytest.approx(0.0, abs=1e-12) and same["verdict"] == "ok" and same["js"] == 0.0
    far = pd.Series([-1e9, 1e9, 5e9])
    out = column_drift(profiled(base), base, far, DEFAULT)
    assert out["bins"]["target_counts"][0] == 1 and out["bins"]["target_counts"][-1] == 2
    assert sum(out["bins"]["target_counts"]) == 3 and out["verdict"] == "drift"


def test_all_equal_baseline() -> None:
    base = pd.Series([2.0] * 500)
    target = pd.Series([2.0] * 300 + [1.0] * 100 + [3.0] * 100)
    out = column_drift(profiled(base), base, target, DEFAULT)
    assert out["bins"]["baseline_counts"] == [0, 500, 0] and out["bins"]["target_counts"] == [100, 300, 100]
    bc, tc = np.array([0, 500, 0]), np.array([100, 300, 100])
    assert out["psi"] == pytest.approx(ref_psi(bc, tc), abs=1e-9)
    assert out["js"] == pytest.approx(ref_js(bc, tc), abs=1e-9)
    assert out["statistic"] == pytest.approx(ref_ks_statistic(base.to_numpy(), target.to_numpy()), abs=1e-9)
    unchanged = column_drift(profiled(base), base, pd.Series([2.0] * 7), DEFAULT)
    assert unchanged["psi"] == 0.0 and unchanged["verdict"] == "ok" and unchanged["p_value"] == 1.0


def test_all_null_columns() -> None:
    empty = pd.Series([np.nan] * 50)
    both = column_drift(profiled(empty), empty, pd.Series([np.nan] * 9), DEFAULT)
    assert (both["psi"], both["js"], both["test"], both["p_value"], both["verdict"]) == (None, None, None, None, "ok")
    assert both["null_rate_baseline"] == 1.0 and both["null_rate_target"] == 1.0
    appeared = column_drift(profiled(empty), empty, pd.Series([1.0, np.nan]), DEFAULT)
    assert appeared["psi"] is None and appeared["verdict"] == "drift" and appeared["null_rate_target"] == 0.5
    base = pd.Series([1.0, 2.0, 3.0])
    vanished = column_drift(profiled(base), base, pd.Series([np.nan, np.nan]), DEFAULT)
    assert vanished["psi"] is None and vanished["verdict"] == "drift" and vanished["null_rate_target"] == 1.0


def test_categorical_psi_js_chi2_equal_the_references() -> None:
    base = pd.Series(["UA"] * 500 + ["B6"] * 300 + ["AA"] * 150 + [f"x{i}" for i in range(25)] + [None] * 5)
    target = pd.Series(["UA"] * 200 + ["B6"] * 400 + ["DL"] * 120 + ["x0"] * 3)
    p = profiled(base)
    assert p["kind"] == "categorical" and len(p["categories"]) == 20
    out = column_drift(p, base, target, DEFAULT)
    cats = p["categories"]
    bc = np.array([(base == c).sum() for c in cats] + [base.notna().sum() - sum((base == c).sum() for c in cats)])
    tc = np.array([(target == c).sum() for c in cats] + [len(target) - sum((target == c).sum() for c in cats)])
    assert out["bins"] == {"categories": [*cats, "other"], "baseline_counts": bc.tolist(), "target_counts": tc.tolist()}
    assert out["psi"] == pytest.approx(ref_psi(bc, tc), abs=1e-9)
    assert out["js"] == pytest.approx(ref_js(bc, tc), abs=1e-9)
    statistic, p_value = ref_chi2(bc, tc)
    assert out["test"] == "chi2"
    assert out["statistic"] == pytest.approx(statistic, abs=1e-9) and out["p_value"] == pytest.approx(p_value, abs=1e-9)
    assert out["verdict"] == "drift"


def test_booleans_and_small_integers_never_match_across_types() -> None:
    base = pd.Series([True] * 60 + [False] * 40, dtype="boolean")
    target = pd.Series([True] * 30 + [False] * 70, dtype="boolean")
    out = column_drift(profiled(base), base, target, DEFAULT)
    assert out["bins"]["target_counts"] == [30, 70, 0]
    ints = pd.Series([1, 1, 0, 0], dtype="Int64")
    as_text = column_drift(profiled(ints), ints, pd.Series(["1", "0"]), DEFAULT)
    assert as_text["bins"]["target_counts"] == [0, 0, 2]  # "1" is not 1: other
    single = column_drift(profiled(pd.Series(["a"] * 4)), pd.Series(["a"] * 4), pd.Series(["a", "a"]), DEFAULT)
    assert (single["psi"], single["statistic"], single["p_value"]) == (0.0, 0.0, 1.0)


def test_verdicts_follow_thresholds_and_tags() -> None:
    th = Thresholds(0.1, 0.2, "default")
    assert [th.verdict(x) for x in (0.0, 0.0999, 0.1, 0.1999, 0.2, 5.0)] == [
        "ok",
        "ok",
        "warn",
        "warn",
        "drift",
        "drift",
    ]
    assert worst(["ok", "drift", "warn"]) == "drift" and worst(["ok"]) == "ok"

    def view(name: str, tags: dict[str, str], features: dict[str, dict[str, str]]) -> SimpleNamespace:
        fv = SimpleNamespace(
            name=name, tags=tags, features=[SimpleNamespace(name=f, tags=t) for f, t in features.items()]
        )
        return SimpleNamespace(name=name, definition=fv)

    plan = SimpleNamespace(
        views=(
            view("w", {"feastline.psi_warn": "0.05"}, {"a": {}, "b": {"feastline.psi_drift": "0.5"}}),
            view("c", {}, {"d": {}}),
        ),
        on_demand=(),
    )
    got = thresholds_of(plan)  # type: ignore[arg-type]
    assert got["w:a"] == (Thresholds(0.05, 0.2, "feature_view:w"), "feature:w.a")
    assert got["w:b"] == (Thresholds(0.05, 0.5, "feature:w.b"), "feature:w.b")
    assert got["c:d"] == (Thresholds(0.1, 0.2, "default"), "feature:c.d")
    for bad in ({"feastline.psi_warn": "high"}, {"feastline.psi_drift": "-1"}, {"feastline.psi_warn": "0.3"}):
        broken = SimpleNamespace(views=(view("w", bad, {"a": {}}),), on_demand=())
        with pytest.raises(ThresholdTagInvalid):
            thresholds_of(broken)  # type: ignore[arg-type]


# -- the real data ----------------------------------------------------------------------------------


def flights(built_repo: Any, start: str, end: str) -> pd.DataFrame:
    frame = pd.read_parquet(built_repo / "data" / "flights.parquet")
    ts = frame["event_timestamp"]
    return frame.loc[(ts >= start) & (ts < end), ["origin", "carrier", "event_timestamp", "label_delayed"]]


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def training_set(client: Any, frame: pd.DataFrame) -> str:
    made = client.post(
        "/training-sets?feature_service=delay_model_v1",
        content=parquet(frame),
        headers={"content-type": PARQUET, "accept": PARQUET},
    )
    assert made.status_code == 201, made.text
    return str(made.headers["x-training-set-id"])


@pytest.fixture(scope="module")
def seasons(client: Any, built_repo: Any) -> dict[str, Any]:
    """A January-September training set (with a model registered on it) and an October-December one."""
    jan_sep = training_set(client, flights(built_repo, "2013-01-01", "2013-10-01"))
    oct_dec = training_set(client, flights(built_repo, "2013-10-01", "2014-01-01"))
    model = client.post("/models", json={"name": "drift_baseline", "version": "1", "training_set_id": jan_sep})
    assert model.status_code == 201, model.text
    data = {
        name: pd.read_parquet(io.BytesIO(client.get(f"/training-sets/{ts}/data").content))
        for name, ts in (("base", jan_sep), ("target", oct_dec))
    }
    return {"jan_sep": jan_sep, "oct_dec": oct_dec, **data}


def test_january_september_against_october_december(client: Any, seasons: dict[str, Any]) -> None:
    body = {"baseline": {"training_set_id": seasons["jan_sep"]}, "target": {"training_set_id": seasons["oct_dec"]}}
    answer = client.post("/monitoring/drift", json=body)
    assert answer.status_code == 201, answer.text
    report = answer.json()
    by_name = {f["name"]: f for f in report["features"]}
    assert set(WEATHER) <= set(by_name) and len(by_name) == 12  # delay_model_v1: 8 weather + 4 carrier features
    for name in WEATHER:
        b, t = seasons["base"][name].dropna().to_numpy(), seasons["target"][name].dropna().to_numpy()
        inner = ref_bins(b)
        bc, tc = ref_counts(inner, b), ref_counts(inner, t)
        got = by_name[name]
        assert got["psi"] == pytest.approx(ref_psi(bc, tc), abs=1e-9), name
        assert got["js"] == pytest.approx(ref_js(bc, tc), abs=1e-9), name
        assert got["p_value"] == pytest.approx(stats.ks_2samp(b, t).pvalue, abs=1e-9), name
        assert got["null_rate_baseline"] == pytest.approx(seasons["base"][name].isna().mean(), abs=1e-12)
        assert got["null_rate_target"] == pytest.approx(seasons["target"][name].isna().mean(), abs=1e-12)
    psi = {n: by_name[n]["psi"] for n in WEATHER}
    assert by_name["temp"]["verdict"] == by_name["dewp"]["verdict"] == "drift"
    assert psi["temp"] == pytest.approx(0.82, abs=0.02)
    assert psi["dewp"] > 0.6  # 0.72 on these right-closed bins; 0.80 on left-closed ones (see the report)
    assert psi["pressure"] == pytest.approx(0.20, abs=0.02)
    for calm in ("humid", "wind_speed", "visib"):
        assert psi[calm] <= 0.014 and by_name[calm]["verdict"] == "ok", (calm, psi[calm])
    assert report["verdict"] == "drift"
    assert client.get(f"/monitoring/drift/{report['id']}").json() == report


def test_model_baseline_and_entity_rows_target_join_like_a_training_set(
    client: Any, seasons: dict[str, Any], built_repo: Any
) -> None:
    oct_dec = flights(built_repo, "2013-10-01", "2014-01-01")
    by_rows = client.post(
        "/monitoring/drift?model_name=drift_baseline&model_version=1&features=temp&features=humid",
        content=parquet(oct_dec),
        headers={"content-type": PARQUET},
    )
    assert by_rows.status_code == 201, by_rows.text
    by_set = client.post(
        "/monitoring/drift",
        json={
            "baseline": {"training_set_id": seasons["jan_sep"]},
            "target": {"training_set_id": seasons["oct_dec"]},
            "features": ["temp", "humid"],
        },
    ).json()
    rows, stored = by_rows.json(), by_set

    def values(report: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(f["name"], f["psi"], f["js"], f["p_value"], f["verdict"]) for f in report["features"]]

    assert values(rows) == values(stored)  # joined point in time exactly as the stored October-December set
    assert rows["baseline"] == {"training_set_id": seasons["jan_sep"], "model": "drift_baseline@1", "row_count": 252392}
    assert rows["target"] == {"kind": "entity_rows", "row_count": len(oct_dec)}
    small = oct_dec.head(3).assign(event_timestamp=lambda f: f["event_timestamp"].map(lambda t: t.isoformat()))
    as_json = client.post(
        "/monitoring/drift",
        json={
            "baseline": {"model": {"name": "drift_baseline", "version": "1"}},
            "target": {"entity_rows": small.to_dict("records")},
            "features": ["temp"],
        },
    )
    assert as_json.status_code == 201, as_json.text
    assert as_json.json()["features"][0]["name"] == "temp"


def test_report_in_lineage_openlineage_and_metrics(client: Any, seasons: dict[str, Any]) -> None:
    body = {
        "baseline": {"model": {"name": "drift_baseline", "version": "1"}},
        "target": {"training_set_id": seasons["oct_dec"]},
    }
    report = client.post("/monitoring/drift", json=body).json()
    node = client.get(f"/lineage/nodes/training_set:{seasons['jan_sep']}").json()["attributes"]["last_drift"]
    assert node == {"id": report["id"], "verdict": "drift", "created_at": report["created_at"]}
    model = client.get("/lineage/nodes/model:drift_baseline@1").json()["attributes"]["last_drift"]
    assert model["id"] == report["id"]
    temp = client.get("/lineage/nodes/feature:origin_weather.temp").json()["attributes"]["last_drift"]
    assert temp["id"] == report["id"] and temp["psi"] == next(
        f["psi"] for f in report["features"] if f["name"] == "temp"
    )
    humid = client.get("/lineage/nodes/feature:origin_weather.humid").json()["attributes"]
    assert humid.get("last_drift", {}).get("id") != report["id"]  # ok features are not marked

    emitter = openlineage_for(client.app.state.lineage)
    events = [e for e in emitter.events(job="drift", limit=1000)]
    check_runs(events)  # each validates against the spec and our facet schema; START + COMPLETE per run
    done = next(
        e
        for e in events
        if e["eventType"] == "COMPLETE" and e["inputs"][1]["inputFacets"]["feastline_drift"]["driftId"] == report["id"]
    )
    base, target = done["inputs"]
    assert (
        base["name"] == f"training_set:{seasons['jan_sep']}" and target["name"] == f"training_set:{seasons['oct_dec']}"
    )
    metrics = base["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 252392
    assert metrics["columnMetrics"]["temp"]["nullCount"] == int(seasons["base"]["temp"].isna().sum())
    assert metrics["columnMetrics"]["temp"]["quantiles"]["0.5"] == pytest.approx(seasons["base"]["temp"].quantile(0.5))
    facet = target["inputFacets"]["feastline_drift"]
    assert {f["name"]: f["verdict"] for f in facet["features"]}["temp"] == "drift"

    text = client.get("/metrics").text
    temp_psi = next(f["psi"] for f in report["features"] if f["name"] == "temp")
    assert f'feastline_drift_psi{{feature="temp",feature_view="origin_weather"}} {temp_psi!r}' in text
    assert 'feastline_drift_verdict{feature="temp",feature_view="origin_weather"} 2.0' in text
    assert 'feastline_drift_verdict{feature="humid",feature_view="origin_weather"} 0.0' in text


def test_histograms_for_the_page(client: Any, seasons: dict[str, Any]) -> None:
    body = {"baseline": {"training_set_id": seasons["jan_sep"]}, "target": {"training_set_id": seasons["oct_dec"]}}
    report_id = client.post("/monitoring/drift", json=body).json()["id"]
    stored = client.app.state.drift_reports.get(report_id)
    pictures = {h["name"]: h for h in histograms(stored)}
    temp = pictures["temp"]
    b = seasons["base"]["temp"].dropna().to_numpy()
    t = seasons["target"]["temp"].dropna().to_numpy()
    assert temp["edges"] == ref_bins(b)
    assert temp["baseline_counts"] == ref_counts(temp["edges"], b).tolist()
    assert temp["target_counts"] == ref_counts(temp["edges"], t).tolist()
    assert temp["thresholds"] == {"warn": 0.1, "drift": 0.2} and temp["verdict"] == "drift"
    assert pictures["precip"]["edges"] == ref_bins(seasons["base"]["precip"].dropna().to_numpy())  # collapsed


# -- errors ---------------------------------------------------------------------------------------------


def fill(body: Any, ids: dict[str, str]) -> Any:
    """``body`` with the placeholders ``JAN`` / ``OCT`` replaced by the module's training-set ids."""
    if isinstance(body, dict):
        return {k: fill(v, ids) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, ids) for v in body]
    return ids.get(body, body) if isinstance(body, str) else body


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {
                "baseline": {"training_set_id": "a", "model": {"name": "m", "version": "1"}},
                "target": {"training_set_id": "b"},
            },
            422,
            "baseline",
        ),
        (
            {"baseline": {"training_set_id": "ts-nope"}, "target": {"training_set_id": "b"}},
            404,
            "baseline.training_set_id",
        ),
        (
            {"baseline": {"model": {"name": "nope", "version": "1"}}, "target": {"training_set_id": "b"}},
            404,
            "baseline.model",
        ),
        ({"baseline": {"training_set_id": "JAN"}, "target": {}}, 422, "target"),
        (
            {"baseline": {"training_set_id": "JAN"}, "target": {"training_set_id": "ts-nope"}},
            404,
            "target.training_set_id",
        ),
        (
            {"baseline": {"training_set_id": "JAN"}, "target": {"training_set_id": "OCT"}, "features": ["nope"]},
            422,
            "features.0",
        ),
        (
            {
                "baseline": {"training_set_id": "JAN"},
                "target": {"training_set_id": "OCT"},
                "features": ["event_timestamp"],
            },
            422,
            "features.0",
        ),
        (  # a column named twice, by its name or by its reference (was a 500 from KS on a numeric column)
            {
                "baseline": {"training_set_id": "JAN"},
                "target": {"training_set_id": "OCT"},
                "features": ["temp", "temp"],
            },
            422,
            "features.1",
        ),
        (
            {
                "baseline": {"training_set_id": "JAN"},
                "target": {"training_set_id": "OCT"},
                "features": ["dewp", "origin_weather:dewp"],
            },
            422,
            "features.1",
        ),
        (  # a model name no model can have (control characters): refused by the schema, as POST /models does
            {"baseline": {"model": {"name": "m\u0006", "version": "1"}}, "target": {"training_set_id": "OCT"}},
            422,
            "baseline.model.name",
        ),
        (
            {
                "baseline": {"training_set_id": "JAN"},
                "target": {"window": {"start": "2013-12-01T00:00:00Z", "end": "2013-11-01T00:00:00Z"}},
            },
            422,
            "target.window",
        ),
        (
            {
                "baseline": {"training_set_id": "JAN"},
                "target": {"window": {"start": "2013-11-01T00:00:00", "end": "2013-12-01T00:00:00Z"}},
            },
            422,
            "target.window.start",
        ),
    ],
)
def test_bad_requests_are_problems_naming_the_field(
    client: Any, seasons: dict[str, Any], body: dict[str, Any], status: int, field: str
) -> None:
    answer = client.post("/monitoring/drift", json=fill(body, {"JAN": seasons["jan_sep"], "OCT": seasons["oct_dec"]}))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field
    assert client.get("/monitoring/drift/drift-nope").status_code == 404


def test_window_needs_the_online_log(client: Any, seasons: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "baseline": {"training_set_id": seasons["jan_sep"]},
        "target": {"window": {"start": "2013-12-01T00:00:00Z", "end": "2013-12-02T00:00:00Z"}},
        "features": ["temp"],
    }
    if "service.monitoring.online_log" not in sys.modules:
        try:
            import service.monitoring.online_log  # noqa: F401
        except ModuleNotFoundError:
            unavailable = client.post("/monitoring/drift", json=body)
            assert unavailable.status_code == 409 and unavailable.json()["field"] == "target.window"
    logged = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3", "r4"],
            "logged_at": pd.to_datetime(
                ["2013-12-01T10:00:00Z", "2013-12-01T10:00:00Z", "2013-12-01T15:30:00Z", "2013-12-03T00:00:00Z"],
                utc=True,
            ),
            "sequence": [2, 1, 3, 4],
            "feature_service": ["delay_model_v1"] * 4,
            "origin": ["EWR", "JFK", "LGA", "EWR"],
            "carrier": ["UA", "B6", "AA", "UA"],
            "temp": [1.0, 2.0, 3.0, 4.0],
            "status": ["PRESENT"] * 4,
        }
    )
    fake = types.ModuleType("service.monitoring.online_log")
    fake.read_log = lambda settings, start, end: logged  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "service.monitoring.online_log", fake)
    answer = client.post("/monitoring/drift", json=body)
    assert answer.status_code == 201, answer.text
    report = answer.json()
    assert report["target"] == {
        "kind": "window",
        "start": "2013-12-01T00:00:00Z",
        "end": "2013-12-02T00:00:00Z",
        "row_count": 3,
    }
    entity = pd.DataFrame(
        {
            "origin": ["JFK", "EWR", "LGA"],  # (logged_at, sequence) order; the request after the window left out
            "carrier": ["B6", "UA", "AA"],
            "event_timestamp": ["2013-12-01T10:00:00Z", "2013-12-01T10:00:00Z", "2013-12-01T15:30:00Z"],
        }
    )
    joined = client.post(
        "/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": entity.to_dict("records")}
    )
    temps = pd.Series([r["temp"] for r in joined.json()["rows"]], dtype=float)
    b = seasons["base"]["temp"].dropna().to_numpy()
    inner = ref_bins(b)
    assert report["features"][0]["psi"] == pytest.approx(
        ref_psi(ref_counts(inner, b), ref_counts(inner, temps.dropna().to_numpy())), abs=1e-9
    )
    other = logged.assign(feature_service="delay_model_v2")
    monkeypatch.setattr(drift_mod, "entity_rows_in_window", lambda *a: other)
    elsewhere = client.post("/monitoring/drift", json=body)
    assert elsewhere.status_code == 422 and elsewhere.json()["field"] == "target.window"
    assert "'delay_model_v1'" in elsewhere.text and "delay_model_v2" in elsewhere.text  # what it does hold
    monkeypatch.setattr(drift_mod, "entity_rows_in_window", lambda *a: logged.iloc[:0])
    empty = client.post("/monitoring/drift", json=body)
    assert empty.status_code == 422 and empty.json()["field"] == "target.window"


def test_profile_kept_in_degenerate_real_columns(seasons: dict[str, Any], client: Any) -> None:
    profile = client.get(f"/training-sets/{seasons['jan_sep']}/profile").json()
    precip = next(c for c in profile["columns"] if c["name"] == "precip")
    assert precip["ties"] and len(precip["counts"]) < 10  # mostly 0: the quantile edges collapse
    ts = next(c for c in profile["columns"] if c["name"] == "event_timestamp")
    assert datetime.fromisoformat(ts["max"]) < datetime(2013, 10, 1, tzinfo=UTC)
