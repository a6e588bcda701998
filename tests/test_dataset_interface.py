"""The dataset interface: a new dataset is one module + a params block, and no stage needs an edit.

tests/extra_dataset.py (a household meter, written as docs/adding-a-dataset.md says) is registered
here and taken through the unchanged stages: download, standardize, split, features, tracking-init and
train. The layering that makes this possible is checked too: the dataset modules import no stage, and
the data stages name no dataset."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from extra_dataset import REGISTER, write_meter_csv
from rawdata import write_sums

from seqbench import datasets, download, features, split, standardize, tracking, train
from seqbench.params import ParamsError, parse_params
from seqbench.paths import Layout

SRC = Path(__file__).resolve().parents[1] / "src" / "seqbench"
STAGES = ("download", "standardize", "split", "features", "text", "batches", "loop", "train", "aggregate",
          "report", "params", "cli", "stages", "tracking", "evaluate", "figures", "stats", "workspace")
DATA_STAGES = ("download", "standardize", "split", "features", "text", "windows", "archives")
METER = {"split": [0.7, 0.15, 0.15], "lookback": 24, "horizon": 6, "season": 24,
         "training": {"batch_size": 32, "loss": "mse", "optimizer": "adam", "lr": 0.01}}


@pytest.fixture()
def meter():
    """The extra dataset, registered for one test."""
    [dataset] = REGISTER
    datasets.register(dataset)
    try:
        yield dataset
    finally:
        datasets.DATASETS.pop(dataset.name)


def meter_params(params_dict: dict, mirror: Path):
    """The real params.yaml plus the new dataset's block, in the forecast job list with smoke budgets."""
    params_dict["preset"] = "smoke"
    params_dict["data"]["mirrors"] = [str(mirror)]
    params_dict["datasets"]["meter"] = METER
    params_dict["jobs"]["forecast"] = {"datasets": ["meter"], "models": ["naive", "linear"]}
    params_dict["jobs"]["statistical"] = {"datasets": [], "models": []}
    for preset in params_dict["presets"].values():
        preset["budgets"]["meter"] = {}
    return parse_params(params_dict)


def test_a_registered_module_runs_through_the_unchanged_stages(meter, params_dict, tmp_path, monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw = write_meter_csv(tmp_path / "mirror" / "meter.csv", rows=1_000)
    write_sums(raw.parent, [raw.name])
    params, layout = meter_params(params_dict, raw.parent), Layout(tmp_path / "project")
    assert datasets.task_names("meter", params.dataset("meter")) == ["next_hour", "h6"]

    status = download.run(params, layout, "meter")
    assert status["files"]["meter.csv"]["source"] == str(raw)
    table = standardize.run(params, layout, "meter")
    assert table.columns == ["timestamp", "kwh", "outdoor_c"] and table.height == 1_000
    assert pl.read_parquet(layout.standard("meter")).equals(table)
    summary = split.run(params, layout, "meter")
    assert summary["counts"] == {"train": 700, "val": 150, "test": 150}
    meta = features.run(params, layout, "meter")
    assert meta["columns"] == ["kwh", "outdoor_c"] and meta["metric_units"] == "original"
    loaded = features.load_features(layout.features("meter"))
    train_rows = pl.read_parquet(layout.split("meter") / "train.parquet")["kwh"].to_numpy()
    np.testing.assert_allclose(loaded.mean[0], train_rows.mean())  # scaled with the train rows only
    assert list(loaded.tasks) == ["next_hour", "h6"] and len(loaded.windows("h6", "test")) == 150 - 6 + 1

    tracking.run_init(params, layout)
    for model in ("naive", "linear"):
        metrics = train.run(params, layout, "meter", model, seed=0)
        assert metrics["status"] == "ok" and set(metrics["tasks"]) == {"next_hour", "h6"}
        test = metrics["tasks"]["next_hour"]["test"]
        assert np.isfinite(test["mae"]) and 0 < test["mae"] < 1  # kWh, readings of about 0.2..1
        assert json.loads((layout.run("meter", model, 0) / "metrics.json").read_text())["dataset"] == "meter"


def test_a_dataset_needs_its_block_and_its_block_is_checked_by_its_settings(meter, params_dict, tmp_path):
    with pytest.raises(ParamsError, match=r"no settings block for the registered datasets \['meter'\]"):
        parse_params(params_dict)
    params_dict["datasets"]["meter"] = {**METER, "lookback": 0}
    with pytest.raises(ParamsError, match="datasets.meter.lookback"):
        parse_params(params_dict)
    params_dict["datasets"]["meter"] = {**METER, "sampling": 6}
    with pytest.raises(ParamsError, match="datasets.meter.sampling: Extra inputs are not permitted"):
        parse_params(params_dict)


def test_unknown_dataset_blocks_are_refused(params_dict):
    params_dict["datasets"]["meter"] = METER  # not registered here
    with pytest.raises(ParamsError, match=r"unknown datasets \['meter'\]"):
        parse_params(params_dict)


def test_registering_checks_the_settings_the_family_needs(meter):
    with pytest.raises(ValueError, match="registered twice"):
        datasets.register(meter)

    class Incomplete(type(meter)):
        settings = datasets.DatasetTraining  # no lookback, season, training

    with pytest.raises(TypeError, match=r"lacks \['training', 'lookback', 'season'\]"):
        datasets.register(Incomplete("incomplete"))
    assert "incomplete" not in datasets.DATASETS


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "datasets").glob("*.py")), ids=lambda p: p.name)
def test_dataset_modules_import_no_stage(path):
    stages = {f"seqbench.{name}" for name in STAGES}
    assert sorted(_imports(path) & stages) == []


@pytest.mark.parametrize("name", DATA_STAGES)
def test_data_stages_name_no_dataset(name):
    strings = {node.value for node in ast.walk(ast.parse((SRC / f"{name}.py").read_text()))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert sorted(strings & set(datasets.DATASETS)) == []
