"""Every job's metrics.json -> results, costs and summary tables, the leaderboard and MLflow summary runs.

`run` collects exactly the jobs params.yaml lists (a missing file stops with the command that makes
it) and writes, atomically:
  reports/results.csv   long form: dataset, task, model, seed, preset, split, metric, value
  reports/costs.csv     dataset, task, model, seed, params_count, train_seconds, seconds_per_epoch,
                        epochs, peak_memory_mb, device
  reports/summary.csv   per (dataset, task, model, split, metric): family, primary (the metric the
                        leaderboard ranks by), n, mean, std, 95% CI, skill, rank, p_wilcoxon, p_dm,
                        significant (best / yes / no / '' untestable); plus status rows (status != "ok") for
                        unavailable datasets, skipped (dataset, task, model) pairs and the tasks the
                        preset did not train, each with its reason
  reports/leaderboard.md  per task: the test leaderboard, then the published numbers of reports/references.yaml
                        beside ours (as in the HTML report)
Skill (forecasts): 1 - metric / metric of the dataset's naive baseline (`naive`; CTA: `seasonal_naive`,
Geron's lag-7 forecast) on the same task, split and metric, for each error metric (so ETT's MSE rows
carry an MSE skill, its MAE rows an MAE skill). Tests against the best model of each (dataset, task,
split, metric): Wilcoxon signed-rank over seeds; on the test split of forecasts also Diebold-Mariano on
predictions.parquet's per-window errors averaged over seeds (absolute loss for mae, squared loss for
mse and rmse; ceil(horizon / window stride) lags, as windows that share targets share errors).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqbench import datasets as dataset_registry
from seqbench import stats
from seqbench.errors import DataError
from seqbench.io import atomic_path, read_json
from seqbench.params import Params
from seqbench.paths import Layout

ALPHA = 0.05
RESULT_COLUMNS = ["dataset", "task", "model", "seed", "preset", "split", "metric", "value"]
COST_COLUMNS = ["dataset", "task", "model", "seed", "params_count", "train_seconds", "seconds_per_epoch",
                "epochs", "peak_memory_mb", "device"]
SUMMARY_COLUMNS = ["dataset", "family", "task", "model", "split", "metric", "primary", "n", "mean", "std",
                   "ci95_low", "ci95_high", "skill", "rank", "p_wilcoxon", "p_dm", "significant",
                   "status", "reason"]
GROUP = ["dataset", "task", "split", "metric"]


@dataclass(frozen=True)
class Job:
    dataset: str
    model: str
    seed: int
    regime: str
    path: Path  # the run folder
    metrics: dict


def primary_metric(dataset: str) -> str:
    return dataset_registry.get(dataset).primary_metric


def baseline_model(dataset: str) -> str | None:
    return dataset_registry.get(dataset).baseline


def dataset_order(params: Params) -> list[str]:
    """The datasets the job lists name, in the registry's fixed order (report sections follow it)."""
    wanted = set(params.datasets_in_jobs())
    return [name for name in dataset_registry.DATASETS if name in wanted]


def task_order(params: Params, dataset: str, tasks) -> list[str]:
    """Tasks in the protocol's order (metrics.json keeps them alphabetical); unknown ones last."""
    protocol = dataset_registry.task_names(dataset, params.dataset(dataset))
    unique = list(dict.fromkeys(t for t in tasks if t))
    return sorted(unique, key=lambda t: (protocol.index(t) if t in protocol else len(protocol), t))


def sort_summary(params: Params, summary: pd.DataFrame) -> pd.DataFrame:
    """Datasets in report order, tasks in protocol order, then split, metric and rank; status rows last."""
    datasets = {d: i for i, d in enumerate(dataset_order(params))}
    tasks = {(d, t): i for d in datasets for i, t in enumerate(task_order(params, d, summary.loc[
        summary["dataset"] == d, "task"]))}
    key = pd.DataFrame({"d": summary["dataset"].map(datasets), "s": summary["status"] != "ok",
                        "t": [tasks.get((d, t), -1) for d, t in zip(summary["dataset"], summary["task"])],
                        "split": summary["split"].fillna(""), "m": summary["metric"].fillna(""),
                        "r": summary["rank"].fillna(0)})
    order = key.sort_values(["d", "s", "t", "split", "m", "r"], kind="stable").index
    return summary.loc[order].reset_index(drop=True)


# --- collect ---------------------------------------------------------------------------------------
def load_jobs(params: Params, layout: Layout) -> list[Job]:
    jobs = []
    for _group, dataset, model, seed, regime in params.train_jobs():
        folder = layout.run(dataset, model, seed, regime)
        path = folder / "metrics.json"
        if not path.is_file():
            raise DataError(f"{path}: missing; run `python -m seqbench train --dataset {dataset} --model {model} "
                            f"--seed {seed} --regime {regime}` (or the whole workflow: `snakemake --cores all` / `dvc repro`)")
        try:
            metrics = read_json(path)
        except ValueError as error:
            raise DataError(f"{path}: not valid JSON ({error}); delete it and rerun that training job") from None
        if metrics.get("status") not in ("ok", "unavailable"):
            raise DataError(f"{path}: field 'status' is {metrics.get('status')!r}, expected 'ok' or 'unavailable'")
        jobs.append(Job(dataset, model, seed, regime, folder, metrics))
    return jobs


def _ok_tasks(job: Job):
    if job.metrics["status"] != "ok":
        return
    for task, entry in job.metrics.get("tasks", {}).items():
        if entry.get("status", "ok") == "ok":
            yield task, entry


def results_table(jobs: list[Job], preset: str) -> pd.DataFrame:
    rows = []
    for job in jobs:
        for task, entry in _ok_tasks(job):
            for split in ("val", "test"):
                for metric, value in (entry.get(split) or {}).items():
                    value = math.nan if value is None else float(value)  # JSON null: a metric that was undefined
                    rows.append((job.dataset, task, job.model, job.seed, preset, split, metric.lower(), value))
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    duplicated = table.duplicated(["dataset", "task", "model", "seed", "split", "metric"])
    if duplicated.any():
        first = table[duplicated].iloc[0].to_dict()
        raise DataError(f"duplicate result {first}: two metrics.json files claim the same job")
    return table


def costs_table(jobs: list[Job]) -> pd.DataFrame:
    rows = []
    for job in jobs:
        cost = job.metrics.get("cost") or {}
        for task, entry in _ok_tasks(job):
            rows.append((job.dataset, task, job.model, job.seed, entry.get("params_count"), entry.get("train_seconds"),
                         entry.get("seconds_per_epoch"), entry.get("epochs"), cost.get("peak_memory_mb"),
                         cost.get("device")))
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def portable(reason: str) -> str:
    """A reason as published: absolute paths (a mirror folder given as one) relative to the project,
    so committed reports name no particular machine's folders."""
    return re.sub(r"(?<![\w.:/])/[^\s,;:()'\"]+", lambda m: os.path.relpath(m.group(0), Path.cwd()), reason)


def status_table(params: Params, jobs: list[Job]) -> pd.DataFrame:
    """Unavailable datasets, (dataset, task, model) pairs a model skipped, and tasks the preset left out."""
    rows: dict[tuple, str] = {}
    for job in jobs:
        if job.metrics["status"] == "unavailable":
            rows.setdefault((job.dataset, "", "", "unavailable"), portable(job.metrics.get("reason") or "dataset unavailable"))
            continue
        for task, entry in job.metrics.get("tasks", {}).items():
            if entry.get("status", "ok") != "ok":
                rows.setdefault((job.dataset, task, job.model, entry["status"]), entry.get("reason") or "")
    for dataset in dataset_order(params):
        trained = params.budget(dataset).tasks
        if trained is None:
            continue
        protocol = dataset_registry.task_names(dataset, params.dataset(dataset))
        for task in protocol:
            if task not in trained:
                rows[(dataset, task, "", "not_trained")] = (f"preset {params.preset!r} trains only "
                                                            f"{', '.join(trained)} of this protocol")
    table = pd.DataFrame([(*key, reason) for key, reason in rows.items()],
                         columns=["dataset", "task", "model", "status", "reason"])
    return table


# --- statistics ------------------------------------------------------------------------------------
def summary_table(results: pd.DataFrame, dm_pvalues: dict[tuple, float] | None = None) -> pd.DataFrame:
    """Across-seed statistics per (dataset, task, model, split, metric), ranks, skill and tests vs the best."""
    dm_pvalues = dm_pvalues or {}
    rows = []
    for (dataset, task, split, metric), group in results.groupby(GROUP, sort=False):
        try:
            lower = stats.lower_is_better(metric)
        except ValueError as error:
            raise DataError(f"runs/{dataset}/*/seed*/metrics.json, task {task!r}: {error}") from None
        by_model = {model: g.set_index("seed")["value"] for model, g in group.groupby("model", sort=False)}
        models = list(by_model)
        cis = {m: stats.mean_ci(by_model[m].to_numpy()) for m in models}
        rank = dict(zip(models, stats.ranks([cis[m].mean for m in models], lower_better=lower)))
        best = next((m for m in models if rank[m] == 1), None)  # None: every mean is NaN
        base = cis.get(baseline_model(dataset))
        family = dataset_registry.get(dataset).family
        for model in models:
            ci = cis[model]
            skill = math.nan
            if family == "forecast" and lower and base is not None and base.mean and not math.isnan(base.mean):
                skill = 1.0 - ci.mean / base.mean
            p_wil = math.nan
            if best is not None and model != best:
                common = by_model[model].index.intersection(by_model[best].index)
                p_wil = stats.wilcoxon_paired(by_model[model][common].to_numpy(), by_model[best][common].to_numpy())
            p_dm = dm_pvalues.get((dataset, task, split, metric, model), math.nan)
            rows.append({
                "dataset": dataset, "family": family, "task": task, "model": model, "split": split,
                "metric": metric, "primary": metric == primary_metric(dataset), "n": ci.n, "mean": ci.mean,
                "std": ci.std, "ci95_low": ci.low, "ci95_high": ci.high, "skill": skill,
                "rank": pd.NA if math.isnan(rank[model]) else int(rank[model]),
                "p_wilcoxon": p_wil, "p_dm": p_dm, "significant": _significance(model == best, p_dm, p_wil),
                "status": "ok", "reason": "",
            })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _significance(is_best: bool, p_dm: float, p_wilcoxon: float) -> str:
    """'best'; 'yes'/'no' = different from the best at ALPHA (Diebold-Mariano where available, else
    Wilcoxon over seeds); '' where neither test could be run."""
    if is_best:
        return "best"
    p = p_dm if not math.isnan(p_dm) else p_wilcoxon
    if math.isnan(p):
        return ""
    return "yes" if p < ALPHA else "no"


def window_errors(jobs: list[Job]) -> pd.DataFrame:
    """Test-split per-window errors of every forecast job: dataset, task, model, seed, window, mse, mae, horizon."""
    frames = []
    for job in jobs:
        if job.metrics["status"] != "ok" or job.metrics.get("family") != "forecast":
            continue
        path = job.path / "predictions.parquet"
        if not path.is_file():
            raise DataError(f"{path}: missing; rerun `python -m seqbench train --dataset {job.dataset} "
                            f"--model {job.model} --seed {job.seed}`")
        frame = pd.read_parquet(path, columns=["task", "split", "window", "mse", "mae", "y_true"])
        frame = frame[frame["split"] == "test"]
        if frame.empty:
            continue
        frame = frame.assign(dataset=job.dataset, model=job.model, seed=job.seed,
                             horizon=frame["y_true"].map(len).astype(int))
        frames.append(frame.drop(columns=["split", "y_true"]))
    if not frames:
        return pd.DataFrame(columns=["dataset", "task", "model", "seed", "window", "mse", "mae", "horizon"])
    return pd.concat(frames, ignore_index=True)


def dm_pvalues(results: pd.DataFrame, errors: pd.DataFrame) -> dict[tuple, float]:
    """Diebold-Mariano p of each forecast model vs the best one on each test metric (mae, mse, rmse),
    on the per-window errors averaged over seeds."""
    out: dict[tuple, float] = {}
    if errors.empty:
        return out
    means = results[results["split"] == "test"].groupby(GROUP + ["model"], sort=False)["value"].mean()
    per_window = errors.groupby(["dataset", "task", "model", "window"])[["mse", "mae"]].mean().sort_index()
    horizon = errors.groupby(["dataset", "task"])["horizon"].max()
    available = set(per_window.index.droplevel("window"))
    for (dataset, task, split, metric), group in means.groupby(level=GROUP, sort=False):
        if metric not in ("mae", "mse", "rmse") or (dataset, task) not in horizon.index:
            continue
        scores = group.droplevel(GROUP)
        best = scores.idxmin()
        try:
            best_errors = per_window.loc[(dataset, task, best)]
        except KeyError:
            continue
        windows = np.sort(best_errors.index.to_numpy())
        stride = max(1, int(np.median(np.diff(windows)))) if windows.size > 1 else 1
        lags = max(1, math.ceil(int(horizon[(dataset, task)]) / stride))
        column, power = ("mae", 1) if metric == "mae" else ("mse", 2)
        for model in scores.index:
            if model == best or (dataset, task, model) not in available:
                continue
            joined = per_window.loc[(dataset, task, model)].merge(best_errors, left_index=True, right_index=True,
                                                                    suffixes=("", "_best"))
            e1, e2 = joined[column].to_numpy(), joined[f"{column}_best"].to_numpy()
            if power == 2:  # window MSE = mean squared error: sqrt turns it back into an error whose square is the loss
                e1, e2 = np.sqrt(e1), np.sqrt(e2)
            out[(dataset, task, split, metric, model)] = stats.diebold_mariano(e1, e2, lags, power).pvalue
    return out


def with_status(summary: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    extra = status.assign(family=status["dataset"].map(lambda d: dataset_registry.get(d).family))
    extra = extra.reindex(columns=SUMMARY_COLUMNS)
    table = pd.concat([summary, extra], ignore_index=True) if not extra.empty else summary.copy()
    return table.astype({"n": "Int64", "rank": "Int64"})


def summary_run_metrics(results: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """(dataset, model) -> MLflow metrics `<task>/<split>_<metric>_mean` and `_std` across seeds."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for (dataset, model, task, split, metric), group in results.groupby(
            ["dataset", "model", "task", "split", "metric"], sort=False):
        ci = stats.mean_ci(group["value"].to_numpy())
        entry = out.setdefault((dataset, model), {})
        entry[f"{task}/{split}_{metric}_mean"] = ci.mean
        entry[f"{task}/{split}_{metric}_std"] = ci.std
    return out


# --- report-side readers ---------------------------------------------------------------------------
def read_table(layout: Layout, name: str) -> pd.DataFrame:
    """reports/<name>.csv as written by `run` (summary: text columns read back as '' where empty)."""
    path = layout.reports / f"{name}.csv"
    if not path.is_file():
        raise DataError(f"{path}: missing; run `python -m seqbench aggregate` first")
    table = pd.read_csv(path)
    if name == "summary":
        text = ["task", "model", "significant", "status", "reason"]
        table[text] = table[text].astype(object).where(table[text].notna(), "")
        table = table.astype({"n": "Int64", "rank": "Int64"})
    return table


def run_meta(jobs: list[Job]) -> dict:
    """Commit(s), device(s) and torch version(s) the jobs report, for the leaderboard and report headers."""
    commits, devices = [], []
    for job in jobs:
        if job.metrics["status"] != "ok":
            continue
        commits.append((job.metrics.get("tags") or {}).get("git_commit") or "unknown")
        devices.append((job.metrics.get("cost") or {}).get("device") or "unknown")
    return {"commits": sorted(set(commits)), "devices": sorted(set(devices))}


# --- stage -----------------------------------------------------------------------------------------
def write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, na_rep="")


def run(params: Params, layout: Layout, log_mlflow: bool = True) -> dict[str, pd.DataFrame]:
    from seqbench import report  # the leaderboard's markdown lives with the other renderings

    jobs = load_jobs(params, layout)
    references = report.load_references(layout.reports / "references.yaml")
    results = results_table(jobs, params.preset)
    summary = summary_table(results, dm_pvalues(results, window_errors(jobs)))
    summary = sort_summary(params, with_status(summary, status_table(params, jobs)))
    costs = costs_table(jobs)
    reports = layout.reports
    write_csv(results, reports / "results.csv")
    write_csv(costs, reports / "costs.csv")
    write_csv(summary, reports / "summary.csv")
    with atomic_path(reports / "leaderboard.md") as tmp:
        tmp.write_text(report.leaderboard_markdown(params, summary, jobs, references), encoding="utf-8")
    if log_mlflow:
        from seqbench import tracking

        seeds = ",".join(str(s) for s in params.seeds)
        for (dataset, model), metrics in summary_run_metrics(results).items():
            n = int(results[(results["dataset"] == dataset) & (results["model"] == model)]["seed"].nunique())
            tracking.log_summary_run(layout, dataset, model, metrics,
                                     params={"preset": params.preset, "seeds": seeds, "n_seeds": n},
                                     tags={"dataset": dataset, "model": model, "preset": params.preset})
    return {"results": results, "costs": costs, "summary": summary}
