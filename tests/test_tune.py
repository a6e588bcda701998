"""The tune stage on the synthetic dataset (smoke preset): Optuna searches scored on validation only,
reproducible, resumable after a kill, their trials in MLflow, their choice read by the tuned regime."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from seqbench import configure, download, features, split, standardize, tracking, tune
from seqbench.errors import SeqbenchError
from seqbench.params import ParamsError, parse_params
from seqbench.paths import Layout
from workflow_tools import set_keys

pytestmark = pytest.mark.slow


def smoke(params_dict: dict, **changes) -> dict:
    params_dict["preset"] = "smoke"
    for key in ("jobs", "seeds", "regimes"):
        params_dict[key] = params_dict["presets"]["smoke"][key]
    return set_keys(params_dict, changes)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tune-base")
    data = smoke(yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text()))
    params, layout = parse_params(data), Layout(root)
    for stage in (download, standardize, split, features):
        stage.run(params, layout, "synthetic")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.run_init(params, layout)
    return root


@pytest.fixture()
def project(base: Path, tmp_path: Path, params_dict: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "project"
    shutil.copytree(base, root)

    def setup(**changes):
        data = smoke(params_dict, **changes)
        (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return parse_params(data), Layout(root)

    return setup


def test_a_search_scores_trials_on_validation_and_writes_its_choice(project):
    params, layout = project()
    result = tune.run(params, layout, "synthetic", "linear", threads=1)
    written = yaml.safe_load(layout.tuned("synthetic", "linear").read_text())
    assert written == result
    assert len(written["trials"]) == 3 and sorted(t["number"] for t in written["trials"]) == [0, 1, 2]
    best = min(written["trials"], key=lambda t: t["value"])
    assert written["best"] == {"trial": best["number"], "value": best["value"]}
    assert set(written["settings"]) == {"lr", "instance_norm"} and written["settings"] == best["settings"]
    # the tuned regime trains with it
    job = configure.resolve(params, "synthetic", "linear", "tuned", layout)
    assert job.train.lr == pytest.approx(written["settings"]["lr"])
    assert job.settings.instance_norm == written["settings"]["instance_norm"]
    # the search and its trials in MLflow, the trials nested under the search
    client = MlflowClient(tracking.tracking_uri(layout))
    experiment = client.get_experiment_by_name("synthetic").experiment_id
    runs = client.search_runs([experiment], run_view_type=ViewType.ACTIVE_ONLY)
    (search,) = [r for r in runs if r.data.tags[tracking.KIND_TAG] == tracking.SEARCH]
    trials = [r for r in runs if r.data.tags[tracking.KIND_TAG] == tracking.TRIAL]
    assert len(trials) == 3 and {r.data.tags[tracking.PARENT_TAG] for r in trials} == {search.info.run_id}
    assert search.data.metrics["best_val_loss"] == pytest.approx(best["value"], rel=1e-5)


def test_same_seed_same_trials_and_a_finished_search_is_not_redone(project, tmp_path):
    params, layout = project()
    first = tune.run(params, layout, "synthetic", "dlinear", threads=1)
    other = tmp_path / "other"
    shutil.copytree(layout.root, other, ignore=shutil.ignore_patterns("tuned", "search"))
    again = tune.run(params, Layout(other), "synthetic", "dlinear", threads=1)
    drop = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert drop(first) == drop(again)
    path = layout.tuned("synthetic", "dlinear")
    before = path.read_text()
    started = time.perf_counter()
    tune.run(params, layout, "synthetic", "dlinear", threads=1)
    assert path.read_text() == before and time.perf_counter() - started < 10


def test_a_changed_space_is_searched_again_and_an_old_choice_is_refused(project):
    params, layout = project()
    tune.run(params, layout, "synthetic", "linear", threads=1)
    changed, _ = project(**{"search_spaces.linear": {"lr": {"float": [0.001, 0.002]}}})
    with pytest.raises(SeqbenchError, match=r"tuned/synthetic/linear.yaml: searched under another space .*`make tune`"):
        configure.resolve(changed, "synthetic", "linear", "tuned", layout)
    written = tune.run(changed, layout, "synthetic", "linear", threads=1)
    assert 0.001 <= written["settings"]["lr"] <= 0.002 and set(written["settings"]) == {"lr"}


def test_the_test_split_is_out_of_reach(project):
    params, layout = project()
    feats = features.load_features(layout.features("synthetic"))
    blind = tune.blind_test_split(feats)
    for name, task in feats.tasks.items():
        for start in feats.windows(name, "val"):  # every row a validation window reads is there
            assert np.isfinite(blind.series[start:start + task.span]).all()
        test_targets = [s + task.span - 1 for s in feats.windows(name, "test")]
        assert np.isnan(blind.series[test_targets]).all()  # a test target read would be NaN
    assert np.isfinite(feats.series).all()  # the loaded features themselves are left alone


def test_a_killed_search_resumes_without_repeating_finished_trials(project):
    params, layout = project(**{"presets.smoke.tune": {"default": {"trials": 6, "max_epochs": 2}}})
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "seqbench", "tune", "--dataset", "synthetic", "--model", "gru", "--threads", "1"]
    process = subprocess.Popen(command, cwd=layout.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    seen = []
    for line in process.stdout:  # kill -9 once two trials have finished
        if "trial" in line and ("complete" in line or "pruned" in line):
            seen.append(line)
        if len(seen) == 2:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL and not layout.tuned("synthetic", "gru").exists()
    result = subprocess.run(command, cwd=layout.root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    written = yaml.safe_load(layout.tuned("synthetic", "gru").read_text())
    numbers = [t["number"] for t in written["trials"]]
    assert len(numbers) == 6 == len(set(numbers))  # six finished trials, none counted twice
    assert numbers[:2] == [0, 1]


def test_a_typo_in_a_search_space_names_the_key(params_dict):
    params_dict["search_spaces"]["gru"] = {"unitz": {"int": [8, 64]}}
    with pytest.raises(ParamsError, match=r"search_spaces.gru.unitz: gru has no setting 'unitz'; its settings are .*units"):
        parse_params(params_dict)
    params_dict["search_spaces"]["gru"] = {"instance_norm": {"choice": ["none", "revn"]}}
    with pytest.raises(ParamsError, match=r'search_spaces.gru.instance_norm: "revn" is not a value gru accepts'):
        parse_params(params_dict)
    params_dict["search_spaces"]["gru"] = {"units": {"int": [64, 8]}}
    with pytest.raises(ParamsError, match=r"search_spaces.gru.units: the low bound must be below the high one"):
        parse_params(params_dict)
