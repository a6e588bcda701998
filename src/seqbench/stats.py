"""Statistics across seeds and between models: pure functions on plain numbers (no files, no pandas).

- `mean_ci`: mean, sample std and a Student-t confidence interval over seeds.
- `wilcoxon_paired`: paired signed-rank test over seeds (exact distribution for small n).
- `diebold_mariano`: equal-accuracy test of two forecasts from their per-window errors, with the
  Harvey-Leybourne-Newbold (1997) small-sample correction.
- `pareto_front`, `ranks`: which models are not dominated on (cost, score); ranking with ties.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "mape", "log_loss", "bits_per_char"})
HIGHER_IS_BETTER = frozenset({"accuracy", "f1", "roc_auc"})


def lower_is_better(metric: str) -> bool:
    if metric in LOWER_IS_BETTER:
        return True
    if metric in HIGHER_IS_BETTER:
        return False
    raise ValueError(f"unknown metric {metric!r}: say whether lower is better in seqbench.stats "
                     f"(known: {', '.join(sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER))})")


@dataclass(frozen=True)
class MeanCI:
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for a single value
    low: float
    high: float
    n: int


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean over seeds with a Student-t interval: mean ± t_{(1+level)/2, n-1} * std / sqrt(n).

    One value: std 0 and the interval collapses onto the value (nothing to estimate a spread from).
    NaN values are dropped; no value left gives NaN everywhere and n = 0.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return MeanCI(mean, 0.0, mean, mean, 1)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf((1 + level) / 2, df=n - 1)) * std / math.sqrt(n)
    return MeanCI(mean, std, mean - half, mean + half, n)


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of the Wilcoxon signed-rank test on pairs (a_i, b_i), e.g. one model vs another per seed.

    Exact null distribution (scipy) for the small n of seed counts, so with 3 seeds the smallest
    possible p is 0.25: few seeds cannot show significance, and the report says so. NaN where the
    test is undefined: fewer than 2 pairs, or every difference zero (identical results).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    if d.size < 2 or np.all(d == 0):
        return math.nan
    method = "exact" if d.size <= 50 and np.all(d != 0) else "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about ties / small samples; p is still the exact one
        result = sps.wilcoxon(x[keep], y[keep], method=method, zero_method="wilcox")
    return float(result.pvalue)


@dataclass(frozen=True)
class DMResult:
    statistic: float  # negative: the first forecast has the lower loss
    pvalue: float  # two-sided, Student t with T-1 degrees of freedom (HLN)
    n: int


def diebold_mariano(e1: Sequence[float], e2: Sequence[float], horizon: int = 1, power: int = 2) -> DMResult:
    """Diebold-Mariano test that two forecasts are equally accurate, from their aligned errors.

    Loss differential d_t = |e1_t|^power - |e2_t|^power. Its long-run variance is the Newey-West
    estimate with horizon-1 lags (Bartlett weights 1 - k/horizon, so never negative): h-step forecasts
    made at consecutive origins share h-1 future steps, so their errors are autocorrelated up to lag h-1.
    The statistic is scaled by the Harvey-Leybourne-Newbold correction
    sqrt((T + 1 - 2h + h(h-1)/T) / T) and compared with Student t(T-1).

    Degenerate cases: no difference at all -> statistic 0, p 1; a constant non-zero difference (zero
    variance) -> statistic ±inf, p 0; fewer than 2 pairs -> NaN.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    x, y = np.asarray(e1, dtype=float), np.asarray(e2, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"error series differ in length: {x.size} vs {y.size}")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = np.abs(x[keep]) ** power - np.abs(y[keep]) ** power
    t = int(d.size)
    if t < 2:
        return DMResult(math.nan, math.nan, t)
    d_mean = float(d.mean())
    if np.all(d == d[0]):
        if d_mean == 0:
            return DMResult(0.0, 1.0, t)
        return DMResult(math.copysign(math.inf, d_mean), 0.0, t)
    centered = d - d_mean
    long_run = float(centered @ centered) / t
    for lag in range(1, min(horizon, t)):
        weight = 1.0 - lag / horizon
        long_run += 2.0 * weight * float(centered[lag:] @ centered[:-lag]) / t
    if long_run <= 0:
        return DMResult(math.copysign(math.inf, d_mean) if d_mean else 0.0, 0.0 if d_mean else 1.0, t)
    dm = d_mean / math.sqrt(long_run / t)
    correction = math.sqrt(max(t + 1 - 2 * horizon + horizon * (horizon - 1) / t, 0.0) / t)
    statistic = dm * correction
    pvalue = float(2 * sps.t.sf(abs(statistic), df=t - 1))
    return DMResult(float(statistic), pvalue, t)


def pareto_front(costs: Sequence[float], scores: Sequence[float], maximize: bool = False) -> np.ndarray:
    """Boolean mask of the points no other point dominates: another point dominates one when its cost
    is no higher and its score no worse, and one of the two strictly better. `scores` are losses
    (lower is better) unless `maximize`. Points with a NaN are never on the front."""
    c = np.asarray(costs, dtype=float)
    s = np.asarray(scores, dtype=float)
    if c.shape != s.shape:
        raise ValueError(f"costs and scores differ in length: {c.size} vs {s.size}")
    if maximize:
        s = -s
    valid = ~(np.isnan(c) | np.isnan(s))
    front = np.zeros(c.shape, dtype=bool)
    for i in np.flatnonzero(valid):
        others = valid.copy()
        others[i] = False
        dominated = (c[others] <= c[i]) & (s[others] <= s[i]) & ((c[others] < c[i]) | (s[others] < s[i]))
        front[i] = not dominated.any()
    return front


def ranks(values: Sequence[float], lower_better: bool = True) -> np.ndarray:
    """Competition ranks (1 = best; ties share the best rank: 1, 1, 3). NaN values get NaN."""
    x = np.asarray(values, dtype=float)
    out = np.full(x.shape, np.nan)
    valid = ~np.isnan(x)
    if valid.any():
        key = x[valid] if lower_better else -x[valid]
        out[valid] = sps.rankdata(key, method="min")
    return out
