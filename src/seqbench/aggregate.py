"""The aggregate stage: every job's outcome -> the results tables, the leaderboard and MLflow summary runs.

It runs on what exists: a failed job (train's failure record) or a missing one (no metrics.json: killed,
or left by a `--keep-going` run) is listed in reports/did_not_finish.csv with its reason and the command
that makes it, and every table is still written from the jobs that finished. Writes, atomically:
  reports/results.csv         long form: dataset, task, model, regime, seed, preset, split, metric, value
  reports/costs.csv           dataset, task, model, regime, seed, params_count, train_seconds, ...
  reports/summary.csv         per table entry: mean, std, 95% CI, skill, rank, paired test vs the best,
                              Holm p, verdict (summary.py); plus status rows (unavailable datasets,
                              skipped pairs, tasks the preset did not train) with their reasons
  reports/did_not_finish.csv  failed, missing and unreadable jobs
  reports/leaderboard.md      the same in markdown, with the published references of the same protocol
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from seqbench import datasets as dataset_registry
from seqbench import leaderboard, losses, paths, references, results
from seqbench import summary as S
from seqbench.io import atomic_path
from seqbench.params import Params
from seqbench.paths import Layout
from seqbench.stats import mean_ci

OUTPUTS = paths.AGGREGATE_OUTPUTS


def write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, na_rep="")


def metas(params: Params) -> dict:
    return {d: results.task_meta(params, d) for d in results.dataset_order(params)}


def build_summary(params: Params, jobs: list[results.Job], table: pd.DataFrame) -> pd.DataFrame:
    family = lambda d: dataset_registry.get(d).family
    summary = S.summary_table(table, metas(params), losses.example_losses(jobs, family))
    summary = S.with_status(summary, results.status_table(params, jobs))
    datasets = {d: i for i, d in enumerate(results.dataset_order(params))}
    tasks = {(d, t): i for d in datasets
             for i, t in enumerate(results.task_order(params, d, summary.loc[summary["dataset"] == d, "task"]))}
    return S.sort_summary(summary, datasets, tasks)


def summary_run_metrics(table: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """(dataset, model) -> MLflow metrics `<task>/<split>_<metric>_mean` and `_std` across seeds
    (the protocol regime; other regimes prefixed `<regime>/`)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for (dataset, model, regime, task, split, metric), group in table.groupby(
            ["dataset", "model", "regime", "task", "split", "metric"], sort=False):
        ci = mean_ci(group["value"].to_numpy())
        prefix = "" if regime == "protocol" else f"{regime}/"
        entry = out.setdefault((dataset, model), {})
        entry[f"{prefix}{task}/{split}_{metric}_mean"] = ci.mean
        entry[f"{prefix}{task}/{split}_{metric}_std"] = ci.std
    return out


def run(params: Params, layout: Layout, log_mlflow: bool = True) -> dict[str, pd.DataFrame]:
    jobs = results.load_jobs(params, layout)
    refs = references.load_references(layout.reports / "references.yaml", metas(params))
    table = results.results_table(jobs, params.preset)
    summary = build_summary(params, jobs, table)
    costs = results.costs_table(jobs)
    dnf = results.did_not_finish(jobs)
    handling = results.input_handling(params, jobs)
    board = leaderboard.leaderboard_markdown(params, summary, results.run_meta(jobs), dnf, refs, handling,
                                             results.per_horizon_value(jobs))
    reports = layout.reports
    write_csv(table, reports / "results.csv")
    write_csv(costs, reports / "costs.csv")
    write_csv(summary, reports / "summary.csv")
    write_csv(dnf, reports / "did_not_finish.csv")
    with atomic_path(reports / "leaderboard.md") as tmp:
        tmp.write_text(board, encoding="utf-8")
    if log_mlflow:
        from seqbench import tracking

        seeds = ",".join(str(s) for s in params.seeds)
        for (dataset, model), metrics in summary_run_metrics(table).items():
            rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
            run_params = {"preset": params.preset, "seeds": seeds, "n_seeds": int(rows["seed"].nunique()),
                          "regimes": ",".join(dict.fromkeys(rows["regime"]))}
            tracking.log_summary_run(layout, dataset, model, metrics, params=run_params,
                                     tags={"dataset": dataset, "model": model, "preset": params.preset})
    return {"results": table, "costs": costs, "summary": summary, "did_not_finish": dnf}
