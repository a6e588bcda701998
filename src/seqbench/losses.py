"""Per-example losses from predictions.parquet, averaged over seeds: what the paired tests compare.

One loss per (dataset, task, model, regime, split, loss, key), where `key` pairs the examples of two
models (forecasts: the first target's time stamp, so tasks with different look-backs pair up; reviews:
their index; characters: the window) and `pos` orders them in time (forecast windows and character
windows; reviews are independent). The loss behind each metric:
  mae -> window MAE; mse, rmse -> window MSE; accuracy -> 0/1 error (reviews) or 1 - window accuracy
  (characters); log_loss -> per-review log loss; bits_per_char -> window mean negative log-likelihood.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from seqbench import stats
from seqbench.errors import DataError
from seqbench.results import Job

COLUMNS = ["dataset", "task", "model", "regime", "split", "loss", "key", "pos", "value"]
LOG_LOSS_EPS = 1e-7  # as seqbench.evaluate
METRIC_LOSS = {
    "forecast": {"mae": "mae", "mse": "mse", "rmse": "mse"},
    "text": {"accuracy": "zero_one", "log_loss": "log_loss"},
    "chars": {"accuracy": "error", "bits_per_char": "nll"},
}


def loss_for(family: str, metric: str) -> str | None:
    return METRIC_LOSS.get(family, {}).get(metric)


def _frame(job: Job, family: str) -> pd.DataFrame:
    path = job.path / "predictions.parquet"
    if not path.is_file():
        raise DataError(f"{path}: missing beside a finished metrics.json; rerun `python -m seqbench train "
                        f"--dataset {job.dataset} --model {job.model} --seed {job.seed} --regime {job.regime}`")
    if family == "forecast":
        frame = pd.read_parquet(path, columns=["task", "split", "window", "timestamp", "mse", "mae"])
        key = frame["timestamp"].astype("int64")
        long = {"mse": frame["mse"], "mae": frame["mae"]}
        pos = frame["window"]
    elif family == "text":
        frame = pd.read_parquet(path, columns=["task", "split", "index", "label", "prob"])
        prob = frame["prob"].to_numpy(dtype=float)
        label = frame["label"].to_numpy(dtype=float)
        clipped = np.clip(prob, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        log_loss = -(label * np.log(clipped) + (1 - label) * np.log(1 - clipped))
        long = {"zero_one": pd.Series(((prob > 0.5) != (label > 0.5)).astype(float), index=frame.index),
                "log_loss": pd.Series(log_loss, index=frame.index)}
        key = pos = frame["index"]
    else:
        frame = pd.read_parquet(path, columns=["task", "split", "window", "nll", "accuracy"])
        long = {"nll": frame["nll"].astype(float), "error": 1.0 - frame["accuracy"].astype(float)}
        key = pos = frame["window"]
    parts = [pd.DataFrame({"task": frame["task"], "split": frame["split"], "loss": name, "key": key.to_numpy(),
                           "pos": pos.to_numpy(), "value": values.to_numpy(dtype=float)})
             for name, values in long.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def example_losses(jobs: list[Job], family_of) -> pd.DataFrame:
    """Every finished job's per-example losses, averaged over its seeds (an example a seed lacks is
    averaged over the seeds that have it). `family_of(dataset)` -> forecast | text | chars."""
    frames = []
    for job in jobs:
        if job.status != "ok":
            continue
        frame = _frame(job, family_of(job.dataset))
        if not frame.empty:
            frames.append(frame.assign(dataset=job.dataset, model=job.model, regime=job.regime))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    keys = ["dataset", "task", "model", "regime", "split", "loss", "key"]
    return frame.groupby(keys, sort=False).agg(pos=("pos", "first"), value=("value", "mean")).reset_index()


def lags(family: str, pos: np.ndarray, horizon: int | None) -> tuple[int, int]:
    """(HLN horizon h, Newey-West lag count) for one aligned series.

    Forecast windows spaced `stride` steps apart share targets with the next ceil(H / stride) - 1
    windows, so their losses form an MA(ceil(H / stride) - 1). Character windows are disjoint but
    neighbouring text is alike: Newey-West's rule-of-thumb lag count. Reviews are independent."""
    if family == "forecast":
        ordered = np.sort(np.asarray(pos))
        stride = max(1, int(np.median(np.diff(ordered)))) if ordered.size > 1 else 1
        h = max(1, math.ceil(int(horizon or 1) / stride))
        return h, h - 1
    if family == "chars":
        return 1, stats.nw_lags(len(pos))
    return 1, 0


def paired_test(family: str, model_losses: pd.DataFrame, best_losses: pd.DataFrame,
                horizon: int | None) -> stats.DMResult | None:
    """Diebold-Mariano on the examples both entries have (frames with key, pos, value); None when fewer
    than 2 pairs. A negative statistic: the first entry has the lower loss."""
    joined = model_losses.merge(best_losses, on="key", suffixes=("", "_best")).sort_values("pos")
    if len(joined) < 2:
        return None
    h, nw = lags(family, joined["pos"].to_numpy(), horizon)
    return stats.diebold_mariano_losses(joined["value"].to_numpy(), joined["value_best"].to_numpy(), h, nw)
