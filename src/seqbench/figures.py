"""What reports/comparison.ipynb shows: the report's data (loaded once) and one function per section.

The notebook only calls these; every table and figure is computed here from reports/*.csv (the
aggregate stage), the run folders (history.csv, predictions.parquet, metrics.json) and
reports/references.yaml. Figures are shown as inline base64 PNG images with alternative text.
"""

from __future__ import annotations

import base64
import html
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
from IPython.display import HTML, display

from seqbench import aggregate, report, stats
from seqbench.errors import DataError
from seqbench.params import Params, load_params
from seqbench.paths import Layout

FIG_DPI = 80


@dataclass
class Report:
    layout: Layout
    params: Params
    summary: pd.DataFrame
    costs: pd.DataFrame
    jobs: list[aggregate.Job]
    references: list[dict]
    datasets: list[str]

    def ok_rows(self, dataset: str) -> pd.DataFrame:
        s = self.summary
        return s[(s["status"] == "ok") & (s["dataset"] == dataset)]

    def status_rows(self, dataset: str) -> pd.DataFrame:
        s = self.summary
        return s[(s["status"] != "ok") & (s["dataset"] == dataset)]

    def first_seed(self, dataset: str, model: str) -> aggregate.Job | None:
        runs = [j for j in self.jobs if j.dataset == dataset and j.model == model and j.metrics["status"] == "ok"]
        return min(runs, key=lambda j: j.seed) if runs else None


def check_kernel(python_prefix: str | None) -> None:
    """The report must run on the interpreter that ran the pipeline (same packages, same seqbench);
    None (the notebook opened by hand) skips the check."""
    if python_prefix is not None and os.path.realpath(sys.prefix) != os.path.realpath(python_prefix):
        raise RuntimeError(f"the notebook kernel runs {sys.executable} (prefix {sys.prefix}), not the pipeline's "
                           f"interpreter (prefix {python_prefix}); run `python -m ipykernel install --sys-prefix` "
                           "with the project's python")


def load_report(project_root: str, preset: str, python_prefix: str | None = None) -> Report:
    check_kernel(python_prefix)
    layout = Layout(Path(project_root))
    params = load_params(layout.params)
    if params.preset != preset:
        raise DataError(f"{layout.params}: preset is {params.preset!r} but the report was asked for {preset!r}; "
                        "rerun `python -m seqbench aggregate` and `report`")
    return Report(layout, params, aggregate.read_table(layout, "summary"), aggregate.read_table(layout, "costs"),
                  aggregate.load_jobs(params, layout), report.load_references(layout.reports / "references.yaml"),
                  aggregate.dataset_order(params))


# --- html helpers ----------------------------------------------------------------------------------
def _cell(text, tag: str = "td", **attrs) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{html.escape(str(v))}"' for k, v in attrs.items())
    return f"<{tag}{extra}>{html.escape(str(text))}</{tag}>"


def _table(headers: list[str], rows: list[str], **attrs) -> str:
    extra = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in attrs.items() if k != "cls")
    head = "".join(_cell(h, "th") for h in headers)
    return f'<table class="{attrs.get("cls", "")}"{extra}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _show(fig, alt: str) -> None:
    """The figure as an inline PNG <img> with alternative text (the report must stand alone, offline)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIG_DPI)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    display(HTML(f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'))


# --- header ----------------------------------------------------------------------------------------
def show_header(rep: Report) -> None:
    meta = aggregate.run_meta(rep.jobs)
    line = html.escape(report.header_line(rep.params, meta)).replace("**", "")
    parts = [f"<h1>seqbench comparison</h1><p class='run-header'>{line}</p>",
             f"<p>{html.escape(report.marks_note(len(rep.params.seeds)).replace('`', ''))}</p>",
             "<ul class='contents'>"]
    notes = report.preset_notes(rep.params)
    for dataset in rep.datasets:
        unavailable = rep.status_rows(dataset).query("status == 'unavailable'")
        state = (f" — <b>unavailable</b>: {html.escape(unavailable.iloc[0]['reason'])}" if not unavailable.empty
                 else f" — preset {html.escape(rep.params.preset)}: {html.escape('; '.join(notes[dataset]))}")
        parts.append(f"<li><a href='#dataset-{dataset}'>{dataset}</a>{state}</li>")
    display(HTML("".join(parts) + "</ul>"))


# --- per dataset -----------------------------------------------------------------------------------
def show_datasets(rep: Report) -> None:
    for dataset in rep.datasets:
        show_dataset(rep, dataset)


def show_dataset(rep: Report, dataset: str) -> None:
    display(HTML(f"<h2 id='dataset-{dataset}'>{dataset}</h2>"))
    status = rep.status_rows(dataset)
    unavailable = status[status["status"] == "unavailable"]
    if not unavailable.empty:
        display(HTML(f"<p class='unavailable'><b>Unavailable</b>: {html.escape(unavailable.iloc[0]['reason'])}</p>"))
        return
    ok = rep.ok_rows(dataset)
    for task in aggregate.task_order(rep.params, dataset, ok["task"]):
        display(HTML(f"<h3 id='dataset-{dataset}-{task}'>{dataset} · {task}</h3>"))
        display(HTML(leaderboard_html(rep, dataset, task)))
        refs = report.reference_rows(rep.references, rep.summary, rep.jobs, dataset, task)
        if not refs.empty:
            display(HTML(references_html(refs, dataset, task)))
        learning_curves(rep, dataset, task)
        family = ok["family"].iloc[0]
        if family == "forecast":
            forecast_plot(rep, dataset, task)
            per_horizon_plot(rep, dataset, task)
        cost_plot(rep, dataset, task)
        if family == "text":
            confusion_plot(rep, dataset, task)
        if family == "chars":
            show_sample(rep, dataset, task)
    if not status.empty:
        items = "".join(f"<li>{html.escape(r.status.replace('_', ' '))}: {html.escape(r.model + ' on ' if r.model else '')}"
                        f"{html.escape(r.task)} ({html.escape(r.reason)})</li>" for r in status.itertuples())
        display(HTML(f"<p>Not in the tables above:</p><ul class='status'>{items}</ul>"))


def leaderboard_html(rep: Report, dataset: str, task: str) -> str:
    metric = aggregate.primary_metric(dataset)
    rows = []
    for _, r in report.leaderboard_rows(rep.summary, dataset, task).iterrows():
        rows.append("<tr>" + "".join([
            _cell(r["rank"], field="rank", value=r["rank"]), _cell(r["model"], field="model", value=r["model"]),
            _cell(f"{report.fmt(r['mean'])} ± {report.fmt(r['std'])}", field="mean", value=repr(float(r["mean"])),
                  std=repr(float(r["std"]))),
            _cell(f"[{report.fmt(r['ci95_low'])}, {report.fmt(r['ci95_high'])}]", field="ci",
                  low=repr(float(r["ci95_low"])), high=repr(float(r["ci95_high"]))),
            _cell(report.fmt(r["skill"]), field="skill", value=repr(float(r["skill"]))),
            _cell(report.mark(r), field="mark"), _cell(r["n"], field="n", value=r["n"])]) + "</tr>")
    return _table(["rank", "model", f"test {metric} (mean ± std)", "95% CI", "skill", "vs best", "n"], rows,
                  cls="leaderboard", dataset=dataset, task=task, metric=metric)


def references_html(refs: pd.DataFrame, dataset: str, task: str) -> str:
    """Rows whose model ran here in a table; the others (no comparable run) in one line below it."""
    ran, other = report.ran_and_not(refs)
    parts = ["<h4>Published references</h4>"]
    if not ran.empty:
        shown = ran.drop(columns=list(report.REFERENCE_NOTES))
        parts.append(_table(list(shown.columns), ["<tr>" + "".join(_cell(v) for v in r) + "</tr>"
                                                  for r in shown.itertuples(index=False)],
                            cls="references", dataset=dataset, task=task))
        parts += [f"<p class='{column}'>{html.escape(label)}: {html.escape(text)}</p>"
                  for column, label, text in report.reference_notes(ran)]
    if not other.empty:
        parts.append(f"<p class='references-not-run'>{html.escape(report.also_published(other))}</p>")
    return "".join(parts)


# --- figures ---------------------------------------------------------------------------------------
def learning_curves(rep: Report, dataset: str, task: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=FIG_DPI)
    drawn = 0
    for model in dict.fromkeys(rep.ok_rows(dataset).query("task == @task")["model"]):
        frames = []
        for job in (j for j in rep.jobs if j.dataset == dataset and j.model == model and j.metrics["status"] == "ok"):
            path = job.path / "history.csv"
            if path.is_file() and path.stat().st_size:
                history = pd.read_csv(path)
                frames.append(history[history["task"] == task])
        history = pd.concat(frames) if frames else pd.DataFrame()
        if history.empty or history["val_loss"].isna().all():
            continue
        curve = history.groupby("epoch")["val_loss"].mean()
        ax.plot(curve.index, curve.to_numpy(), marker=".", label=model)
        drawn += 1
    if not drawn:
        plt.close(fig)
        display(HTML("<p>No trained model: no learning curves.</p>"))
        return
    ax.set(title=f"{dataset} · {task}: validation loss (mean over seeds)", xlabel="epoch", ylabel="val loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, ncol=2)
    _show(fig, f"{dataset} {task}: validation loss per epoch, mean over seeds, one line per trained model")


def _best(rep: Report, dataset: str, task: str) -> str | None:
    rows = report.leaderboard_rows(rep.summary, dataset, task)
    return rows.iloc[0]["model"] if not rows.empty else None


def _predictions(rep: Report, dataset: str, model: str, task: str) -> pd.DataFrame:
    job = rep.first_seed(dataset, model)
    if job is None or not (job.path / "predictions.parquet").is_file():
        return pd.DataFrame()
    frame = pd.read_parquet(job.path / "predictions.parquet")
    order = "window" if "window" in frame.columns else "index"
    return frame[(frame["task"] == task) & (frame["split"] == "test")].sort_values(order)


def forecast_plot(rep: Report, dataset: str, task: str) -> None:
    models = list(dict.fromkeys(m for m in (_best(rep, dataset, task), aggregate.baseline_model(dataset)) if m))
    preds = {m: _predictions(rep, dataset, m, task) for m in models}
    preds = {m: p for m, p in preds.items() if not p.empty}
    if not preds:
        return
    first = next(iter(preds.values()))
    horizon = len(first["y_true"].iloc[0])
    if horizon == 1:
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=FIG_DPI)
        tail = first.tail(150)
        ax.plot(tail["timestamp"], [y[0] for y in tail["y_true"]], color="black", lw=1.5, label="truth")
        for model, p in preds.items():
            p = p.tail(150)
            ax.plot(p["timestamp"], [y[0] for y in p["y_pred"]], lw=1, label=model)
        ax.set(title=f"{dataset} · {task}: test forecasts (seed {rep.first_seed(dataset, models[0]).seed})",
               ylabel="target")
        ax.legend(fontsize=7)
        fig.autofmt_xdate()
    else:
        picks = sorted({0, len(first) // 2, len(first) - 1})
        fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 3), dpi=FIG_DPI, squeeze=False)
        for ax, i in zip(axes[0], picks):
            steps = np.arange(1, horizon + 1)
            ax.plot(steps, first["y_true"].iloc[i], color="black", lw=1.5, label="truth")
            for model, p in preds.items():
                if i < len(p):
                    ax.plot(steps, p["y_pred"].iloc[i], lw=1, label=model)
            ax.set(title=f"window from {pd.Timestamp(first['timestamp'].iloc[i]):%Y-%m-%d %H:%M}", xlabel="step ahead")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{dataset} · {task}: test forecasts of the first target")
    _show(fig, f"{dataset} {task}: test forecasts of {', '.join(preds)} against the truth")


def per_horizon_plot(rep: Report, dataset: str, task: str) -> None:
    curves = report.per_horizon_mae(rep.jobs, dataset, task, "test")
    curves = {m: c for m, c in curves.items() if len(c) > 1}
    if not curves:
        return
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=FIG_DPI)
    for model, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=model)
    ax.set(title=f"{dataset} · {task}: test MAE per horizon step", xlabel="step ahead", ylabel="MAE")
    ax.legend(fontsize=7, ncol=2)
    _show(fig, f"{dataset} {task}: test MAE at each horizon step, one line per model")


def cost_plot(rep: Report, dataset: str, task: str) -> None:
    rows = report.leaderboard_rows(rep.summary, dataset, task)
    costs = rep.costs[(rep.costs["dataset"] == dataset) & (rep.costs["task"] == task)]
    mean_costs = costs.groupby("model")[["params_count", "train_seconds"]].mean()
    table = rows.set_index("model")[["mean"]].join(mean_costs, how="inner")
    if table.empty:
        return
    metric = aggregate.primary_metric(dataset)
    maximize = not stats.lower_is_better(metric)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=FIG_DPI)
    for ax, cost in zip(axes, ("params_count", "train_seconds")):
        x, y = table[cost].to_numpy(dtype=float), table["mean"].to_numpy(dtype=float)
        front = stats.pareto_front(x, y, maximize=maximize)
        ax.scatter(x, y, s=18)
        order = np.argsort(x[front])
        ax.plot(x[front][order], y[front][order], "r-o", mfc="none", ms=9, lw=1, label="Pareto front")
        for name, xi, yi in zip(table.index, x, y):
            ax.annotate(name, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if cost == "params_count":  # baselines have no parameters: symlog keeps 0 on the axis
            ax.set_xscale("symlog", linthresh=1)
        ax.set(xlabel=cost.replace("_", " "), ylabel=f"test {metric}")
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset} · {task}: accuracy against cost")
    _show(fig, f"{dataset} {task}: test {metric} against parameters and training seconds, Pareto front marked")


def confusion_plot(rep: Report, dataset: str, task: str) -> None:
    model = _best(rep, dataset, task)
    preds = _predictions(rep, dataset, model, task) if model else pd.DataFrame()
    if preds.empty:
        return
    predicted = (preds["prob"].to_numpy() >= 0.5).astype(int)
    actual = preds["label"].to_numpy().astype(int)
    matrix = np.array([[np.sum((actual == a) & (predicted == p)) for p in (0, 1)] for a in (0, 1)])
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=FIG_DPI)
    ax.imshow(matrix, cmap="Blues")
    for (a, p), count in np.ndenumerate(matrix):
        ax.text(p, a, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["neg", "pos"], yticklabels=["neg", "pos"],
           xlabel="predicted", ylabel="actual", title=f"{model}: test confusion matrix")
    _show(fig, f"{dataset} {task}: test confusion matrix of {model}: {matrix.tolist()}")


def show_sample(rep: Report, dataset: str, task: str) -> None:
    model = _best(rep, dataset, task)
    job = rep.first_seed(dataset, model) if model else None
    sample = ((job.metrics.get("tasks") or {}).get(task) or {}).get("sample") if job else None
    if sample:
        display(HTML(f"<h4>Generated text ({html.escape(model)}, seed {job.seed})</h4>"
                     f"<pre class='sample'>{html.escape(sample)}</pre>"))
