"""Aggregate stage on constructed run folders (tests/report_fixtures.py): the tables, the statistics per
table, failed and missing jobs, regimes side by side, the look-back search, MLflow summary runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from report_fixtures import (SEEDS, TRAINED, UNAVAILABLE, drop_job, fail_job, make_params,  # noqa: F401 (re-exported)
                             make_project)
from seqbench import aggregate, losses, results, stats
from seqbench import summary as S
from seqbench.errors import DataError
from seqbench.paths import Layout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    params = make_project(root)
    tables = aggregate.run(params, Layout(root), log_mlflow=False)
    return root, params, tables


def _metrics(root, dataset: str, model: str, seed: int, regime: str = "protocol") -> dict:
    return json.loads((Layout(root).run(dataset, model, seed, regime) / "metrics.json").read_text())


def _summary(root):
    return results.read_table(Layout(root), "summary")


def test_results_csv_long_form_matches_metrics_json(built):
    root, params, _ = built
    table = pd.read_csv(root / "reports/results.csv")
    assert list(table.columns) == ["dataset", "task", "model", "regime", "seed", "preset", "split", "metric", "value"]
    assert not table.duplicated(["dataset", "task", "model", "regime", "seed", "split", "metric"]).any()
    assert set(table["preset"]) == {"standard"} and set(table["regime"]) == {"protocol"}
    assert "jena" not in set(table["dataset"])  # unavailable: no numbers
    row = table.query("dataset == 'cta' and task == '14_day' and model == 'rnn' and seed == 1 and split == 'test' "
                      "and metric == 'rmse'")
    assert row["value"].item() == _metrics(root, "cta", "rnn", 1)["tasks"]["14_day"]["test"]["rmse"]
    expected = sum(len(e["val"]) + len(e["test"]) for _, d, m, s, _ in params.train_jobs()
                   for e in _metrics(root, d, m, s).get("tasks", {}).values() if e["status"] == "ok")
    assert len(table) == expected
    assert table.query("model == 'sarima'")["task"].unique().tolist() == ["next_day"]


def test_costs_csv(built):
    root, _, _ = built
    costs = pd.read_csv(root / "reports/costs.csv")
    assert list(costs.columns) == ["dataset", "task", "model", "regime", "seed", "params_count", "train_seconds",
                                   "seconds_per_epoch", "epochs", "peak_memory_mb", "device"]
    row = costs.query("dataset == 'imdb' and model == 'transformer' and seed == 2")
    assert row["train_seconds"].item() == _metrics(root, "imdb", "transformer", 2)["tasks"]["sentiment"]["train_seconds"]
    assert row["peak_memory_mb"].item() == 102.0 and row["device"].item() == "cpu"


def test_summary_mean_std_and_interval_on_the_metric_scale(built):
    root, _, _ = built
    summary = _summary(root)
    row = summary.query("dataset == 'etth1' and task == 'h96' and model == 'linear' and split == 'test' "
                        "and metric == 'mse'").iloc[0]
    values = [_metrics(root, "etth1", "linear", s)["tasks"]["h96"]["test"]["mse"] for s in SEEDS]
    ci = stats.mean_ci(values, "mse")
    assert row["n"] == 3 and row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert row["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert row["ci95_low"] * row["ci95_high"] == pytest.approx(row["mean"] ** 2 * math.exp(0), rel=1e-9)  # log-symmetric
    assert bool(row["primary"]) and bool(row["headline"])
    ok = summary[summary["status"] == "ok"]
    assert (ok["ci95_low"] >= 0).all()
    acc = ok[ok["metric"].isin(["accuracy", "f1", "roc_auc"])]
    assert ((acc["ci95_low"] >= 0) & (acc["ci95_high"] <= 1)).all()


def test_headline_split_is_validation_for_the_books_datasets(built):
    root, _, _ = built
    headline = _summary(root).query("headline == True")
    splits = headline.groupby("dataset")["split"].unique().map(list).to_dict()
    assert splits == {"cta": ["val"], "etth1": ["test"], "imdb": ["test"], "shakespeare": ["val"]}
    assert set(headline["metric"]) == {"mse", "mae", "accuracy"}  # Shakespeare: accuracy, as Geron


def test_rank_direction_and_skill(built):
    root, _, _ = built
    ok = _summary(root).query("status == 'ok'")
    for _, group in ok.groupby(["dataset", "task", "selection", "split", "metric"]):
        best = group.loc[group["rank"] == 1, "mean"].iloc[0]
        lower = stats.lower_is_better(group["metric"].iloc[0])
        assert best == (group["mean"].min() if lower else group["mean"].max())
    cta = ok.query("dataset == 'cta' and task == 'next_day' and split == 'test' and metric == 'mae'").set_index("model")
    assert cta.loc["seasonal_naive", "skill"] == 0.0  # CTA's baseline is the lag-7 naive forecast
    assert cta.loc["rnn", "skill"] == pytest.approx(1 - cta.loc["rnn", "mean"] / cta.loc["seasonal_naive", "mean"])
    text = ok.query("dataset == 'imdb' and metric == 'accuracy' and split == 'test'").set_index("model")
    assert text.loc["bow_unigram", "rank"] == 1 and text["skill"].isna().all()


def test_tests_against_the_best_have_power_or_say_why_not(built):
    root, _, _ = built
    ok = _summary(root).query("status == 'ok'")
    cta = ok.query("dataset == 'cta' and task == 'next_day' and split == 'val' and metric == 'mae'").set_index("model")
    assert cta.loc["rnn", "verdict"] == "best" and math.isnan(cta.loc["rnn", "p_holm"])
    assert cta.loc["naive", "test"] == "dm" and cta.loc["naive", "p_holm"] < 0.01 and cta.loc["naive", "verdict"] == "worse"
    tested = ok[ok["test"] != ""]
    assert set(tested["test"]) == {"dm"}  # 3 seeds: Wilcoxon cannot reach 0.05, so only per-example tests run
    assert (tested["p_holm"] >= tested["p_value"]).all()
    assert not ((tested["verdict"] == "worse") & (tested["p_holm"] >= stats.ALPHA)).any()  # decided on Holm's p
    assert not ((tested["verdict"] == "tied") & (tested["p_holm"] < stats.ALPHA) & (tested["mean"] > 0)
                & tested["metric"].isin(["mae", "mse"])).any()
    untested = ok[(ok["verdict"] == "untested")]
    assert set(untested["metric"]) == {"mape", "f1", "roc_auc"}  # no per-example loss for these
    assert untested["no_test"].str.contains("with 3 seeds the exact Wilcoxon test cannot go below p = 0.25").all()
    imdb = ok.query("dataset == 'imdb' and split == 'test' and metric == 'accuracy'").set_index("model")
    assert imdb.loc["transformer", "test"] == "dm"  # per-review 0/1 loss


def test_unavailable_skipped_and_not_trained_are_listed(built):
    root, _, _ = built
    summary = _summary(root)
    status = summary[summary["status"] != "ok"]
    jena = status[status["dataset"] == "jena"]
    assert jena["status"].tolist() == ["unavailable"] and jena["reason"].item() == UNAVAILABLE
    skipped = status[status["status"] == "skipped"]
    assert sorted(zip(skipped["model"], skipped["task"])) == [("sarima", "14_day"), ("sarima", "multivariate")]
    assert set(status.query("status == 'not_trained'")["task"]) == {"h192", "h720", "l336_h96", "l336_h192",
                                                                   "l336_h336", "l336_h720"}
    board = (root / "reports/leaderboard.md").read_text()
    assert f"**Unavailable**: {UNAVAILABLE}" in board and "skipped: sarima on multivariate" in board


def test_leaderboard_shows_each_table_with_its_split_and_no_ns(built):
    root, _, _ = built
    board = (root / "reports/leaderboard.md").read_text()
    for heading in ("#### h96 · test mse · look-back 96", "#### next_day · validation mae · look-back 56",
                    "#### sentiment · test accuracy", "#### next_char · validation accuracy", "## Did not finish"):
        assert heading + "\n" in board
    assert "n.s." not in board
    assert board.index("### Overview: forecast") < board.index("## etth1") < board.index("## cta") < board.index("## imdb")
    assert "Average ranks across forecast tasks" in board and "Nemenyi critical difference" in board


def _project_with_failures(tmp_path):
    params = make_project(tmp_path)
    fail_job(tmp_path, "etth1", "rnn", 1, keep_tasks=("h96",))
    drop_job(tmp_path, "cta", "linear", 2)
    path = Layout(tmp_path).run("imdb", "transformer", 0) / "metrics.json"
    path.write_text("{\"status\": \"ok\", ")  # a torn file
    return params


def test_failed_and_missing_jobs_are_listed_and_never_ranked(tmp_path):
    params = _project_with_failures(tmp_path)
    tables = aggregate.run(params, Layout(tmp_path), log_mlflow=False)
    dnf = results.read_table(Layout(tmp_path), "did_not_finish").set_index(["dataset", "model", "seed"])
    assert sorted(dnf.index) == [("cta", "linear", 2), ("etth1", "rnn", 1), ("imdb", "transformer", 0)]
    failed = dnf.loc[("etth1", "rnn", 1)]
    assert (failed["status"], failed["error"], failed["task"], failed["epoch"], failed["batch"]) == (
        "failed", "TrainingError", "h336", 3, 17)
    assert failed["reason"] == "loss became nan at epoch 3 (lr too high?)" and failed["finished_tasks"] == "h96"
    missing = dnf.loc[("cta", "linear", 2)]
    assert missing["status"] == "missing" and missing["command"] == (
        "python -m seqbench train --dataset cta --model linear --seed 2 --regime protocol")
    assert dnf.loc[("imdb", "transformer", 0), "status"] == "unreadable"
    table = tables["results"]
    assert table.query("dataset == 'etth1' and model == 'rnn'")["seed"].unique().tolist() == [0, 2]  # never ranked
    rnn = tables["summary"].query("dataset == 'etth1' and task == 'h96' and model == 'rnn' and split == 'test' "
                                  "and metric == 'mse'")
    assert rnn["n"].item() == 2
    for name in ("results", "costs", "summary", "did_not_finish"):
        assert (tmp_path / f"reports/{name}.csv").is_file()
    board = (tmp_path / "reports/leaderboard.md").read_text()
    assert ("| etth1 | rnn | protocol | 1 | failed | loss became nan at epoch 3 (lr too high?) [TrainingError] | "
            "task h336, epoch 3, batch 17 | h96 |") in board
    assert "`python -m seqbench train --dataset cta --model linear --seed 2 --regime protocol`" in board


def test_unknown_status_is_rejected(tmp_path):
    params = make_project(tmp_path)
    path = Layout(tmp_path).run("imdb", "transformer", 0) / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "done"}))
    with pytest.raises(DataError, match="field 'status' is 'done', expected one of 'ok', 'unavailable', 'failed'"):
        aggregate.run(params, Layout(tmp_path), log_mlflow=False)


def test_aggregate_needs_the_references_before_writing_anything(tmp_path):
    params = make_project(tmp_path)
    (tmp_path / "reports/references.yaml").unlink()
    with pytest.raises(DataError, match=r"reports/references.yaml: missing; restore reports/references.yaml"):
        aggregate.run(params, Layout(tmp_path), log_mlflow=False)
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == []


def test_regimes_side_by_side_and_lookback_searched_on_validation(tmp_path):
    params = make_project(tmp_path, regimes=("protocol", "tuned"), etth1_tasks=("h96", "h336", "l336_h96"))
    tables = aggregate.run(params, Layout(tmp_path), log_mlflow=False)
    s = tables["summary"].query("status == 'ok'")
    h96 = s.query("dataset == 'etth1' and task == 'h96' and selection == '' and split == 'test' and metric == 'mse'")
    assert set(zip(h96["model"], h96["regime"])) == {("naive", "protocol"), ("seasonal_naive", "protocol"),
                                                     ("linear", "protocol"), ("rnn", "protocol"),
                                                     ("linear", "tuned"), ("rnn", "tuned")}
    searched = s.query("dataset == 'etth1' and task == 'h96' and selection == @S.SEARCHED and split == 'test' "
                       "and metric == 'mse'").set_index(["model", "regime"])
    assert searched.loc[("linear", "protocol"), "lookback"] == 336  # better on validation, worse on test
    assert searched.loc[("rnn", "protocol"), "lookback"] == 96
    l336 = s.query("dataset == 'etth1' and task == 'l336_h96' and model == 'linear' and regime == 'protocol' "
                   "and split == 'test' and metric == 'mse'")["mean"].item()
    assert searched.loc[("linear", "protocol"), "mean"] == l336
    assert l336 > h96.set_index(["model", "regime"]).loc[("linear", "protocol"), "mean"]  # chosen on validation only
    board = (tmp_path / "reports/leaderboard.md").read_text()
    assert "#### h96 · test mse · look-back searched on validation" in board
    assert "| protocol: mean ± std | 95% CI | vs best | tuned: mean ± std |" in board
    assert ("- tuned settings (where they differ from the protocol's): rnn: lr 0.003, instance_norm True; "
            "linear: lr 0.003, instance_norm True") in board
    from seqbench import figures
    from seqbench import leaderboard as L

    h96_board = L.boards_for(tables["summary"], params, "etth1")[0][1][0]
    handling = results.input_handling(params, results.load_jobs(params, Layout(tmp_path)))
    assert ("<p class='tuned-settings'>Tuned settings (where they differ from the protocol's): rnn: lr 0.003, "
            "instance_norm True; linear: lr 0.003, instance_norm True</p>") in figures.board_html(h96_board, handling)
    assert "| 3/3 | global norm, channels mixed / instance norm, channels mixed |" in board
    # a tuned job of a parameter-free model: missing, if the job list has one at all
    expected = {(j.dataset, j.model, j.seed) for j in params.train_jobs() if j.regime == "tuned" and j.model not in TRAINED}
    dnf = tables["did_not_finish"]
    assert set(zip(dnf["dataset"], dnf["model"], dnf["seed"])) == expected and set(dnf["status"]) <= {"missing"}


def test_paired_test_lags_cover_the_windows_that_share_targets():
    # windows every 4th step with horizon 96 share targets with the next ceil(96 / 4) - 1 = 23 windows
    assert losses.lags("forecast", np.arange(0, 400, 4), 96) == (24, 23)
    assert losses.lags("forecast", np.array([0]), 1) == (1, 0)
    assert losses.lags("text", np.arange(500), None) == (1, 0)  # reviews are independent
    assert losses.lags("chars", np.arange(0, 60000, 100), None) == (1, stats.nw_lags(600)) == (1, 5)
    rng = np.random.default_rng(3)
    frame = lambda values: pd.DataFrame({"key": np.arange(100) * 10, "pos": np.arange(0, 400, 4), "value": values})
    a, b = rng.gamma(2.0, size=100), rng.gamma(2.0, size=100)
    result = losses.paired_test("forecast", frame(a), frame(b)[::-1], 96)  # paired on key, ordered by pos
    assert result.statistic == stats.diebold_mariano_losses(a, b, horizon=24, lags=23).statistic


def test_a_longer_look_back_alone_gets_its_own_table(tmp_path):
    params = make_project(tmp_path, etth1_tasks=("h336", "l336_h96"))
    aggregate.run(params, Layout(tmp_path), log_mlflow=False)
    board = (tmp_path / "reports/leaderboard.md").read_text()
    assert "### h96\n\n#### l336_h96 · test mse · look-back 336\n" in board
    assert board.index("### h96") < board.index("### h336") and "look-back searched" not in board


def test_select_lookback_uses_validation_and_prefers_the_shorter_on_ties():
    assert S.select_lookback({96: 0.40, 336: 0.38}, lower_better=True) == 336
    assert S.select_lookback({96: 0.40, 336: 0.40}, lower_better=True) == 96
    assert S.select_lookback({96: 0.80, 336: 0.85}, lower_better=False) == 336
    assert S.select_lookback({96: math.nan, 336: 0.5}, lower_better=True) == 336
    assert S.select_lookback({96: math.nan}, lower_better=True) is None


def test_tables_from_before_regimes_read_as_protocol(tmp_path):
    (tmp_path / "reports").mkdir()
    pd.DataFrame({"dataset": ["cta"], "task": ["next_day"], "model": ["rnn"], "seed": [0], "preset": ["standard"],
                  "split": ["val"], "metric": ["mae"], "value": [1.0]}).to_csv(tmp_path / "reports/results.csv", index=False)
    table = results.read_table(Layout(tmp_path), "results")
    assert list(table.columns[:4]) == ["dataset", "task", "model", "regime"] and table["regime"].item() == "protocol"


def test_the_committed_results_are_accepted_and_give_no_verdict_without_predictions():
    """reports/results.csv of the last real run (both regimes; its run folders are not in git): every
    table is summarized, every interval stays in range, and with 3 seeds and no per-example losses no
    entry is called tied or worse."""
    from seqbench.params import load_params

    root = Path(__file__).resolve().parents[1]
    params = load_params(root / "params.yaml")
    table = results.read_table(Layout(root), "results")
    summary = S.summary_table(table, {d: results.task_meta(params, d) for d in results.dataset_order(params)})
    assert set(summary["regime"]) == {"protocol", "tuned"} and set(summary["verdict"]) == {"best", "untested"}
    errors = summary[summary["metric"].isin(sorted(stats.LOWER_IS_BETTER))]
    assert (errors["ci95_low"] >= 0).all()
    cta = summary.query("dataset == 'cta' and task == 'next_day' and split == 'val' and metric == 'mae'")
    assert set(cta.loc[cta["verdict"] == "untested", "no_test"]) == {
        "no paired predictions; with 3 seeds the exact Wilcoxon test cannot go below p = 0.25"}


def test_summary_run_metrics_keys():
    table = pd.DataFrame({"dataset": "cta", "task": "next_day", "model": "rnn", "regime": ["protocol"] * 2 + ["tuned"] * 2,
                          "seed": [0, 1, 0, 1], "preset": "smoke", "split": "test", "metric": "mae",
                          "value": [1.0, 3.0, 2.0, 2.0]})
    out = aggregate.summary_run_metrics(table)
    assert out == {("cta", "rnn"): {"next_day/test_mae_mean": 2.0, "next_day/test_mae_std": pytest.approx(math.sqrt(2)),
                                    "tuned/next_day/test_mae_mean": 2.0, "tuned/next_day/test_mae_std": 0.0}}


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
    experiment = client.get_experiment_by_name("cta")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.kind` = 'summary'")
    assert sorted(r.info.run_name for r in runs) == sorted(f"{m}-summary" for m in
                                                          ("naive", "seasonal_naive", "linear", "rnn", "sarima"))
    rnn = next(r for r in runs if r.info.run_name == "rnn-summary")
    assert rnn.data.params["seeds"] == "0,1,2" and rnn.data.params["n_seeds"] == "3"
    row = _summary(root).query("model == 'rnn' and task == '14_day' and split == 'val' and metric == 'mape' "
                               "and dataset == 'cta'").iloc[0]
    assert rnn.data.metrics["14_day/val_mape_mean"] == pytest.approx(float(row["mean"]), rel=1e-12)
    assert client.search_runs([client.get_experiment_by_name("jena").experiment_id]) == []


def test_undefined_values_and_unknown_metrics():
    table = pd.DataFrame({"dataset": "cta", "task": "next_day", "model": ["rnn", "rnn", "naive", "naive"],
                          "regime": "protocol", "seed": [0, 1, 0, 1], "preset": "smoke", "split": "test",
                          "metric": "mape", "value": [math.nan, math.nan, 2.0, 3.0]})
    summary = S.summary_table(table, {}).set_index("model")
    assert summary.loc["naive", "rank"] == 1 and pd.isna(summary.loc["rnn", "rank"]) and summary.loc["rnn", "n"] == 0
    with pytest.raises(DataError, match=r"task 'next_day': unknown metric 'r2'"):
        S.summary_table(table.assign(metric="r2"), {})


def test_published_reasons_name_no_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reason = f"in no mirror folder (searched: {tmp_path.parent / 'mirror'}) nor at https://example.org/a.zip"
    assert results.portable(reason) == "in no mirror folder (searched: ../mirror) nor at https://example.org/a.zip"


def test_each_rows_input_handling_is_read_from_the_settings_its_job_recorded(tmp_path):
    """The transformer keeps its input handling in a nested `forecast` block; 'none' is global normalization."""
    from seqbench.params import load_params
    from seqbench.results import Job, input_handling

    root = Path(__file__).resolve().parents[1]
    params = load_params(root / "params.yaml")
    recorded = {
        "transformer": {"forecast": {"instance_norm": "revin", "channel_independent": True, "d_model": 32}},
        "gru": {"instance_norm": "none", "channel_independent": False, "units": 64},
        "linear": {"instance_norm": "revin_affine", "channel_independent": True},
    }
    jobs = [Job("etth1", model, 0, "protocol", tmp_path, {"settings": settings}, "ok")
            for model, settings in recorded.items()]
    jobs.append(Job("etth1", "naive", 0, "protocol", tmp_path, {}, "ok"))  # no settings: the model's defaults
    found = {model: (h["instance_norm"], h["channel_independent"])
             for (_, model, _), h in input_handling(params, jobs).items()}
    assert found == {"transformer": (True, True), "gru": (False, False), "linear": (True, True),
                     "naive": (False, False)}


def test_tuned_settings_list_what_the_search_changed():
    """Only the leaves that differ from the protocol's recorded settings, floats to 3 digits: the settings
    the search left alone (a nested text block, an unset epoch cap, a ridge grid) are not repeated."""
    from seqbench.leaderboard import settings_text

    protocol = {"lr": 0.0005, "max_epochs": None, "ridge": [0.0, 0.1], "text": {"ff": 32},
                "forecast": {"d_model": 32, "instance_norm": "none", "channel_independent": True}}
    tuned = {"lr": 0.0019313802238648764, "max_epochs": None, "ridge": [0.0, 0.1], "text": {"ff": 32},
             "forecast": {"d_model": 64, "instance_norm": "revin", "channel_independent": True}}
    handling = {("etth1", "transformer", "protocol"): {"settings": protocol},
                ("etth1", "transformer", "tuned"): {"settings": tuned},
                ("etth1", "rnn", "tuned"): {"settings": {"units": 89, "lr": 0.01}}}
    assert settings_text(handling, "etth1", "transformer", "tuned") == "lr 0.00193, d_model 64, instance_norm revin"
    assert settings_text(handling, "etth1", "rnn", "tuned") == "units 89, lr 0.01"  # no protocol record: all of them
    assert settings_text(handling, "etth1", "gru", "tuned") == ""


def test_ranks_across_tasks_leave_out_incomplete_entries_once_per_reason():
    """Friedman needs complete blocks: entries missing a task are left out, and the tuned entries that miss
    the same tasks share one line instead of one line each."""
    from seqbench import ranking

    rows = []
    for task, scale in (("h96", 1.0), ("h336", 1.3), ("h720", 1.6)):
        for model, error in (("linear", 0.40), ("gru", 0.42), ("mlp", 0.45), ("naive", 1.2)):
            rows.append(("etth1", task, model, "protocol", error * scale))
        if task == "h96":
            rows += [("etth1", task, "gru", "tuned", 0.39), ("etth1", task, "mlp", "tuned", 0.41)]
    rows.append(("etth1", "h336", "linear", "tuned", 0.5))
    summary = pd.DataFrame(rows, columns=["dataset", "task", "model", "regime", "mean"]).assign(
        group=lambda d: d["task"], status="ok", selection="", headline=True, family="forecast", metric="mse")
    result = ranking.across_tasks(summary, "forecast", ("forecast",))
    assert result.entries == ["linear", "gru", "mlp", "naive"] and result.avg_ranks == [1.0, 2.0, 3.0, 4.0]
    assert result.excluded_by_reason() == ["gru (tuned), mlp (tuned) (no result on etth1 · h336, etth1 · h720)",
                                           "linear (tuned) (no result on etth1 · h96, etth1 · h720)"]
