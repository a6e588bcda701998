"""Renderings of the aggregated results: the markdown leaderboard, and the HTML report.

`run` executes reports/comparison.ipynb with papermill (kernel: this interpreter) into
reports/comparison.executed.ipynb, then converts it with nbconvert into a self-contained
reports/comparison.html: code hidden, figures embedded as base64 PNG, no script fetched from the
network (the page must open offline). Both files replace their old versions only once both are made.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from seqbench import aggregate, stats
from seqbench import datasets as dataset_registry
from seqbench.errors import DataError, SeqbenchError
from seqbench.params import Params
from seqbench.paths import Layout

TEMPLATE = "comparison.ipynb"
KERNEL = "python3"  # jupyter_client runs a kernelspec whose argv starts with `python` with sys.executable
# nbconvert's lab template, minus the <script> tags that load require.js, MathJax and mermaid from CDNs
HTML_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


# --- numbers and marks -----------------------------------------------------------------------------
def fmt(value: float) -> str:
    """Human format shared by the leaderboard and the report: riders as integers, small values 4 digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def mark(row) -> str:
    """'best', '**' p<0.01, '*' p<0.05, 'n.s.', or '–' where no test was possible."""
    if row["significant"] == "best":
        return "best"
    p = row["p_dm"] if not pd.isna(row["p_dm"]) else row["p_wilcoxon"]
    if pd.isna(p):
        return "–"
    return "**" if p < 0.01 else "*" if p < aggregate.ALPHA else "n.s."


def marks_note(n_seeds: int) -> str:
    floor = 2 / 2 ** n_seeds  # the smallest two-sided exact Wilcoxon p with n pairs
    return ("vs best: difference from the best model, Diebold-Mariano test on the test windows (forecasts; "
            "per-window errors averaged over seeds) or else Wilcoxon signed-rank test over seeds: "
            f"`**` p < 0.01, `*` p < 0.05, `n.s.` not significant, `–` no test possible (with {n_seeds} seeds the "
            f"Wilcoxon test cannot go below p = {floor:.3g}). Skill = 1 - error / error of the dataset's naive "
            "baseline on the same split and metric.")


def _every_kth(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"every {k}{suffix} training window"


def _at_most_epochs(n: int) -> str:
    return f"at most {n} epoch{'' if n == 1 else 's'}"


# a budget key that a model's own budget may set -> its phrase in the notes (the dataset's use them too)
BUDGET_PHRASES = {
    "train_stride": _every_kth, "max_train_samples": "at most {} training windows".format,
    "max_epochs": _at_most_epochs, "patience": "patience {}".format, "lr": "lr {}".format,
}


def preset_notes(params: Params) -> dict[str, list[str]]:
    """Per dataset, what the preset leaves out of the protocol: tasks not trained and budget cuts."""
    notes: dict[str, list[str]] = {}
    preset = params.presets[params.preset]
    for dataset in aggregate.dataset_order(params):
        budget = params.budget(dataset)
        lines = []
        if budget.tasks is not None:
            protocol = dataset_registry.task_names(dataset, params.dataset(dataset))
            left = [t for t in protocol if t not in budget.tasks]
            if left:
                lines.append(f"tasks not trained: {', '.join(left)}")
        if (budget.train_stride or 1) > 1:
            lines.append(BUDGET_PHRASES["train_stride"](budget.train_stride))
        if budget.max_train_samples:
            lines.append(BUDGET_PHRASES["max_train_samples"](budget.max_train_samples))
        if budget.max_eval_samples:
            lines.append(f"at most {budget.max_eval_samples} evaluation windows per split")
        protocol = params.dataset(dataset).training
        if budget.optimizer not in (None, protocol.optimizer):
            lines.append(f"optimizer {budget.optimizer} (lr {budget.lr}) instead of the protocol's "
                         f"{protocol.optimizer} (lr {protocol.lr}), which converges more slowly")
        elif budget.lr is not None and budget.lr != protocol.lr:
            lines.append(f"{protocol.optimizer} at lr {budget.lr} instead of the protocol's {protocol.lr}, "
                         "which converges more slowly")
        patience = budget.patience if budget.patience is not None else preset.patience
        lines.append(f"{BUDGET_PHRASES['max_epochs'](budget.max_epochs or preset.max_epochs)}, "
                     f"{BUDGET_PHRASES['patience'](patience)}")
        if budget.lr_decay == "linear":
            lines.append("learning rate decayed linearly (epoch e of N at (N - e + 1) / N of it)")
        for model, cut in budget.models.items():
            cuts = [BUDGET_PHRASES[key](value)
                    for key, value in cut.model_dump(exclude_none=True).items()]
            lines.append(f"{model}: {', '.join(cuts)}")
        notes[dataset] = lines
    return notes


def header_line(params: Params, meta: dict) -> str:
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commits = ", ".join(c[:12] for c in meta.get("commits", [])) or "unknown"
    devices = ", ".join(meta.get("devices", [])) or "unknown"
    seeds = ", ".join(str(s) for s in params.seeds)
    return f"preset **{params.preset}** · seeds {seeds} · commit {commits} · device {devices} · {today}"


# --- published references -------------------------------------------------------------------------
REFERENCE_FIELDS = ("dataset", "task", "model", "split", "metric", "value", "source")
REFERENCE_OPTIONAL = ("reference_model", "step", "protocol", "difference")
# reference_rows' columns; the last two are stated below the table, once per distinct text (reference_notes)
REFERENCE_COLUMNS = ["published model", "source", "split / metric", "published", "model", "ours", "verdict",
                     "protocol", "difference"]
REFERENCE_NOTES = ("protocol", "difference")


def load_references(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: missing; restore reports/references.yaml from the repository")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("references", [])
    for i, entry in enumerate(entries):
        missing = [k for k in REFERENCE_FIELDS if k not in entry]
        if missing:
            raise DataError(f"{path}: references[{i}] lacks {missing}")
        unknown = [k for k in entry if k not in REFERENCE_FIELDS + REFERENCE_OPTIONAL]
        if unknown:
            raise DataError(f"{path}: references[{i}] has unknown fields {unknown}; "
                            f"known: {', '.join(REFERENCE_FIELDS + REFERENCE_OPTIONAL)}")
    return entries


def verdict(ours: float, published: float, metric: str, tolerance: float = 0.02) -> str:
    if math.isnan(ours):
        return "not run here"
    gap = (ours - published) / abs(published) if published else math.inf
    if not stats.lower_is_better(metric):
        gap = -gap
    if gap > tolerance:
        return f"ours falls short by {gap:.1%}"
    if gap < -tolerance:
        return f"ours better by {-gap:.1%}"
    return "on par (within 2%)"


def per_horizon_mae(jobs: list[aggregate.Job], dataset: str, task: str, split: str) -> dict[str, list[float]]:
    """model -> seed-averaged MAE at each horizon step (metrics.json `<split>_per_horizon_mae`)."""
    curves: dict[str, list[np.ndarray]] = {}
    for job in jobs:
        entry = (job.metrics.get("tasks") or {}).get(task) if job.dataset == dataset else None
        if entry and entry.get("status", "ok") == "ok" and entry.get(f"{split}_per_horizon_mae"):
            curves.setdefault(job.model, []).append(np.asarray(entry[f"{split}_per_horizon_mae"], dtype=float))
    return {m: list(np.mean(np.stack(c), axis=0)) for m, c in curves.items()}


def reference_rows(references: list[dict], summary: pd.DataFrame, jobs: list[aggregate.Job], dataset: str,
                   task: str) -> pd.DataFrame:
    """Published numbers for this task beside ours (same split and metric; `step`: one horizon step).
    `ours` is "–" where the comparable model did not run; `difference` says how our model differs."""
    ok = summary[(summary["status"] == "ok") & (summary["dataset"] == dataset) & (summary["task"] == task)]
    curves: dict[str, dict[str, list[float]]] = {}  # split -> per_horizon_mae, read once per split
    out = []
    for ref in (r for r in references if r["dataset"] == dataset and r["task"] == task):
        if "step" in ref:
            if ref["split"] not in curves:
                curves[ref["split"]] = per_horizon_mae(jobs, dataset, task, ref["split"])
            ours = curves[ref["split"]].get(ref["model"], [])
            value = ours[ref["step"] - 1] if len(ours) >= ref["step"] else math.nan
        else:
            hit = ok[(ok["model"] == ref["model"]) & (ok["split"] == ref["split"]) & (ok["metric"] == ref["metric"])]
            value = float(hit["mean"].iloc[0]) if not hit.empty else math.nan
        where = f"{ref['split']} {ref['metric']}" + (f" at t+{ref['step']}" if "step" in ref else "")
        out.append({"published model": ref.get("reference_model", ref["model"]), "source": ref["source"],
                    "split / metric": where, "published": fmt(ref["value"]), "model": ref["model"],
                    "ours": fmt(value), "verdict": verdict(value, float(ref["value"]), ref["metric"]),
                    "protocol": ref.get("protocol", ""), "difference": ref.get("difference", "")})
    return pd.DataFrame(out, columns=REFERENCE_COLUMNS)


def ran_and_not(refs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """reference_rows split into those whose model ran here (a table) and the others (one sentence)."""
    ran = refs["ours"] != fmt(math.nan)
    return refs[ran], refs[~ran]


def reference_notes(ran: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column, label, text) per distinct protocol or difference text of the tabled reference rows; a
    difference names the models it compares, e.g. "How transformer differs from Informer, Autoformer"."""
    notes = [("protocol", "Published protocol", text) for text in dict.fromkeys(t for t in ran["protocol"] if t)]
    for text in dict.fromkeys(t for t in ran["difference"] if t):
        rows = ran[ran["difference"] == text]
        ours = ", ".join(dict.fromkeys(rows["model"]))
        theirs = ", ".join(dict.fromkeys(rows["published model"]))
        notes.append(("difference", f"How {ours} differs from {theirs}", text))
    return notes


def references_markdown(refs: pd.DataFrame) -> list[str]:
    """The leaderboard's lines for reference_rows: a table of those that ran here, then the others."""
    if refs.empty:
        return []
    ran, other = ran_and_not(refs)
    lines = ["Published references (reports/references.yaml):", ""]
    if not ran.empty:
        shown = [c for c in REFERENCE_COLUMNS if c not in REFERENCE_NOTES]
        lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in shown) + " |" for _, r in ran.iterrows()]
        lines.append("")
        lines += [f"- {label}: {text}" for _, label, text in reference_notes(ran)]
    if not other.empty:
        lines.append(f"- {also_published(other)}")
    return lines + [""]


def also_published(other: pd.DataFrame) -> str:
    """One sentence for reference rows whose model did not run here, each source named once."""
    by_source: dict[str, list[str]] = {}
    for _, r in other.iterrows():
        by_source.setdefault(r["source"], []).append(f"{r['published model']} {r['split / metric']} {r['published']}")
    return "Also published (no comparable run here): " + "; ".join(
        f"{', '.join(items)} ({source})" for source, items in by_source.items())


# --- leaderboard.md --------------------------------------------------------------------------------
def leaderboard_rows(summary: pd.DataFrame, dataset: str, task: str) -> pd.DataFrame:
    """The test rows of a task's primary metric, best first."""
    rows = summary[(summary["status"] == "ok") & (summary["dataset"] == dataset) & (summary["task"] == task)
                   & (summary["split"] == "test") & (summary["metric"] == aggregate.primary_metric(dataset))]
    return rows.sort_values(["rank", "model"], kind="stable")


def leaderboard_markdown(params: Params, summary: pd.DataFrame, jobs: list[aggregate.Job],
                         references: list[dict]) -> str:
    lines = ["# seqbench leaderboard", "", header_line(params, aggregate.run_meta(jobs)), "",
             marks_note(len(params.seeds)), ""]
    notes = preset_notes(params)
    status = summary[summary["status"] != "ok"]
    for dataset in aggregate.dataset_order(params):
        lines += [f"## {dataset}", ""]
        unavailable = status[(status["dataset"] == dataset) & (status["status"] == "unavailable")]
        if not unavailable.empty:
            lines += [f"**Unavailable**: {unavailable.iloc[0]['reason']}", ""]
            continue
        metric = aggregate.primary_metric(dataset)
        lines += [f"Primary metric: test {metric} (baseline for skill: "
                  f"{aggregate.baseline_model(dataset)}). Preset {params.preset}: {'; '.join(notes[dataset])}.", ""]
        ok = summary[(summary["status"] == "ok") & (summary["dataset"] == dataset)]
        for task in aggregate.task_order(params, dataset, ok["task"]):
            rows = leaderboard_rows(summary, dataset, task)
            lines += [f"### {task}", "", f"| rank | model | test {metric} (mean ± std) | 95% CI | skill | vs best | n |",
                      "|---:|---|---:|---:|---:|:---:|---:|"]
            for _, row in rows.iterrows():
                lines.append(f"| {row['rank']} | {row['model']} | {fmt(row['mean'])} ± {fmt(row['std'])} | "
                             f"[{fmt(row['ci95_low'])}, {fmt(row['ci95_high'])}] | {fmt(row['skill'])} | "
                             f"{mark(row)} | {row['n']} |")
            lines.append("")
            lines += references_markdown(reference_rows(references, summary, jobs, dataset, task))
        for _, row in status[status["dataset"] == dataset].iterrows():
            who = f"{row['model']} on " if row["model"] else ""
            lines.append(f"- {row['status'].replace('_', ' ')}: {who}{row['task']} ({row['reason']})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- comparison.html -------------------------------------------------------------------------------
def notebook_parameters(params: Params, layout: Layout) -> dict:
    return {"project_root": str(layout.root), "preset": params.preset, "python_prefix": sys.prefix}


def html_from_notebook(path: Path) -> str:
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"seqbench.html.j2": HTML_TEMPLATE})],
                            template_file="seqbench.html.j2")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["title"] = "seqbench comparison"
    body, _ = exporter.from_notebook_node(notebook)
    return body


def run(params: Params, layout: Layout) -> None:
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel

    template = layout.reports / TEMPLATE
    if not template.is_file():
        raise DataError(f"{template}: report template missing; restore it from the repository (git checkout reports/{TEMPLATE})")
    for name in ("summary", "results", "costs"):
        if not (layout.reports / f"{name}.csv").is_file():
            raise DataError(f"{layout.reports / (name + '.csv')}: missing; run `python -m seqbench aggregate` first")
    with tempfile.TemporaryDirectory(dir=layout.reports, prefix=".report-") as tmp:
        executed = Path(tmp) / "comparison.executed.ipynb"
        try:
            papermill.execute_notebook(str(template), str(executed), parameters=notebook_parameters(params, layout),
                                       kernel_name=KERNEL, cwd=str(layout.root), progress_bar=False)
        except NoSuchKernel:
            raise SeqbenchError(f"no Jupyter kernel {KERNEL!r} for {sys.executable}: run "
                                f"`{sys.executable} -m ipykernel install --sys-prefix` (ipykernel is a dependency)") from None
        except papermill.PapermillExecutionError as error:
            failed = layout.reports / "comparison.failed.ipynb"
            if executed.is_file():
                os.replace(executed, failed)
            raise SeqbenchError(f"{template}: cell {error.exec_count} failed with {error.ename}: {error.evalue} "
                                f"(the partly executed notebook is {failed})") from None
        html = Path(tmp) / "comparison.html"
        html.write_text(html_from_notebook(executed), encoding="utf-8")
        os.replace(executed, layout.reports / "comparison.executed.ipynb")
        os.replace(html, layout.reports / "comparison.html")
