"""Thin MLflow wrapper: the only module that imports mlflow.

Store: `sqlite:///<root>/mlflow.db` (or $MLFLOW_TRACKING_URI); artifacts under `<root>/mlartifacts/<experiment>`.
One experiment per dataset. The store is created only by `python -m seqbench tracking-init` (parallel
first-time creation of an SQLite store races on its schema migrations); an experiment is created by the
first job that needs it, so a dataset added to the job lists needs no new tracking-init. A re-run of a
job (dataset, model, seed) or of a summary deletes the previous run first, so the UI never lists duplicates
(MLflow deletes softly: `mlflow gc` purges deleted runs for good).

Several training processes write to one SQLite file at once: MLflow sets a busy timeout on each session,
and every call here is retried with back-off when SQLite still answers "database is locked".
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from seqbench.errors import SeqbenchError
from seqbench.io import write_json
from seqbench.paths import Layout

T = TypeVar("T")
JOB, SUMMARY = "job", "summary"
KIND_TAG = "seqbench.kind"
ERROR_TAG = "seqbench.error"
INIT_HINT = "run `python -m seqbench tracking-init` first"
_RETRIES = 8


class TrackingError(SeqbenchError):
    """The MLflow store or an experiment is missing or unusable."""


def tracking_uri(layout: Layout) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{layout.mlflow_db.resolve()}"


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def _locked(error: BaseException) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database table is locked" in text


def _retry(call: Callable[..., T], *args, **kwargs) -> T:
    """Call an MLflow function, retrying while SQLite reports a lock held by another process."""
    for attempt in range(_RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not _locked(error) or attempt == _RETRIES - 1:
                raise
            time.sleep(min(8.0, 0.2 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    _retry(client.search_experiments, max_results=1)  # opens the store now, so a lock is retried here
    return client


def _artifact_location(layout: Layout, experiment: str, uri: str) -> str | None:
    # a remote server decides where its artifacts live; a local store keeps them beside the project
    return None if _is_remote(uri) else (layout.mlflow_artifacts.resolve() / experiment).as_uri()


def git_commit(root: Path) -> str:
    """HEAD of the project's repository (or of the seqbench source checkout), else "unknown"."""
    for folder in (Path(root), Path(__file__).resolve().parent):
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                 timeout=10, check=True)
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
    return "unknown"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings -> {"a.b": "value"} (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(list(value) if isinstance(value, tuple) else value)
    return out


# --- store initialisation --------------------------------------------------------------------------
def run_init(params, layout: Layout) -> dict[str, Any]:
    """Create the store and one experiment per dataset of the job lists; safe to call again.

    Every training job depends on the marker file, so it names only the store, in words that do not
    depend on where the project folder lies: adding a dataset to the job lists (a new experiment) or
    moving the folder must not make DVC retrain the jobs that exist. The experiments go to the log."""
    uri = tracking_uri(layout)
    sqlite_file = _sqlite_file(uri)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    client = _client(uri)
    experiments = {name: _ensure_experiment(client, layout, name, uri) for name in params.datasets_in_jobs()}
    own_store = sqlite_file is not None and sqlite_file.resolve() == layout.mlflow_db.resolve()
    write_json(layout.tracking_marker, {"store": layout.mlflow_db.name if own_store else uri})
    print(f"MLflow store {uri}; experiments (dataset: id): {experiments}")
    return {"uri": uri, "experiments": experiments}


def _ensure_experiment(client, layout: Layout, name: str, uri: str) -> str:
    existing = _retry(client.get_experiment_by_name, name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            _retry(client.restore_experiment, existing.experiment_id)
        return existing.experiment_id
    try:
        return _retry(client.create_experiment, name, artifact_location=_artifact_location(layout, name, uri))
    except Exception:
        created = _retry(client.get_experiment_by_name, name)  # another job created it just now
        if created is None:
            raise
        return created.experiment_id


def _experiment(layout: Layout, dataset: str):
    """(client, experiment id) of a dataset's experiment, created on first use; never creates the store
    (its first creation races between processes: tracking-init makes it before any job starts)."""
    uri = tracking_uri(layout)
    sqlite_file = _sqlite_file(uri)
    if sqlite_file is not None and not sqlite_file.is_file():
        raise TrackingError(f"no MLflow store at {sqlite_file}: {INIT_HINT}")
    client = _client(uri)
    return client, _ensure_experiment(client, layout, dataset, uri)


def _replace(client, experiment_id: str, tags: Mapping[str, str]) -> None:
    """Delete every active run of the experiment carrying these tags (the run about to be re-created)."""
    from mlflow.entities import ViewType

    query = " AND ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    for run in _retry(client.search_runs, [experiment_id], filter_string=query,
                      run_view_type=ViewType.ACTIVE_ONLY, max_results=1000):
        _retry(client.delete_run, run.info.run_id)


def _log_batch(client, run_id: str, metrics=(), params=(), tags=()) -> None:
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    metrics, params, tags = list(metrics), list(params), list(tags)
    for i in range(0, max(len(metrics), 1), MAX_METRICS_PER_BATCH):
        if metrics[i:i + MAX_METRICS_PER_BATCH]:
            _retry(client.log_batch, run_id, metrics=metrics[i:i + MAX_METRICS_PER_BATCH], synchronous=True)
    for i in range(0, max(len(params), len(tags), 1), MAX_PARAMS_TAGS_PER_BATCH):
        chunk_params, chunk_tags = params[i:i + MAX_PARAMS_TAGS_PER_BATCH], tags[i:i + MAX_PARAMS_TAGS_PER_BATCH]
        if chunk_params or chunk_tags:
            _retry(client.log_batch, run_id, params=chunk_params, tags=chunk_tags, synchronous=True)


def _metrics(values: Mapping[str, float | None], step: int = 0, ts: int | None = None) -> list:
    from mlflow.entities import Metric

    ts = ts if ts is not None else int(time.time() * 1000)
    return [Metric(key, float(value), ts, step) for key, value in values.items() if value is not None]


def _params(values: Mapping[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(key, value) for key, value in values.items()]


# --- job runs --------------------------------------------------------------------------------------
class JobRun:
    """The MLflow run of one training job (see `job_run`)."""

    # Epoch curves reach the store at most this often (and when the job ends): a CTA epoch takes 0.1-0.3 s,
    # and a commit per epoch cost 15 ms of it, while holding the SQLite lock the other jobs write through.
    FLUSH_SECONDS = 5.0

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id
        self._pending: list = []
        self._flushed_at = time.monotonic()

    def log_epoch(self, task: str, epoch: int, train_loss: float, val_loss: float) -> None:
        self._pending += _metrics({f"{task}/train_loss": train_loss, f"{task}/val_loss": val_loss}, step=epoch)
        if time.monotonic() - self._flushed_at >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Send the epoch metrics logged since the last flush."""
        pending, self._pending = self._pending, []
        _log_batch(self.client, self.run_id, metrics=pending)
        self._flushed_at = time.monotonic()

    def log_results(self, metrics_json: Mapping[str, Any]) -> None:
        """Final metrics `<task>/<split>_<metric>` (+ per-horizon MAE as steps 1..H) from metrics.json."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values: dict[str, float | None] = {}
        steps = []
        for task, result in metrics_json.get("tasks", {}).items():
            for split in ("val", "test"):
                for name, value in (result.get(split) or {}).items():
                    values[f"{task}/{split}_{name}"] = value
                for h, value in enumerate(result.get(f"{split}_per_horizon_mae") or [], start=1):
                    steps.append(Metric(f"{task}/{split}_per_horizon_mae", float(value), now, h))
        _log_batch(self.client, self.run_id, metrics=_metrics(values, ts=now) + steps)

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            _retry(self.client.log_artifact, self.run_id, str(path))


@contextlib.contextmanager
def job_run(layout: Layout, dataset: str, model: str, seed: int, *, regime: str, preset: str, data_hash: str,
            device: str, params: Mapping[str, Any]) -> Iterator[JobRun]:
    """One run `<model>-seed<k>` (`<model>-tuned-seed<k>` in the tuned regime) replacing any earlier one;
    FAILED (KILLED on Ctrl-C) if the block raises."""
    client, experiment_id = _experiment(layout, dataset)
    tags = {"dataset": dataset, "model": model, "seed": str(seed), "regime": regime, KIND_TAG: JOB}
    _replace(client, experiment_id, tags)
    tags.update(preset=preset, git_commit=git_commit(layout.root), data_hash=data_hash, device=device)
    name = f"{model}-seed{seed}" if regime == "protocol" else f"{model}-{regime}-seed{seed}"
    run = _retry(client.create_run, experiment_id, run_name=name, tags=tags)
    job = JobRun(client, run.info.run_id)
    try:
        _log_batch(client, job.run_id, params=_params(flatten(params)))
        yield job
        job.flush()
    except BaseException as error:
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        with contextlib.suppress(Exception):
            job.flush()  # the curve up to the failure
        with contextlib.suppress(Exception):  # the reason, where the UI shows it
            message = (str(error).strip().splitlines() or [""])[0]
            _retry(client.set_tag, job.run_id, ERROR_TAG, f"{type(error).__name__}: {message}"[:5000])
        with contextlib.suppress(Exception):
            _retry(client.set_terminated, job.run_id, status)
        raise
    _retry(client.set_terminated, job.run_id, "FINISHED")


# --- summary runs (report stage) -------------------------------------------------------------------
def log_summary_run(layout: Layout, dataset: str, model: str, metrics: Mapping[str, float],
                    params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
    """Run `<model>-summary` (tag seqbench.kind=summary) replacing an earlier one; returns its id."""
    client, experiment_id = _experiment(layout, dataset)
    keys = {"dataset": dataset, "model": model, KIND_TAG: SUMMARY}
    _replace(client, experiment_id, keys)
    run = _retry(client.create_run, experiment_id, run_name=f"{model}-summary",
                 tags={**{k: str(v) for k, v in tags.items()}, **keys})
    try:
        _log_batch(client, run.info.run_id, metrics=_metrics(metrics), params=_params(flatten(params)))
    except BaseException:
        with contextlib.suppress(Exception):
            _retry(client.set_terminated, run.info.run_id, "FAILED")
        raise
    _retry(client.set_terminated, run.info.run_id, "FINISHED")
    return run.info.run_id


# --- searches (tune stage) -------------------------------------------------------------------------
SEARCH, TRIAL = "search", "trial"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a trial under its search


class SearchRun:
    """The MLflow run of one search (see `search_run`); each trial a child run."""

    def __init__(self, client, experiment_id: str, run_id: str, tags: Mapping[str, str]):
        self.client, self.experiment_id, self.run_id, self.tags = client, experiment_id, run_id, tags

    def log_trial(self, number: int, settings: Mapping[str, Any], value: float | None, state: str) -> None:
        tags = {**self.tags, KIND_TAG: TRIAL, PARENT_TAG: self.run_id, "trial": str(number), "state": state.lower()}
        run = _retry(self.client.create_run, self.experiment_id, run_name=f"trial-{number}", tags=tags)
        finite = value is not None and value == value and abs(value) != float("inf")
        _log_batch(self.client, run.info.run_id, metrics=_metrics({"val_loss": value if finite else None}),
                   params=_params({k: str(v) for k, v in settings.items()}))
        _retry(self.client.set_terminated, run.info.run_id, "FAILED" if state.upper() == "FAIL" else "FINISHED")

    def finish(self, settings: Mapping[str, Any], value: float) -> None:
        _log_batch(self.client, self.run_id, metrics=_metrics({"best_val_loss": value}),
                   params=_params({f"best.{k}": str(v) for k, v in settings.items()}))


@contextlib.contextmanager
def search_run(layout: Layout, dataset: str, model: str, *, preset: str, space: Mapping[str, Any],
               budget: Mapping[str, Any]) -> Iterator[SearchRun]:
    """Run `<model>-search` (tag seqbench.kind=search) replacing an earlier one and its trials; FAILED
    (KILLED on Ctrl-C) if the block raises."""
    client, experiment_id = _experiment(layout, dataset)
    keys = {"dataset": dataset, "model": model}
    for kind in (SEARCH, TRIAL):
        _replace(client, experiment_id, {**keys, KIND_TAG: kind})
    run = _retry(client.create_run, experiment_id, run_name=f"{model}-search",
                 tags={**keys, KIND_TAG: SEARCH, "preset": preset, "git_commit": git_commit(layout.root)})
    search = SearchRun(client, experiment_id, run.info.run_id, keys)
    try:
        _log_batch(client, search.run_id, params=_params(flatten({"space": space, "budget": budget})))
        yield search
    except BaseException as error:
        with contextlib.suppress(Exception):
            _retry(client.set_terminated, search.run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    _retry(client.set_terminated, search.run_id, "FINISHED")
