"""train stage: `python -m seqbench train` -> runs/<ds>/<model>/<regime>/seed<k>/ + one MLflow run.

The edge of the stage: it checks that the dataset is available (placeholders otherwise, without
loading torch models or MLflow), trains every task the preset keeps through seqbench.loop inside an
MLflow run, and writes metrics.json, history.csv, predictions.parquet and checkpoint.pt atomically.

Resumable: resume.pt is rewritten after finished tasks and during training (seqbench.loop's `save`), so a
killed job restarted with the same settings, data and code ends with the same metrics.json as an
uninterrupted one.

A failed job is a result. When training raises (a diverging loss, a model that cannot be built for a
task, a bug), the job still writes its four outputs, with metrics.json status "failed", the reason, where
it failed and the tasks that finished before, marks its MLflow run FAILED with the message, and exits 0:
both orchestrators go on to the report, which lists it as not finished and never ranks it. A change of
the job's settings or code reruns it like any other job.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import torch

from seqbench import datasets as dataset_registry
from seqbench import device as dev
from seqbench import evaluate as ev
from seqbench import models as model_registry
from seqbench.io import atomic_path, write_json, write_text
from seqbench.job import Job, job_tasks, make_job
from seqbench.loop import TaskOutcome, fit_task
from seqbench.paths import Layout
from seqbench.tasks import Task, to_dict

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


# --- every task of a job, resumable ----------------------------------------------------------------
@dataclass
class JobOutcome:
    """What the job's tasks gave so far (a failed job keeps the tasks that finished before)."""

    results: dict = field(default_factory=dict)  # task -> its entry in metrics.json
    history: list[dict] = field(default_factory=list)
    states: dict = field(default_factory=dict)  # task -> best weights
    frames: list[pl.DataFrame] = field(default_factory=list)


def _skip_reason(job: Job, task: Task) -> str:
    if task.kind not in job.entry.kinds:
        return f"model {job.model!r} handles {', '.join(job.entry.kinds)} tasks, not {task.kind}"
    return f"model {job.model!r} needs a univariate task (one series in, the same series out)"


def _frame_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def _load_resume(path: Path, job: Job) -> dict | None:
    """The saved progress of this very job; None when absent or saved under other settings or data."""
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("fingerprint") != job.fingerprint:
        print(f"{path}: saved under other settings or data; starting over", file=sys.stderr)
        return None
    return saved


def _write_resume(path: Path, job: Job, done: dict, current: dict | None) -> None:
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": job.fingerprint, "done": done, "current": current}, tmp)


def train_job(job: Job, out_dir: Path, outcome: JobOutcome) -> JobOutcome:
    """Fill `outcome` task by task (fitted, or replayed from resume.pt), resuming where a killed run stopped."""
    resume_path = out_dir / "resume.pt"
    saved = _load_resume(resume_path, job)
    done = saved["done"] if saved else {}
    for task in job_tasks(job):
        if not job.entry.supports(task):
            outcome.results[task.name] = {"kind": task.kind, "status": "skipped", "reason": _skip_reason(job, task)}
            continue
        if task.name in done:
            finished = done[task.name]
            for row in finished["history"]:
                if job.on_epoch:
                    job.on_epoch(task.name, row["epoch"], row["train_loss"], row["val_loss"])
            fitted = TaskOutcome(finished["result"], finished["history"], finished["best_state"],
                                 pl.read_parquet(io.BytesIO(finished["predictions"])))
        else:
            current = saved["current"] if saved and (saved["current"] or {}).get("task") == task.name else None
            fitted = fit_task(job, task, current,
                              lambda state, name=task.name: _write_resume(resume_path, job, done,
                                                                          {"task": name, **state}))
            done[task.name] = {"result": fitted.result, "history": fitted.history,
                               "best_state": fitted.best_state, "predictions": _frame_bytes(fitted.predictions)}
            _write_resume(resume_path, job, done, None)
        outcome.results[task.name] = fitted.result
        outcome.history += fitted.history
        outcome.states[task.name] = {"task": to_dict(task), "state_dict": fitted.best_state,
                                     "best_epoch": fitted.result["best_epoch"]}
        outcome.frames.append(fitted.predictions)
    return outcome


# --- the stage -------------------------------------------------------------------------------------
def failure_reason(error: BaseException) -> str:
    """One line: the exception class and the first line of its message."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _write_outputs(out_dir: Path, job: Job, metrics: dict, outcome: JobOutcome) -> None:
    write_text(out_dir / "history.csv", history_csv(outcome.history))
    _write_parquet(out_dir / "predictions.parquet", ev.concat_predictions(job.family, outcome.frames))
    _write_torch(out_dir / "checkpoint.pt", {"dataset": job.dataset, "model": job.model, "seed": job.seed,
                                             "regime": job.regime, "settings": job.settings.model_dump(mode="json"),
                                             "status": metrics["status"], "tasks": outcome.states})
    write_json(out_dir / "metrics.json", metrics)  # last: its presence marks the job done


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
    # a store that cannot log fails the job now, before any output changes (a new dataset's experiment is made)
    tracking.preflight(layout, dataset, params.dataset(dataset))

    features = feature_loader.load_features(layout.features(dataset))
    job = make_job(params, dataset, model, seed, features, threads, regime=regime, layout=layout)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "resume.pt").is_file():
        for name in OUTPUTS:  # a failed fresh run must not leave an older result looking current
            (out_dir / name).unlink(missing_ok=True)
    dev.reset_peak_memory(job.device)
    metrics = {"dataset": dataset, "model": model, "seed": seed, "regime": regime, "preset": params.preset,
               "family": family, "status": "ok", "reason": None,
               "metric_units": features.metric_units if family == "forecast" else None,
               "settings": job.settings.model_dump(mode="json"),
               "tags": {"git_commit": tracking.git_commit(layout.root), "data_hash": features.data_hash,
                        "torch": torch.__version__}}
    mlflow_params = {"train": job.resolved.to_dict()["train"], "model": metrics["settings"],
                     "threads": torch.get_num_threads()}
    outcome = JobOutcome()
    failed: BaseException | None = None
    try:
        with tracking.job_run(layout, dataset, model, seed, regime=regime, preset=params.preset,
                              data_hash=features.data_hash, device=str(job.device), params=mlflow_params) as tracker:
            job.on_epoch = tracker.log_epoch
            metrics["mlflow_run_id"] = tracker.run_id
            try:
                train_job(job, out_dir, outcome)
            except Exception as error:  # recorded below; job_run marks the MLflow run FAILED with it
                failed = error
                metrics.update(status="failed", reason=failure_reason(error),
                               failure={"error": type(error).__name__, "message": str(error),
                                        "task": job.progress.get("task"), "epoch": job.progress.get("epoch"),
                                        "batch": job.progress.get("batch")})
                raise
            metrics["cost"] = {"peak_memory_mb": dev.peak_memory_mb(job.device), "device": str(job.device),
                               "threads": torch.get_num_threads()}
            metrics["tasks"] = outcome.results
            _write_outputs(out_dir, job, metrics, outcome)
            tracker.log_results(metrics)
            tracker.log_artifacts([out_dir / name for name in OUTPUTS[:3]])
    except Exception as error:
        if error is not failed:
            raise  # not the model's failure (the store, the disk): the job did not run
        metrics.update(cost=None, tasks=outcome.results)
        _write_outputs(out_dir, job, metrics, outcome)
        (out_dir / "resume.pt").unlink(missing_ok=True)
        print(f"error: {dataset}/{model}/{regime}/seed{seed} failed: {metrics['reason']} "
              f"(recorded in {out_dir / 'metrics.json'}; the report lists it as not finished)", file=sys.stderr)
        return metrics
    (out_dir / "resume.pt").unlink(missing_ok=True)
    return metrics
