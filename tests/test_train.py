"""train stage on the synthetic dataset (smoke preset), through the real stages, models and MLflow store."""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from torch import nn

from seqbench import download, features, loop, split, standardize, tracking, train
from seqbench.batches import ForecastData, eval_samples, make_data
from seqbench import evaluate as ev
from seqbench.errors import TrainingError
from seqbench.features import ForecastFeatures
from seqbench.job import make_job
from seqbench.models import REGISTRY, ModelEntry
from seqbench.params import parse_params
from seqbench.paths import Layout
from seqbench.tasks import ForecastTask
from workflow_tools import set_keys

TIMING = ("train_seconds", "seconds_per_epoch")


def smoke_params(params_dict: dict, **changes) -> dict:
    """The real params.yaml, smoke preset, jobs: synthetic + small IMDB and Shakespeare jobs."""
    params_dict["preset"] = "smoke"
    params_dict["jobs"] = params_dict["presets"]["smoke"]["jobs"]
    params_dict["jobs"]["text"] = {"datasets": ["imdb"], "models": ["bow_tfidf", "textcnn"]}
    params_dict["jobs"]["chars"] = {"datasets": ["shakespeare"], "models": ["char_gru"]}
    params_dict["datasets"]["imdb"]["sequence_length"] = 32  # below the tiny reviews' longest (12-48 tokens)
    params_dict["datasets"]["shakespeare"]["sample_length"] = 50
    models = params_dict["models"]
    models["mlp"] = {"hidden": [16], "dropout": 0.3}  # dropout: the global RNG matters
    models["textcnn"] = {"embed_dim": 8, "filters": 4, "kernel_sizes": [3], "dropout": 0.5}
    models["char_gru"] = {"embed_dim": 8, "units": 16}
    return set_keys(params_dict, changes)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A project folder with synthetic features and an MLflow store (built once, copied per test)."""
    import rawdata

    root = tmp_path_factory.mktemp("base")
    mirror = rawdata.make_mirror(tmp_path_factory.mktemp("mirror"), datasets=("imdb", "shakespeare"))
    params_dict = smoke_params(yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text()))
    params_dict["data"]["mirrors"] = [str(mirror)]
    params, layout = parse_params(params_dict), Layout(root)
    with pytest.MonkeyPatch.context() as patch:
        # the tiny raw files above, even where $SEQBENCH_MIRROR (searched first) points at the real data
        patch.delenv("SEQBENCH_MIRROR", raising=False)
        for dataset in ("synthetic", "imdb", "shakespeare"):
            for stage in (download, standardize, split, features):
                stage.run(params, layout, dataset)
    (root / "params.yaml").write_text(yaml.safe_dump(params_dict, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.run_init(params, layout)
    return root


@pytest.fixture()
def project(base: Path, tmp_path: Path, params_dict: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "project"
    shutil.copytree(base, root)

    def setup(**changes):
        data = smoke_params(copy.deepcopy(params_dict), **changes)
        (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return parse_params(data), Layout(root)

    return setup


def without_timing(metrics: dict) -> dict:
    out = {k: v for k, v in metrics.items() if k not in ("cost", "mlflow_run_id")}
    out["tasks"] = {name: {k: v for k, v in task.items() if k not in TIMING} for name, task in metrics["tasks"].items()}
    return out


def outputs(layout: Layout, model: str, seed: int) -> dict:
    folder = layout.run("synthetic", model, seed)
    history = pl.read_csv(folder / "history.csv").drop("seconds")
    return {"metrics": without_timing(json.loads((folder / "metrics.json").read_text())),
            "history": history.to_dicts(),
            "predictions": pl.read_parquet(folder / "predictions.parquet").to_dicts()}


def active_runs(layout: Layout):
    client = MlflowClient(tracking.tracking_uri(layout))
    experiment = client.get_experiment_by_name("synthetic")
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ACTIVE_ONLY)


# --- determinism and outputs -----------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_seeds_differ(project):
    params, layout = project()
    train.run(params, layout, "synthetic", "mlp", 0, threads=1)
    first = outputs(layout, "mlp", 0)
    train.run(params, layout, "synthetic", "mlp", 0, threads=1)
    assert outputs(layout, "mlp", 0) == first
    train.run(params, layout, "synthetic", "mlp", 1, threads=1)
    other = outputs(layout, "mlp", 1)
    assert other["metrics"]["tasks"]["h12"]["test"] != first["metrics"]["tasks"]["h12"]["test"]
    assert [r.info.run_name for r in active_runs(layout)].count("mlp-seed0") == 1  # the re-run replaced it


def test_outputs_follow_the_contract(project):
    params, layout = project()
    metrics = train.run(params, layout, "synthetic", "linear", 0, threads=1)
    folder = layout.run("synthetic", "linear", 0)
    assert sorted(p.name for p in folder.iterdir()) == sorted(train.OUTPUTS)  # resume.pt is gone
    assert json.loads((folder / "metrics.json").read_text()) == metrics
    assert metrics["status"] == "ok" and metrics["family"] == "forecast" and metrics["metric_units"] == "original"
    assert metrics["cost"]["device"] == "cpu" and metrics["cost"]["threads"] == 1
    assert metrics["cost"]["peak_memory_mb"] > 0
    assert metrics["tags"]["torch"] == torch.__version__
    h12 = metrics["tasks"]["h12"]
    assert h12["kind"] == "forecast_multi" and h12["status"] == "ok"
    assert set(h12["val"]) == set(h12["test"]) == {"mae", "mse", "rmse", "mape"}
    assert len(h12["test_per_horizon_mae"]) == 12 and "val_per_horizon_mae" not in metrics["tasks"]["next_step"]
    assert 1 <= h12["best_epoch"] <= h12["epochs"] <= 2 and h12["params_count"] == 48 * 3 * 12 * 3 + 12 * 3

    history = pl.read_csv(folder / "history.csv")
    assert history.columns == list(train.HISTORY_COLUMNS)
    assert history.filter(pl.col("task") == "h12")["epoch"].to_list() == list(range(1, h12["epochs"] + 1))

    predictions = pl.read_parquet(folder / "predictions.parquet")
    assert dict(predictions.schema) == ev.PREDICTION_SCHEMAS["forecast"]
    test_h12 = predictions.filter((pl.col("task") == "h12") & (pl.col("split") == "test"))
    assert test_h12.height <= 256  # smoke max_eval_samples
    assert test_h12["mse"].mean() == pytest.approx(h12["test"]["mse"])  # equal windows: mean of means
    assert test_h12["y_pred"].list.len().unique().to_list() == [12]

    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    task = ForecastTask(**{k: v for k, v in checkpoint["tasks"]["h12"]["task"].items() if k not in ("family", "kind")})
    model = REGISTRY["linear"].build(task, params.model_settings("linear"))
    model.load_state_dict(checkpoint["tasks"]["h12"]["state_dict"])

    (run,) = active_runs(layout)
    assert run.info.run_id == metrics["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.data.tags["data_hash"] == metrics["tags"]["data_hash"]
    assert run.data.metrics["h12/test_mse"] == h12["test"]["mse"]
    assert "h12/train_loss" in run.data.metrics and "next_step/val_loss" in run.data.metrics
    assert run.data.params["train.batch_size"] == "64" and run.data.params["train.loss"] == "mse"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_peak_memory_is_the_jobs_own_not_its_parents():
    """A job started (exec) by a process that once held 1 GB reports its own peak, not the parent's."""
    child = "import torch; from seqbench.device import peak_memory_mb; print(peak_memory_mb(torch.device('cpu')))"
    parent = (f"import os, sys; held = b'x' * 2**30; "
              f"os.execv(sys.executable, [sys.executable, '-c', {child!r}])")
    peak = float(subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True).stdout)
    assert 10 < peak < 900  # python + torch, well under the parent's 1024+ MB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("configured", [False, True], ids=["glibc-default", "configured"])
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again(configured):
    """oneDNN's LSTM allocates a ~34 MB block per training step (batch 256, 32 units, 120 steps): after
    device.configure it comes from the heap, without page faults; by default it is mapped afresh. The
    fewest faults of three steps count: a single step once took 100 or more in a full suite run (and 0
    in each of nine reruns), while a freshly mapped block faults thousands of times at every step."""
    script = (
        "import resource, torch; from seqbench import device\n"
        f"if {configured}: device.configure(torch.device('cpu'), 1)\n"
        "lstm, x = torch.nn.LSTM(14, 32, batch_first=True), torch.randn(256, 120, 14)\n"
        "step = lambda: lstm(x)[0][:, -1].sum().backward()\n"
        "faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "step(); step(); counts = []\n"
        "for _ in range(3):\n"
        "    before = faults(); step(); counts.append(faults() - before)\n"
        "print(min(counts))")
    faults = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert (faults < 100) if configured else (faults > 4000)


def test_naive_is_evaluated_only_and_matches_the_raw_series(project):
    params, layout = project()
    metrics = train.run(params, layout, "synthetic", "naive", 0, threads=1)
    task = metrics["tasks"]["next_step"]
    assert task["epochs"] == 0 and task["params_count"] == 0
    assert pl.read_csv(layout.run("synthetic", "naive", 0) / "history.csv").height == 0
    # independent check: |x0[t+1] - x0[t]| on the standardized (original-unit) table, same windows
    x0 = pl.read_parquet(layout.standard("synthetic"))["x0"].to_numpy()
    predictions = pl.read_parquet(layout.run("synthetic", "naive", 0) / "predictions.parquet")
    windows = predictions.filter((pl.col("task") == "next_step") & (pl.col("split") == "val"))["window"].to_numpy()
    expected = np.abs(x0[windows + 48] - x0[windows + 47]).mean()
    assert task["val"]["mae"] == pytest.approx(expected, rel=1e-5)


def test_unsupported_task_is_skipped(project):
    params, layout = project()
    univariate_naive = replace(REGISTRY["naive"], univariate_only=True)  # SARIMA's restriction
    job = make_job(params, "synthetic", "naive", 0, features.load_features(layout.features("synthetic")), threads=1)
    outcome = train.train_job(replace(job, entry=univariate_naive), layout.run("synthetic", "naive", 0),
                              train.JobOutcome())
    assert outcome.results["h12"]["status"] == "skipped" and "univariate" in outcome.results["h12"]["reason"]
    assert outcome.results["next_step"]["status"] == "ok" and set(outcome.states) == {"next_step"}
    assert [frame["task"].unique().to_list() for frame in outcome.frames] == [["next_step"]]


def test_unavailable_dataset_writes_placeholders_without_a_run(project):
    params, layout = project()
    folder = layout.split("jena")
    folder.mkdir(parents=True)
    (folder / "split.json").write_text(json.dumps({"dataset": "jena", "status": "unavailable",
                                                   "reason": "put jena_climate_2009_2016.csv.zip in a mirror"}))
    features.run(params, layout, "jena")
    metrics = train.run(params, layout, "jena", "lstm", 0, threads=1)
    out = layout.run("jena", "lstm", 0)
    assert metrics["status"] == "unavailable" and "mirror" in metrics["reason"] and metrics["tasks"] == {}
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "history.csv").read_text() == ",".join(train.HISTORY_COLUMNS) + "\n"
    empty = pl.read_parquet(out / "predictions.parquet")
    assert empty.height == 0 and dict(empty.schema) == ev.PREDICTION_SCHEMAS["forecast"]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["status"] == "unavailable"


def test_a_diverging_job_is_recorded_as_failed_with_where_and_why(project):
    params, layout = project(**{"models.linear": {"lr": 1e30}, "training.clip_norm": None})
    metrics = train.run(params, layout, "synthetic", "linear", 0, threads=1)
    out = layout.run("synthetic", "linear", 0)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["status"] == "failed" and metrics["reason"].startswith("TrainingError: ")
    failure = metrics["failure"]
    assert (failure["error"], failure["task"], failure["epoch"], failure["batch"]) == ("TrainingError", "next_step", 1, 2)
    message = failure["message"]
    assert "task 'next_step'" in message and "epoch 1, batch 2" in message
    assert "models.linear.lr" in message and "training.clip_norm" in message
    assert metrics["tasks"] == {}  # next_step is the first task: nothing finished before it
    for name in train.OUTPUTS:  # every output exists, so both orchestrators go on to the report
        assert (out / name).is_file(), name
    assert not (out / "resume.pt").exists()
    (run,) = active_runs(layout)
    assert run.info.status == "FAILED" and run.data.tags["seqbench.error_class"] == "TrainingError"
    assert run.data.tags["seqbench.error"] == failure["message"]


def test_a_failed_job_keeps_the_tasks_finished_before(project, monkeypatch):
    params, layout = project()
    real_fit_task = train.fit_task

    def fail_on_h12(job, task, *args):
        if task.name == "h12":
            raise RuntimeError("out of memory on purpose\nsecond line")
        return real_fit_task(job, task, *args)

    monkeypatch.setattr(train, "fit_task", fail_on_h12)
    metrics = train.run(params, layout, "synthetic", "linear", 0, threads=1)
    assert metrics["reason"] == "RuntimeError: out of memory on purpose"
    assert list(metrics["tasks"]) == ["next_step"] and metrics["tasks"]["next_step"]["status"] == "ok"
    predictions = pl.read_parquet(layout.run("synthetic", "linear", 0) / "predictions.parquet")
    assert predictions["task"].unique().to_list() == ["next_step"]


def test_text_models_on_sequences_and_bag_of_words(project):
    params, layout = project()
    for model in ("bow_tfidf", "textcnn"):
        metrics = train.run(params, layout, "imdb", model, 0, threads=1)
        task = metrics["tasks"]["sentiment"]
        assert metrics["family"] == "text" and task["kind"] == "text_binary" and task["epochs"] >= 1
        assert set(task["test"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
        predictions = pl.read_parquet(layout.run("imdb", model, 0) / "predictions.parquet")
        assert dict(predictions.schema) == ev.PREDICTION_SCHEMAS["text"]
        val = predictions.filter(pl.col("split") == "val")
        labels = features.load_features(layout.features("imdb")).labels["val"]
        assert val["label"].to_list() == labels[val["index"].to_numpy()].tolist()
        assert task["val"]["accuracy"] == pytest.approx(((val["prob"] > 0.5) == (val["label"] == 1)).mean())


@pytest.mark.parametrize("model_name", ["textcnn", "bilstm_embedding"])
def test_length_buckets_cover_every_text_once_and_do_not_change_predictions(project, model_name):
    params, layout = project()
    train.run(params, layout, "imdb", "bow_unigram", 0, threads=1)  # builds the features
    feats = features.load_features(layout.features("imdb"))
    job = make_job(params, "imdb", model_name, 0, feats, threads=1)
    # the fixture cuts texts at 32 tokens: widths in multiples of 8 here (64 on the real data)
    entry = job.entry if job.entry.length_multiple == 1 else replace(job.entry, length_multiple=8)
    model = entry.build(feats.task, job.settings)
    trimmed = make_data(feats, feats.task, entry, job.device)
    full = make_data(feats, feats.task, replace(entry, masks_padding=False), job.device)
    assert trimmed.trim and not full.trim
    ids = trimmed.samples("train")
    batches = trimmed.train_batches(ids, 4, torch.Generator().manual_seed(0))
    assert sorted(np.concatenate(batches).tolist()) == ids.tolist() and max(map(len, batches)) <= 4
    val = trimmed.samples("val")
    by_length = val[trimmed.eval_order("val", val)]
    for part, cut_batches in (("train", batches), ("val", [by_length[i:i + 4] for i in range(0, len(val), 4)])):
        widths = [trimmed.batch(part, b)[0].shape[1] for b in cut_batches]
        longest = [int(trimmed.lengths(part)[b].max()) for b in cut_batches]
        assert widths == [min(-(-n // entry.length_multiple) * entry.length_multiple, feats.task.sequence_length)
                          for n in longest]
    assert max(widths) == feats.task.sequence_length and min(widths) < feats.task.sequence_length
    loss_trimmed, kept_trimmed = loop.predict(job, model, trimmed, "val", val)
    loss_full, kept_full = loop.predict(job, model, full, "val", val)
    torch.testing.assert_close(kept_trimmed["out"], kept_full["out"], atol=1e-5, rtol=1e-5)
    assert loss_trimmed == pytest.approx(loss_full, abs=1e-6)


def test_char_model_scores_every_character_once_and_samples(project):
    params, layout = project()
    metrics = train.run(params, layout, "shakespeare", "char_gru", 0, threads=1)
    task = metrics["tasks"]["next_char"]
    assert set(task["test"]) == {"accuracy", "bits_per_char"} and 0 < task["test"]["bits_per_char"] < 10
    assert task["sample"].startswith("to be or not to b") and len(task["sample"]) == len("to be or not to b") + 50
    predictions = pl.read_parquet(layout.run("shakespeare", "char_gru", 0) / "predictions.parquet")
    assert dict(predictions.schema) == ev.PREDICTION_SCHEMAS["chars"]
    starts = predictions.filter(pl.col("split") == "test")["window"].to_numpy()
    assert (np.diff(starts) >= 100).all()  # non-overlapping evaluation windows
    again = train.run(params, layout, "shakespeare", "char_gru", 0, threads=1)
    assert again["tasks"]["next_char"]["sample"] == task["sample"]


# --- early stopping on a constructed case ----------------------------------------------------------
class Scale(nn.Module):
    """y = w * x, starting at w = -1: right for validation (next = -current), wrong for training."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(-1.0))

    def forward(self, x):  # (B, 1, 1) -> (B, 1, 1)
        return self.w * x


@dataclass(frozen=True)
class LocalEntry(ModelEntry):
    factory: Callable | None = None

    def build(self, task, settings):
        return self.factory()


def test_early_stopping_restores_the_best_weights(project, monkeypatch):
    monkeypatch.setattr(loop, "RESUME_SECONDS", 0.0)  # a resume snapshot after every epoch
    params, layout = project(**{"datasets.synthetic.training": {"batch_size": 32, "loss": "mse", "optimizer": "sgd",
                                                                "lr": 0.05},
                                "presets.smoke.max_epochs": 10, "presets.smoke.patience": 2})
    t = np.arange(300)
    series = np.where(t < 200, np.sin(t / 15.0), np.sin(t / 15.0) * (-1.0) ** t).astype(np.float32)[:, None]
    task = ForecastTask("flip", lookback=1, horizon=1, inputs=("x",), targets=("x",))
    feats = ForecastFeatures(series=series, timestamps=np.arange(300).astype("datetime64[h]").astype("datetime64[ns]"),
                             columns=("x",), mean=np.zeros(1), scale=np.ones(1), metric_units="scaled",
                             splits={"train": (0, 200), "val": (200, 250), "test": (250, 300)},
                             tasks={"flip": task}, data_hash="handmade")
    job = make_job(params, "synthetic", "linear", 0, feats, threads=1)
    job = replace(job, entry=LocalEntry("scale", {}, ("forecast_single",), factory=Scale))
    snapshots = []
    outcome = loop.fit_task(job, task, save=lambda state: snapshots.append(copy.deepcopy(state)))
    val_losses = [row["val_loss"] for row in outcome.history]
    assert val_losses == sorted(val_losses) and len(set(val_losses)) == 3  # worse every epoch
    assert outcome.result["epochs"] == 3 and outcome.result["best_epoch"] == 1  # stopped after patience 2
    assert torch.equal(outcome.best_state["w"], snapshots[0]["model"]["w"])
    assert not torch.equal(outcome.best_state["w"], snapshots[-1]["model"]["w"])
    assert outcome.result["val"]["mse"] == pytest.approx(val_losses[0], rel=1e-6)  # evaluated with epoch-1 weights
    assert [s["epoch"] for s in snapshots] == [1, 2, 3]
    monkeypatch.setattr(loop, "RESUME_SECONDS", 3600.0)
    snapshots.clear()
    again = loop.fit_task(job, task, save=lambda state: snapshots.append(copy.deepcopy(state)))
    assert [s["epoch"] for s in snapshots] == [1]  # then only once RESUME_SECONDS have passed
    assert [r["val_loss"] for r in again.history] == val_losses  # saving less often changes nothing
    # the validation outputs kept from epoch 1 are those of the restored weights, computed again
    model = job.entry.build(task, job.settings)
    model.load_state_dict(outcome.best_state)
    data = make_data(feats, task, job.entry, job.device)
    for split in ("val", "test"):  # the test numbers too: they come from the restored best weights
        ids = eval_samples(data, split, job.config.max_eval_samples)
        assert data.evaluate(split, ids, loop.predict(job, model, data, split, ids)[1])[0] == outcome.result[split]


def test_every_step_models_keep_only_the_forecast_of_the_last_step():
    series = np.arange(60, dtype=np.float32)[:, None]
    task = ForecastTask("t", lookback=4, horizon=3, inputs=("x",), targets=("x",))
    feats = ForecastFeatures(series=series, timestamps=np.arange(60).astype("datetime64[h]").astype("datetime64[ns]"),
                             columns=("x",), mean=np.zeros(1), scale=np.ones(1), metric_units="scaled",
                             splits={"train": (0, 40), "val": (40, 50), "test": (50, 60)},
                             tasks={"t": task}, data_hash="handmade")
    data = ForecastData(feats, task, torch.device("cpu"), every_step=True)
    starts = np.array([0, 5])
    _, y_every_step = data.batch("train", starts, train=True)
    assert y_every_step.shape == (2, 4, 3, 1)  # (B, T, H, F): a forecast from every input step
    assert y_every_step[1, :, 0, 0].tolist() == [6.0, 7.0, 8.0, 9.0]  # one step after each input of window 5
    out = torch.randn(2, 4, 3, 1)
    kept = data.keep(out, data.batch("val", starts)[1])
    assert torch.equal(kept["out"], out[:, -1]) and torch.equal(kept["y"], y_every_step[:, -1])
    # a copy, not a view that keeps all T forecasts of every evaluation batch alive
    assert kept["out"].untyped_storage().nbytes() == kept["out"].numel() * kept["out"].element_size()


# --- processes: kill and resume, parallel jobs -----------------------------------------------------
def _train_cmd(model: str, seed: int) -> list[str]:
    return [sys.executable, "-m", "seqbench", "train", "--dataset", "synthetic", "--model", model,
            "--seed", str(seed), "--threads", "1"]


def test_linear_lr_decay_steps_down_each_epoch_and_is_recorded(project):
    params, layout = project(**{"presets.smoke.max_epochs": 4, "presets.smoke.patience": 4,
                                "presets.smoke.budgets.synthetic": {"lr_decay": "linear"}})
    train.run(params, layout, "synthetic", "mlp", 0, threads=1)
    lr = params.train_config("synthetic", "mlp").lr
    history = pl.read_csv(layout.run("synthetic", "mlp", 0) / "history.csv")
    for task in history["task"].unique():
        rows = history.filter(pl.col("task") == task)
        assert rows["lr"].to_list() == pytest.approx([lr, 0.75 * lr, 0.5 * lr, 0.25 * lr]), task


@pytest.mark.slow
def test_killed_job_resumes_to_the_same_result(project, capsys):
    # with the learning rate decayed per epoch, so a resumed job must also take up the schedule where it was
    params, layout = project(**{"presets.smoke.max_epochs": 12, "presets.smoke.patience": 12,
                                "presets.smoke.budgets.synthetic": {"max_train_samples": 2048, "lr_decay": "linear"}})
    train.run(params, layout, "synthetic", "mlp", 0, threads=1)
    reference = outputs(layout, "mlp", 0)
    folder = layout.run("synthetic", "mlp", 0)
    for name in train.OUTPUTS:
        (folder / name).unlink()

    for _attempt in range(3):  # a busy machine may let the job finish before the kill lands: try again
        process = subprocess.Popen(_train_cmd("mlp", 0), cwd=layout.root, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while not (folder / "resume.pt").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        if not (folder / "metrics.json").exists():
            break
        for name in (*train.OUTPUTS, "resume.pt"):
            (folder / name).unlink(missing_ok=True)
    assert not (folder / "metrics.json").exists(), "the job finished before it could be killed, three times"
    saved = torch.load(folder / "resume.pt", weights_only=True)
    current = saved["current"]  # None only when killed right between two tasks

    capsys.readouterr()
    train.run(params, layout, "synthetic", "mlp", 0, threads=1)  # resumes from resume.pt
    log = capsys.readouterr().err
    assert all(f"{task} epoch" not in log for task in saved["done"]), log  # finished tasks are not retrained
    if current is not None:
        task, epoch = current["task"], current["epoch"]
        assert f"{task} epoch {epoch}/12" not in log, log
        assert epoch == 12 or f"{task} epoch {epoch + 1}/12" in log, log
    assert outputs(layout, "mlp", 0) == reference
    assert not (folder / "resume.pt").exists()
    assert [r.info.run_name for r in active_runs(layout)].count("mlp-seed0") == 1


@pytest.mark.slow
def test_four_training_processes_log_at_once(project):
    params, layout = project()
    jobs = [("linear", 0), ("linear", 1), ("naive", 0), ("mlp", 0)]
    procs = [subprocess.Popen(_train_cmd(m, s), cwd=layout.root, stderr=subprocess.PIPE, text=True) for m, s in jobs]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    runs = {r.info.run_name: r for r in active_runs(layout)}
    assert sorted(runs) == sorted(f"{m}-seed{s}" for m, s in jobs)
    for model, seed in jobs:
        metrics = json.loads((layout.run("synthetic", model, seed) / "metrics.json").read_text())
        run = runs[f"{model}-seed{seed}"]
        assert run.info.status == "FINISHED" and run.info.run_id == metrics["mlflow_run_id"]
        assert run.data.metrics["h12/test_mae"] == metrics["tasks"]["h12"]["test"]["mae"]
