"""How far a target column is from its baseline: PSI, Jensen-Shannon distance, KS and chi-square.

All functions are pure (arrays in, numbers out). The bins are the baseline's, from its profile
(:mod:`service.monitoring.profiles`): right-closed numeric bins open at both ends, or the top-k
categories plus ``other``. With baseline proportions ``b_i`` and target proportions ``t_i`` over the
same bins (missing values left out of both):

- **PSI** = ``sum_i (t'_i - b'_i) * ln(t'_i / b'_i)`` with ``p' = max(p, EPS)``, ``EPS = 1e-6`` (a bin
  empty on one side counts as ``EPS``, so the sum stays finite);
- **JS**: ``scipy.spatial.distance.jensenshannon(b, t, base=2)``, the Jensen-Shannon *distance* (the
  square root of the divergence), in [0, 1], on the unsmoothed proportions;
- numeric columns: **KS**, two-sided two-sample, on the baseline's stored rows and the target's
  values, as ``scipy.stats.ks_2samp`` computes it (exact or asymptotic as scipy picks; see :func:`ks_test`);
- categorical columns: **chi-square** of homogeneity, ``scipy.stats.chi2_contingency`` on the 2 x k
  table of baseline and target counts (categories empty on both sides left out; one category left: 0,
  p = 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, kstwo

from service.monitoring.profiles import sorted_counts

EPS = 1e-6


def numeric_counts(edges: list[float], values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` (no NaN, sorted or not) in the bins of the inner ``edges`` (``len(edges) + 1``
    right-closed bins, open at both ends: :func:`service.monitoring.profiles.bin_index`)."""
    return sorted_counts(np.asarray(edges, dtype=np.float64), np.sort(values))


def categorical_counts(categories: list[Any], values: pd.Series) -> np.ndarray:
    """Counts of ``values`` (no missing) per category, then one more for ``other`` (anything else)."""
    kind = _KINDS.get(pd.api.types.infer_dtype(values, skipna=True))
    if kind is not None and all(_key(c)[0] == kind for c in categories):  # one kind on both sides: vectorised
        codes = pd.Categorical(values, categories=categories).codes.astype(np.int64)
        codes[codes < 0] = len(categories)
    else:
        index = {_key(c): i for i, c in enumerate(categories)}
        codes = np.fromiter((index.get(_key(v), len(categories)) for v in values.tolist()), dtype=np.int64)
    return np.bincount(codes, minlength=len(categories) + 1)


_KINDS = {"string": "str", "boolean": "bool", "integer": "int"}  # pandas' inferred type -> _key's kind


def _key(value: Any) -> tuple[str, Any]:
    """A category's identity: its kind and value, so ``True`` never matches ``1`` (nor ``1`` ``"1"``)."""
    if isinstance(value, bool | np.bool_):
        return ("bool", bool(value))
    if isinstance(value, int | np.integer):
        return ("int", int(value))
    return (type(value).__name__, value)


def psi(baseline: np.ndarray, target: np.ndarray, eps: float = EPS) -> float:
    """Population stability index of two count vectors over the same bins (see the module docstring)."""
    b = np.maximum(baseline / baseline.sum(), eps)
    t = np.maximum(target / target.sum(), eps)
    return float(np.sum((t - b) * np.log(t / b)))


def js_distance(baseline: np.ndarray, target: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2, of two count vectors over the same bins."""
    return float(jensenshannon(baseline / baseline.sum(), target / target.sum(), base=2))


KS_EXACT_MAX_N = 10_000  # scipy's own limit: ks_2samp(method="auto") is exact up to it, asymptotic above


def ks_test(baseline: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample Kolmogorov-Smirnov test, as ``scipy.stats.ks_2samp``
    (``method="auto"``) gives them.

    Up to ``KS_EXACT_MAX_N`` values on a side it is ``ks_2samp`` itself (the exact distribution). Above,
    where ``ks_2samp`` is asymptotic, the statistic is computed on the distinct values only (the
    empirical CDFs jump nowhere else, so the maximum is the same number) and the p-value is scipy's
    asymptotic one, ``scipy.stats.kstwo.sf(d, round(m n / (m + n)))``: the same figures, about 5x faster
    on weather data (a few hundred distinct values in 300,000 rows), which keeps a 12-feature report on
    336,776 rows within its second.
    """
    if max(len(baseline), len(target)) <= KS_EXACT_MAX_N:
        result = ks_2samp(baseline, target)
        return float(result.statistic), float(result.pvalue)
    b, t = np.sort(baseline), np.sort(target)
    points = np.concatenate([_distinct(b), _distinct(t)])  # any order: only the maximum is needed
    cdf_b = np.searchsorted(b, points, side="right") / len(b)
    cdf_t = np.searchsorted(t, points, side="right") / len(t)
    d = float(np.max(np.abs(cdf_b - cdf_t)))
    m, n = sorted([float(len(b)), float(len(t))], reverse=True)
    return d, float(np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def _distinct(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array, in one pass."""
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def chi2_test(baseline: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the chi-square test of homogeneity of two count vectors."""
    table = np.vstack([baseline, target])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)
