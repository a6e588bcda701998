"""What reports/comparison.ipynb shows: the report's data (loaded once) and one function per section.

The notebook only calls these. The page opens with the overview (a grid of every headline table,
architectures across, and the critical-difference diagrams), then the jobs that did not finish, then
one section per dataset: its boards (leaderboard.py's table model), the published references of the
same protocol, and the figures (charts.py). Figures are inline base64 PNG images with alternative
text and, as data attributes, the pixel boxes of their axes and legends and each legend entry's colour.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from IPython.display import HTML, display

from seqbench import charts, leaderboard as L, plots, ranking, references, results
from seqbench import formatting as F
from seqbench import summary as S
from seqbench.errors import DataError
from seqbench.params import Params, load_params
from seqbench.paths import Layout


@dataclass
class Report:
    layout: Layout
    params: Params
    summary: pd.DataFrame
    costs: pd.DataFrame
    dnf: pd.DataFrame
    jobs: list[results.Job]
    references: list[dict]
    handling: dict
    datasets: list[str]

    def ok_rows(self, dataset: str) -> pd.DataFrame:
        s = self.summary
        return s[(s["status"] == "ok") & (s["dataset"] == dataset)]

    def status_rows(self, dataset: str) -> pd.DataFrame:
        s = self.summary
        return s[(s["status"] != "ok") & (s["dataset"] == dataset)]


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
    meta = {d: results.task_meta(params, d) for d in results.dataset_order(params)}
    jobs = results.load_jobs(params, layout)
    dnf_path = layout.reports / "did_not_finish.csv"
    dnf = results.read_table(layout, "did_not_finish") if dnf_path.is_file() else results.did_not_finish(jobs)
    return Report(layout, params, results.read_table(layout, "summary"), results.read_table(layout, "costs"), dnf,
                  jobs, references.load_references(layout.reports / "references.yaml", meta),
                  results.input_handling(params, jobs), results.dataset_order(params))


# --- html helpers ----------------------------------------------------------------------------------
def cell(text, tag: str = "td", raw: bool = False, **attrs) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{html.escape(str(v))}"' for k, v in attrs.items())
    body = text if raw else html.escape(str(text))
    return f"<{tag}{extra}>{body}</{tag}>"


def table(headers: list[str], rows: list[str], cls: str = "", **attrs) -> str:
    extra = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    head = "".join(cell(h, "th") for h in headers)
    return f'<table class="{cls}"{extra}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def show_figure(fig, alt: str) -> None:
    """The figure as an inline PNG with alternative text and its layout as data attributes (tests read them)."""
    r = plots.render(fig)
    boxes = lambda bs: ";".join(",".join(str(v) for v in b) for b in bs)
    data = base64.b64encode(r.png).decode("ascii")
    display(HTML(f'<img class="figure" alt="{html.escape(alt)}" width="{r.size[0]}" height="{r.size[1]}" '
                 f'data-axes="{boxes(r.axes)}" data-legends="{boxes(r.legends)}" '
                 f"data-colors='{html.escape(json.dumps(r.colors))}' src=\"data:image/png;base64,{data}\"/>"))


# --- header, overview, did not finish ---------------------------------------------------------------
STYLE = """<style>
table.overview { font-size: 12px; white-space: nowrap; }
table.overview small.cost { color: #666; }
table.leaderboard, table.references, table.pareto, table.did-not-finish { font-size: 13px; }
table.leaderboard td { white-space: nowrap; }
img.figure { max-width: none; }
</style>"""


def show_header(rep: Report) -> None:
    line = html.escape(L.header_line(rep.params, results.run_meta(rep.jobs))).replace("**", "")
    parts = [STYLE, f"<h1>seqbench comparison</h1><p class='run-header'>{line}</p>",
             "<p>Contents: <a href='#overview'>overview</a> · <a href='#did-not-finish'>did not finish</a>"]
    parts += [f" · <a href='#dataset-{d}'>{d}</a>" for d in rep.datasets]
    display(HTML("".join(parts) + "</p>"))


def grid_html(rep: Report, name: str, families: tuple[str, ...]) -> str:
    models, lines = L.overview_rows(rep.summary, rep.params, families)
    if not lines:
        return ""
    costs = rep.costs.groupby(["dataset", "task", "model", "regime"])["train_seconds"].mean()
    rows = []
    for dataset, task, regime, cells in lines:
        label = f"{dataset} · {task}" + ("" if regime == "protocol" else f" ({regime})")
        out = [cell(label, "th"), cell(L.headline_label(dataset))]
        for model in models:
            r = cells.get(model)
            if r is None:
                out.append(cell("", model=model))
                continue
            value = html.escape(F.mean_only(r["mean"], r["std"]))
            value = f"<b>{value}</b>" if r["verdict"] == "best" else value + (" ≈" if r["verdict"] == "tied" else "")
            seconds = costs.get((dataset, task, model, regime))
            out.append(cell(f"{value}<br><small class='cost'>{html.escape(F.seconds(seconds))}</small>", raw=True,
                            model=model, verdict=r["verdict"], value=repr(float(r["mean"]))))
        rows.append("<tr>" + "".join(out) + "</tr>")
    return (f"<h3>{html.escape(name.capitalize())}</h3>"
            + table(["task", "headline", *models], rows, cls="overview", group=name))


def show_overview(rep: Report) -> None:
    display(HTML("<h2 id='overview'>Overview</h2><p>Every headline table (the split is named in each): "
                 "architectures across, ordered by their average rank; <b>bold</b> the best, ≈ tied for first "
                 "(not significantly worse than the best after Holm), under each value the mean training time. "
                 "The figures below show the protocol regime.</p>"))
    for name, families in ranking.GROUPS.items():
        grid = grid_html(rep, name, families)
        if grid:
            display(HTML(grid))
    for result in ranking.all_groups(rep.summary):
        text = html.escape(" ".join(L.across_markdown(result)[2:]).replace("**", ""))
        if result.reason:
            display(HTML(f"<p class='cd-none'>Average ranks across {result.name} tasks: "
                         f"{html.escape(result.reason)}.</p>"))
            continue
        show_figure(plots.cd_diagram(result.entries, result.avg_ranks, result.cliques, result.cd,
                                     f"{result.name}: average rank over {len(result.blocks)} tasks "
                                     f"(Friedman p = {F.pvalue(result.p_value)})"),
                    f"critical-difference diagram of the {result.name} tasks: {text[:400]}")
        if result.excluded:
            left = "; ".join(result.excluded_by_reason())
            display(HTML(f"<p class='cd-excluded'>Left out of the ranks: {html.escape(left)}</p>"))
    display(HTML(f"<p class='statistics'>{html.escape(L.statistics_note(len(rep.params.seeds)))}</p>"))


def show_did_not_finish(rep: Report) -> None:
    display(HTML("<h2 id='did-not-finish'>Did not finish</h2>"))
    if rep.dnf.empty:
        display(HTML("<p>Every job finished.</p>"))
        return
    lines = L.did_not_finish_markdown(rep.dnf)
    headers = [h.strip() for h in lines[2].strip("|").split("|")]
    rows = ["<tr>" + "".join(cell(v.strip().strip("`")) for v in row.strip("|").split(" | ")) + "</tr>"
            for row in lines[4:] if row.startswith("|")]
    display(HTML(table(headers, rows, cls="did-not-finish")))


# --- per dataset -----------------------------------------------------------------------------------
def board_html(b: L.Board, handling: dict) -> str:
    headers = ["model"] + [f"{r}: {h}" for r in b.regimes for h in ("mean ± std", "95% CI", "vs best")]
    headers += ["skill", "n", "input"] + (["look-back"] if b.selection == S.SEARCHED else [])
    rows = []
    for model, cells in b.rows:
        out = [cell(model, model=model)]
        for regime in b.regimes:
            r = cells.get(regime)
            if r is None:
                out += [cell("–"), cell(""), cell("not run")]
                continue
            text = html.escape(F.mean_std(r["mean"], r["std"]))
            out += [cell(f"<b>{text}</b>" if r["verdict"] in ("best", "tied") else text, raw=True, field="mean",
                         regime=regime, value=repr(float(r["mean"])), std=repr(float(r["std"]))),
                    cell(F.interval(r["ci95_low"], r["ci95_high"], r["mean"], r["std"]), field="ci", regime=regime,
                         low=repr(float(r["ci95_low"])), high=repr(float(r["ci95_high"]))),
                    cell(L.mark(r), field="mark", regime=regime, verdict=r["verdict"])]
        first = next(iter(cells.values()))
        out += [cell(F.fmt(first["skill"]), field="skill"),
                cell("/".join(str(cells[g]["n"]) for g in b.regimes if g in cells), field="n"),
                cell(L.input_text(handling, b.dataset, model, [g for g in b.regimes if g in cells]), field="input")]
        if b.selection == S.SEARCHED:
            out.append(cell("/".join(str(cells[g]["lookback"]) for g in b.regimes if g in cells), field="lookback"))
        rows.append("<tr>" + "".join(out) + "</tr>")
    notes = "".join(f"<li>no test: {html.escape(reason)}</li>" for reason in b.reasons)
    tuned = "; ".join(L.tuned_settings(b, handling))
    return (f"<h4>{html.escape(b.title)}</h4>"
            + table(headers, rows, cls="leaderboard", dataset=b.dataset, task=b.task, selection=b.selection)
            + (f"<ul class='no-test'>{notes}</ul>" if notes else "")
            + (f"<p class='tuned-settings'>Tuned settings (where they differ from the protocol's): "
               f"{html.escape(tuned)}</p>" if tuned else ""))


def references_html(refs: pd.DataFrame) -> str:
    compared, other = refs[refs["compared"]], refs[~refs["compared"]]
    parts = ["<h4>Published references</h4>"]
    if not compared.empty:
        shown = ["published model", "source", "look-back", "split / metric", "published", "model", "ours", "verdict"]
        rows = ["<tr>" + "".join(cell(r[c]) for c in shown) + "</tr>" for _, r in compared.iterrows()]
        parts.append(table(shown, rows, cls="references"))
        parts += [f"<p class='{column}'>{html.escape(label)}: {html.escape(text)}</p>"
                  for column, label, text in references.reference_notes(compared)]
    if not other.empty:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in references.listed_apart(other))
        parts.append("<p>Listed apart (a different protocol, or no comparable run):</p>"
                     f"<ul class='references-apart'>{items}</ul>")
    return "".join(parts)


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
    notes = L.preset_notes(rep.params)[dataset]
    display(HTML(f"<p class='preset'>Headline: {html.escape(L.headline_label(dataset))}. Preset "
                 f"{html.escape(rep.params.preset)}: {html.escape('; '.join(notes))}.</p>"))
    meta = results.task_meta(rep.params, dataset)
    for group, boards in L.boards_for(rep.summary, rep.params, dataset):
        display(HTML(f"<h3 id='dataset-{dataset}-{group}'>{dataset} · {group}</h3>"))
        for b in boards:
            display(HTML(board_html(b, rep.handling)))
        tasks = [t for t, m in meta.items() if m.group == group]
        refs = references.reference_rows(rep.references, rep.summary, rep.handling, dataset, tasks,
                                          results.per_horizon_value(rep.jobs))
        if not refs.empty:
            display(HTML(references_html(refs)))
        charts.task_figures(rep, dataset, boards[0].task, show_figure)
    if not status.empty:
        items = "".join(f"<li>{html.escape(r.status.replace('_', ' '))}: "
                        f"{html.escape(r.model + ' on ' if r.model else '')}{html.escape(r.task)} "
                        f"({html.escape(r.reason)})</li>" for r in status.itertuples())
        display(HTML(f"<p>Not in the tables above:</p><ul class='status'>{items}</ul>"))
