"""A real `mlflow server` on 127.0.0.1 that is down when a job starts, dies during a job, and comes back:
`python -m seqbench train` fails fast in one line, or finishes its outputs and keeps the unsent run
for `tracking-sync`; metrics logged while the server is away reach it when it returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from mlflow.tracking import MlflowClient

from seqbench import download, features, split, standardize, tracking
from seqbench.params import parse_params
from seqbench.paths import Layout
from seqbench.tracking_buffer import SPOOL_NAME
from mlflow_server import Server

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("server"))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def project(tmp_path_factory, server: Server) -> Path:
    """Synthetic features (smoke preset, 4 epochs) and the experiment, created through the server."""
    root = tmp_path_factory.mktemp("project")
    params_dict = yaml.safe_load((ROOT / "params.yaml").read_text())
    params_dict["preset"] = "smoke"
    params_dict["jobs"] = params_dict["presets"]["smoke"]["jobs"]
    params_dict["presets"]["smoke"]["max_epochs"] = 4
    params_dict["presets"]["smoke"]["patience"] = 4
    (root / "params.yaml").write_text(yaml.safe_dump(params_dict, sort_keys=False))
    params, layout = parse_params(params_dict), Layout(root)
    for stage in (download, standardize, split, features):
        stage.run(params, layout, "synthetic")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", server.uri)
        for name, value in tracking.server.HTTP_DEFAULTS.items():
            patch.setenv(name, value)  # what a job process sets, kept out of the other tests
        tracking.run_init(params, layout)
    return root


def _env(uri: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri}


def _train(root: Path, uri: str, model: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqbench", "train", "-d", "synthetic", "-m", model, "-s", "0",
                             "--threads", "1"], cwd=root, env=_env(uri), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_server_down_at_start_fails_in_one_line_and_writes_nothing(project: Path, server: Server):
    server.kill()
    started = time.monotonic()
    job = _train(project, server.uri, "linear")
    out, err = job.communicate(timeout=240)
    seconds = time.monotonic() - started
    assert job.returncode == 1, err
    (line,) = _lines(err)
    assert line.startswith(f"error: MLflow tracking server {server.uri} is not reachable (connection refused")
    assert "MLFLOW_TRACKING_URI" in line
    assert seconds < 60, f"{seconds:.0f} s to a one-line error"  # a guard: the probe takes < 1 s of it
    assert not Layout(project).run("synthetic", "linear", 0).exists()
    init = subprocess.run([sys.executable, "-m", "seqbench", "tracking-init"], cwd=project, env=_env(server.uri),
                          capture_output=True, text=True, timeout=240)
    assert init.returncode == 1 and _lines(init.stderr)[-1].startswith(f"error: MLflow tracking server {server.uri}")
    assert "Traceback" not in init.stderr


def _wait_for_run(uri: str, name: str, job: subprocess.Popen):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and job.poll() is None:
        runs = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
        if runs:
            return runs[0]
        time.sleep(0.1)
    pytest.fail(f"the job never created its run: {job.stderr.read() if job.poll() is not None else ''}")


def test_server_dying_mid_job_keeps_outputs_and_syncs_when_back(project: Path, server: Server):
    server.start()
    job = _train(project, server.uri, "lstm")
    run = _wait_for_run(server.uri, "lstm-seed0", job)
    server.kill()  # the run exists and training goes on
    out, err = job.communicate(timeout=400)
    assert job.returncode == 0, err
    folder = Layout(project).run("synthetic", "lstm", 0)
    assert {"metrics.json", "history.csv", "predictions.parquet", "checkpoint.pt", SPOOL_NAME} <= {
        p.name for p in folder.iterdir()}
    (warning,) = [line for line in _lines(err) if "tracking-sync" in line]
    assert warning.startswith(f"warning: MLflow store {server.uri} not available (connection refused)")
    assert "the job's outputs are complete" in warning
    server.start()
    assert MlflowClient(server.uri).get_run(run.info.run_id).info.status == "RUNNING"  # until synced
    sync = subprocess.run([sys.executable, "-m", "seqbench", "tracking-sync"], cwd=project, env=_env(server.uri),
                          capture_output=True, text=True, timeout=240)
    assert sync.returncode == 0, sync.stderr
    assert "synced runs/synthetic/lstm/protocol/seed0: run" in sync.stdout and not (folder / SPOOL_NAME).exists()
    client = MlflowClient(server.uri)
    synced = client.get_run(run.info.run_id)
    assert synced.info.status == "FINISHED"
    metrics = json.loads((folder / "metrics.json").read_text())
    task, result = next((t, r) for t, r in metrics["tasks"].items() if r["status"] == "ok")
    assert synced.data.metrics[f"{task}/test_mae"] == pytest.approx(result["test"]["mae"])
    assert synced.data.metrics["params_count"] > 0
    history = pl.read_csv(folder / "history.csv").filter(pl.col("task") == task)
    curve = client.get_metric_history(run.info.run_id, f"{task}/val_loss")
    assert [m.step for m in curve] == history["epoch"].to_list()  # every epoch, also those after the crash
    assert [m.value for m in curve] == pytest.approx(history["val_loss"].to_list())
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "history.csv", "metrics.json", "predictions.parquet"]


@pytest.mark.timeout(600)
def test_metrics_logged_while_the_server_is_away_reach_it_when_it_returns(project: Path, server: Server,
                                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    for name, value in tracking.server.HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tracking.JobRun, "FLUSH_SECONDS", 0.2)
    monkeypatch.setattr(tracking.JobRun, "RETRY_MAX_SECONDS", 0.5)
    server.start()
    layout = Layout(project)
    with tracking.job_run(layout, "synthetic", "gru", 0, regime="protocol", preset="smoke", data_hash="x",
                          device="cpu", params={}) as job:
        job.log_epoch("h12", 1, 0.5, 0.7)
        assert job.flush()
        server.kill()
        job.log_epoch("h12", 2, 0.4, 0.6)
        started = time.monotonic()
        assert not job.flush()  # kept, and training goes on at once
        assert time.monotonic() - started < 15
        server.start()
        client = MlflowClient(server.uri)
        deadline = time.monotonic() + 60
        while len(client.get_metric_history(job.run_id, "h12/val_loss")) < 2:  # sent by the sender thread
            assert time.monotonic() < deadline, "buffered metrics never reached the server"
            time.sleep(0.2)
        job.log_epoch("h12", 3, 0.3, 0.5)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(job.run_id, "h12/val_loss")] == [1, 2, 3]
    assert not (layout.run("synthetic", "gru", 0) / SPOOL_NAME).exists()
