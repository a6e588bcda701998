"""The MLflow UI in headless Chromium over a real `mlflow server` and a smoke store made by seqbench.tracking:
the link tracking-init prints opens the runs table (not the GenAI overview) with the primary metric's
columns, the training cost, and the seed runs grouped by model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqbench import tracking, tracking_ui
from seqbench.params import parse_params
from seqbench.paths import Layout
from mlflow_server import Server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
MODELS = {"linear": 0.9, "lstm": 0.7, "gru": 0.8}  # test MAE on h12 (next_step: half of it)
SEEDS = (0, 1)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is missing at /usr/bin/chromium: "
                       "install it with `apt-get install -y chromium` (.ci/run does this in CI)"),
]
sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                      "-e '.[dev]')").sync_playwright


def _results(mae: float, seed: int) -> dict:
    task = {"kind": "forecast_multi", "status": "ok", "epochs": 2, "best_epoch": 2, "train_seconds": 1.5 + seed,
            "params_count": 100 + int(1000 * mae)}
    return {"tasks": {"h12": {**task, "val": {"mae": mae + 0.1}, "test": {"mae": mae + 0.01 * seed}},
                      "next_step": {**task, "val": {"mae": mae / 2}, "test": {"mae": mae / 2}}},
            "cost": {"peak_memory_mb": 200.0}}


@pytest.fixture(scope="module")
def store(tmp_path_factory, params_dict_module):
    """A smoke store: three models x two seeds of job runs, each model's summary run, tracking-init's tags."""
    root = tmp_path_factory.mktemp("ui")
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        params_dict_module["preset"] = "smoke"
        params_dict_module["jobs"] = params_dict_module["presets"]["smoke"]["jobs"]
        layout = Layout(root)
        experiment_id = tracking.run_init(parse_params(params_dict_module), layout)["experiments"]["synthetic"]
        for model, mae in MODELS.items():
            for seed in SEEDS:
                with tracking.job_run(layout, "synthetic", model, seed, regime="protocol", preset="smoke",
                                      data_hash="feed", device="cpu", params={"units": 8}) as run:
                    for epoch in (1, 2):
                        run.log_epoch("h12", epoch, 1.0 / epoch, 1.1 / epoch)
                    run.log_results(_results(mae, seed))
            tracking.log_summary_run(layout, "synthetic", model, {"h12/test_mae_mean": mae}, {"seeds": "0,1"},
                                     {"preset": "smoke"})
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return root, experiment_id


@pytest.fixture(scope="module")
def params_dict_module():
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


@pytest.fixture(scope="module")
def server(store):
    root, _ = store
    srv = Server(root, backend=root / "mlflow.db")
    srv.start()
    yield srv.uri
    srv.stop()


def test_printed_link_opens_the_runs_table_with_the_primary_metric(store, server, tmp_path):
    _, experiment_id = store
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 1400})
            page.goto(tracking_ui.ui_url(server, experiment_id), timeout=180_000)
            page.get_by_text("h12/test_mae", exact=True).first.wait_for(timeout=180_000)
            page.get_by_text("lstm-seed1", exact=True).first.wait_for(timeout=60_000)
            text, url = page.inner_text("body"), page.url
            headers = page.eval_on_selector_all("[role=columnheader]", "els => els.map(e => e.innerText.trim())")
            page.screenshot(path=str(tmp_path / "runs.png"))
        finally:
            browser.close()
    assert f"/experiments/{experiment_id}/runs" in url and "/overview" not in url
    assert "Token Usage" not in text  # the GenAI overview's charts
    assert "You're viewing a shared view" in text and "seqbench: test mae by model" in text
    for column in ("next_step/test_mae", "h12/test_mae", "train_seconds", "params_count", "peak_memory_mb"):
        assert column in headers, f"{column} not among the columns {headers}"
    assert "Sort: next_step/test_mae" in text  # best first: lstm, gru, linear
    assert text.index("lstm-seed0") < text.index("gru-seed0") < text.index("linear-seed0")
    for model in MODELS:  # grouped by (model, regime); each group lists its seed runs, not the summary
        assert f"{model}-seed0" in text and f"{model}-seed1" in text
        assert f"{model}-summary" not in text
    assert "Group: " in text and text.count("Group: ") == len(MODELS)
