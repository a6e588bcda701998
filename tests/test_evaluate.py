"""Metrics and prediction tables on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from seqbench import evaluate as ev


def test_forecast_metrics_on_hand_numbers():
    y_true = np.array([[1.0], [2.0], [4.0], [0.0]])
    y_pred = np.array([[2.0], [2.0], [2.0], [1.0]])
    m = ev.forecast_metrics(y_true, y_pred)
    assert m["mae"] == pytest.approx((1 + 0 + 2 + 1) / 4)
    assert m["mse"] == pytest.approx((1 + 0 + 4 + 1) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(1.5))
    # the zero target is left out of MAPE: |1/1| + 0 + |2/4| over three targets, in percent
    assert m["mape"] == pytest.approx((1 + 0 + 0.5) / 3 * 100)


def test_mape_is_none_when_every_target_is_zero():
    assert ev.mape(np.zeros(3), np.ones(3)) is None


def test_metric_units_unscale_target_columns_unless_scaled():
    scaled = np.array([[[1.0, -1.0]]])  # (n=1, H=1, F=2)
    mean, scale = np.array([10.0, 0.0]), np.array([2.0, 100.0])
    assert ev.to_metric_units(scaled, mean, scale, "original").tolist() == [[[12.0, -100.0]]]
    assert ev.to_metric_units(scaled, mean, scale, "scaled").tolist() == [[[1.0, -1.0]]]


def test_per_horizon_mae_averages_windows_and_targets():
    y_true = np.zeros((2, 3, 2))
    y_pred = np.zeros((2, 3, 2))
    y_pred[:, 0, :] = 1.0  # every step-1 forecast off by 1
    y_pred[0, 2, 0] = 4.0  # one step-3 forecast off by 4 (of 4 values at that step)
    assert ev.per_horizon_mae(y_true, y_pred) == pytest.approx([1.0, 0.0, 1.0])


def test_roc_auc_rank_based_with_ties():
    labels = np.array([1, 0, 1, 0])
    assert ev.roc_auc(labels, np.array([0.9, 0.1, 0.8, 0.2])) == 1.0
    assert ev.roc_auc(labels, np.array([0.1, 0.9, 0.2, 0.8])) == 0.0
    # pairs (pos, neg): (.5,.5) tie = 1/2, (.5,.1) = 1, (.7,.5) = 1, (.7,.1) = 1 -> 3.5 / 4
    assert ev.roc_auc(labels, np.array([0.5, 0.5, 0.7, 0.1])) == pytest.approx(3.5 / 4)
    assert ev.roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_text_metrics_accuracy_f1_log_loss():
    labels = np.array([1, 1, 0, 0, 1])
    probs = np.array([0.9, 0.4, 0.6, 0.1, 1.0])  # predictions 1, 0, 1, 0, 1 -> tp 2, fp 1, fn 1
    m = ev.text_metrics(labels, probs)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    expected = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    assert m["log_loss"] == pytest.approx(expected)
    assert math.isfinite(ev.log_loss(np.array([1, 0]), np.array([0.0, 1.0])))  # clipped, not inf


def test_f1_is_zero_without_positive_predictions():
    assert ev.text_metrics(np.array([1, 0]), np.array([0.1, 0.2]))["f1"] == 0.0


def test_char_metrics_bits_per_char():
    nll = np.full((2, 3), math.log(4))  # uniform over 4 symbols = 2 bits
    correct = np.array([[1, 0, 0], [1, 1, 0]], dtype=bool)
    m = ev.char_metrics(nll, correct)
    assert m["bits_per_char"] == pytest.approx(2.0)
    assert m["accuracy"] == pytest.approx(0.5)


def test_forecast_predictions_table_schema_and_values():
    y_true = np.array([[[1.0, 5.0], [2.0, 5.0]], [[3.0, 5.0], [4.0, 5.0]]])  # (n=2, H=2, F=2)
    y_pred = y_true + np.array([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 2.0]]])
    stamps = np.array(["2020-01-01T05:00", "2020-01-01T06:00"], dtype="datetime64[ns]")
    frame = ev.forecast_predictions("h2", "test", np.array([7, 8]), stamps, y_true, y_pred)
    assert dict(frame.schema) == ev.PREDICTION_SCHEMAS["forecast"]
    assert frame["mse"].to_list() == [1.0, 1.0]  # window 2: one error of 2 among 4 values
    assert frame["mae"].to_list() == [1.0, 0.5]
    assert frame["y_true"].to_list() == [[1.0, 2.0], [3.0, 4.0]]  # first target column over the horizon
    assert frame["y_pred"].to_list() == [[2.0, 3.0], [3.0, 4.0]]
    assert frame["timestamp"][0].isoformat() == "2020-01-01T05:00:00+00:00"
    assert frame["window"].to_list() == [7, 8]


def test_text_and_char_tables_and_empty_ones():
    text = ev.text_predictions("sentiment", "val", np.array([0, 3]), np.array([1, 0]), np.array([0.75, 0.25]))
    assert dict(text.schema) == ev.PREDICTION_SCHEMAS["text"]
    assert text["prob"].to_list() == [0.75, 0.25]
    chars = ev.char_predictions("next_char", "test", np.array([0, 100]), np.array([[1.0, 3.0], [2.0, 2.0]]),
                                np.array([[True, False], [True, True]]))
    assert chars["nll"].to_list() == [2.0, 2.0]
    assert chars["accuracy"].to_list() == [0.5, 1.0]
    for family in ("forecast", "text", "chars"):
        empty = ev.empty_predictions(family)
        assert empty.height == 0 and dict(empty.schema) == ev.PREDICTION_SCHEMAS[family]
    assert ev.concat_predictions("text", [text, text]).height == 4
    assert isinstance(ev.concat_predictions("chars", []), pl.DataFrame)
