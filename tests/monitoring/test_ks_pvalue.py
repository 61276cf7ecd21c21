"""The KS p-value of large samples (``distances.ks_pvalue``) equals scipy's ``kstwo.sf`` in every regime of
scipy's ``_kolmogn`` (and so ``ks_2samp``'s asymptotic p-value), and the sorted baseline columns kept
between drift reports (``baseline_rows``) are the stored rows, sorted, re-read when the file changes."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from service.monitoring import distances
from service.monitoring.baseline_rows import SortedColumnCache

TINY = 1e-290  # below it (smirnov's sum near the underflow) p-values are compared absolutely


def scipy_sf(d: float, n: int) -> float:
    return float(np.clip(stats.kstwo.sf(d, n), 0, 1))


def assert_same(got: float, want: float) -> None:
    if want < TINY:
        assert abs(got - want) <= TINY, (got, want)
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=0), (got, want)


# n d^2 at scipy's cut-offs (2.2: the smirnov branch starts; 354.2: smirnov underflows; 370: 0) and between
NXX = (0.3, 1.0, 2.19, 2.2, 2.5, 4.6, 7.4, 20.0, 46.0, 120.0, 212.0, 300.0, 354.0, 354.3, 369.9, 370.0, 400.0)
SIZES = (141, 1_000, 24_000, 144_107)  # and 10**6, the largest n summed, at the edges below


@pytest.mark.parametrize("n", SIZES)
def test_equals_kstwo_sf_across_n_d2(n: int) -> None:
    for nxx in NXX:
        d = float(np.sqrt(nxx / n))
        if d >= 1:
            continue
        assert_same(distances.ks_pvalue(d, n), scipy_sf(d, n))


@pytest.mark.parametrize(
    ("d", "n"),
    [
        (0.0, 200_000),  # no difference
        (1.0, 200_000),  # disjoint samples
        (0.5, 200_000),  # scipy: 2 * smirnov for d >= 1/2
        (0.49, 150),  # just past n <= 140
        (0.3, 140),  # n <= 140: Durbin / Pomeranz / smirnov routes
        (0.05, 140),
        (1.0 / 150_000, 150_000),  # n d = 1 (Ruben-Gambino)
        (1.5 / 150_000, 150_000),
        (0.9, 11),  # n d >= n - 1
        (0.2, 1),
        (float("nan"), 150_000),
        (float(np.sqrt(46.0 / 1_000_000)), 1_000_000),  # the largest n scipy sums
        (float(np.sqrt(46.0 / 1_000_001)), 1_000_001),  # above: scipy's closed form, called as is
    ],
)
def test_equals_kstwo_sf_at_the_edges(d: float, n: int) -> None:
    want = scipy_sf(d, n)
    got = distances.ks_pvalue(d, n)
    if np.isnan(want):
        assert np.isnan(got)
    else:
        assert_same(got, want)


def test_random_points_of_the_smirnov_regime() -> None:
    rng = np.random.default_rng(7)
    for _ in range(12):
        n = int(rng.integers(141, 400_000))
        d = float(np.sqrt(rng.uniform(2.2, 370) / n))
        assert_same(distances.ks_pvalue(d, n), scipy_sf(d, n))


def test_the_fast_sum_is_what_answers_the_slow_regime(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the smirnov regime scipy is not called at all (that is where it took ~0.2-0.5 s a feature)."""
    n, d = 144_107, 0.005633897532439924  # humid, all 2013 flights against January-September
    want = scipy_sf(d, n)

    def refuse(*_: object) -> float:
        raise AssertionError("kstwo.sf called")

    monkeypatch.setattr(distances.kstwo, "sf", refuse)
    assert_same(distances.ks_pvalue(d, n), want)


@pytest.mark.parametrize(("shift", "scale"), [(0.004, 1.0), (0.01, 1.0), (0.0, 1.003), (0.05, 1.0), (0.0, 1.0)])
def test_ks_test_of_large_samples_equals_ks_2samp(shift: float, scale: float) -> None:
    """Samples of drift-report size, rounded like weather data (ties), d across the regimes."""
    rng = np.random.default_rng(int(shift * 1000 + scale * 10))
    a = rng.normal(0, 1, 252_000).round(2)
    b = (rng.normal(shift, scale, 336_000)).round(2)
    want = stats.ks_2samp(a, b)
    got = distances.ks_test(a, b)
    presorted = distances.ks_test(np.sort(a), np.sort(b), presorted=True)
    assert got == presorted
    assert got[0] == pytest.approx(float(want.statistic), abs=1e-12)
    assert_same(got[1], float(want.pvalue))


# -- the sorted baseline columns ------------------------------------------------------------------


def test_sorted_columns_are_the_rows_sorted_and_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "set.parquet"
    rng = np.random.default_rng(1)
    x = np.where(rng.random(500) < 0.1, np.nan, rng.normal(size=500))
    frame = pd.DataFrame({"x": x, "k": pd.array(rng.integers(0, 5, 500), dtype="Int64")})
    frame.loc[::7, "k"] = pd.NA
    frame.to_parquet(path)
    cache = SortedColumnCache()
    got = cache.get(path, ["x", "k"])
    assert np.array_equal(got["x"], np.sort(x[~np.isnan(x)]))
    assert np.array_equal(got["k"], np.sort(frame["k"].dropna().to_numpy(dtype=np.float64)))
    assert not got["x"].flags.writeable
    assert cache.get(path, ["x"])["x"] is got["x"]  # kept
    changed = frame.assign(x=frame["x"] + 1)
    changed.to_parquet(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    again = cache.get(path, ["x"])["x"]
    assert np.array_equal(again, np.sort(x[~np.isnan(x)] + 1))  # the file changed: read again


def test_sorted_columns_stay_within_their_bytes(tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"s{i}.parquet")
        pd.DataFrame({"x": np.arange(1000, dtype=np.float64) + i}).to_parquet(paths[-1])
    cache = SortedColumnCache(max_bytes=2 * 8000)  # two columns of 1,000 float64s
    first = cache.get(paths[0], ["x"])["x"]
    cache.get(paths[1], ["x"])
    assert cache.get(paths[0], ["x"])["x"] is first  # used last: paths[1] is now the oldest
    cache.get(paths[2], ["x"])
    assert cache.nbytes <= 2 * 8000
    assert cache.get(paths[0], ["x"])["x"] is first
    assert np.array_equal(cache.get(paths[1], ["x"])["x"], np.arange(1000) + 1.0)  # evicted, read again
