"""Metrics per task family and the predictions table (pure functions on numpy arrays).

Forecast metrics are in metric units: predictions and targets are un-scaled with the target columns'
train mean/scale unless the dataset reports on scaled values (`metric_units == "scaled"`, ETT).
MAPE is a percentage over the targets that are not exactly 0 (a 0 target has no relative error);
it is None when every target is 0. Text: accuracy and F1 of the positive class at P > 0.5,
rank-based ROC AUC (ties get the average rank; None when a split holds one class), log loss with
probabilities clipped to [1e-7, 1 - 1e-7]. Characters: accuracy and bits per character
(mean cross-entropy in nats / ln 2).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

LOG_LOSS_EPS = 1e-7

PREDICTION_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "forecast": {"task": pl.String, "split": pl.String, "window": pl.Int64,
                 "timestamp": pl.Datetime("us", "UTC"), "mse": pl.Float64, "mae": pl.Float64,
                 "y_true": pl.List(pl.Float32), "y_pred": pl.List(pl.Float32)},
    "text": {"task": pl.String, "split": pl.String, "index": pl.Int64, "label": pl.Int8, "prob": pl.Float32},
    "chars": {"task": pl.String, "split": pl.String, "window": pl.Int64, "nll": pl.Float32,
              "accuracy": pl.Float32},
}


# --- forecast --------------------------------------------------------------------------------------
def to_metric_units(values: np.ndarray, mean: np.ndarray, scale: np.ndarray, metric_units: str) -> np.ndarray:
    """(..., F) scaled values -> float64 in metric units; mean/scale are the F target columns'."""
    values = np.asarray(values, dtype=np.float64)
    if metric_units == "scaled":
        return values
    return values * np.asarray(scale, dtype=np.float64) + np.asarray(mean, dtype=np.float64)


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    keep = y_true != 0
    if not keep.any():
        return None
    return float(np.mean(np.abs((y_pred[keep] - y_true[keep]) / y_true[keep])) * 100.0)


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray, with_mape: bool = True) -> dict[str, float | None]:
    """Arrays of any equal shape, already in metric units -> mae, mse, rmse (and mape, percent)."""
    error = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    mse = float(np.mean(error**2))
    metrics = {"mae": float(np.mean(np.abs(error))), "mse": mse, "rmse": math.sqrt(mse)}
    if with_mape:
        metrics["mape"] = mape(y_true, y_pred)
    return metrics


def per_horizon_mae(y_true: np.ndarray, y_pred: np.ndarray) -> list[float]:
    """(n, H, F) -> H values: MAE of each horizon step over windows and target columns."""
    error = np.abs(np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64))
    return [float(v) for v in error.mean(axis=(0, 2))]


def forecast_predictions(task: str, split: str, windows: np.ndarray, timestamps: np.ndarray,
                         y_true: np.ndarray, y_pred: np.ndarray) -> pl.DataFrame:
    """One row per window; y_true/y_pred (n, H, F) in metric units; timestamps = first target times."""
    error = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    n, horizon = error.shape[:2]
    stamps = pl.Series("timestamp", np.asarray(timestamps, dtype="datetime64[ns]"))
    return pl.DataFrame({
        "task": [task] * n,
        "split": [split] * n,
        "window": pl.Series(np.asarray(windows, dtype=np.int64)),
        "timestamp": stamps.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "mse": (error**2).reshape(n, -1).mean(axis=1),
        "mae": np.abs(error).reshape(n, -1).mean(axis=1),
        "y_true": _float_lists(np.asarray(y_true)[:, :, 0], horizon),
        "y_pred": _float_lists(np.asarray(y_pred)[:, :, 0], horizon),
    }, schema=PREDICTION_SCHEMAS["forecast"])


def _float_lists(values: np.ndarray, width: int) -> pl.Series:
    values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1, width)  # (n, H)
    return pl.Series(values).cast(pl.List(pl.Float32))


# --- text ------------------------------------------------------------------------------------------
def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney form: P(score of a positive > score of a negative), ties counted half."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # Imported here: scipy.stats costs ~1.3 s, and only text tasks need it (every training job imports this module).
    from scipy.stats import rankdata

    ranks = rankdata(np.asarray(scores, dtype=np.float64))  # average ranks for ties
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = LOG_LOSS_EPS) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def text_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
    y = np.asarray(labels).astype(bool)
    predicted = np.asarray(probs, dtype=np.float64) > 0.5
    tp = int((predicted & y).sum())
    wrong = int((predicted != y).sum())
    f1 = 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0
    return {"accuracy": float(np.mean(predicted == y)), "f1": float(f1),
            "roc_auc": roc_auc(y, probs), "log_loss": log_loss(y, probs)}


def text_predictions(task: str, split: str, index: np.ndarray, labels: np.ndarray,
                     probs: np.ndarray) -> pl.DataFrame:
    n = len(index)
    return pl.DataFrame({"task": [task] * n, "split": [split] * n,
                         "index": np.asarray(index, dtype=np.int64),
                         "label": np.asarray(labels, dtype=np.int8),
                         "prob": np.asarray(probs, dtype=np.float32)}, schema=PREDICTION_SCHEMAS["text"])


# --- characters ------------------------------------------------------------------------------------
def char_metrics(nll: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """nll (n, W) nats per predicted character, correct (n, W) bool -> accuracy, bits_per_char."""
    return {"accuracy": float(np.mean(np.asarray(correct, dtype=np.float64))),
            "bits_per_char": float(np.mean(np.asarray(nll, dtype=np.float64)) / math.log(2))}


def char_predictions(task: str, split: str, windows: np.ndarray, nll: np.ndarray,
                     correct: np.ndarray) -> pl.DataFrame:
    n = len(windows)
    return pl.DataFrame({"task": [task] * n, "split": [split] * n,
                         "window": np.asarray(windows, dtype=np.int64),
                         "nll": np.asarray(nll, dtype=np.float64).reshape(n, -1).mean(axis=1).astype(np.float32),
                         "accuracy": np.asarray(correct, dtype=np.float64).reshape(n, -1).mean(axis=1)
                         .astype(np.float32)}, schema=PREDICTION_SCHEMAS["chars"])


def empty_predictions(family: str) -> pl.DataFrame:
    return pl.DataFrame(schema=PREDICTION_SCHEMAS[family])


def concat_predictions(family: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical") if frames else empty_predictions(family)
