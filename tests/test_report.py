"""The report stage: the REAL template executed with papermill on constructed results (one job failed, one
missing), checked in its HTML and in RESULTS.md; plus the pieces it is built from (rounding, marks,
references and their protocols, the HTML exporter) and the import layering of the report modules."""

from __future__ import annotations

import ast
import base64
import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from report_fixtures import UNAVAILABLE, drop_job, fail_job, make_project
from seqbench import aggregate, figures, report, results, results_page
from seqbench import formatting as F
from seqbench import leaderboard as L
from seqbench import references as R
from seqbench.errors import DataError
from seqbench.paths import Layout

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["jena", "etth1", "cta", "imdb", "shakespeare"]  # the registry's order


def copy_report_files(root: Path, timings: bool = False) -> None:
    (root / "reports").mkdir(exist_ok=True)
    for name in ("comparison.ipynb", "references.yaml") + (("run_times.json", "bench") if timings else ()):
        src = ROOT / "reports" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / "reports" / name)


class Tables(HTMLParser):
    """<table class="leaderboard" data-...> body rows as {field: (text, data attributes)} per regime."""

    def __init__(self):
        super().__init__()
        self.tables, self._inside, self._cell, self._text = [], False, None, ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._inside = attrs.get("class") == "leaderboard"
            if self._inside:
                self.tables.append({"attrs": attrs, "rows": []})
        elif self._inside and tag == "tr" and self.tables[-1].get("head_done"):
            self.tables[-1]["rows"].append({})
        elif self._inside and tag == "tbody":
            self.tables[-1]["head_done"] = True
        elif self._inside and tag == "td" and "data-field" in attrs:
            self._cell, self._text = attrs, ""
        elif self._inside and tag == "td" and "data-model" in attrs:
            self.tables[-1]["rows"][-1]["model"] = attrs["data-model"]

    def handle_data(self, data):
        if self._cell is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._inside = False
        elif tag == "td" and self._cell is not None:
            key = (self._cell["data-field"], self._cell.get("data-regime", ""))
            self.tables[-1]["rows"][-1][key] = (self._text, self._cell)
            self._cell = None


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    params = make_project(root)
    fail_job(root, "cta", "rnn", 1)
    drop_job(root, "imdb", "bow_unigram", 2)
    aggregate.run(params, Layout(root), log_mlflow=False)
    copy_report_files(root, timings=True)
    report.run(params, Layout(root))
    return root, params


@pytest.mark.slow
def test_overview_first_then_every_dataset_in_fixed_order(rendered):
    page = (rendered[0] / "reports/comparison.html").read_text()
    positions = [page.index(f'<h2 id="dataset-{name}">') for name in DATASETS]
    assert positions == sorted(positions)
    overview = page.index('<h2 id="overview">')
    assert overview < page.index('<h2 id="did-not-finish">') < positions[0]
    grid = page.index('<table class="overview" data-group="forecast">')
    assert grid < page.index('alt="critical-difference diagram of the forecast') < positions[0]
    assert f"<b>Unavailable</b>: {UNAVAILABLE}" in page
    assert "preset standard · seeds 0, 1, 2 · regimes protocol · commit 0123456789ab · device cpu" in page
    assert "n.s." not in page


@pytest.mark.slow
def test_overview_grid_marks_best_and_tied_with_cost(rendered):
    root, _ = rendered
    page = (root / "reports/comparison.html").read_text()
    summary = results.read_table(Layout(root), "summary")
    row = summary.query("dataset == 'cta' and task == 'next_day' and headline and selection == '' "
                        "and verdict == 'best'").iloc[0]
    cell = re.search(rf'<td data-model="{row["model"]}" data-value="({re.escape(repr(float(row["mean"])))})" '
                     r'data-verdict="best"><b>([^<]+)</b><br/?><small class="cost">([^<]+)</small></td>', page)
    assert cell and cell.group(2) == F.mean_only(row["mean"], row["std"])
    assert re.fullmatch(r"[\d.]+ (s|min)", cell.group(3))


@pytest.mark.slow
def test_did_not_finish_table_lists_the_failed_and_the_missing_job(rendered):
    page = (rendered[0] / "reports/comparison.html").read_text()
    table = page[page.index('<table class="did-not-finish">'):]
    table = table[:table.index("</table>")]
    assert "<td>cta</td><td>rnn</td><td>protocol</td><td>1</td><td>failed</td>" in table
    assert "loss became nan at epoch 3 (lr too high?) [TrainingError]" in table
    assert "<td>imdb</td><td>bow_unigram</td><td>protocol</td><td>2</td><td>missing</td>" in table
    assert "python -m seqbench train --dataset imdb --model bow_unigram --seed 2 --regime protocol" in table


def check_leaderboards(root: Path) -> int:
    """Every leaderboard table of comparison.html equals summary.csv; returns the number of tables."""
    summary = results.read_table(Layout(root), "summary")
    parser = Tables()
    parser.feed((root / "reports/comparison.html").read_text())
    checked = 0
    for table in parser.tables:
        dataset, task, selection = (table["attrs"][f"data-{k}"] for k in ("dataset", "task", "selection"))
        expected = summary[(summary["dataset"] == dataset) & (summary["task"] == task) & (summary["selection"] == selection)
                           & summary["headline"].astype(bool) & (summary["status"] == "ok")]
        for row in table["rows"]:
            for regime in ("protocol", "tuned"):
                if ("mean", regime) not in row:
                    continue
                want = expected[(expected["model"] == row["model"]) & (expected["regime"] == regime)].iloc[0]
                text, attrs = row[("mean", regime)]
                assert float(attrs["data-value"]) == want["mean"] and text == F.mean_std(want["mean"], want["std"])
                assert row[("mark", regime)][1]["data-verdict"] == want["verdict"]
                checked += 1
    assert checked == len(summary.query("status == 'ok' and headline"))
    return len(parser.tables)


@pytest.mark.slow
def test_leaderboard_values_equal_summary_csv(rendered):
    assert check_leaderboards(rendered[0]) == 7  # every trained task of every available dataset


@pytest.mark.slow
def test_figures_embedded_with_layout_and_code_hidden(rendered):
    page = (rendered[0] / "reports/comparison.html").read_text()
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert "No description has been provided" not in page
    assert len(images) >= 20 and base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r'data-axes="[\d.,;]+"', page)) == len(images)
    assert "figures.load_report" not in page and 'class="jp-InputArea' not in page  # code hidden
    assert not re.search(r"<script[^>]*\ssrc=", page)  # nothing fetched from a CDN: opens offline
    assert "to be or not to be, &lt;char_lstm&gt; that is the question &amp; more" in page
    assert '<table class="pareto">' in page


@pytest.mark.slow
def test_executed_notebook_has_parameters_and_no_errors(rendered):
    notebook = nbformat.read(rendered[0] / "reports/comparison.executed.ipynb", as_version=4)
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and f'project_root = "{rendered[0]}"' in injected[0].source
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not list((rendered[0] / "reports").glob(".report-*"))


@pytest.mark.slow
def test_results_md_regenerates_identically_and_every_number_is_traced(rendered):
    root, params = rendered
    layout = Layout(root)
    text = (root / "reports/RESULTS.md").read_text()
    assert results_page.build(params, layout, results.load_jobs(params, layout)) == text
    summary = results.read_table(layout, "summary").query("status == 'ok' and headline")
    table = text[text.index("| task | headline |"):]
    table = table[:table.index("\n\n")]
    checked = 0
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        dataset, task = cells[0].split(" (")[0].split(" · ")
        selection = "lookback searched" if "look-back searched" in cells[0] else ""
        assert cells[1] == L.headline_label(dataset)
        for item in ", ".join(c for c in cells[2:] if c != "–").split(", "):
            name, value = item.rsplit(" ", 1)
            model, regime = (name[:-1].split(" (") if name.endswith(")") else (name, "protocol"))
            row = summary[(summary["dataset"] == dataset) & (summary["task"] == task) & (summary["model"] == model)
                          & (summary["regime"] == regime) & (summary["selection"] == selection)].iloc[0]
            assert value == F.mean_only(row["mean"], row["std"])
            checked += 1
    assert checked == len(summary)
    times = json.loads((root / "reports/run_times.json").read_text())
    assert f"**{times['wall_seconds'] / 60:.1f} min** for {times['jobs']} jobs" in text
    bench = json.loads((root / "reports/bench/training.json").read_text())
    first = bench["results"][0]
    assert (f"| {first['label']} | {first['params_count']} | {first['interleaved']['seconds_per_epoch']:.1f} | "
            f"{first['seconds_per_epoch']:.1f} |") in text
    assert "| rnn | protocol | 1 | failed |" in text
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", text)  # no render time: regenerating changes nothing


# --- fast checks of the pieces ----------------------------------------------------------------------
def test_rounding_follows_the_seed_spread():
    assert F.mean_std(0.9021, 0.000932) == "0.90210 ± 0.00093"
    assert F.mean_std(0.4317, 6.799e-17) == "0.4317 ± 0"
    assert F.mean_std(74148.0, 47123.0) == "74,000 ± 47,000"
    assert F.mean_std(0.4047, 0.004162) == "0.4047 ± 0.0042"
    assert F.interval(0.3943, 0.415, 0.4047, 0.004162) == "[0.3943, 0.4150]"
    assert F.mean_only(27439.4, 812.0) == "27,440" and F.fmt(27703.4) == "27,703" and F.fmt(math.nan) == "–"


def test_mark_never_says_not_significant():
    row = {"verdict": "tied", "test": "dm", "p_holm": 0.21}
    assert L.mark(row) == "tied for first (DM, Holm p 0.210)"
    assert L.mark({**row, "verdict": "worse", "test": "wilcoxon", "p_holm": 0.0004}) == "worse (Wilcoxon, Holm p < 0.001)"
    assert L.mark({**row, "verdict": "untested"}) == "–" and L.mark({**row, "verdict": "best"}) == "best"
    assert "with 3 seeds its floor is p = 0.25" in L.statistics_note(3)


def _summary(rows):
    base = {"status": "ok", "selection": "", "split": "test", "metric": "mse", "std": 0.01}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_a_reference_with_another_look_back_is_never_set_beside_ours():
    summary = _summary([{"dataset": "etth1", "task": "h96", "model": "dlinear", "regime": "protocol", "lookback": 96,
                         "horizon": 96, "mean": 0.40}])
    refs = [{"dataset": "etth1", "task": task, "model": "dlinear", "reference_model": "DLinear", "split": "test",
             "metric": "mse", "value": value, "source": "a table", "lookback": lookback, "horizon": 96,
             "normalization": "global", "fitting": "Adam"} for task, lookback, value in
            (("h96", 96, 0.386), ("l336_h96", 336, 0.375))]
    rows = R.reference_rows(refs, summary, {}, "etth1", ["h96", "l336_h96"]).set_index("look-back")
    assert rows.loc["96", "compared"] and rows.loc["96", "ours"] == "0.4"
    assert rows.loc["96", "verdict"] == "ours falls short by 3.6%"
    assert not rows.loc["336", "compared"] and rows.loc["336", "ours"] == "–"
    assert rows.loc["336", "differences"] == "task l336_h96 (look-back 336) was not trained in this run"
    mislabelled = [{**refs[0], "lookback": 336}]  # names our h96 but states look-back 336: still kept apart
    row = R.reference_rows(mislabelled, summary, {}, "etth1", ["h96"]).iloc[0]
    assert not row["compared"] and row["ours"] == "–" and row["differences"] == "look-back 336 (ours 96)"
    instance = [{**refs[0], "normalization": "instance", "reference_model": "PatchTST"}]
    apart = R.reference_rows(instance, summary, {}, "etth1", ["h96"]).iloc[0]
    assert not apart["compared"] and apart["differences"] == ("normalization per-window (RevIN-style) "
                                                              "(ours train statistics only)")


def test_protocol_differences_name_each_difference():
    ref = {"lookback": 336, "horizon": 96, "split": "val", "normalization": "instance", "fitting": "expanding window",
           "fitting_ours": "56-day window", "evaluated_on": "March-May 2019"}
    ours = {"lookback": 96, "horizon": 96, "split": "val", "normalization": "global"}
    assert R.protocol_differences(ref, ours) == [
        "look-back 336 (ours 96)", "normalization per-window (RevIN-style) (ours train statistics only)",
        "fitting: expanding window (ours: 56-day window)", "evaluated on March-May 2019 (ours: every window of the split)"]
    same = {"lookback": 96, "horizon": 96, "split": "test", "normalization": "global", "fitting": "Adam"}
    assert R.protocol_differences(same, {**ours, "split": "test"}) == []


def test_references_yaml_states_every_protocol_and_names_real_tasks():
    from seqbench.models import REGISTRY
    from seqbench.params import load_params

    params = load_params(ROOT / "params.yaml")
    meta = {d: results.task_meta(params, d) for d in ("jena", "etth1", "etth2", "cta", "imdb", "shakespeare")}
    entries = R.load_references(ROOT / "reports/references.yaml", meta)  # look-back and horizon match the task
    assert len(entries) > 100
    for entry in entries:
        assert entry["task"] in meta[entry["dataset"]] and entry["model"] in REGISTRY and entry["source"]
        assert entry["split"] in ("val", "test") and entry["value"] > 0 and entry["fitting"]
    lookbacks = {(e["reference_model"], e["lookback"]) for e in entries if e["dataset"] == "etth1"}
    assert {("DLinear", 96), ("DLinear", 336), ("PatchTST", 96), ("iTransformer", 96), ("TimesNet", 96),
            ("SegRNN", 96), ("Linear", 336), ("PatchTST/42", 336)} <= lookbacks
    sarima = next(e for e in entries if e["model"] == "sarima")
    assert "expanding" in sarima["fitting"] and "56 days" in sarima["fitting_ours"]


def test_references_errors_name_the_entry_and_the_fix(tmp_path):
    path = tmp_path / "references.yaml"
    entry = {"dataset": "etth1", "task": "h96", "model": "dlinear", "reference_model": "DLinear", "split": "test",
             "metric": "mse", "value": 0.4, "source": "a table", "lookback": 336, "horizon": 96,
             "normalization": "global", "fitting": "Adam"}
    meta = {"etth1": {"h96": results.TaskMeta(96, 96, "h96")}}
    for broken, message in (({k: v for k, v in entry.items() if k != "fitting"}, r"references\[0\] lacks \['fitting'\]"),
                            ({**entry, "diference": "x"}, r"unknown fields \['diference'\]"),
                            ({**entry, "normalization": "revin"}, r"normalization 'revin'; use one of global, instance"),
                            (entry, r"look-back 336 and horizon 96, but task 'h96' has look-back 96")):
        path.write_text(yaml.safe_dump({"references": [broken]}))
        with pytest.raises(DataError, match=message):
            R.load_references(path, meta)


def test_html_export_hides_code_and_loads_nothing_remote(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("secret_source_line = 1", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": "<p id='shown'>visible output</p>"})])])
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook, path)
    page = report.html_from_notebook(path)
    assert '<p id="shown">visible output</p>' in page and "secret_source_line" not in page
    assert "cdnjs" not in page and "mathjax" not in page.lower() and not re.search(r"<script[^>]*\ssrc=", page)


def test_report_needs_aggregate_first(tmp_path):
    params = make_project(tmp_path)
    copy_report_files(tmp_path)
    with pytest.raises(DataError, match=r"reports/summary.csv: missing; run `python -m seqbench aggregate` first"):
        report.run(params, Layout(tmp_path))


def test_kernel_guard():
    figures.check_kernel(None)
    with pytest.raises(RuntimeError, match="not the pipeline's interpreter"):
        figures.check_kernel("/nonexistent/prefix")


REPORT_MODULES = ("stats", "formatting", "results", "losses", "summary", "ranking", "references", "leaderboard",
                  "aggregate", "results_page", "report", "plots", "charts", "figures")


def test_report_modules_import_no_cycle_and_stages_import_no_notebook_code():
    graph = {}
    for name in REPORT_MODULES:
        tree = ast.parse((ROOT / "src/seqbench" / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "seqbench":
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seqbench."):
                found.add(node.module.split(".")[1])
        graph[name] = found & set(REPORT_MODULES)

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n))) for n in graph[start])

    assert [m for m in REPORT_MODULES if reaches(m, m)] == []
    for stage in ("aggregate", "report", "results_page", "leaderboard"):  # no matplotlib or IPython for the stages
        assert not {"plots", "charts", "figures"} & ({stage} | {m for m in REPORT_MODULES if reaches(stage, m)})


@pytest.mark.slow
def test_failing_notebook_cell_is_reported(tmp_path):
    from seqbench.errors import SeqbenchError

    params = make_project(tmp_path)
    aggregate.run(params, Layout(tmp_path), log_mlflow=False)
    copy_report_files(tmp_path)
    (tmp_path / "reports/references.yaml").unlink()
    with pytest.raises(SeqbenchError, match=r"comparison.ipynb: cell \d+ failed with DataError: .*references.yaml: "
                                            r"missing.*comparison.failed.ipynb"):
        report.run(params, Layout(tmp_path))
    assert (tmp_path / "reports/comparison.failed.ipynb").is_file()
    assert not (tmp_path / "reports/comparison.html").exists() and not (tmp_path / "reports/RESULTS.md").exists()
