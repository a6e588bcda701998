"""The command line as a user meets it: mistakes in arguments are one line and exit 2 before anything is
written or logged, `--version`, `make help`, "did you mean" in params.yaml errors."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from seqbench import download, features, split, standardize, tracking
from seqbench.params import ParamsError, parse_params
from seqbench.paths import Layout
from seqbench.suggest import allowed_keys, closest, unknown

ROOT = Path(__file__).resolve().parents[1]


def seqbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory) -> Path:
    """A smoke project (seeds 0 and 1, regimes [protocol]) with synthetic features and an MLflow store."""
    root = tmp_path_factory.mktemp("cli")
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data.update(preset="smoke", seeds=[0, 1], regimes=["protocol"])
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    params, layout = parse_params(data), Layout(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for stage in (download, standardize, split, features):
            stage.run(params, layout, "synthetic")
        tracking.run_init(params, layout)
    return root


def all_runs(root: Path) -> list:
    client = MlflowClient(tracking.tracking_uri(Layout(root)))
    experiments = client.search_experiments(view_type=ViewType.ALL)
    return client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL)


MISTAKES = [
    (["train", "-d", "synthetic", "-m", "dlinaer", "-s", "0"], ["unknown model 'dlinaer'", "did you mean 'dlinear'",
                                                               "python -m seqbench models"]),
    (["train", "-d", "synthetc", "-m", "dlinear", "-s", "0"], ["unknown dataset 'synthetc'",
                                                               "did you mean 'synthetic'"]),
    (["train", "-d", "synthetic", "-m", "char_gru", "-s", "0"], ["--model char_gru does not fit dataset 'synthetic'",
                                                                "next_char", "pick a model for forecast tasks"]),
    (["train", "-d", "etth1", "-m", "sarima", "-s", "0"], ["--model sarima does not fit dataset 'etth1'",
                                                           "univariate"]),
    (["train", "-d", "imdb", "-m", "lstm", "-s", "0"], ["--model lstm does not fit dataset 'imdb'", "text"]),
    (["train", "-d", "synthetic", "-m", "dlinear", "-s", "7"], ["--seed 7", "seeds are [0, 1]",
                                                                "add it to seeds", "--allow-extra-seed"]),
    (["train", "-d", "synthetic", "-m", "dlinear", "-s", "0", "--regime", "tuned"],
     ["--regime tuned", "add 'tuned' to regimes in params.yaml"]),
    (["train", "-d", "synthetic", "-m", "dlinear", "-s", "0", "--regime", "tunde"],
     ["unknown regime 'tunde'", "did you mean 'tuned'"]),
    (["download", "-d", "imbd"], ["unknown dataset 'imbd'", "did you mean 'imdb'"]),
    (["features", "-d", "Synthetic"], ["unknown dataset 'Synthetic'", "did you mean 'synthetic'"]),
    (["workspace", "new-folder", "--preset", "smok"], ["unknown preset 'smok'", "did you mean 'smoke'"]),
]


@pytest.mark.parametrize(("args", "expected"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistaken_argument_is_one_line_exit_2_and_nothing_logged(trained_project, args, expected):
    before = sorted(str(p.relative_to(trained_project)) for p in trained_project.rglob("*"))
    runs_before = len(all_runs(trained_project))
    result = seqbench(*args, cwd=trained_project)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0]
    assert len(all_runs(trained_project)) == runs_before
    # nothing written: no run folder, no workspace, no log
    assert sorted(str(p.relative_to(trained_project)) for p in trained_project.rglob("*")) == before


def test_allow_extra_seed_trains_a_seed_outside_the_list(trained_project):
    result = seqbench("train", "-d", "synthetic", "-m", "naive", "-s", "7", "--allow-extra-seed", "--threads", "1",
                      cwd=trained_project)
    assert result.returncode == 0, result.stderr
    assert (Layout(trained_project).run("synthetic", "naive", 7) / "metrics.json").is_file()
    assert "naive-seed7" in [run.info.run_name for run in all_runs(trained_project)]


def test_version_is_the_installed_packages():
    result = seqbench("--version", cwd=ROOT)
    assert result.returncode == 0
    assert result.stdout.strip() == f"seqbench {version('seqbench')}"


# --- did you mean, in params.yaml errors -----------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(presett=d.pop("preset")), "presett: Extra inputs are not permitted (got 'standard'); "
                                                      "did you mean 'preset'?"),
        (lambda d: d["models"].update(lstm={"unit": 16}), "models.lstm.unit: Extra inputs are not permitted "
                                                          "(got 16); did you mean 'units'?"),
        (lambda d: d["datasets"]["etth1"]["training"].update(batchsize=3), "did you mean 'batch_size'?"),
        (lambda d: d["presets"]["smoke"]["budgets"]["default"].update(models={"lstm": {"lrr": 0.1}}),
         "presets.smoke.budgets.default.models.lstm.lrr: Extra inputs are not permitted (got 0.1); "
         "did you mean 'lr'?"),
        (lambda d: d["presets"]["smoke"]["jobs"].update(forecastt={}), "did you mean 'forecast'?"),
        (lambda d: d["jobs"]["forecast"]["models"].append("dlinaer"), "'dlinaer' is not a registered model "
                                                                      "(did you mean 'dlinear'?)"),
        (lambda d: d["jobs"]["forecast"]["datasets"].append("ETTh1"), "unknown dataset 'ETTh1' "
                                                                      "(did you mean 'etth1'?)"),
        (lambda d: d.update(preset="standrd"), "preset 'standrd' is not defined under presets "
                                               "(did you mean 'standard'?)"),
        (lambda d: d["presets"]["standard"]["budgets"]["etth1"].update(tasks=["h97"]),
         "unknown tasks ['h97'] (did you mean 'h96' for 'h97'?)"),
        (lambda d: d["presets"]["standard"]["budgets"].update(etth3={}), "unknown dataset 'etth3' "
                                                                         "(did you mean 'etth2'?)"),
        (lambda d: d["data"]["extract_limits"].update(imbd={}), "unknown dataset 'imbd' (did you mean 'imdb'?)"),
    ],
)
def test_params_errors_suggest_the_name_meant(params_dict, mutate, expected):
    data = copy.deepcopy(params_dict)
    mutate(data)
    with pytest.raises(ParamsError) as error:
        parse_params(data)
    assert expected in str(error.value)


def test_no_suggestion_when_nothing_is_close():
    assert closest("epochs", ["preset", "seeds", "jobs"]) is None
    assert unknown("model", "bert", ["lstm", "gru"]) == "unknown model 'bert'; known: lstm, gru"


def test_allowed_keys_follow_the_settings_classes():
    from seqbench.params import Params

    assert "max_train_samples" in allowed_keys(Params, ("presets", "smoke", "budgets", "default", "x"))
    assert "forecast" in allowed_keys(Params, ("presets", "smoke", "jobs", "x"))  # through `Jobs | None`
    assert allowed_keys(Params, ("preset", "x")) == []  # a string has no keys


# --- make help -------------------------------------------------------------------------------------
def test_make_help_lists_every_target_with_its_comment():
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    documented = dict(re.findall(r"^([A-Za-z0-9_-]+):[^\n#]*## (.+)$", makefile, re.M))
    assert set(phony) <= set(documented), f"phony targets without a `## ` comment: {set(phony) - set(documented)}"
    result = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    listed = dict(re.findall(r"^  make (\S+) +(.+)$", result.stdout, re.M))
    assert listed == documented
    # `make` alone prints the same list instead of installing anything
    plain = subprocess.run(["make", "--no-print-directory", "-n"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert "awk" in plain.stdout and "pip install" not in plain.stdout, plain.stdout
