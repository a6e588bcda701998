"""The report stage: the REAL template executed with papermill on constructed results, checked in its HTML,
plus the renderings it is built from (number format, marks, verdicts, references, the HTML exporter)."""

from __future__ import annotations

import base64
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml

from seqbench import aggregate, figures, report
from seqbench.errors import DataError
from seqbench.paths import Layout
from test_aggregate import UNAVAILABLE, make_project

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["jena", "etth1", "cta", "imdb", "shakespeare"]  # the registry's order


def copy_report_files(root: Path) -> None:
    (root / "reports").mkdir(exist_ok=True)
    for name in ("comparison.ipynb", "references.yaml"):
        shutil.copy(ROOT / "reports" / name, root / "reports" / name)


class Tables(HTMLParser):
    """<table class="leaderboard" data-...> body rows as {field: (text, data attributes)}."""

    def __init__(self):
        super().__init__()
        self.tables, self._inside, self._cell, self._text = [], False, None, ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._inside = attrs.get("class") == "leaderboard"
            if self._inside:
                self.tables.append({"attrs": attrs, "rows": []})
        elif self._inside and tag == "td" and "data-field" in attrs:
            if attrs["data-field"] == "rank":
                self.tables[-1]["rows"].append({})
            self._cell, self._text = attrs, ""

    def handle_data(self, data):
        if self._cell is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._inside = False
        elif tag == "td" and self._cell is not None:
            self.tables[-1]["rows"][-1][self._cell["data-field"]] = (self._text, self._cell)
            self._cell = None


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    params = make_project(root)
    aggregate.run(params, Layout(root), log_mlflow=False)
    copy_report_files(root)
    report.run(params, Layout(root))
    return root


@pytest.mark.slow
def test_every_dataset_has_a_section_in_fixed_order(rendered):
    page = (rendered / "reports/comparison.html").read_text()
    positions = [page.index(f'<h2 id="dataset-{name}">') for name in DATASETS]
    assert positions == sorted(positions)
    assert f"<b>Unavailable</b>: {UNAVAILABLE}" in page
    assert "preset standard · seeds 0, 1, 2 · commit 0123456789ab · device cpu" in page
    assert "tasks not trained: h192, h720, l336_h96" in page  # what the preset left out
    for task in ("h96", "h336", "next_day", "multivariate", "14_day", "sentiment", "next_char"):
        assert re.search(rf'<h3 id="dataset-[a-z0-9]+-{task}">', page)


def check_leaderboards(root: Path) -> int:
    """Every leaderboard table of comparison.html equals summary.csv; returns the number of tables."""
    summary = aggregate.read_table(Layout(root), "summary")
    parser = Tables()
    parser.feed((root / "reports/comparison.html").read_text())
    checked = 0
    for table in parser.tables:
        dataset, task, metric = (table["attrs"][f"data-{k}"] for k in ("dataset", "task", "metric"))
        assert metric == aggregate.primary_metric(dataset)
        expected = summary[(summary["dataset"] == dataset) & (summary["task"] == task) & (summary["split"] == "test")
                           & (summary["metric"] == metric) & (summary["status"] == "ok")].set_index("model")
        best_first = expected.reset_index().sort_values(["rank", "model"])["model"].tolist()
        assert [row["model"][0] for row in table["rows"]] == best_first
        for row in table["rows"]:
            want = expected.loc[row["model"][0]]
            assert float(row["mean"][1]["data-value"]) == want["mean"]
            assert float(row["mean"][1]["data-std"]) == want["std"]
            assert float(row["ci"][1]["data-low"]) == want["ci95_low"]
            assert float(row["ci"][1]["data-high"]) == want["ci95_high"]
            assert int(row["rank"][0]) == want["rank"] and int(row["n"][0]) == want["n"]
            assert row["mean"][0] == f"{report.fmt(want['mean'])} ± {report.fmt(want['std'])}"
            skill = float(row["skill"][1]["data-value"])
            assert (math.isnan(skill) and math.isnan(want["skill"])) or skill == want["skill"]
            checked += 1
    assert checked == len(summary.query("status == 'ok' and split == 'test' and primary"))
    return len(parser.tables)


@pytest.mark.slow
def test_leaderboard_values_equal_summary_csv(rendered):
    assert check_leaderboards(rendered) == 7  # every trained task of every available dataset
    summary = aggregate.read_table(Layout(rendered), "summary")
    assert set(summary.query("status == 'ok'")["n"]) == {3}


@pytest.mark.slow
def test_figures_embedded_and_code_hidden(rendered):
    page = (rendered / "reports/comparison.html").read_text()
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert "No description has been provided" not in page  # every figure has alternative text
    # per trained task: learning curves, cost plot (+ forecasts, per-horizon MAE, confusion matrix)
    assert len(images) >= 20
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "figures.load_report" not in page
    assert 'class="jp-InputArea' not in page  # code hidden
    assert not re.search(r"<script[^>]*\ssrc=", page)  # nothing fetched from a CDN: opens offline
    assert "Generated text (char_lstm, seed 0)" in page
    assert "to be or not to be, &lt;char_lstm&gt; that is the question &amp; more" in page


@pytest.mark.slow
def test_executed_notebook_has_parameters_and_no_errors(rendered):
    notebook = nbformat.read(rendered / "reports/comparison.executed.ipynb", as_version=4)
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and f'project_root = "{rendered}"' in injected[0].source
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not list((rendered / "reports").glob(".report-*"))  # temporary folder gone


@pytest.mark.slow
def test_references_beside_ours(rendered):
    page = (rendered / "reports/comparison.html").read_text()
    cta = page[page.index('<h3 id="dataset-cta-next_day">'):page.index('<h3 id="dataset-cta-multivariate">')]
    assert "SimpleRNN(32) + Dense(1)" in cta and "27,703" in cta
    assert re.search(r"ours (falls short|better) by \d+\.\d%", cta)
    assert "Also published (no comparable run here): 3 x SimpleRNN(32) + Dense(1) val mae 31,211" in cta
    h96 = page[page.index('<h3 id="dataset-etth1-h96">'):page.index('<h3 id="dataset-etth1-h336">')]
    assert h96.count('<p class="difference">How linear differs from Linear: ours is Geron\'s Flatten') == 1
    chars = page[page.index('<h3 id="dataset-shakespeare-next_char">'):]
    assert "after 10 epochs over all 1M windows" in chars and "0.5513" in chars  # Geron's char-RNN
    assert re.search(r"ours (falls short|better) by \d+\.\d%|on par", chars)


# --- fast checks of the pieces ----------------------------------------------------------------------
def test_fmt_and_mark():
    assert report.fmt(27703.4) == "27,703" and report.fmt(0.123456) == "0.1235" and report.fmt(math.nan) == "–"
    row = {"significant": "no", "p_dm": 0.004, "p_wilcoxon": 0.5}
    assert report.mark(row) == "**"
    assert report.mark({**row, "p_dm": math.nan}) == "n.s."
    assert report.mark({**row, "p_dm": math.nan, "p_wilcoxon": 0.03}) == "*"
    assert report.mark({**row, "p_dm": math.nan, "p_wilcoxon": math.nan}) == "–"
    assert report.mark({**row, "significant": "best"}) == "best"


def test_preset_notes_state_a_changed_optimizer_or_lr(params_dict):
    from seqbench.params import parse_params

    budgets = params_dict["presets"]["standard"]["budgets"]
    budgets["cta"].update(optimizer="adam", lr=0.002)
    budgets["shakespeare"].update(optimizer="nadam", lr=0.004, lr_decay="linear")
    budgets["imdb"].update(lr=0.01)
    notes = report.preset_notes(parse_params(params_dict))
    protocol = params_dict["datasets"]
    assert (f"optimizer adam (lr 0.002) instead of the protocol's sgd (lr {protocol['cta']['training']['lr']}), "
            "which converges more slowly") in notes["cta"]
    assert (f"nadam at lr 0.004 instead of the protocol's {protocol['shakespeare']['training']['lr']}, "
            "which converges more slowly") in notes["shakespeare"]
    assert "rmsprop at lr 0.01 instead of the protocol's 0.001, which converges more slowly" in notes["imdb"]
    assert "learning rate decayed linearly (epoch e of N at (N - e + 1) / N of it)" in notes["shakespeare"]
    assert not any("decayed" in line for line in notes["imdb"])
    budgets["shakespeare"].update(lr=protocol["shakespeare"]["training"]["lr"], models={})  # the protocol's own
    assert not any("lr" in line for line in report.preset_notes(parse_params(params_dict))["shakespeare"])


def test_preset_notes_state_each_models_own_budget(params_dict):
    from seqbench.params import parse_params

    params_dict["presets"]["standard"]["budgets"]["imdb"]["models"] = {
        "transformer": {"train_stride": 2, "max_train_samples": 500, "max_epochs": 1, "patience": 0, "lr": 0.01},
        "textcnn": {"train_stride": 23, "max_epochs": 3},
    }
    notes = report.preset_notes(parse_params(params_dict))["imdb"]
    assert ("transformer: every 2nd training window, at most 500 training windows, at most 1 epoch, patience 0, "
            "lr 0.01") in notes
    assert "textcnn: every 23rd training window, at most 3 epochs" in notes
    assert [line for line in notes if line.startswith(("transformer", "textcnn"))] == notes[-2:]


def test_marks_note_states_the_wilcoxon_floor():
    assert "with 3 seeds the Wilcoxon test cannot go below p = 0.25" in report.marks_note(3)
    assert "with 2 seeds the Wilcoxon test cannot go below p = 0.5" in report.marks_note(2)


def test_verdict_direction():
    assert report.verdict(2.62, 2.44, "mae") == "ours falls short by 7.4%"
    assert report.verdict(0.80, 0.88, "accuracy") == "ours falls short by 9.1%"
    assert report.verdict(0.90, 0.88, "accuracy") == "ours better by 2.3%"
    assert report.verdict(2.45, 2.44, "mae") == "on par (within 2%)"
    assert report.verdict(math.nan, 2.44, "mae") == "not run here"


def test_references_yaml_is_sourced_and_names_real_tasks():
    from seqbench import datasets as registry
    from seqbench.models import REGISTRY
    from seqbench.params import load_params

    params = load_params(ROOT / "params.yaml")
    entries = report.load_references(ROOT / "reports/references.yaml")
    assert len(entries) > 50
    for entry in entries:
        assert entry["task"] in registry.task_names(entry["dataset"], params.dataset(entry["dataset"]))
        assert entry["model"] in REGISTRY and entry["split"] in ("val", "test") and entry["source"]
        assert isinstance(entry["value"], (int, float)) and entry["value"] > 0
    jena = {(e["model"], e["split"]): e["value"] for e in entries if e["dataset"] == "jena"}
    assert jena[("naive", "val")] == 2.44 and jena[("naive", "test")] == 2.62


def test_references_missing_field_is_named(tmp_path):
    path = tmp_path / "references.yaml"
    path.write_text(yaml.safe_dump({"references": [{"dataset": "cta", "task": "next_day", "model": "rnn"}]}))
    with pytest.raises(DataError, match=r"references\[0\] lacks \['split', 'metric', 'value', 'source'\]"):
        report.load_references(path)


def test_reference_notes_name_the_models_a_difference_compares():
    import pandas as pd

    rows = [{"published model": name, "model": "transformer", "protocol": "look-back 96", "difference": "encoder only"}
            for name in ("Informer", "Autoformer")]
    rows.append({"published model": "Linear", "model": "linear", "protocol": "look-back 96", "difference": ""})
    assert report.reference_notes(pd.DataFrame(rows)) == [
        ("protocol", "Published protocol", "look-back 96"),
        ("difference", "How transformer differs from Informer, Autoformer", "encoder only")]


def test_references_unknown_field_is_named(tmp_path):
    path = tmp_path / "references.yaml"
    entry = {"dataset": "cta", "task": "next_day", "model": "rnn", "split": "val", "metric": "mae", "value": 1.0,
             "source": "a book", "diference": "typo"}
    path.write_text(yaml.safe_dump({"references": [entry]}))
    with pytest.raises(DataError, match=r"references\[0\] has unknown fields \['diference'\]; known: .*difference"):
        report.load_references(path)


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
    assert not (tmp_path / "reports/comparison.html").exists()  # nothing half-made under the final names
