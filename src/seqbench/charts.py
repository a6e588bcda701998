"""The figures of one task section, from the run folders (history.csv, predictions.parquet, metrics.json).

Figures show the protocol regime. Learning curves: validation loss per epoch, mean over seeds, log
scale. Forecasts: the truth and the best model of each architecture family. Per-horizon MAE: every
model. Cost: the headline metric against parameters and training seconds, the Pareto front drawn and
listed in a table beside the figure (points are named by the legend, never by overlapping labels).
"""

from __future__ import annotations

import html
from typing import Callable

import numpy as np
import pandas as pd
from IPython.display import HTML, display

from seqbench import leaderboard as L
from seqbench import plots, stats
from seqbench import summary as S
from seqbench.formatting import fmt, mean_only
from seqbench.results import Job, per_horizon, primary_metric

REGIME = "protocol"


def _runs(rep, dataset: str, model: str) -> list[Job]:
    return sorted((j for j in rep.jobs if j.dataset == dataset and j.model == model and j.regime == REGIME
                   and j.status == "ok"), key=lambda j: j.seed)


def _ranked(rep, dataset: str, task: str) -> pd.DataFrame:
    rows = S.headline_rows(rep.summary, dataset, task)
    return rows[rows["regime"] == REGIME]


def learning_curves(rep, dataset: str, task: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    curves = {}
    for model in _ranked(rep, dataset, task)["model"]:
        frames = []
        for job in _runs(rep, dataset, model):
            path = job.path / "history.csv"
            if path.is_file() and path.stat().st_size:
                history = pd.read_csv(path)
                frames.append(history[history["task"] == task])
        history = pd.concat(frames) if frames else pd.DataFrame(columns=["epoch", "val_loss"])
        if history.empty or history["val_loss"].isna().all():
            continue
        curve = history.groupby("epoch")["val_loss"].mean()
        curves[model] = (curve.index.to_numpy(), curve.to_numpy())
    return curves


def predictions(job: Job, task: str, split: str = "test") -> pd.DataFrame:
    path = job.path / "predictions.parquet"
    if not path.is_file():
        return pd.DataFrame()
    frame = pd.read_parquet(path)
    order = "window" if "window" in frame.columns else "index"
    return frame[(frame["task"] == task) & (frame["split"] == split)].sort_values(order).reset_index(drop=True)


def best_of_each_family(rep, dataset: str, task: str) -> list[str]:
    picked: dict[str, str] = {}
    for model in _ranked(rep, dataset, task)["model"]:
        picked.setdefault(plots.architecture(model), model)
    return list(picked.values())


def forecast_figure(rep, dataset: str, task: str):
    preds = {}
    for model in best_of_each_family(rep, dataset, task):
        runs = _runs(rep, dataset, model)
        frame = predictions(runs[0], task) if runs else pd.DataFrame()
        if not frame.empty:
            preds[model] = frame
    if not preds:
        return None
    first = next(iter(preds.values()))
    horizon = len(first["y_true"].iloc[0])
    if horizon == 1:  # one step ahead: the last 150 test targets as a series
        tail = first.tail(150)
        xs = [tail["timestamp"].to_numpy()]
        truth = [np.array([y[0] for y in tail["y_true"]])]
        series = {m: [np.array([y[0] for y in p.tail(150)["y_pred"]])] for m, p in preds.items() if len(p) >= len(tail)}
        titles = ["last 150 test targets"]
    else:
        picks = sorted({0, len(first) // 2, len(first) - 1})
        xs = [np.arange(1, horizon + 1)] * len(picks)
        truth = [np.asarray(first["y_true"].iloc[i]) for i in picks]
        series = {m: [np.asarray(p["y_pred"].iloc[i]) for i in picks] for m, p in preds.items() if len(p) > picks[-1]}
        titles = [f"window from {pd.Timestamp(first['timestamp'].iloc[i]):%Y-%m-%d %H:%M}" for i in picks]
    return plots.forecast_panels(truth, xs, series, titles, f"{dataset} · {task}: test forecasts of the first target "
                                 f"(seed {_runs(rep, dataset, next(iter(preds)))[0].seed})"), list(series)


def cost_points(rep, dataset: str, task: str) -> tuple[dict, dict, pd.DataFrame]:
    rows = _ranked(rep, dataset, task).set_index("model")
    costs = rep.costs[(rep.costs["dataset"] == dataset) & (rep.costs["task"] == task) & (rep.costs["regime"] == REGIME)]
    mean_costs = costs.groupby("model")[["params_count", "train_seconds"]].mean()
    joined = rows[["mean", "std"]].join(mean_costs, how="inner").dropna(subset=["params_count", "train_seconds"])
    maximize = not stats.lower_is_better(primary_metric(dataset))
    front = {}
    for label, column in (("parameters", "params_count"), ("training seconds", "train_seconds")):
        mask = stats.pareto_front(joined[column].to_numpy(float), joined["mean"].to_numpy(float), maximize=maximize)
        front[label] = set(joined.index[mask])
    points = {m: (float(r["params_count"]), float(r["train_seconds"]), float(r["mean"])) for m, r in joined.iterrows()}
    return points, front, joined


def front_table(front: dict[str, set[str]], joined: pd.DataFrame, metric: str) -> str:
    rows = []
    for model, r in joined.iterrows():
        on = [label for label, members in front.items() if model in members]
        if on:
            rows.append(f"<tr><td>{html.escape(model)}</td><td>{html.escape(mean_only(r['mean'], r['std']))}</td>"
                        f"<td>{fmt(r['params_count'])}</td><td>{fmt(r['train_seconds'])}</td>"
                        f"<td>{html.escape(', '.join(on))}</td></tr>")
    return ("<table class='pareto'><thead><tr><th>on the Pareto front</th><th>" + html.escape(metric) +
            "</th><th>parameters</th><th>training s</th><th>front of</th></tr></thead><tbody>" + "".join(rows) +
            "</tbody></table>")


def confusion_figure(rep, dataset: str, task: str):
    ranked = _ranked(rep, dataset, task)
    runs = _runs(rep, dataset, ranked["model"].iloc[0]) if not ranked.empty else []
    preds = predictions(runs[0], task) if runs else pd.DataFrame()
    if preds.empty:
        return None
    predicted = (preds["prob"].to_numpy() > 0.5).astype(int)  # as seqbench.evaluate
    actual = preds["label"].to_numpy().astype(int)
    matrix = np.array([[np.sum((actual == a) & (predicted == p)) for p in (0, 1)] for a in (0, 1)])
    model = ranked["model"].iloc[0]
    return plots.confusion(matrix, f"{model}: test confusion matrix (seed {runs[0].seed})"), model, matrix


def task_figures(rep, dataset: str, task: str, show: Callable) -> None:
    family = rep.summary.loc[rep.summary["dataset"] == dataset, "family"].iloc[0]
    curves = learning_curves(rep, dataset, task)
    if curves:
        show(plots.learning_curves(curves, f"{dataset} · {task}: validation loss (mean over seeds)"),
             f"{dataset} {task}: validation loss per epoch on a log scale, mean over seeds, one line per trained model")
    if family == "forecast":
        made = forecast_figure(rep, dataset, task)
        if made:
            show(made[0], f"{dataset} {task}: test forecasts of the best model of each family ({', '.join(made[1])}) "
                          "against the truth")
        horizon = {m: c for m, c in per_horizon(rep.jobs, dataset, task, "test").items() if len(c) > 1}
        if horizon:
            show(plots.per_horizon(horizon, f"{dataset} · {task}: test MAE per step ahead"),
                 f"{dataset} {task}: test MAE at each step ahead, one line per model")
    points, front, joined = cost_points(rep, dataset, task)
    if points:
        metric = L.headline_label(dataset)
        show(plots.cost_scatter(points, front, metric, f"{dataset} · {task}: {metric} against cost"),
             f"{dataset} {task}: {metric} against parameters and training seconds; Pareto front outlined")
        display(HTML(front_table(front, joined, metric)))
    if family == "text":
        made = confusion_figure(rep, dataset, task)
        if made:
            show(made[0], f"{dataset} {task}: test confusion matrix of {made[1]}: {made[2].tolist()}")
    if family == "chars":
        ranked = _ranked(rep, dataset, task)
        runs = _runs(rep, dataset, ranked["model"].iloc[0]) if not ranked.empty else []
        sample = ((runs[0].metrics.get("tasks") or {}).get(task) or {}).get("sample") if runs else None
        if sample:
            display(HTML(f"<h4>Generated text ({html.escape(runs[0].model)}, seed {runs[0].seed})</h4>"
                         f"<pre class='sample'>{html.escape(sample)}</pre>"))
