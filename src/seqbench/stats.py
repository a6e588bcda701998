"""Statistics across seeds, between models and across tasks: pure functions on plain numbers (no files, no pandas).

- `mean_ci`: mean, sample std and a 95% t-interval on the metric's own scale (log for errors, logit for
  proportions), so an interval never leaves the metric's range.
- `wilcoxon_paired`, `wilcoxon_min_p`: paired signed-rank test over seeds and the smallest p it can reach.
- `diebold_mariano_losses` / `diebold_mariano`: equal-accuracy test on per-example losses, Newey-West
  (Bartlett) long-run variance, Harvey-Leybourne-Newbold small-sample correction.
- `holm`, `verdicts`: Holm's step-down adjustment within one table; the tied-for-first set.
- `average_ranks`, `friedman`, `nemenyi_cd`, `cd_cliques`: ranks across tasks (Demsar 2006).
- `pareto_front`, `ranks`: non-dominated (cost, score) points; competition ranks.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "mape", "log_loss", "bits_per_char"})
HIGHER_IS_BETTER = frozenset({"accuracy", "f1", "roc_auc"})
PROPORTIONS = HIGHER_IS_BETTER  # in [0, 1]; every error metric is >= 0


def lower_is_better(metric: str) -> bool:
    if metric in LOWER_IS_BETTER:
        return True
    if metric in HIGHER_IS_BETTER:
        return False
    raise ValueError(f"unknown metric {metric!r}: say whether lower is better in seqbench.stats "
                     f"(known: {', '.join(sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER))})")


def interval_scale(metric: str | None) -> str:
    """'log' for errors (>= 0), 'logit' for proportions, 'linear' for anything else."""
    if metric in PROPORTIONS:
        return "logit"
    return "log" if metric in LOWER_IS_BETTER else "linear"


@dataclass(frozen=True)
class MeanCI:
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for a single value
    low: float
    high: float
    n: int


def mean_ci(values: Sequence[float], metric: str | None = None, level: float = 0.95) -> MeanCI:
    """Mean over seeds with a Student-t interval on the metric's scale (delta method around the mean):
    errors: mean ×/÷ exp(t · (s / mean) / sqrt(n)), never below 0; proportions: the same on the logit
    scale with s / (mean (1 - mean)), inside [0, 1]; otherwise mean ± t · s / sqrt(n).

    One value, or no spread: the interval collapses onto the mean. NaNs are dropped; none left: NaN, n 0.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    if n == 1 or std <= 1e-12 * max(abs(mean), 1e-300):
        return MeanCI(mean, std, mean, mean, n)
    t = float(sps.t.ppf((1 + level) / 2, df=n - 1)) / math.sqrt(n)
    scale = interval_scale(metric)
    if scale == "log" and mean > 0:
        half = t * std / mean
        return MeanCI(mean, std, mean * math.exp(-half), mean * math.exp(half), n)
    if scale == "logit" and 0 < mean < 1:
        center, half = math.log(mean / (1 - mean)), t * std / (mean * (1 - mean))
        return MeanCI(mean, std, 1 / (1 + math.exp(half - center)), 1 / (1 + math.exp(-half - center)), n)
    if scale != "linear":  # a mean on the range's edge with a spread: only the edge is certain
        return MeanCI(mean, std, mean, mean, n)
    return MeanCI(mean, std, mean - t * std, mean + t * std, n)


def wilcoxon_min_p(n: int) -> float:
    """Smallest two-sided p of the exact signed-rank test with n non-zero pairs: 2 / 2^n (all of one sign)."""
    return 2.0 / 2 ** n if n > 0 else 1.0


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of the Wilcoxon signed-rank test on pairs (a_i, b_i), e.g. one model vs another per seed.
    Exact null distribution (scipy) for seed counts. NaN where undefined: fewer than 2 pairs, or no difference."""
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


def newey_west(d: np.ndarray, lags: int) -> float:
    """Long-run variance of a series: gamma_0 + 2 sum_{k=1..L} (1 - k / (L + 1)) gamma_k, with
    gamma_k = sum_t (d_t - mean)(d_{t-k} - mean) / T (Bartlett weights: never negative)."""
    centered = np.asarray(d, dtype=float) - float(np.mean(d))
    t = centered.size
    value = float(centered @ centered) / t
    for k in range(1, min(lags, t - 1) + 1):
        value += 2.0 * (1.0 - k / (lags + 1)) * float(centered[k:] @ centered[:-k]) / t
    return value


def nw_lags(t: int) -> int:
    """Newey-West's rule of thumb for the lag count of a series of length t: floor(4 (t / 100)^(2/9))."""
    return int(math.floor(4 * (t / 100) ** (2 / 9))) if t > 0 else 0


def diebold_mariano_losses(l1: Sequence[float], l2: Sequence[float], horizon: int = 1,
                           lags: int | None = None) -> DMResult:
    """Diebold-Mariano test that two forecasts have equal expected loss, from aligned per-example losses.

    d_t = l1_t - l2_t; DM = mean(d) / sqrt(NW(d, lags) / T) with `lags` = horizon - 1 unless given
    (h-step forecasts from consecutive origins share h - 1 future steps), times the Harvey-Leybourne-Newbold
    factor sqrt((T + 1 - 2h + h(h-1)/T) / T), against Student t(T-1).
    Degenerate: no difference -> 0, p 1; a constant non-zero difference -> ±inf, p 0; < 2 pairs -> NaN.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    x, y = np.asarray(l1, dtype=float), np.asarray(l2, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"loss series differ in length: {x.size} vs {y.size}")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    t = int(d.size)
    if t < 2:
        return DMResult(math.nan, math.nan, t)
    d_mean = float(d.mean())
    long_run = newey_west(d, horizon - 1 if lags is None else lags) if not np.all(d == d[0]) else 0.0
    if long_run <= 0:
        if d_mean == 0:
            return DMResult(0.0, 1.0, t)
        return DMResult(math.copysign(math.inf, d_mean), 0.0, t)
    correction = math.sqrt(max(t + 1 - 2 * horizon + horizon * (horizon - 1) / t, 0.0) / t)
    statistic = d_mean / math.sqrt(long_run / t) * correction
    return DMResult(float(statistic), float(2 * sps.t.sf(abs(statistic), df=t - 1)), t)


def diebold_mariano(e1: Sequence[float], e2: Sequence[float], horizon: int = 1, power: int = 2) -> DMResult:
    """`diebold_mariano_losses` on the losses |e|^power of two aligned error series."""
    return diebold_mariano_losses(np.abs(np.asarray(e1, dtype=float)) ** power,
                                  np.abs(np.asarray(e2, dtype=float)) ** power, horizon)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count as a test): the i-th smallest
    of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j))."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


def verdicts(best: int, adjusted: Sequence[float], worse: Sequence[bool], alpha: float = ALPHA) -> list[str]:
    """Per entry: 'best'; 'tied' (tested against the best and not found worse after Holm: with the best,
    the tied-for-first set); 'worse' (significantly worse); 'untested' (no test could reach the level)."""
    out = []
    for i, (p, is_worse) in enumerate(zip(adjusted, worse)):
        if i == best:
            out.append("best")
        elif math.isnan(p):
            out.append("untested")
        else:
            out.append("worse" if p < alpha and is_worse else "tied")
    return out


# --- across tasks (Demsar 2006) ---------------------------------------------------------------------
def average_ranks(scores: np.ndarray, lower_better: Sequence[bool] | bool = True) -> np.ndarray:
    """(blocks, k) scores -> (k,) mean rank over blocks (1 = best; ties share the average rank)."""
    scores = np.asarray(scores, dtype=float)
    direction = np.broadcast_to(np.asarray(lower_better, dtype=bool), (scores.shape[0],))
    ranked = np.vstack([sps.rankdata(row if low else -row) for row, low in zip(scores, direction)])
    return ranked.mean(axis=0)


def friedman(scores: np.ndarray, lower_better: Sequence[bool] | bool = True) -> tuple[float, float]:
    """Friedman chi-square and p over (blocks, k) scores (k >= 3, blocks >= 2), ranks as in average_ranks."""
    scores = np.asarray(scores, dtype=float)
    direction = np.broadcast_to(np.asarray(lower_better, dtype=bool), (scores.shape[0],))
    oriented = np.where(direction[:, None], scores, -scores)
    result = sps.friedmanchisquare(*oriented.T)
    return float(result.statistic), float(result.pvalue)


def nemenyi_cd(k: int, blocks: int, alpha: float = ALPHA) -> float:
    """Critical difference of average ranks: q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range
    quantile for k groups and infinite degrees of freedom over sqrt(2) (Demsar's table: 1.960 for k = 2)."""
    q = float(sps.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * blocks))


def cd_cliques(avg_ranks: Sequence[float], cd: float) -> list[list[int]]:
    """Maximal groups (indices, best first) whose average ranks all lie within cd of each other: the bars
    of a critical-difference diagram. Groups of one are left out."""
    r = np.asarray(avg_ranks, dtype=float)
    order = list(np.argsort(r, kind="stable"))
    groups: list[list[int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and r[order[end + 1]] - r[order[start]] < cd:
            end += 1
        group = [int(i) for i in order[start:end + 1]]
        if len(group) > 1 and not any(set(group) <= set(g) for g in groups):
            groups.append(group)
    return groups


# --- cost and order ---------------------------------------------------------------------------------
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
