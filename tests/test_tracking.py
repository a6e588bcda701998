"""seqbench.tracking against a real MLflow store in a temp SQLite file (a tracking server: test_tracking_server)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from seqbench import tracking, tracking_ui
from seqbench.params import parse_params
from seqbench.paths import Layout
from seqbench.tracking_buffer import SPOOL_NAME


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An SQLite file holding MLflow's schema and nothing else (the migrations take seconds: run once)."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def _smoke(params_dict: dict):
    params_dict["preset"] = "smoke"
    params_dict["jobs"] = params_dict["presets"]["smoke"]["jobs"]  # synthetic only
    return parse_params(params_dict)


@pytest.fixture()
def store(tmp_path: Path, params_dict: dict, monkeypatch: pytest.MonkeyPatch, empty_store: Path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    layout = Layout(tmp_path)
    marker = tracking.run_init(_smoke(params_dict), layout)
    return layout, marker


def _client(layout: Layout) -> MlflowClient:
    return MlflowClient(tracking.tracking_uri(layout))


def _runs(layout: Layout, view=ViewType.ACTIVE_ONLY):
    client = _client(layout)
    experiment = client.get_experiment_by_name("synthetic")
    return client.search_runs([experiment.experiment_id], run_view_type=view)


def _job(layout: Layout, model: str = "lstm", seed: int = 0):
    return tracking.job_run(layout, "synthetic", model, seed, regime="protocol", preset="smoke", data_hash="abc123",
                            device="cpu", params={"train": {"lr": 0.003, "tasks": ("h12",)}, "model": {"units": 4}})


RESULTS = {"tasks": {"h12": {"val": {"mae": 1.5, "mape": None}, "test": {"mae": 2.5}, "train_seconds": 3.25,
                             "params_count": 120, "epochs": 4, "best_epoch": 3, "test_per_horizon_mae": [0.1, 0.2]},
                     "h24": {"val": {"mae": 1.0}, "test": {"mae": 2.0}, "train_seconds": 1.5, "params_count": 240,
                             "epochs": 2, "best_epoch": 2},
                     "next_step": {"status": "skipped", "reason": "x"}},
           "cost": {"peak_memory_mb": 321.5}}


def test_init_creates_store_experiments_tags_and_marker_idempotently(store, params_dict, capsys):
    layout, marker = store
    assert marker["uri"] == f"sqlite:///{layout.mlflow_db.resolve()}"
    assert set(marker["experiments"]) == {"synthetic"}
    # every training job depends on the file: it must not change with the job lists or the folder's place
    assert json.loads((layout.runs / "tracking.json").read_text()) == {"store": "mlflow.db"}
    experiment = _client(layout).get_experiment_by_name("synthetic")
    assert experiment.artifact_location == (layout.mlflow_artifacts.resolve() / "synthetic").as_uri()
    tags = experiment.tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"  # a training experiment, not GenAI
    view = json.loads(tags["mlflow.sharedViewState.seqbench"])
    state = json.loads(view["state"])
    assert view["name"] == "seqbench: test mae by model" and state["orderByAsc"] is True
    assert state["selectedColumns"][:4] == ["metrics.`next_step/test_mae`", "metrics.`h12/test_mae`",
                                            "metrics.`train_seconds`", "metrics.`params_count`"]
    assert [key["groupByData"] for key in state["groupBy"]["groupByKeys"]] == ["model", "regime"]
    again = tracking.run_init(_smoke(params_dict), layout)
    assert again == marker
    out = capsys.readouterr().out
    assert f"synthetic: {tracking_ui.LOCAL_UI}/#/experiments/{marker['experiments']['synthetic']}/runs?" in out


def test_job_run_tags_params_metrics_costs_artifacts(store, tmp_path):
    layout, _ = store
    artifact = tmp_path / "history.csv"
    artifact.write_text("task,epoch\n")
    with _job(layout) as job:
        job.log_epoch("h12", 1, 0.5, 0.7)
        job.log_epoch("h12", 2, 0.4, 0.6)
        job.log_results(RESULTS)
        job.log_artifacts([artifact])
    (run,) = _runs(layout)
    assert run.info.run_name == "lstm-seed0" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert {k: tags[k] for k in ("dataset", "model", "seed", "preset", "data_hash", "device", "seqbench.kind")} == {
        "dataset": "synthetic", "model": "lstm", "seed": "0", "preset": "smoke", "data_hash": "abc123",
        "device": "cpu", "seqbench.kind": "job"}
    assert tags["git_commit"] and "seqbench.error" not in tags
    assert run.data.params["train.lr"] == "0.003" and run.data.params["model.units"] == "4"
    metrics = run.data.metrics
    assert metrics["h12/val_mae"] == 1.5 and metrics["h12/test_mae"] == 2.5 and metrics["h24/test_mae"] == 2.0
    assert "h12/val_mape" not in metrics  # None is not logged
    assert (metrics["h12/train_seconds"], metrics["h12/params_count"], metrics["h12/best_epoch"]) == (3.25, 120, 3)
    # the cost of the whole job, for the UI's accuracy-against-cost charts
    assert (metrics["train_seconds"], metrics["params_count"], metrics["peak_memory_mb"]) == (4.75, 240, 321.5)
    client = _client(layout)
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "h12/val_loss")] == [(1, 0.7),
                                                                                                      (2, 0.6)]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "h12/test_per_horizon_mae")] == [1, 2]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["history.csv"]
    assert Path(layout.mlflow_artifacts / "synthetic" / run.info.run_id / "artifacts" / "history.csv").is_file()


def test_rerun_replaces_the_previous_run(store):
    layout, _ = store
    for _ in range(2):
        with _job(layout) as job:
            first_or_second = job.run_id
    with _job(layout, seed=1):
        pass
    active = _runs(layout)
    assert sorted(r.info.run_name for r in active) == ["lstm-seed0", "lstm-seed1"]
    assert first_or_second in {r.info.run_id for r in active}
    assert len(_runs(layout, ViewType.DELETED_ONLY)) == 1


def test_exception_marks_run_failed_with_the_error_and_propagates(store):
    layout, _ = store
    with pytest.raises(ZeroDivisionError), _job(layout, model="gru") as job:
        job.log_epoch("h12", 1, 0.5, 0.7)
        1 / 0
    with _job(layout, model="lstm") as job:  # a failure the job records itself, without raising
        job.fail(ValueError("loss is NaN at epoch 3"))
    runs = {r.info.run_name: r for r in _runs(layout)}
    assert runs["gru-seed0"].info.status == "FAILED"
    assert runs["gru-seed0"].data.metrics["h12/val_loss"] == 0.7  # the curve up to the failure is kept
    assert runs["gru-seed0"].data.tags["seqbench.error_class"] == "ZeroDivisionError"
    assert runs["lstm-seed0"].info.status == "FAILED"
    assert runs["lstm-seed0"].data.tags["seqbench.error"] == "loss is NaN at epoch 3"


def test_epoch_curves_are_sent_in_batches_in_the_background(store, monkeypatch):
    layout, _ = store
    monkeypatch.setattr(tracking.JobRun, "FLUSH_SECONDS", 3600.0)
    client = _client(layout)
    with _job(layout) as job:
        for epoch in (1, 2, 3):
            job.log_epoch("h12", epoch, 1.0 / epoch, 2.0 / epoch)
        assert client.get_metric_history(job.run_id, "h12/val_loss") == []  # not sent yet
        assert job.flush()
        assert [m.step for m in client.get_metric_history(job.run_id, "h12/val_loss")] == [1, 2, 3]
        job.log_epoch("h12", 4, 0.25, 0.5)
    assert [m.value for m in client.get_metric_history(job.run_id, "h12/val_loss")] == [2.0, 1.0, 2 / 3, 0.5]
    monkeypatch.setattr(tracking.JobRun, "FLUSH_SECONDS", 0.05)
    with _job(layout, seed=1) as job:
        job.log_epoch("h12", 1, 0.5, 0.7)
        deadline = time.monotonic() + 30
        while not client.get_metric_history(job.run_id, "h12/val_loss"):  # the sender thread, not a flush
            assert time.monotonic() < deadline, "the epoch metric never reached the store"
            time.sleep(0.05)


def _dead_uri() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again: nothing listens there


def test_what_the_store_cannot_take_is_kept_and_synced_later(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    layout, _ = store
    folder = layout.run("synthetic", "lstm", 0)
    (folder / "history.csv").parent.mkdir(parents=True)
    (folder / "history.csv").write_text("task,epoch\n")
    with _job(layout) as job:
        job.log_epoch("h12", 1, 0.5, 0.7)
        assert job.flush()
        job.client = MlflowClient(_dead_uri())  # the store goes away for the rest of the job
        job.log_epoch("h12", 2, 0.4, 0.6)
        job.log_results(RESULTS)
        job.log_artifacts([folder / "history.csv"])
    warning = [line for line in capsys.readouterr().err.splitlines() if "tracking-sync" in line]
    assert len(warning) == 1 and "the job's outputs are complete" in warning[0] and str(folder) in warning[0]
    spool = json.loads((folder / SPOOL_NAME).read_text())
    assert spool["status"] == "FINISHED" and spool["artifacts"] == ["history.csv"]
    (run,) = _runs(layout)
    assert run.info.status == "RUNNING" and "h12/test_mae" not in run.data.metrics
    result = tracking.run_sync(None, layout)
    assert result == {"synced": ["runs/synthetic/lstm/protocol/seed0"], "failed": []}
    (run,) = _runs(layout)
    assert run.info.status == "FINISHED" and run.data.metrics["h12/test_mae"] == 2.5
    assert [m.step for m in _client(layout).get_metric_history(run.info.run_id, "h12/val_loss")] == [1, 2]
    assert [a.path for a in _client(layout).list_artifacts(run.info.run_id)] == ["history.csv"]
    assert not (folder / SPOOL_NAME).exists()
    assert tracking.run_sync(None, layout) == {"synced": [], "failed": []}


def test_missing_or_empty_store_asks_for_tracking_init_and_a_jobs_experiment_is_made(tmp_path, store, params_dict):
    with pytest.raises(tracking.TrackingError, match="python -m seqbench tracking-init"):
        _job(Layout(tmp_path / "elsewhere")).__enter__()
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()  # nothing was created
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "mlflow.db").write_bytes(b"")
    with pytest.raises(tracking.TrackingError, match=r"mlflow.db is empty or half-created: run `python -m"):
        _job(Layout(tmp_path / "empty")).__enter__()
    assert (tmp_path / "empty" / "mlflow.db").stat().st_size == 0  # a job never creates or migrates a schema
    layout, _ = store
    with pytest.raises(tracking.TrackingError, match="no MLflow experiment 'cta'.*tracking-init"):
        tracking.job_run(layout, "cta", "lstm", 0, regime="protocol", preset="smoke", data_hash="", device="cpu",
                         params={}).__enter__()
    # a dataset added to the job lists after tracking-init: its first job's preflight makes the experiment
    tracking.preflight(layout, "cta", parse_params(params_dict).dataset("cta"))
    with tracking.job_run(layout, "cta", "lstm", 0, regime="protocol", preset="smoke", data_hash="", device="cpu",
                          params={}) as job:
        run_id = job.run_id
    client = _client(layout)
    assert client.get_run(run_id).info.experiment_id == client.get_experiment_by_name("cta").experiment_id


def _stamp_base_revision(path: Path) -> None:
    """Make the schema's recorded revision disagree with its tables (a migration that stopped half-way)."""
    from alembic.script import ScriptDirectory

    base = ScriptDirectory(str(Path(mlflow.__file__).parent / "store" / "db_migrations")).get_base()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (base,))


@pytest.mark.parametrize("damage", ["not_a_database", "half_migrated"])
def test_init_repairs_a_broken_store_that_holds_no_runs(tmp_path, params_dict, monkeypatch, empty_store, capsys,
                                                        damage):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = tmp_path / "mlflow.db"
    if damage == "not_a_database":
        path.write_bytes(b"this is not an SQLite file\n" * 200)
    else:
        shutil.copy(empty_store, path)
        _stamp_base_revision(path)
    marker = tracking.run_init(_smoke(params_dict), Layout(tmp_path))
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("repaired")]
    (aside,) = tmp_path.glob("mlflow.db.broken-*")
    assert f"kept it as {aside.name}" in line
    assert MlflowClient(marker["uri"]).get_experiment_by_name("synthetic") is not None


def test_init_never_discards_runs_and_says_how_to_upgrade(tmp_path, params_dict, monkeypatch, empty_store):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    made = tmp_path / "made" / "mlflow.db"  # MLflow caches a store per URI: make the run through another one
    made.parent.mkdir()
    shutil.copy(empty_store, made)
    client = MlflowClient(f"sqlite:///{made}")
    client.create_run(client.create_experiment("kept"))
    path = tmp_path / "mlflow.db"
    shutil.copy(made, path)
    _stamp_base_revision(path)
    with pytest.raises(tracking.TrackingError) as caught:
        tracking.run_init(_smoke(params_dict), Layout(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and "holds 1 runs" in message and f"mlflow db upgrade sqlite:///{path}" in message
    assert path.is_file() and not list(tmp_path.glob("mlflow.db.broken-*"))


def test_concurrent_tracking_init_on_a_fresh_store(project: Path):
    """Several tracking-init processes started at once on no store: every one succeeds, one schema, one
    experiment per dataset."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, "-m", "seqbench", "tracking-init"], cwd=project, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 3, "\n".join(o[-2000:] for o in outputs)
    assert not any("Traceback" in out for out in outputs)
    params = yaml.safe_load((project / "params.yaml").read_text())
    datasets = {d for group in params["jobs"].values() for d in group["datasets"]}
    names = [e.name for e in MlflowClient(f"sqlite:///{project / 'mlflow.db'}").search_experiments()]
    assert sorted(names) == sorted(datasets | {"Default"})


def test_summary_run_replaces_is_tagged_and_parents_the_seed_runs(store):
    layout, _ = store
    for seed in (0, 1):
        with _job(layout, seed=seed):
            pass
    with _job(layout, model="gru"):
        pass
    for value in (1.0, 2.0):
        run_id = tracking.log_summary_run(layout, "synthetic", "lstm", {"h12/test_mae_mean": value},
                                          {"seeds": [0, 1]}, {"preset": "smoke"})
    runs = {r.info.run_name: r for r in _runs(layout)}
    assert set(runs) == {"lstm-summary", "lstm-seed0", "lstm-seed1", "gru-seed0"}
    run = runs["lstm-summary"]
    assert run.info.run_id == run_id
    assert run.data.tags["seqbench.kind"] == "summary" and run.data.tags["preset"] == "smoke"
    assert run.data.metrics == {"h12/test_mae_mean": 2.0}
    assert run.data.params == {"seeds": "[0, 1]"}
    assert runs["lstm-seed0"].data.tags["mlflow.parentRunId"] == run_id  # nested under the summary in the UI
    assert runs["lstm-seed1"].data.tags["mlflow.parentRunId"] == run_id
    assert "mlflow.parentRunId" not in runs["gru-seed0"].data.tags


def test_environment_uri_wins(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'shared' / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert tracking.tracking_uri(Layout(tmp_path)) == uri


def test_flatten_nested_settings():
    assert tracking.flatten({"a": {"b": 1, "c": (2, 3)}, "d": None}) == {"a.b": "1", "a.c": "[2, 3]", "d": "None"}


def test_retry_waits_out_a_locked_database(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert tracking._retry(flaky) == "done" and len(calls) == 3
    with pytest.raises(KeyError):  # any other error is not retried
        tracking._retry(lambda: {}["missing"])


def test_logging_waits_for_another_writer(store):
    """Another process's write transaction holds the file for a while: the job's logging waits, then succeeds."""
    layout, _ = store
    locker = sqlite3.connect(layout.mlflow_db, timeout=30, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.5, locker.commit)
    release.start()
    try:
        with _job(layout) as job:
            job.log_epoch("h12", 1, 0.5, 0.7)
    finally:
        release.join()
        locker.close()
    (run,) = _runs(layout)
    assert run.info.status == "FINISHED" and run.data.metrics["h12/val_loss"] == 0.7
