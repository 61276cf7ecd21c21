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

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import scipy.special._ufuncs as scu
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, kstwo

from service.monitoring.profiles import sorted_counts

EPS = 1e-6


def numeric_counts(edges: list[float], values: np.ndarray, *, presorted: bool = False) -> np.ndarray:
    """Counts of ``values`` (no NaN; sorted ascending if ``presorted``) in the bins of the inner ``edges``
    (``len(edges) + 1`` right-closed bins, open at both ends: :func:`service.monitoring.profiles.bin_index`)."""
    return sorted_counts(np.asarray(edges, dtype=np.float64), values if presorted else np.sort(values))


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


def ks_test(baseline: np.ndarray, target: np.ndarray, *, presorted: bool = False) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample Kolmogorov-Smirnov test, as ``scipy.stats.ks_2samp``
    (``method="auto"``) gives them.

    Args:
        baseline, target: float64 values, no NaN (any length).
        presorted: both arrays are already sorted ascending (they are not sorted again).

    Up to ``KS_EXACT_MAX_N`` values on a side it is ``ks_2samp`` itself (the exact distribution). Above,
    where ``ks_2samp`` is asymptotic, the statistic is computed on the distinct values only (the
    empirical CDFs jump nowhere else, so the maximum is the same number) and the p-value is scipy's
    asymptotic one, ``scipy.stats.kstwo.sf(d, round(m n / (m + n)))``, through :func:`ks_pvalue`
    (equal to it, about 10x faster where it is slowest).
    """
    if max(len(baseline), len(target)) <= KS_EXACT_MAX_N:
        result = ks_2samp(baseline, target)
        return float(result.statistic), float(result.pvalue)
    b, t = (baseline, target) if presorted else (np.sort(baseline), np.sort(target))
    points = np.concatenate([_distinct(b), _distinct(t)])  # any order: only the maximum is needed
    cdf_b = np.searchsorted(b, points, side="right") / len(b)
    cdf_t = np.searchsorted(t, points, side="right") / len(t)
    d = float(np.max(np.abs(cdf_b - cdf_t)))
    m, n = sorted([float(len(b)), float(len(t))], reverse=True)
    return d, ks_pvalue(d, int(np.round(m * n / (m + n))))


# scipy's _kolmogn (scipy/stats/_ksstats.py, Simard & L'Ecuyer) answers the survival function for
# n > 140 and 2.2 <= n d^2 < 370 with 2 * scipy.special.smirnov(n, d); smirnov sums up to n terms one
# by one in double-double arithmetic: ~0.1-0.5 s at n ~ 140,000, the cost of a drift report.
_SMIRNOV_MIN_N = 141  # _kolmogn: n <= 140 takes other (cheap) routes
_SMIRNOV_MAX_N = 1_000_000  # xsf's SMIRNOV_MAX_COMPUTE_N: above, smirnov is a cheap closed form
_SF_ZERO_NXX, _SF_SMIRNOV_NXX = 370.0, 2.2  # _kolmogn's cut-offs on n d^2 for the survival function
_MINLOG = -7.08396418532264106224e2  # cephes' MINLOG, log(2**-1022): smirnov's underflow cut-off


def ks_pvalue(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)`` clipped to [0, 1], the p-value of the asymptotic two-sample KS test
    (``n = round(m n / (m + n))``): the same number, faster where scipy is slow.

    Where scipy computes ``2 * scipy.special.smirnov(n, d)`` with ``n > 140`` (``2.2 <= n d^2 < 370``,
    ``1 < n d < n - 1``, ``d < 1/2``, ``n <= 10**6``), it is computed here with the same formula
    (Birnbaum-Tingey / Smirnov, the lower sum xsf's ``_smirnov`` takes in that range):
    ``smirnov(n, d) = d * sum_{v=0}^{n - floor(n d) - 1} C(n, v) (d + v/n)^(v-1) (1 - d - v/n)^(n-v)``,
    every term at once as ``binom.pmf(v; n, d + v/n) / (d + v/n)`` (scipy's Boost ``_binom_pmf``) and
    summed with numpy; it agrees with scipy to ~1e-13 relative
    (``tests/monitoring/test_ks_pvalue.py`` checks 1e-9 across n and d). Everywhere else it is
    ``kstwo.sf`` itself.

    Args:
        d: the KS statistic, in [0, 1].
        n: the effective sample size, >= 1.
    """
    t = n * d
    nxx = t * d  # as _kolmogn computes n d^2
    if not (_SMIRNOV_MIN_N <= n <= _SMIRNOV_MAX_N and 1.0 < t < n - 1 and d < 0.5 and nxx >= _SF_SMIRNOV_NXX):
        return float(np.clip(kstwo.sf(d, n), 0, 1))
    if nxx >= _SF_ZERO_NXX or -2 * n * d * d < _MINLOG:  # _kolmogn's 0, then smirnov's underflow
        return 0.0
    return float(np.clip(2 * _smirnov_sum(n, d), 0, 1))


def _smirnov_sum(n: int, d: float) -> float:
    """``scipy.special.smirnov(n, d)`` by its lower sum, vectorised (see :func:`ks_pvalue`; 1 < n d < n - 1)."""
    last = n - math.floor(Fraction(d) * n) - 1  # floor(n d) exactly, as xsf's modNX
    v = np.arange(last + 1, dtype=np.float64)
    p = d + v / n
    terms = scu._binom_pmf(v, float(n), p) / p
    return float(np.clip(d * float(np.sum(terms)), 0.0, 1.0))


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
