"""Thin MLflow wrapper: with seqbench.tracking_* (server, buffer, store, ui), the only code that imports mlflow.

Store: `sqlite:///<root>/mlflow.db` (or $MLFLOW_TRACKING_URI); artifacts under `<root>/mlartifacts/<experiment>`.
One experiment per dataset, made by `python -m seqbench tracking-init` or by the first job that needs it.
Only tracking-init creates, migrates or repairs a store, holding a file lock (`<store>.lock`): parallel
first-time creation races on the schema migrations. A job that finds no store asks for tracking-init.
A re-run of a job (dataset, model, seed, regime) or of a summary deletes the previous run first, so the UI
never lists duplicates (MLflow deletes softly: `mlflow gc` purges deleted runs for good). docs/tracking.md
says what happens when a tracking server is away.

Several training processes write to one SQLite file at once: MLflow sets a busy timeout on each session,
and every call here is retried with back-off when SQLite still answers "database is locked".
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from seqbench import tracking_server as server
from seqbench import tracking_store as store
from seqbench import tracking_ui as ui
from seqbench.errors import SeqbenchError
from seqbench.io import write_json
from seqbench.paths import Layout
from seqbench.tracking_buffer import (SPOOL_NAME, JobRun, locked, metric_list, param_list, replay,
                                     retry as _retry, send_batch)

JOB, SUMMARY = "job", "summary"
KIND_TAG = "seqbench.kind"
PARENT_TAG = "mlflow.parentRunId"  # the UI nests a run under the run this tag names
INIT_HINT = "run `python -m seqbench tracking-init` first"
LOCK_SECONDS = 600

__all__ = ["JobRun", "SearchRun", "TrackingError", "flatten", "git_commit", "job_run", "log_summary_run", "preflight",
           "run_init", "run_sync", "search_run", "tracking_uri"]


class TrackingError(SeqbenchError):
    """The MLflow store or an experiment is missing, unreachable or unusable."""


def tracking_uri(layout: Layout) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{layout.mlflow_db.resolve()}"


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    if server.is_remote(uri):
        server.use_short_retries()
    client = MlflowClient(tracking_uri=uri)
    _retry(client.search_experiments, max_results=1)  # opens the store now, so a lock is retried here
    return client


def _connect(uri: str):
    """An open client for a job or a summary: a server answers within seconds, an SQLite file holds its schema."""
    if server.is_remote(uri):
        problem = server.probe(uri)
        if problem is not None:
            raise TrackingError(problem)
    sqlite_file = _sqlite_file(uri)
    if sqlite_file is not None:
        if not sqlite_file.is_file():
            raise TrackingError(f"no MLflow store at {sqlite_file}: {INIT_HINT}")
        if not store.has_schema(sqlite_file):
            raise TrackingError(f"MLflow store {sqlite_file} is empty or half-created: {INIT_HINT} (it repairs it)")
    try:
        return _client(uri)
    except Exception as error:
        if sqlite_file is None or locked(error):
            raise
        raise TrackingError(f"cannot open the MLflow store {sqlite_file} ({server.reason(error)}): {INIT_HINT} "
                            "(it upgrades or repairs the store)") from None


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
    """Create (or repair) the store and one experiment per dataset of the job lists; safe to call again,
    also from several processes at once.

    Every training job depends on the marker file, so it names only the store, in words that do not
    depend on where the project folder lies: adding a dataset to the job lists (a new experiment) or
    moving the folder must not make DVC retrain the jobs that exist. The experiments go to the log."""
    from filelock import FileLock, Timeout

    uri = tracking_uri(layout)
    sqlite_file = _sqlite_file(uri)
    lock: Any = contextlib.nullcontext()
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{sqlite_file}.lock", timeout=LOCK_SECONDS)
    try:
        with lock:
            client = _open_for_init(uri, sqlite_file)
            experiments = {name: _ensure_experiment(client, layout, name, uri, params.dataset(name))
                           for name in params.datasets_in_jobs()}
    except Timeout:
        raise TrackingError(f"another tracking-init has held {sqlite_file}.lock for {LOCK_SECONDS} s: "
                            "wait for it, or end it if it hangs") from None
    own_store = sqlite_file is not None and sqlite_file.resolve() == layout.mlflow_db.resolve()
    write_json(layout.tracking_marker, {"store": layout.mlflow_db.name if own_store else uri})
    print(f"MLflow store {uri}; experiments (dataset: id): {experiments}")
    base = uri if server.is_remote(uri) else ui.LOCAL_UI
    for name, experiment_id in experiments.items():
        print(f"  {name}: {ui.ui_url(base, experiment_id)}")
    return {"uri": uri, "experiments": experiments}


def _open_for_init(uri: str, sqlite_file: Path | None):
    """Open (creating or migrating) the store; an SQLite store that fails is upgraded with MLflow's own
    `mlflow db upgrade` when it holds runs, or set aside and created anew when it holds none."""
    if sqlite_file is None:
        return _connect(uri)
    try:
        return _client(uri)
    except Exception as error:
        problem = server.reason(error)
    store.forget_engine(uri)
    runs = store.count_runs(sqlite_file)
    if runs:
        upgrade = subprocess.run([sys.executable, "-m", "mlflow", "db", "upgrade", uri], capture_output=True,
                                 text=True)
        if upgrade.returncode == 0:
            with contextlib.suppress(Exception):
                client = _client(uri)
                print(f"upgraded the MLflow store {sqlite_file} ({problem}) with `mlflow db upgrade`")
                return client
        raise TrackingError(f"MLflow store {sqlite_file} holds {runs} runs but cannot be opened ({problem}), and "
                            f"`mlflow db upgrade {uri}` did not repair it: restore a backup, or move the file "
                            "away and rerun `python -m seqbench tracking-init` for a new, empty store")
    aside = sqlite_file.with_name(f"{sqlite_file.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    sqlite_file.rename(aside)
    client = _client(uri)
    print(f"repaired: the MLflow store {sqlite_file} could not be opened ({problem}) and held no runs; "
          f"kept it as {aside.name} and created a new store")
    return client


def _ensure_experiment(client, layout: Layout, name: str, uri: str, settings) -> str:
    existing = _retry(client.get_experiment_by_name, name)
    if existing is None:
        location = None if server.is_remote(uri) else (layout.mlflow_artifacts.resolve() / name).as_uri()
        try:  # a server decides where its artifacts live; a local store keeps them beside the project
            experiment_id = _retry(client.create_experiment, name, artifact_location=location)
        except Exception as error:  # created meanwhile by a tracking-init sharing the server
            if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment_id = _retry(client.get_experiment_by_name, name).experiment_id
    else:
        experiment_id = existing.experiment_id
        if existing.lifecycle_stage == "deleted":
            _retry(client.restore_experiment, experiment_id)
    for key, value in ui.experiment_tags(name, settings).items():
        _retry(client.set_experiment_tag, experiment_id, key, value)
    return experiment_id


def _experiment(layout: Layout, dataset: str, settings=None):
    """(client, experiment id, uri) of a dataset's experiment, created by the first job that needs it (given
    the dataset's settings, for its tags): a dataset added to the job lists needs no new tracking-init.
    Never creates or migrates the store (tracking-init does, under its lock)."""
    uri = tracking_uri(layout)
    client = _connect(uri)
    experiment = _retry(client.get_experiment_by_name, dataset)
    if experiment is not None and experiment.lifecycle_stage == "active":
        return client, experiment.experiment_id, uri
    if settings is None:
        raise TrackingError(f"no MLflow experiment {dataset!r} in {uri}: {INIT_HINT} "
                            f"(and check that {dataset!r} is in a job list of params.yaml)")
    return client, _ensure_experiment(client, layout, dataset, uri, settings), uri


def preflight(layout: Layout, dataset: str, settings=None) -> None:
    """Fail now, in one line, if a job could not log: a server that does not answer within seconds, a
    missing or half-created store (call before touching any output). With the dataset's settings, a
    missing experiment is created."""
    _experiment(layout, dataset, settings)


def _runs_tagged(client, experiment_id: str, tags: Mapping[str, str]) -> list:
    from mlflow.entities import ViewType

    query = " AND ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    return _retry(client.search_runs, [experiment_id], filter_string=query, run_view_type=ViewType.ACTIVE_ONLY,
                  max_results=1000)


def _replace(client, experiment_id: str, tags: Mapping[str, str]) -> None:
    """Delete every active run of the experiment carrying these tags (the run about to be re-created)."""
    for run in _runs_tagged(client, experiment_id, tags):
        _retry(client.delete_run, run.info.run_id)


# --- job runs --------------------------------------------------------------------------------------
@contextlib.contextmanager
def job_run(layout: Layout, dataset: str, model: str, seed: int, *, regime: str, preset: str, data_hash: str,
            device: str, params: Mapping[str, Any]) -> Iterator[JobRun]:
    """One run `<model>-seed<k>` (`<model>-tuned-seed<k>` in the tuned regime) replacing any earlier one;
    FAILED (KILLED on Ctrl-C) with the error as tags if the block raises. What the store cannot take when
    the block ends is kept in the run folder (see seqbench.tracking_buffer); the block never fails for it.
    The dataset's experiment must exist (`preflight` with the dataset's settings makes it)."""
    client, experiment_id, uri = _experiment(layout, dataset)
    tags = {"dataset": dataset, "model": model, "seed": str(seed), "regime": regime, KIND_TAG: JOB}
    name = f"{model}-seed{seed}" if regime == "protocol" else f"{model}-{regime}-seed{seed}"
    try:  # until the run exists, a store that fails is an error; after, the run is buffered and kept
        _replace(client, experiment_id, tags)
        tags.update(preset=preset, git_commit=git_commit(layout.root), data_hash=data_hash, device=device)
        run = _retry(client.create_run, experiment_id, run_name=name, tags=tags)
    except Exception as error:
        if not server.is_connection_problem(error):
            raise
        raise TrackingError(server.unreachable_message(uri, server.reason(error))) from None
    job = JobRun(client, run.info.run_id, uri=uri,
                 spool=layout.run(dataset, model, seed, regime) / SPOOL_NAME,
                 identity={"experiment": dataset, "run_name": name}, params=param_list(flatten(params))).start()
    job.flush()  # the settings now, unless the store is already away
    outcome: BaseException | None = None
    try:
        yield job
    except BaseException as raised:
        outcome = raised
        raise
    finally:
        job.close(outcome)


# --- summary runs (aggregate stage) ----------------------------------------------------------------
def log_summary_run(layout: Layout, dataset: str, model: str, metrics: Mapping[str, float],
                    params: Mapping[str, Any], tags: Mapping[str, str], regime: str | None = None) -> str:
    """Run `<model>-summary` (tag seqbench.kind=summary) replacing an earlier one, made the parent of the
    model's seed runs (of `regime` only, if given); returns its id."""
    client, experiment_id, _ = _experiment(layout, dataset)
    keys = {"dataset": dataset, "model": model, KIND_TAG: SUMMARY, **({"regime": regime} if regime else {})}
    _replace(client, experiment_id, keys)
    name = f"{model}-summary" if regime in (None, "protocol") else f"{model}-{regime}-summary"
    run = _retry(client.create_run, experiment_id, run_name=name,
                 tags={**{k: str(v) for k, v in tags.items()}, **keys})
    try:
        send_batch(client, run.info.run_id, metrics=metric_list(metrics), params=param_list(flatten(params)))
        children = {"dataset": dataset, "model": model, KIND_TAG: JOB, **({"regime": regime} if regime else {})}
        for child in _runs_tagged(client, experiment_id, children):
            _retry(client.set_tag, child.info.run_id, PARENT_TAG, run.info.run_id)
    except BaseException:
        with contextlib.suppress(Exception):
            _retry(client.set_terminated, run.info.run_id, "FAILED")
        raise
    _retry(client.set_terminated, run.info.run_id, "FINISHED")
    return run.info.run_id


# --- runs kept locally while the store was away ----------------------------------------------------
def run_sync(params, layout: Layout) -> dict[str, Any]:
    """`python -m seqbench tracking-sync`: send every run folder's mlflow-unsynced.json to its store."""
    spools = sorted(layout.runs.glob(f"**/{SPOOL_NAME}")) if layout.runs.is_dir() else []
    if not spools:
        print("nothing to sync: no run folder holds unsent MLflow data")
        return {"synced": [], "failed": []}
    from seqbench.io import read_json

    clients: dict[str, Any] = {}  # uri -> client, or the error opening it (probed once)
    synced, failed = [], []
    for spool in spools:
        where = spool.parent.relative_to(layout.root)
        try:
            uri = read_json(spool)["uri"]
            if uri not in clients:
                try:
                    clients[uri] = _connect(uri)
                except TrackingError as error:
                    clients[uri] = error
            if isinstance(clients[uri], TrackingError):
                raise clients[uri]
            done = replay(clients[uri], spool)
        except Exception as error:
            failed.append(str(where))
            print(f"not synced {where}: {error if isinstance(error, TrackingError) else server.reason(error)}",
                  file=sys.stderr)
            continue
        synced.append(str(where))
        print(f"synced {where}: run {done['run_id']} {done['status']}, {done['metrics']} metric values"
              + (f" ({done['dropped']} dropped while buffering)" if done["dropped"] else ""))
    if failed:
        raise TrackingError(f"{len(failed)} of {len(spools)} runs not synced (reasons above); "
                            "rerun `python -m seqbench tracking-sync` once the store is available")
    return {"synced": synced, "failed": failed}


# --- searches (tune stage) -------------------------------------------------------------------------
SEARCH, TRIAL = "search", "trial"


class SearchRun:
    """The MLflow run of one search (see `search_run`); each trial a child run."""

    def __init__(self, client, experiment_id: str, run_id: str, tags: Mapping[str, str]):
        self.client, self.experiment_id, self.run_id, self.tags = client, experiment_id, run_id, tags

    def log_trial(self, number: int, settings: Mapping[str, Any], value: float | None, state: str) -> None:
        tags = {**self.tags, KIND_TAG: TRIAL, PARENT_TAG: self.run_id, "trial": str(number), "state": state.lower()}
        run = _retry(self.client.create_run, self.experiment_id, run_name=f"trial-{number}", tags=tags)
        finite = value is not None and value == value and abs(value) != float("inf")
        send_batch(self.client, run.info.run_id, metrics=metric_list({"val_loss": value if finite else None}),
                   params=param_list({k: str(v) for k, v in settings.items()}))
        _retry(self.client.set_terminated, run.info.run_id, "FAILED" if state.upper() == "FAIL" else "FINISHED")

    def finish(self, settings: Mapping[str, Any], value: float) -> None:
        send_batch(self.client, self.run_id, metrics=metric_list({"best_val_loss": value}),
                   params=param_list({f"best.{k}": str(v) for k, v in settings.items()}))


@contextlib.contextmanager
def search_run(layout: Layout, dataset: str, model: str, *, preset: str, space: Mapping[str, Any],
               budget: Mapping[str, Any], settings=None) -> Iterator[SearchRun]:
    """Run `<model>-search` (tag seqbench.kind=search) replacing an earlier one and its trials; FAILED
    (KILLED on Ctrl-C) if the block raises."""
    client, experiment_id, _ = _experiment(layout, dataset, settings)
    keys = {"dataset": dataset, "model": model}
    for kind in (SEARCH, TRIAL):
        _replace(client, experiment_id, {**keys, KIND_TAG: kind})
    run = _retry(client.create_run, experiment_id, run_name=f"{model}-search",
                 tags={**keys, KIND_TAG: SEARCH, "preset": preset, "git_commit": git_commit(layout.root)})
    search = SearchRun(client, experiment_id, run.info.run_id, keys)
    try:
        send_batch(client, search.run_id, params=param_list(flatten({"space": space, "budget": budget})))
        yield search
    except BaseException as error:
        with contextlib.suppress(Exception):
            _retry(client.set_terminated, search.run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    _retry(client.set_terminated, search.run_id, "FINISHED")
