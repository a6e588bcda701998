"""seqbench.stats on hand-made numbers whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqbench import stats


def test_mean_ci_hand_case():
    # mean 2, sample std 1, n 3: half width = t(0.975, 2) * 1 / sqrt(3) = 4.302653 / 1.732051
    ci = stats.mean_ci([1.0, 2.0, 3.0])
    assert (ci.mean, ci.std, ci.n) == (2.0, 1.0, 3)
    assert ci.high - ci.mean == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert ci.mean - ci.low == pytest.approx(ci.high - ci.mean)
    assert stats.mean_ci([1.0, 2.0, 3.0], level=0.5).high < ci.high


def test_mean_ci_single_value_and_empty():
    ci = stats.mean_ci([0.42])
    assert (ci.mean, ci.std, ci.low, ci.high, ci.n) == (0.42, 0.0, 0.42, 0.42, 1)
    assert stats.mean_ci([0.42, math.nan]).n == 1
    empty = stats.mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_wilcoxon_exact_known_case():
    # all 5 differences negative: exact two-sided p = 2 / 2**5
    assert stats.wilcoxon_paired([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) == pytest.approx(0.0625)
    # 3 seeds can never reach p < 0.25
    assert stats.wilcoxon_paired([1, 2, 3], [2, 3, 5]) == pytest.approx(0.25)
    # differences -0.1, 0.2, 0.3, 0.4: W- = 1 -> p = 2 * P(W <= 1) = 2 * 2/16
    assert stats.wilcoxon_paired([0.9, 2.2, 3.3, 4.4], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.25)
    # differences 0.1, 0.2, 0.3, -0.4: W- = 4 -> p = 2 * 7/16
    assert stats.wilcoxon_paired([1.1, 2.2, 3.3, 4.0], [1.0, 2.0, 3.0, 4.4]) == pytest.approx(0.875)


def test_wilcoxon_undefined_is_nan():
    assert math.isnan(stats.wilcoxon_paired([1, 2, 3], [1, 2, 3]))
    assert math.isnan(stats.wilcoxon_paired([1.0], [2.0]))
    with pytest.raises(ValueError, match="differ in length"):
        stats.wilcoxon_paired([1, 2], [1, 2, 3])


def test_diebold_mariano_clearly_better_first_is_negative_and_small_p():
    rng = np.random.default_rng(0)
    truth_noise = rng.normal(size=400)
    good = 0.5 * truth_noise + 0.1 * rng.normal(size=400)
    bad = truth_noise + 0.1 * rng.normal(size=400)
    result = stats.diebold_mariano(good, bad, horizon=1, power=2)
    assert result.statistic < -5 and result.pvalue < 1e-6 and result.n == 400
    flipped = stats.diebold_mariano(bad, good, horizon=1, power=2)
    assert flipped.statistic == pytest.approx(-result.statistic) and flipped.pvalue == pytest.approx(result.pvalue)


def test_diebold_mariano_hand_computed_value():
    # d = |e1|^1 - |e2|^1 = [-1, 0, -1, -2]: mean -1, gamma0 = 0.5, h = 1 -> DM = -1 / sqrt(0.5 / 4);
    # HLN factor sqrt((T + 1 - 2h + h(h-1)/T) / T) = sqrt(3 / 4); p from t(3)
    result = stats.diebold_mariano([1, 2, 1, 0], [2, 2, 2, 2], horizon=1, power=1)
    expected = -1 / math.sqrt(0.5 / 4) * math.sqrt(3 / 4)
    assert result.statistic == pytest.approx(expected)
    from scipy.stats import t
    assert result.pvalue == pytest.approx(2 * t.sf(abs(expected), df=3))


def test_diebold_mariano_horizon_widens_variance_of_autocorrelated_losses():
    rng = np.random.default_rng(1)
    shock = rng.normal(size=600)
    smooth = np.convolve(shock, np.ones(6) / 6, mode="same")  # overlapping-window errors: autocorrelated
    e1, e2 = 1.0 + 0.3 * smooth, 1.05 + 0.3 * rng.normal(size=600)
    one = stats.diebold_mariano(e1, e2, horizon=1)
    six = stats.diebold_mariano(e1, e2, horizon=6)
    assert one.statistic < 0 and six.statistic < 0
    assert six.pvalue > one.pvalue  # positive autocorrelation: the corrected test is more cautious


def test_diebold_mariano_identical_and_degenerate():
    same = stats.diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (same.statistic, same.pvalue) == (0.0, 1.0)
    constant = stats.diebold_mariano([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], power=1)
    assert constant.statistic == -math.inf and constant.pvalue == 0.0
    assert math.isnan(stats.diebold_mariano([1.0], [2.0]).pvalue)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        stats.diebold_mariano([1, 2], [1, 2], horizon=0)


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
