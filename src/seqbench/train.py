"""train stage: `python -m seqbench train` -> runs/<ds>/<model>/seed<k>/ + one MLflow run.

The edge of the stage: it checks that the dataset is available (placeholders otherwise, without
loading torch models or MLflow), runs the job through seqbench.loop inside an MLflow run, and writes
metrics.json, history.csv, predictions.parquet and checkpoint.pt atomically.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import polars as pl
import torch

from seqbench import datasets as dataset_registry
from seqbench import device as dev
from seqbench import evaluate as ev
from seqbench import models as model_registry
from seqbench.io import atomic_path, write_json, write_text
from seqbench.paths import Layout

OUTPUTS = ("metrics.json", "history.csv", "predictions.parquet", "checkpoint.pt")
HISTORY_COLUMNS = ("task", "epoch", "train_loss", "val_loss", "seconds", "lr")


# --- outputs ---------------------------------------------------------------------------------------
def history_csv(rows: list[dict]) -> str:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(row["task"] if c == "task" else repr(row[c]) for c in HISTORY_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def _write_parquet(path: Path, frame: pl.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)


def _write_torch(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_unavailable(out_dir: Path, dataset: str, model: str, seed: int, regime: str, preset: str, family: str,
                      reason: str) -> dict:
    """Placeholder outputs so both orchestrators find every file of a job whose data cannot be had."""
    metrics = {"dataset": dataset, "model": model, "seed": seed, "regime": regime, "preset": preset, "family": family,
               "status": "unavailable", "reason": reason, "metric_units": None, "tasks": {}, "cost": None,
               "tags": {"torch": torch.__version__}, "mlflow_run_id": None}
    write_text(out_dir / "history.csv", history_csv([]))
    _write_parquet(out_dir / "predictions.parquet", ev.empty_predictions(family))
    _write_torch(out_dir / "checkpoint.pt", {"status": "unavailable", "reason": reason})
    write_json(out_dir / "metrics.json", metrics)
    (out_dir / "resume.pt").unlink(missing_ok=True)
    return metrics


def run(params, layout: Layout, dataset: str, model: str, seed: int, threads: int = 0,
        regime: str = "protocol") -> dict:
    """`python -m seqbench train`: every output of one job (placeholders when the dataset is unavailable)."""
    from seqbench import features as feature_loader
    from seqbench import tracking

    family = dataset_registry.get(dataset).family
    model_registry.get(model)
    out_dir = layout.run(dataset, model, seed, regime)
    reason = feature_loader.unavailable_reason(layout.features(dataset))
    if reason is not None:
        print(f"{dataset} is unavailable ({reason}): writing placeholder outputs", file=sys.stderr)
        return write_unavailable(out_dir, dataset, model, seed, regime, params.preset, family, reason)
    tracking.preflight(layout, dataset)  # a store that cannot log fails the job now, before any output changes
    from seqbench import loop

    features = feature_loader.load_features(layout.features(dataset))
    job = loop.make_job(params, dataset, model, seed, features, threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "resume.pt").is_file():
        for name in OUTPUTS:  # a failed fresh run must not leave an older result looking current
            (out_dir / name).unlink(missing_ok=True)
    dev.reset_peak_memory(job.device)
    tags = {"git_commit": tracking.git_commit(layout.root), "data_hash": features.data_hash,
            "torch": torch.__version__}
    mlflow_params = {"train": dataclasses.asdict(job.config), "model": job.settings.model_dump(mode="json"),
                     "threads": torch.get_num_threads()}
    with tracking.job_run(layout, dataset, model, seed, regime=regime, preset=params.preset,
                          data_hash=features.data_hash, device=str(job.device), params=mlflow_params) as tracker:
        job.on_epoch = tracker.log_epoch
        results, history, states, predictions = loop.train_job(job, out_dir)
        metrics = {"dataset": dataset, "model": model, "seed": seed, "regime": regime, "preset": params.preset,
                   "family": family,
                   "status": "ok", "reason": None,
                   "metric_units": features.metric_units if family == "forecast" else None, "tasks": results,
                   "cost": {"peak_memory_mb": dev.peak_memory_mb(job.device), "device": str(job.device),
                            "threads": torch.get_num_threads()},
                   "tags": tags, "mlflow_run_id": tracker.run_id}
        write_text(out_dir / "history.csv", history_csv(history))
        _write_parquet(out_dir / "predictions.parquet", predictions)
        _write_torch(out_dir / "checkpoint.pt", {"dataset": dataset, "model": model, "seed": seed,
                                                 "settings": job.settings.model_dump(mode="json"), "tasks": states})
        write_json(out_dir / "metrics.json", metrics)
        tracker.log_results(metrics)
        tracker.log_artifacts([out_dir / name for name in OUTPUTS[:3]])
    (out_dir / "resume.pt").unlink(missing_ok=True)
    return metrics
