"""Aggregate stage on constructed run folders in the real contract formats (metrics.json, history.csv,
predictions.parquet) for every family: ETT-like multi-horizon tasks, CTA-like tasks (with SARIMA
skipping the multivariate ones), text, chars, and an unavailable dataset, three seeds each.

`make_project` is shared with test_report.py and test_browser.py."""

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
import pytest
import yaml

from seqbench import aggregate, report, stats
from seqbench.errors import DataError
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
ACCURACY = {"bow_unigram": 0.88, "transformer": 0.84, "char_gru": 0.55, "char_lstm": 0.58}
TRAINED = {"linear", "rnn", "bow_unigram", "transformer", "char_gru", "char_lstm"}
FORECAST_TASKS = {  # dataset -> [(task, kind, horizon, first-target level, error scale)]
    "etth1": [("h96", "forecast_multi", 96, 0.0, 0.6), ("h336", "forecast_multi", 336, 0.0, 0.7)],
    "cta": [("next_day", "forecast_single", 1, 5e5, 4e4), ("multivariate", "forecast_multi", 1, 5e5, 3.5e4),
            ("14_day", "forecast_multi", 14, 5e5, 4.5e4)],
}
N_WINDOWS = 40
UNAVAILABLE = "jena_climate_2009_2016.csv was found in no mirror and could not be downloaded: put it in data/raw/jena/"


def make_params(root: Path) -> Params:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data.update(preset="standard", seeds=list(SEEDS), jobs=copy.deepcopy(JOBS))
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


def _forecast_run(dataset: str, model: str, seed: int, rng) -> tuple[dict, pd.DataFrame, pl.DataFrame]:
    tasks, rows = {}, []
    start = dt.datetime(2019, 6, 1, tzinfo=dt.timezone.utc)
    for task, kind, horizon, level, scale in FORECAST_TASKS[dataset]:
        if model == "sarima" and task != "next_day":
            tasks[task] = {"kind": kind, "status": "skipped", "reason": "sarima needs a univariate task (one series in and out)"}
            continue
        s = scale * QUALITY[model] * (1 + 0.03 * rng.normal())
        val, val_rows, val_h = _forecast_split("val", task, horizon, level, s, rng, start)
        test, test_rows, test_h = _forecast_split("test", task, horizon, level, s, rng, start)
        extra = {"val_per_horizon_mae": val_h, "test_per_horizon_mae": test_h} if kind == "forecast_multi" else {}
        tasks[task] = _task_entry(kind, val, test, model in TRAINED, rng, **extra)
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
        prob = np.where(labels == correct, rng.uniform(0.5, 0.99, 200), rng.uniform(0.01, 0.49, 200))
        pred = (prob >= 0.5).astype(int)
        tp, fp, fn = np.sum((pred == 1) & (labels == 1)), np.sum((pred == 1) & (labels == 0)), np.sum((pred == 0) & (labels == 1))
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


def make_project(root: Path) -> Params:
    """A project folder with params.yaml and a contract-conformant run folder for every job it lists."""
    params = make_params(root)
    layout = Layout(root)
    layout.reports.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "reports/references.yaml", layout.reports / "references.yaml")  # the leaderboard cites it
    for group, dataset, model, seed, _regime in params.train_jobs():
        rng = np.random.default_rng(zlib.crc32(f"{dataset}/{model}/{seed}".encode()))  # stable across processes
        family = {"forecast": "forecast", "statistical": "forecast"}.get(group, group)
        base = {"dataset": dataset, "model": model, "seed": seed, "preset": "standard", "family": family,
                "mlflow_run_id": None}
        if dataset == "jena":
            metrics = {**base, "status": "unavailable", "reason": UNAVAILABLE}
            empty = pl.DataFrame(schema={"task": pl.String, "split": pl.String, "window": pl.Int64})
            _write_run(layout.run(dataset, model, seed), metrics, _history([], False, rng), empty)
            continue
        maker = {"text": lambda: _text_run(model, rng), "chars": lambda: _chars_run(model, rng)}.get(
            family, lambda: _forecast_run(dataset, model, seed, rng))
        tasks, history, predictions = maker()
        metrics = {**base, "status": "ok", "reason": None,
                   "metric_units": "scaled" if dataset == "etth1" else "original", "tasks": tasks,
                   "cost": {"peak_memory_mb": 100.0 + seed, "device": "cpu", "threads": 2},
                   "tags": {"git_commit": "0123456789abcdef", "data_hash": "feed", "torch": "2.13.0"}}
        _write_run(layout.run(dataset, model, seed), metrics, history, predictions)
    return params


# --- tests -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    params = make_project(root)
    tables = aggregate.run(params, Layout(root), log_mlflow=False)
    return root, params, tables


def _metrics(root: Path, dataset: str, model: str, seed: int) -> dict:
    return json.loads((Layout(root).run(dataset, model, seed) / "metrics.json").read_text())


def test_results_csv_long_form_matches_metrics_json(built):
    root, params, _ = built
    results = pd.read_csv(root / "reports/results.csv")
    assert list(results.columns) == ["dataset", "task", "model", "seed", "preset", "split", "metric", "value"]
    assert not results.duplicated(["dataset", "task", "model", "seed", "split", "metric"]).any()
    assert set(results["preset"]) == {"standard"}
    assert "jena" not in set(results["dataset"])  # unavailable: no numbers
    row = results.query("dataset == 'cta' and task == '14_day' and model == 'rnn' and seed == 1 and split == 'test' "
                        "and metric == 'rmse'")
    assert row["value"].item() == _metrics(root, "cta", "rnn", 1)["tasks"]["14_day"]["test"]["rmse"]
    # every ok task of every available job: 2 splits x its metrics
    expected = 0
    for _, dataset, model, seed, _ in params.train_jobs():
        for entry in _metrics(root, dataset, model, seed).get("tasks", {}).values():
            if entry["status"] == "ok":
                expected += len(entry["val"]) + len(entry["test"])
    assert len(results) == expected
    assert results.query("model == 'sarima'")["task"].unique().tolist() == ["next_day"]


def test_costs_csv(built):
    root, _, _ = built
    costs = pd.read_csv(root / "reports/costs.csv")
    assert list(costs.columns) == ["dataset", "task", "model", "seed", "params_count", "train_seconds",
                                   "seconds_per_epoch", "epochs", "peak_memory_mb", "device"]
    row = costs.query("dataset == 'imdb' and model == 'transformer' and seed == 2")
    entry = _metrics(root, "imdb", "transformer", 2)["tasks"]["sentiment"]
    assert row["train_seconds"].item() == entry["train_seconds"]
    assert row["peak_memory_mb"].item() == 102.0 and row["device"].item() == "cpu"
    assert not costs.duplicated(["dataset", "task", "model", "seed"]).any()


def test_summary_mean_std_ci_over_seeds(built):
    root, _, _ = built
    summary = pd.read_csv(root / "reports/summary.csv")
    row = summary.query("dataset == 'etth1' and task == 'h96' and model == 'linear' and split == 'test' "
                        "and metric == 'mse'").iloc[0]
    values = [_metrics(root, "etth1", "linear", s)["tasks"]["h96"]["test"]["mse"] for s in SEEDS]
    ci = stats.mean_ci(values)
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert row["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert row["ci95_low"] < row["mean"] < row["ci95_high"]
    assert bool(row["primary"])  # ETT ranks by MSE
    assert not bool(summary.query("dataset == 'cta' and metric == 'mse'")["primary"].any())


def test_rank_direction_and_skill(built):
    root, _, _ = built
    summary = pd.read_csv(root / "reports/summary.csv")
    ok = summary[summary["status"] == "ok"]
    for _, group in ok.groupby(["dataset", "task", "split", "metric"]):
        best = group.loc[group["rank"] == 1, "mean"]
        lower = stats.lower_is_better(group["metric"].iloc[0])
        assert (best.iloc[0] == group["mean"].min()) if lower else (best.iloc[0] == group["mean"].max())
    cta = ok.query("dataset == 'cta' and task == 'next_day' and split == 'test' and metric == 'mae'").set_index("model")
    assert cta.loc["rnn", "rank"] == 1
    assert cta.loc["seasonal_naive", "skill"] == 0.0  # CTA's baseline is the lag-7 naive forecast
    assert cta.loc["rnn", "skill"] == pytest.approx(1 - cta.loc["rnn", "mean"] / cta.loc["seasonal_naive", "mean"])
    ett = ok.query("dataset == 'etth1' and task == 'h96' and split == 'test' and metric == 'mse'").set_index("model")
    assert ett.loc["naive", "skill"] == 0.0 and ett.loc["rnn", "skill"] > 0
    text = ok.query("dataset == 'imdb' and metric == 'accuracy' and split == 'test'").set_index("model")
    assert text.loc["bow_unigram", "rank"] == 1 and text["skill"].isna().all()


def test_significance_against_best(built):
    root, _, _ = built
    summary = pd.read_csv(root / "reports/summary.csv", keep_default_na=False)
    rows = summary.query("dataset == 'cta' and task == 'next_day' and split == 'test' and metric == 'mae'").set_index("model")
    assert rows.loc["rnn", "significant"] == "best" and rows.loc["rnn", "p_dm"] == ""
    assert float(rows.loc["naive", "p_dm"]) < 0.01 and rows.loc["naive", "significant"] == "yes"
    assert 0.25 <= float(rows.loc["naive", "p_wilcoxon"]) <= 1  # 3 seeds: exact test cannot go lower
    val = summary.query("dataset == 'cta' and split == 'val' and metric == 'mae' and model == 'naive' and task == 'next_day'")
    assert val["p_dm"].item() == ""  # Diebold-Mariano on test windows only


def test_unavailable_skipped_and_not_trained_are_listed(built):
    root, _, _ = built
    summary = pd.read_csv(root / "reports/summary.csv", keep_default_na=False)
    status = summary[summary["status"] != "ok"]
    jena = status[status["dataset"] == "jena"]
    assert jena["status"].tolist() == ["unavailable"] and jena["reason"].item() == UNAVAILABLE
    skipped = status[status["status"] == "skipped"]
    assert sorted(zip(skipped["model"], skipped["task"])) == [("sarima", "14_day"), ("sarima", "multivariate")]
    not_trained = set(status.query("status == 'not_trained'")["task"])
    assert not_trained == {"h192", "h720", "l336_h96", "l336_h192", "l336_h336", "l336_h720"}
    board = (root / "reports/leaderboard.md").read_text()
    assert "preset **standard** · seeds 0, 1, 2 · commit 0123456789ab" in board
    assert f"**Unavailable**: {UNAVAILABLE}" in board
    assert "skipped: sarima on multivariate" in board and "tasks not trained: h192, h720" in board


def test_leaderboard_tables(built):
    root, _, _ = built
    board = (root / "reports/leaderboard.md").read_text()
    for heading in ("## etth1", "### h96", "### h336", "## cta", "### 14_day", "## imdb", "### sentiment",
                    "## shakespeare", "## jena"):
        assert heading + "\n" in board
    summary = pd.read_csv(root / "reports/summary.csv")
    best = summary.query("dataset == 'cta' and task == 'next_day' and split == 'test' and metric == 'mae' and rank == 1").iloc[0]
    assert f"| 1 | {best['model']} | {report.fmt(best['mean'])} ± {report.fmt(best['std'])} |" in board
    assert "," in report.fmt(best["mean"])  # riders: thousands separators, no decimals
    assert board.index("## etth1") < board.index("## cta") < board.index("## imdb")  # registry order
    assert board.index("### next_day") < board.index("### multivariate") < board.index("### 14_day")  # protocol order
    assert "with 3 seeds the Wilcoxon test cannot go below p = 0.25" in board


def test_leaderboard_sets_published_numbers_beside_ours(built):
    root, _, _ = built
    board = (root / "reports/leaderboard.md").read_text()
    summary = pd.read_csv(root / "reports/summary.csv")
    next_day = board[board.index("### next_day"):board.index("### multivariate")]
    rnn = summary.query("dataset == 'cta' and task == 'next_day' and model == 'rnn' and split == 'val' "
                        "and metric == 'mae'")["mean"].item()
    row = (f"| SimpleRNN(32) + Dense(1) | Geron, Hands-On ML 3rd ed., ch. 15, 'Forecasting Using a Simple RNN' "
           f"| val mae | 27,703 | rnn | {report.fmt(rnn)} | {report.verdict(rnn, 27703, 'mae')} |")
    assert row in next_day.splitlines()
    assert "- Also published (no comparable run here): 3 x SimpleRNN(32) + Dense(1) val mae 31,211" in next_day
    assert "- Published protocol: train 2016-01..2018-12, validation 2019-01..2019-05" in next_day
    h96 = board[board.index("### h96"):board.index("### h336")]
    linear = summary.query("dataset == 'etth1' and task == 'h96' and model == 'linear' and split == 'test' "
                           "and metric == 'mse'")["mean"].item()
    assert f"| test mse | 0.375 | linear | {report.fmt(linear)} |" in h96
    assert h96.count("- How linear differs from Linear: ours is Geron's Flatten + Dense") == 1  # once per text
    assert "DLinear test mse 0.374" in h96  # did not run here: listed, not tabled


def test_aggregate_needs_the_references_before_writing_anything(tmp_path):
    params = make_project(tmp_path)
    (tmp_path / "reports/references.yaml").unlink()
    with pytest.raises(DataError, match=r"reports/references.yaml: missing; restore reports/references.yaml"):
        aggregate.run(params, Layout(tmp_path), log_mlflow=False)
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == []


def test_summary_rows_in_report_order(built):
    root, params, _ = built
    summary = pd.read_csv(root / "reports/summary.csv", keep_default_na=False)
    datasets = list(dict.fromkeys(summary["dataset"]))
    assert datasets == ["jena", "etth1", "cta", "imdb", "shakespeare"]
    cta = summary[summary["dataset"] == "cta"]
    assert list(dict.fromkeys(cta[cta["status"] == "ok"]["task"])) == ["next_day", "multivariate", "14_day"]
    assert (cta["status"] != "ok").tolist() == sorted((cta["status"] != "ok").tolist())  # status rows last


def test_missing_metrics_names_file_and_command(tmp_path):
    params = make_project(tmp_path)
    (Layout(tmp_path).run("cta", "rnn", 2) / "metrics.json").unlink()
    with pytest.raises(DataError, match=r"runs/cta/rnn/protocol/seed2/metrics.json: missing; run `python -m seqbench train "
                                        r"--dataset cta --model rnn --seed 2 --regime protocol`"):
        aggregate.run(params, Layout(tmp_path), log_mlflow=False)


def test_bad_status_is_rejected(tmp_path):
    params = make_project(tmp_path)
    path = Layout(tmp_path).run("imdb", "transformer", 0) / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "done"}))
    with pytest.raises(DataError, match="field 'status' is 'done'"):
        aggregate.run(params, Layout(tmp_path), log_mlflow=False)


def test_summary_run_metrics_keys():
    results = pd.DataFrame({"dataset": "cta", "task": "next_day", "model": "rnn", "seed": [0, 1], "preset": "smoke",
                            "split": "test", "metric": "mae", "value": [1.0, 3.0]})
    out = aggregate.summary_run_metrics(results)
    assert out == {("cta", "rnn"): {"next_day/test_mae_mean": 2.0, "next_day/test_mae_std": pytest.approx(math.sqrt(2))}}


def test_summary_runs_logged_to_mlflow(built, monkeypatch):
    from mlflow.tracking import MlflowClient

    from seqbench import tracking

    root, params, _ = built
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    layout = Layout(root)
    tracking.run_init(params, layout)
    aggregate.run(params, layout)
    aggregate.run(params, layout)  # rerun: summary runs are replaced, never duplicated
    client = MlflowClient(tracking_uri=tracking.tracking_uri(layout))
    summary = pd.read_csv(root / "reports/summary.csv", keep_default_na=False).query("status == 'ok'")
    experiment = client.get_experiment_by_name("cta")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.kind` = 'summary'")
    assert sorted(r.info.run_name for r in runs) == sorted(f"{m}-summary" for m in
                                                          ("naive", "seasonal_naive", "linear", "rnn", "sarima"))
    rnn = next(r for r in runs if r.info.run_name == "rnn-summary")
    assert rnn.data.tags["dataset"] == "cta" and rnn.data.params["seeds"] == "0,1,2" and rnn.data.params["n_seeds"] == "3"
    row = summary.query("model == 'rnn' and task == '14_day' and split == 'val' and metric == 'mape'").iloc[0]
    assert rnn.data.metrics["14_day/val_mape_mean"] == pytest.approx(float(row["mean"]), rel=1e-12)
    assert rnn.data.metrics["14_day/val_mape_std"] == pytest.approx(float(row["std"]), rel=1e-12)
    jena = client.get_experiment_by_name("jena")
    assert client.search_runs([jena.experiment_id]) == []  # unavailable: nothing to summarize


def test_undefined_values_and_unknown_metrics():
    results = pd.DataFrame({"dataset": "cta", "task": "next_day", "model": ["rnn", "rnn", "naive", "naive"],
                            "seed": [0, 1, 0, 1], "preset": "smoke", "split": "test", "metric": "mape",
                            "value": [math.nan, math.nan, 2.0, 3.0]})
    summary = aggregate.summary_table(results).set_index("model")
    assert summary.loc["naive", "rank"] == 1 and pd.isna(summary.loc["rnn", "rank"]) and summary.loc["rnn", "n"] == 0
    with pytest.raises(DataError, match=r"task 'next_day': unknown metric 'r2'"):
        aggregate.summary_table(results.assign(metric="r2"))


def test_published_reasons_name_no_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reason = f"in no mirror folder (searched: {tmp_path.parent / 'mirror'}) nor at https://example.org/a.zip"
    assert aggregate.portable(reason) == "in no mirror folder (searched: ../mirror) nor at https://example.org/a.zip"
