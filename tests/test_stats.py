"""seqbench.stats on hand-made numbers whose answers are known (worked out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from seqbench import stats


def test_mean_ci_linear_scale_hand_case():
    # mean 2, sample std 1, n 3: half width = t(0.975, 2) * 1 / sqrt(3) = 4.302653 / 1.732051
    ci = stats.mean_ci([1.0, 2.0, 3.0])
    assert (ci.mean, ci.std, ci.n) == (2.0, 1.0, 3)
    assert ci.high - ci.mean == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert ci.mean - ci.low == pytest.approx(ci.high - ci.mean)


def test_mean_ci_of_an_error_is_log_scale_and_never_below_zero():
    # mean 2, std 1: half width on the log scale = t(0.975, 2) * (1 / 2) / sqrt(3)
    ci = stats.mean_ci([1.0, 2.0, 3.0], "mae")
    half = 4.302652729911275 * 0.5 / math.sqrt(3)
    assert (ci.low, ci.high) == pytest.approx((2.0 * math.exp(-half), 2.0 * math.exp(half)), rel=1e-9)
    wild = stats.mean_ci([3.0, 100.0, 5000.0], "mae")  # a t-interval here would reach -7,000
    assert 0 < wild.low < wild.mean < wild.high
    for metric in ("mse", "rmse", "mape", "log_loss", "bits_per_char"):
        assert stats.mean_ci([0.01, 5.0, 0.02], metric).low > 0


def test_mean_ci_of_a_proportion_stays_inside_zero_one():
    ci = stats.mean_ci([0.999, 0.5, 0.998], "accuracy")
    assert 0 < ci.low < ci.mean < ci.high < 1
    m, s = ci.mean, ci.std
    half = 4.302652729911275 * s / (m * (1 - m)) / math.sqrt(3)
    logit = math.log(m / (1 - m))
    assert ci.high == pytest.approx(1 / (1 + math.exp(-(logit + half))), rel=1e-9)
    assert stats.mean_ci([1.0, 1.0, 1.0], "accuracy").high == 1.0


def test_mean_ci_single_value_no_spread_and_empty():
    ci = stats.mean_ci([0.42])
    assert (ci.mean, ci.std, ci.low, ci.high, ci.n) == (0.42, 0.0, 0.42, 0.42, 1)
    flat = stats.mean_ci([0.4317, 0.4317 + 1e-17, 0.4317], "mse")  # a deterministic baseline's float noise
    assert flat.low == flat.high == flat.mean
    assert stats.mean_ci([0.42, math.nan]).n == 1
    empty = stats.mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_wilcoxon_exact_known_cases_and_its_floor():
    # all 5 differences negative: exact two-sided p = 2 / 2**5
    assert stats.wilcoxon_paired([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) == pytest.approx(0.0625)
    assert stats.wilcoxon_paired([1, 2, 3], [2, 3, 5]) == pytest.approx(0.25)
    # differences 0.1, 0.2, 0.3, -0.4: W- = 4 -> p = 2 * 7/16
    assert stats.wilcoxon_paired([1.1, 2.2, 3.3, 4.0], [1.0, 2.0, 3.0, 4.4]) == pytest.approx(0.875)
    assert [stats.wilcoxon_min_p(n) for n in (3, 5, 6)] == [0.25, 0.0625, 0.03125]
    assert stats.wilcoxon_min_p(5) > stats.ALPHA > stats.wilcoxon_min_p(6)


def test_wilcoxon_undefined_is_nan():
    assert math.isnan(stats.wilcoxon_paired([1, 2, 3], [1, 2, 3]))
    assert math.isnan(stats.wilcoxon_paired([1.0], [2.0]))
    with pytest.raises(ValueError, match="differ in length"):
        stats.wilcoxon_paired([1, 2], [1, 2, 3])


def test_newey_west_and_diebold_mariano_at_horizon_three_by_hand():
    # d = l1 - l2 = [-1, 1, 0, 3, 2, 4], T = 6, mean 1.5, centered c = [-2.5, -0.5, -1.5, 1.5, 0.5, 2.5]
    # gamma0 = 17.5/6; gamma1 = (1.25 + 0.75 - 2.25 + 0.75 + 1.25)/6 = 1.75/6; gamma2 = (3.75 - 0.75 - 0.75 + 3.75)/6 = 1
    # horizon 3 -> 2 lags with Bartlett weights 2/3 and 1/3
    d = np.array([-1.0, 1.0, 0.0, 3.0, 2.0, 4.0])
    long_run = 17.5 / 6 + 2 * (2 / 3) * (1.75 / 6) + 2 * (1 / 3) * 1.0
    assert stats.newey_west(d, 2) == pytest.approx(long_run, rel=1e-12)
    assert stats.newey_west(d, 0) == pytest.approx(17.5 / 6, rel=1e-12)
    # HLN factor sqrt((T + 1 - 2h + h(h-1)/T) / T) = sqrt((6 + 1 - 6 + 1) / 6)
    expected = 1.5 / math.sqrt(long_run / 6) * math.sqrt(2 / 6)
    result = stats.diebold_mariano_losses([1, 3, 2, 5, 4, 6], [2, 2, 2, 2, 2, 2], horizon=3)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.pvalue == pytest.approx(2 * student_t.sf(expected, df=5), rel=1e-12)
    assert result.n == 6


def test_diebold_mariano_on_errors_squares_them():
    # d = |e1|^1 - |e2|^1 = [-1, 0, -1, -2]: mean -1, gamma0 = 0.5, h = 1 -> DM = -1 / sqrt(0.5 / 4) * sqrt(3/4)
    result = stats.diebold_mariano([1, 2, 1, 0], [2, 2, 2, 2], horizon=1, power=1)
    assert result.statistic == pytest.approx(-1 / math.sqrt(0.5 / 4) * math.sqrt(3 / 4))
    squared = stats.diebold_mariano([1, 2, 1, 0], [2, 2, 2, 2], horizon=1, power=2)
    assert squared.statistic == pytest.approx(stats.diebold_mariano_losses([1, 4, 1, 0], [4, 4, 4, 4]).statistic)


def test_diebold_mariano_identical_and_degenerate():
    same = stats.diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (same.statistic, same.pvalue) == (0.0, 1.0)
    constant = stats.diebold_mariano([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], power=1)
    assert constant.statistic == -math.inf and constant.pvalue == 0.0
    assert math.isnan(stats.diebold_mariano([1.0], [2.0]).pvalue)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        stats.diebold_mariano([1, 2], [1, 2], horizon=0)


def test_holm_hand_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_nan = stats.holm([math.nan, 0.02, 0.9])  # NaN (the best, or no test) is not counted: m = 2
    assert math.isnan(with_nan[0]) and with_nan[1:].tolist() == pytest.approx([0.04, 0.9])
    assert stats.holm([0.6, 0.7]).tolist() == pytest.approx([1.0, 1.0])  # capped at 1


def test_tied_for_first_set_on_a_constructed_case():
    # entry 0 is the best; raw p 0.02, 0.03, 0.04 are all below 0.05, but Holm over the m = 4 tests gives
    # 4 x 1e-6, then 3 x 0.02 = 0.06, 2 x 0.03 = 0.06, 1 x 0.04 -> running max 0.06: tied for first.
    # Entry 4 has no test; entry 5 is far worse.
    raw = [math.nan, 0.02, 0.03, 0.04, math.nan, 1e-6]
    adjusted = stats.holm(raw)
    assert adjusted[1:4].tolist() == pytest.approx([0.06, 0.06, 0.06]) and adjusted[5] == pytest.approx(4e-6)
    assert stats.verdicts(0, adjusted, [True] * 6) == ["best", "tied", "tied", "tied", "untested", "worse"]
    # significant but better than the best on the test's own loss: not 'worse'
    assert stats.verdicts(0, [math.nan, 0.001], [False, False]) == ["best", "tied"]


def test_average_ranks_friedman_and_the_critical_difference():
    scores = np.array([[1.0, 2.0, 2.0, 3.0], [0.1, 0.3, 0.2, 0.4], [5.0, 6.0, 7.0, 8.0]])
    # ranks per block: [1, 2.5, 2.5, 4], [1, 3, 2, 4], [1, 2, 3, 4] -> means [1, 2.5, 2.5, 4]
    assert stats.average_ranks(scores).tolist() == pytest.approx([1.0, 2.5, 2.5, 4.0])
    assert stats.average_ranks(-scores, lower_better=False).tolist() == pytest.approx([1.0, 2.5, 2.5, 4.0])
    chi2, p = stats.friedman(scores)
    assert 0 < p < 0.1 and chi2 > 0
    # Demsar (2006), table 5: q_0.05 = 2.569 for k = 4; CD = q sqrt(k (k + 1) / (6 N))
    assert stats.nemenyi_cd(4, 5) == pytest.approx(2.569 * math.sqrt(4 * 5 / 30), abs=1e-3)
    assert stats.nemenyi_cd(2, 10) == pytest.approx(1.960 * math.sqrt(2 * 3 / 60), abs=1e-3)


def test_cd_cliques():
    assert stats.cd_cliques([1.0, 1.5, 3.0, 3.2], cd=1.0) == [[0, 1], [2, 3]]
    assert stats.cd_cliques([1.0, 1.5, 3.0, 3.2], cd=5.0) == [[0, 1, 2, 3]]
    assert stats.cd_cliques([3.0, 1.0], cd=0.5) == []


def test_pareto_front():
    costs = [10, 20, 30, 40, 5, 5]
    losses = [0.5, 0.3, 0.4, 0.1, 0.9, 0.95]
    assert stats.pareto_front(costs, losses).tolist() == [True, True, False, True, True, False]
    accuracy = [0.5, 0.7, 0.6, 0.9, 0.1, 0.05]
    assert stats.pareto_front(costs, accuracy, maximize=True).tolist() == [True, True, False, True, True, False]
    assert stats.pareto_front([1, math.nan], [1, 0]).tolist() == [True, False]


def test_ranks_ties_and_direction():
    assert stats.ranks([0.3, 0.1, 0.1, 0.2]).tolist() == [4, 1, 1, 3]
    assert stats.ranks([0.8, 0.9, math.nan], lower_better=False)[:2].tolist() == [2, 1]
    assert stats.lower_is_better("bits_per_char") and not stats.lower_is_better("roc_auc")
    with pytest.raises(ValueError, match="unknown metric 'r2'"):
        stats.lower_is_better("r2")
