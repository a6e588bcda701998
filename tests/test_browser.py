"""Real browser checks in headless Debian Chromium (Playwright): the MLflow UI over a real `mlflow server`
holding job and summary runs made by seqbench.tracking, and the HTML report opened from disk."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from seqbench import aggregate, report, results, tracking
from seqbench.paths import Layout
from mlflow_server import Server
from test_aggregate import SEEDS, make_project
from test_report import copy_report_files

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
JOB_DATASETS = ("cta", "imdb")  # datasets whose job runs are logged here (summary runs: every dataset)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is missing at /usr/bin/chromium: "
                       "install it with `apt-get install -y chromium` (.ci/run does this in CI)"),
]
sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                      "-e '.[dev]')").sync_playwright


def _api(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, headers={"Content-Type": "application/json"},
                                     method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _browser(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A project whose MLflow store holds job runs (cta, imdb) and the aggregate stage's summary runs."""
    root = tmp_path_factory.mktemp("mlflow")
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        params = make_project(root)
        layout = Layout(root)
        tracking.run_init(params, layout)
        for _group, dataset, model, seed, _regime in params.train_jobs():
            if dataset not in JOB_DATASETS:
                continue
            metrics = json.loads((layout.run(dataset, model, seed) / "metrics.json").read_text())
            with tracking.job_run(layout, dataset, model, seed, regime="protocol", preset=params.preset, data_hash="feed",
                                  device="cpu", params={"units": 32}) as run:
                for epoch in (1, 2):
                    run.log_epoch(next(iter(metrics["tasks"])), epoch, 1.0 / epoch, 1.1 / epoch)
                run.log_results(metrics)
        aggregate.run(params, layout)
        aggregate.run(params, layout)  # a rerun replaces the summary runs, it must not duplicate them
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return root, params


@pytest.fixture(scope="module")
def server(store):
    root, _ = store
    srv = Server(root, backend=root / "mlflow.db")
    srv.start()
    yield srv.uri
    srv.stop()


def _runs(base: str, experiment_id: str) -> list[dict]:
    found = _api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id], "max_results": 1000})
    return found.get("runs", [])


def _tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _metrics(run: dict) -> dict:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


def test_mlflow_server_lists_job_and_summary_runs(store, server):
    root, params = store
    summary = results.read_table(Layout(root), "summary").query("status == 'ok' and selection == ''")
    for dataset in results.dataset_order(params):
        experiment = _api(server, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={dataset}")["experiment"]
        runs = {r["info"]["run_name"]: r for r in _runs(server, experiment["experiment_id"])}
        models = sorted({job.model for job in params.train_jobs() if job.dataset == dataset})
        expected_summaries = set() if dataset == "jena" else {f"{m}-summary" for m in models}
        expected_jobs = {f"{m}-seed{s}" for m in models for s in SEEDS} if dataset in JOB_DATASETS else set()
        assert set(runs) == expected_summaries | expected_jobs  # no duplicates after the rerun
        for name in expected_jobs:
            model, seed = name.rsplit("-seed", 1)
            tags = _tags(runs[name])
            assert (tags["dataset"], tags["model"], tags["seed"], tags["seqbench.kind"]) == (dataset, model, seed, "job")
            assert tags["preset"] == "standard" and tags["device"] == "cpu" and tags["data_hash"] == "feed"
            metrics_json = json.loads((Layout(root).run(dataset, model, int(seed)) / "metrics.json").read_text())
            task, entry = next((t, e) for t, e in metrics_json["tasks"].items() if e["status"] == "ok")
            metric, value = next(iter(entry["test"].items()))
            assert _metrics(runs[name])[f"{task}/test_{metric}"] == pytest.approx(value)
        for name in expected_summaries:
            model = name.removesuffix("-summary")
            tags, metrics = _tags(runs[name]), _metrics(runs[name])
            assert (tags["seqbench.kind"], tags["dataset"], tags["model"]) == ("summary", dataset, model)
            rows = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
            assert len(metrics) == 2 * len(rows)
            for row in rows.itertuples():
                assert metrics[f"{row.task}/{row.split}_{row.metric}_mean"] == pytest.approx(row.mean, rel=1e-12)
                assert metrics[f"{row.task}/{row.split}_{row.metric}_std"] == pytest.approx(row.std, rel=1e-12)


def test_mlflow_ui_lists_the_runs_in_chromium(store, server):
    _, params = store
    experiment = _api(server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=cta")["experiment"]
    names = [r["info"]["run_name"] for r in _runs(server, experiment["experiment_id"])]
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 3000})
            page.goto(f"{server}/#/experiments/{experiment['experiment_id']}/runs", timeout=180_000)
            page.get_by_text("rnn-summary", exact=True).first.wait_for(timeout=180_000)
            # the seed runs are children of their model's summary run: expand every summary row
            expanders = page.locator("[data-component-id$='runnamecellrenderer.tsx_46']")
            for i in range(expanders.count()):
                expanders.nth(i).click()
            page.get_by_text("rnn-seed0", exact=True).first.wait_for(timeout=60_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert len(names) == 5 + 5 * len(SEEDS)
    missing = [name for name in names if name not in text]
    assert not missing, f"runs not listed by the MLflow UI: {missing}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    params = make_project(root, regimes=("protocol", "tuned"), etth1_tasks=("h96", "h336", "l336_h96"))
    aggregate.run(params, Layout(root), log_mlflow=False)
    copy_report_files(root)
    report.run(params, Layout(root))
    return root / "reports" / "comparison.html"


def test_html_report_opens_without_console_errors(rendered):
    problems = []
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(rendered.as_uri(), wait_until="load")
            assert page.locator("#overview").is_visible()
            images = page.eval_on_selector_all("img.figure", "els => els.map(e => e.complete && e.naturalWidth)")
        finally:
            browser.close()
    assert not problems, problems
    assert len(images) >= 20 and all(width and width > 100 for width in images)  # every PNG decoded


# Per section: its page rectangle and, for every figure in it, the image's rectangle and layout data.
SECTIONS_JS = """() => {
  const heads = [...document.querySelectorAll('h2[id]')];
  return heads.map((h, i) => {
    const top = h.getBoundingClientRect().top + window.scrollY;
    const next = heads[i + 1];
    const bottom = next ? next.getBoundingClientRect().top + window.scrollY : document.body.scrollHeight;
    const figures = [...document.querySelectorAll('img.figure')].filter(img => {
      const y = img.getBoundingClientRect().top + window.scrollY;
      return y >= top && y < bottom;
    }).map(img => {
      const r = img.getBoundingClientRect();
      return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
              alt: img.alt, axes: img.dataset.axes, legends: img.dataset.legends, colors: img.dataset.colors};
    });
    return {id: h.id, top, bottom, figures};
  });
}"""


def _boxes(text: str) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in box.split(",")) for box in text.split(";") if box]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _has_colour(pixels: np.ndarray, hex_colour: str, tolerance: int = 30) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels[..., :3].astype(int) - rgb).max(axis=-1) <= tolerance).sum())


def test_each_section_legends_outside_the_axes_and_one_colour_per_model(rendered, tmp_path):
    """A Chromium screenshot of every section; in it, each figure's legend lies outside every axes of the
    figure, each legend entry has its own colour, and that colour is drawn in the legend as shown."""
    from PIL import Image

    shots = Path(os.environ.get("SEQBENCH_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    checked = 0
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(rendered.as_uri(), wait_until="load")
            sections = page.evaluate(SECTIONS_JS)
            assert [s["id"] for s in sections][:2] == ["overview", "did-not-finish"]
            for section in sections:
                clip = {"x": 0, "y": section["top"], "width": 1400, "height": max(1, section["bottom"] - section["top"])}
                path = shots / f"section-{section['id']}.png"
                page.screenshot(path=str(path), clip=clip, full_page=True)
                pixels = np.asarray(Image.open(path).convert("RGB"))
                for fig in section["figures"]:
                    axes, legends = _boxes(fig["axes"]), _boxes(fig["legends"])
                    colours = json.loads(fig["colors"])
                    for legend in legends:
                        assert not any(_overlap(legend, ax) for ax in axes), f"legend over a plot: {fig['alt']}"
                        assert legend[2] <= fig["width"] + 1 and legend[3] <= fig["height"] + 1, fig["alt"]
                    models = {k: v for k, v in colours.items() if k not in ("truth", "Pareto front")}
                    assert len(set(models.values())) == len(models), f"two models share a colour: {fig['alt']}"
                    for legend in legends:
                        x0, y0 = int(fig["x"] + legend[0]), int(fig["y"] - section["top"] + legend[1])
                        region = pixels[y0:int(y0 + legend[3] - legend[1]), x0:int(x0 + legend[2] - legend[0])]
                        missing = [m for m, c in models.items() if _has_colour(region, c) < 3]
                        assert not missing, f"legend colours not drawn for {missing}: {fig['alt']}"
                    checked += 1
            page.locator("table.overview").first.screenshot(path=str(shots / "overview-grid.png"))
            page.locator("img[alt^='critical-difference diagram']").first.screenshot(path=str(shots / "cd-diagram.png"))
        finally:
            browser.close()
    assert checked >= 20
