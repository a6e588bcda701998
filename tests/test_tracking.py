"""seqbench.tracking against a real MLflow store in a temp SQLite file."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from seqbench import tracking
from seqbench.params import parse_params
from seqbench.paths import Layout


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An SQLite file holding MLflow's schema and nothing else (the migrations take seconds: run once)."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture()
def store(tmp_path: Path, params_dict: dict, monkeypatch: pytest.MonkeyPatch, empty_store: Path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    params_dict["preset"] = "smoke"
    params_dict["jobs"] = params_dict["presets"]["smoke"]["jobs"]  # synthetic only
    layout = Layout(tmp_path)
    marker = tracking.run_init(parse_params(params_dict), layout)
    return layout, marker


def _client(layout: Layout) -> MlflowClient:
    return MlflowClient(tracking.tracking_uri(layout))


def _runs(layout: Layout, view=ViewType.ACTIVE_ONLY):
    client = _client(layout)
    experiment = client.get_experiment_by_name("synthetic")
    return client.search_runs([experiment.experiment_id], run_view_type=view)


def _job(layout: Layout, model: str = "lstm", seed: int = 0):
    return tracking.job_run(layout, "synthetic", model, seed, regime="protocol", preset="smoke", data_hash="abc123", device="cpu",
                            params={"train": {"lr": 0.003, "tasks": ("h12",)}, "model": {"units": 4}})


def test_init_creates_store_experiments_and_marker_idempotently(store, params_dict):
    layout, marker = store
    assert marker["uri"] == f"sqlite:///{layout.mlflow_db.resolve()}"
    assert set(marker["experiments"]) == {"synthetic"}
    # every training job depends on the file: it must not change with the job lists or the folder's place
    assert json.loads((layout.runs / "tracking.json").read_text()) == {"store": "mlflow.db"}
    experiment = _client(layout).get_experiment_by_name("synthetic")
    assert experiment.artifact_location == (layout.mlflow_artifacts.resolve() / "synthetic").as_uri()
    params_dict["preset"] = "smoke"
    params_dict["jobs"] = params_dict["presets"]["smoke"]["jobs"]
    again = tracking.run_init(parse_params(params_dict), layout)
    assert again == marker


def test_job_run_tags_params_metrics_artifacts(store, tmp_path):
    layout, _ = store
    artifact = tmp_path / "history.csv"
    artifact.write_text("task,epoch\n")
    with _job(layout) as job:
        job.log_epoch("h12", 1, 0.5, 0.7)
        job.log_epoch("h12", 2, 0.4, 0.6)
        job.log_results({"tasks": {"h12": {"val": {"mse": 1.5, "mape": None}, "test": {"mse": 2.5},
                                           "test_per_horizon_mae": [0.1, 0.2, 0.3]},
                                   "next_step": {"status": "skipped", "reason": "x"}}})
        job.log_artifacts([artifact])
    (run,) = _runs(layout)
    assert run.info.run_name == "lstm-seed0" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert {k: tags[k] for k in ("dataset", "model", "seed", "preset", "data_hash", "device", "seqbench.kind")} == {
        "dataset": "synthetic", "model": "lstm", "seed": "0", "preset": "smoke", "data_hash": "abc123",
        "device": "cpu", "seqbench.kind": "job"}
    assert tags["git_commit"]
    assert run.data.params["train.lr"] == "0.003" and run.data.params["model.units"] == "4"
    assert run.data.metrics["h12/val_mse"] == 1.5 and run.data.metrics["h12/test_mse"] == 2.5
    assert "h12/val_mape" not in run.data.metrics  # None is not logged
    client = _client(layout)
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "h12/val_loss")] == [(1, 0.7),
                                                                                                      (2, 0.6)]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "h12/test_per_horizon_mae")] == [1, 2, 3]
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


def test_exception_marks_run_failed_and_propagates(store):
    layout, _ = store
    with pytest.raises(ZeroDivisionError), _job(layout, model="gru") as job:
        job.log_epoch("h12", 1, 0.5, 0.7)
        1 / 0
    (run,) = _runs(layout)
    assert run.info.status == "FAILED"
    assert run.data.metrics["h12/val_loss"] == 0.7  # the curve up to the failure is kept


def test_epoch_curves_are_sent_in_batches(store, monkeypatch):
    layout, _ = store
    monkeypatch.setattr(tracking.JobRun, "FLUSH_SECONDS", 3600.0)
    client = _client(layout)
    with _job(layout) as job:
        for epoch in (1, 2, 3):
            job.log_epoch("h12", epoch, 1.0 / epoch, 2.0 / epoch)
        assert client.get_metric_history(job.run_id, "h12/val_loss") == []  # not sent yet
        monkeypatch.setattr(tracking.JobRun, "FLUSH_SECONDS", 0.0)
        job.log_epoch("h12", 4, 0.25, 0.5)
        assert [m.step for m in client.get_metric_history(job.run_id, "h12/val_loss")] == [1, 2, 3, 4]
        job.log_epoch("h12", 5, 0.2, 0.4)
    assert [m.value for m in client.get_metric_history(job.run_id, "h12/val_loss")] == [2.0, 1.0, 2 / 3, 0.5, 0.4]


def test_a_missing_store_asks_for_tracking_init_and_a_missing_experiment_is_made(tmp_path, store):
    with pytest.raises(tracking.TrackingError, match="python -m seqbench tracking-init"):
        _job(Layout(tmp_path / "elsewhere")).__enter__()
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()  # nothing was created
    layout, _ = store
    client = _client(layout)
    assert client.get_experiment_by_name("cta") is None  # a dataset added to the job lists after tracking-init
    with tracking.job_run(layout, "cta", "lstm", 0, regime="protocol", preset="smoke", data_hash="", device="cpu",
                          params={}) as job:
        run_id = job.run_id
    assert client.get_run(run_id).info.experiment_id == client.get_experiment_by_name("cta").experiment_id


def test_environment_uri_wins(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'shared' / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert tracking.tracking_uri(Layout(tmp_path)) == uri


def test_summary_run_replaces_and_is_tagged(store):
    layout, _ = store
    for value in (1.0, 2.0):
        run_id = tracking.log_summary_run(layout, "synthetic", "lstm", {"h12/test_mse_mean": value},
                                          {"seeds": [0, 1]}, {"preset": "smoke"})
    (run,) = _runs(layout)
    assert run.info.run_id == run_id and run.info.run_name == "lstm-summary"
    assert run.data.tags["seqbench.kind"] == "summary" and run.data.tags["preset"] == "smoke"
    assert run.data.metrics == {"h12/test_mse_mean": 2.0}
    assert run.data.params == {"seeds": "[0, 1]"}


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
