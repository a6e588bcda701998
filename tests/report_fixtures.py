"""Run folders in the real contract formats (metrics.json, history.csv, predictions.parquet) for every family,
made without training: ETT-like multi-horizon tasks, CTA-like tasks (SARIMA skipping the multivariate ones),
text, characters and an unavailable dataset, three seeds each. Shared by the aggregate, report and browser
tests; `fail_job` and `drop_job` turn a finished job into train's failure record or a missing one."""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import yaml

from seqbench.params import Params, parse_params
from seqbench.paths import Layout

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
JOBS = {
    "forecast": {"datasets": ["etth1", "cta", "jena"], "models": ["naive", "seasonal_naive", "linear", "rnn"]},
    "statistical": {"datasets": ["cta"], "models": ["sarima"]},
    "text": {"datasets": ["imdb"], "models": ["bow_unigram", "transformer"]},
    "chars": {"datasets": ["shakespeare"], "models": ["char_gru", "char_lstm"]},
}
QUALITY = {"naive": 1.0, "seasonal_naive": 0.85, "linear": 0.75, "rnn": 0.6, "sarima": 0.8}  # error scale
TUNED_GAIN = 0.9  # a tuned job's errors, relative to the protocol's
ACCURACY = {"bow_unigram": 0.88, "transformer": 0.84, "char_gru": 0.55, "char_lstm": 0.58}
TRAINED = {"linear", "rnn", "bow_unigram", "transformer", "char_gru", "char_lstm"}
FORECAST_TASKS = {  # dataset -> [(task, kind, look-back, horizon, first-target level, error scale)]
    "etth1": [("h96", "forecast_multi", 96, 96, 0.0, 0.6), ("h336", "forecast_multi", 96, 336, 0.0, 0.7),
              ("l336_h96", "forecast_multi", 336, 96, 0.0, 0.6)],
    "cta": [("next_day", "forecast_single", 56, 1, 5e5, 4e4), ("multivariate", "forecast_multi", 56, 1, 5e5, 3.5e4),
            ("14_day", "forecast_multi", 56, 14, 5e5, 4.5e4)],
}
LOOKBACK_336 = {"linear": 0.8, "rnn": 1.3, "naive": 1.0, "seasonal_naive": 1.0}  # l336 error vs h96, validation
N_WINDOWS = 40
UNAVAILABLE = "jena_climate_2009_2016.csv was found in no mirror and could not be downloaded: put it in data/raw/jena/"


def make_params(root: Path, regimes=("protocol",), etth1_tasks=("h96", "h336"), jobs=None) -> Params:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data.update(preset="standard", seeds=list(SEEDS), jobs=copy.deepcopy(jobs or JOBS), regimes=list(regimes))
    data["presets"]["standard"]["budgets"]["etth1"]["tasks"] = list(etth1_tasks)
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return parse_params(data)


def _write_run(folder: Path, metrics: dict, history: pd.DataFrame, predictions: pl.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    history.to_csv(folder / "history.csv", index=False)
    predictions.write_parquet(folder / "predictions.parquet")
    (folder / "checkpoint.pt").write_bytes(b"placeholder")


def _history(tasks: list[str], trained: bool, rng) -> pd.DataFrame:
    rows = [(t, e, 1.0 / e + rng.uniform(0, 0.05), 1.2 / e + rng.uniform(0, 0.05), 0.5, 1e-3)
            for t in tasks for e in range(1, 6)] if trained else []
    return pd.DataFrame(rows, columns=["task", "epoch", "train_loss", "val_loss", "seconds", "lr"])


def _task_entry(kind: str, val: dict, test: dict, trained: bool, rng, **extra) -> dict:
    return {"kind": kind, "status": "ok", "val": val, "test": test, "epochs": 5 if trained else 0,
            "best_epoch": 4 if trained else 0, "train_seconds": float(rng.uniform(1, 9)) if trained else 0.0,
            "seconds_per_epoch": 0.4 if trained else 0.0, "params_count": 1000 * len(val) if trained else 0, **extra}


def _forecast_split(split: str, task: str, horizon: int, level: float, scale: float, rng, start) -> tuple[dict, list, list]:
    """Per-window errors drawn first, so metrics.json agrees with predictions.parquet."""
    errors = rng.normal(0, scale, size=(N_WINDOWS, horizon))
    truth = level + rng.normal(0, max(scale, 1.0) * 3, size=(N_WINDOWS, horizon))
    window_mse, window_mae = (errors ** 2).mean(axis=1), np.abs(errors).mean(axis=1)
    metrics = {"mae": float(window_mae.mean()), "mse": float(window_mse.mean()),
               "rmse": float(math.sqrt(window_mse.mean())), "mape": float(np.mean(np.abs(errors) / (np.abs(truth) + 1)))}
    step = dt.timedelta(days=1) if level else dt.timedelta(hours=1)
    rows = [{"task": task, "split": split, "window": i, "timestamp": start + i * step, "mse": float(window_mse[i]),
             "mae": float(window_mae[i]), "y_true": truth[i].astype(np.float32).tolist(),
             "y_pred": (truth[i] + errors[i]).astype(np.float32).tolist()} for i in range(N_WINDOWS)]
    return metrics, rows, list(np.abs(errors).mean(axis=0))


def _forecast_run(dataset: str, model: str, regime: str, tasks_wanted, rng) -> tuple[dict, pd.DataFrame, pl.DataFrame]:
    tasks, rows = {}, []
    start = dt.datetime(2019, 6, 1, tzinfo=dt.timezone.utc)
    for task, kind, lookback, horizon, level, scale in FORECAST_TASKS[dataset]:
        if dataset == "etth1" and task not in tasks_wanted:
            continue
        if model == "sarima" and task != "next_day":
            tasks[task] = {"kind": kind, "status": "skipped",
                           "reason": "sarima needs a univariate task (one series in and out)"}
            continue
        s = scale * QUALITY[model] * (TUNED_GAIN if regime == "tuned" else 1.0) * (1 + 0.03 * rng.normal())
        val_scale = s * (LOOKBACK_336[model] if lookback == 336 else 1.0)
        test_scale = s / (LOOKBACK_336[model] if lookback == 336 else 1.0)  # the test split prefers the other look-back
        val, val_rows, val_h = _forecast_split("val", task, horizon, level, val_scale, rng, start)
        test, test_rows, test_h = _forecast_split("test", task, horizon, level, test_scale, rng, start)
        extra = {"val_per_horizon_mae": val_h, "test_per_horizon_mae": test_h} if kind == "forecast_multi" else {}
        tasks[task] = _task_entry(kind, val, test, model in TRAINED, rng, lookback=lookback, horizon=horizon, **extra)
        rows += val_rows + test_rows
    schema = {"task": pl.String, "split": pl.String, "window": pl.Int64, "timestamp": pl.Datetime("us", "UTC"),
              "mse": pl.Float64, "mae": pl.Float64, "y_true": pl.List(pl.Float32), "y_pred": pl.List(pl.Float32)}
    ok_tasks = [t for t, e in tasks.items() if e["status"] == "ok"]
    return tasks, _history(ok_tasks, model in TRAINED, rng), pl.DataFrame(rows, schema=schema)


def _text_run(model: str, rng) -> tuple[dict, pd.DataFrame, pl.DataFrame]:
    rows, split_metrics = [], {}
    for split in ("val", "test"):
        labels = rng.integers(0, 2, size=200)
        correct = rng.random(200) < ACCURACY[model] + 0.01 * rng.normal()
        prob = np.where(labels == correct, rng.uniform(0.51, 0.99, 200), rng.uniform(0.01, 0.49, 200))
        pred = (prob > 0.5).astype(int)
        tp, fp = np.sum((pred == 1) & (labels == 1)), np.sum((pred == 1) & (labels == 0))
        fn = np.sum((pred == 0) & (labels == 1))
        split_metrics[split] = {"accuracy": float(np.mean(pred == labels)), "f1": float(2 * tp / (2 * tp + fp + fn)),
                                "roc_auc": float(np.mean(pred == labels)), "log_loss": float(-np.mean(
                                    labels * np.log(prob) + (1 - labels) * np.log(1 - prob)))}
        rows += [{"task": "sentiment", "split": split, "index": i, "label": int(labels[i]), "prob": float(prob[i])}
                 for i in range(200)]
    tasks = {"sentiment": _task_entry("text_binary", split_metrics["val"], split_metrics["test"], True, rng)}
    schema = {"task": pl.String, "split": pl.String, "index": pl.Int64, "label": pl.Int8, "prob": pl.Float32}
    return tasks, _history(["sentiment"], True, rng), pl.DataFrame(rows, schema=schema)


def _chars_run(model: str, rng) -> tuple[dict, pd.DataFrame, pl.DataFrame]:
    rows, split_metrics = [], {}
    for split in ("val", "test"):
        nll = rng.uniform(1.0, 1.6, 50) * (1.2 - ACCURACY[model] / 2)
        acc = np.clip(ACCURACY[model] + 0.02 * rng.normal(size=50), 0, 1)
        split_metrics[split] = {"accuracy": float(acc.mean()), "bits_per_char": float(nll.mean() / math.log(2))}
        rows += [{"task": "next_char", "split": split, "window": 100 * i, "nll": float(nll[i]), "accuracy": float(acc[i])}
                 for i in range(50)]
    tasks = {"next_char": _task_entry("next_char", split_metrics["val"], split_metrics["test"], True, rng,
                                      sample=f"to be or not to be, <{model}> that is the question & more")}
    schema = {"task": pl.String, "split": pl.String, "window": pl.Int64, "nll": pl.Float32, "accuracy": pl.Float32}
    return tasks, _history(["next_char"], True, rng), pl.DataFrame(rows, schema=schema)


def make_project(root: Path, regimes=("protocol",), etth1_tasks=("h96", "h336"), jobs=None) -> Params:
    """A project folder with params.yaml and a contract-conformant run folder for every job it lists
    (a tuned job of a parameter-free model is left out: there is nothing to tune)."""
    params = make_params(root, regimes, etth1_tasks, jobs)
    layout = Layout(root)
    layout.reports.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "reports/references.yaml", layout.reports / "references.yaml")  # the leaderboard cites it
    for group, dataset, model, seed, regime in params.train_jobs():
        if regime == "tuned" and model not in TRAINED:
            continue
        rng = np.random.default_rng(zlib.crc32(f"{dataset}/{model}/{seed}/{regime}".encode()))  # stable across processes
        family = {"forecast": "forecast", "statistical": "forecast"}.get(group, group)
        base = {"dataset": dataset, "model": model, "seed": seed, "regime": regime, "preset": "standard",
                "family": family, "mlflow_run_id": None}
        if dataset == "jena":
            metrics = {**base, "status": "unavailable", "reason": UNAVAILABLE}
            empty = pl.DataFrame(schema={"task": pl.String, "split": pl.String, "window": pl.Int64})
            _write_run(layout.run(dataset, model, seed, regime), metrics, _history([], False, rng), empty)
            continue
        maker = {"text": lambda: _text_run(model, rng), "chars": lambda: _chars_run(model, rng)}.get(
            family, lambda: _forecast_run(dataset, model, regime, etth1_tasks, rng))
        tasks, history, predictions = maker()
        metrics = {**base, "status": "ok", "reason": None,
                   "metric_units": "scaled" if dataset == "etth1" else "original", "tasks": tasks,
                   "cost": {"peak_memory_mb": 100.0 + seed, "device": "cpu", "threads": 2},
                   "tags": {"git_commit": "0123456789abcdef", "data_hash": "feed", "torch": "2.13.0"}}
        if regime == "tuned":
            metrics["settings"] = {"lr": 0.003, "instance_norm": True}
        _write_run(layout.run(dataset, model, seed, regime), metrics, history, predictions)
    return params


def fail_job(root: Path, dataset: str, model: str, seed: int, regime: str = "protocol", keep_tasks=()) -> dict:
    """Replace a finished job by train's failure record (a diverging model at epoch 3, batch 17)."""
    folder = Layout(root).run(dataset, model, seed, regime)
    finished = json.loads((folder / "metrics.json").read_text())
    record = {key: finished[key] for key in ("dataset", "model", "seed", "regime", "preset", "family", "tags")}
    record.update(status="failed", reason="loss became nan at epoch 3 (lr too high?)", cost=None, mlflow_run_id="abc",
                  failure={"error": "TrainingError", "message": "loss became nan at epoch 3\n(lr too high?)",
                           "task": "h336", "epoch": 3, "batch": 17},
                  tasks={t: e for t, e in finished["tasks"].items() if t in keep_tasks})
    (folder / "metrics.json").write_text(json.dumps(record))
    empty = pl.DataFrame(schema={"task": pl.String, "split": pl.String, "window": pl.Int64})
    empty.write_parquet(folder / "predictions.parquet")
    return record


def drop_job(root: Path, dataset: str, model: str, seed: int, regime: str = "protocol") -> None:
    shutil.rmtree(Layout(root).run(dataset, model, seed, regime))
