"""params.yaml -> typed, frozen settings; every impossible value fails naming its key."""

from __future__ import annotations

import subprocess
import sys

import pydantic
import pytest
import yaml

from seqbench import stages
from seqbench.params import ParamsError, load_params, parse_params
from seqbench.workspace import workspace_params


def test_project_params_load_and_resolve(project_root):
    params = load_params(project_root / "params.yaml")
    assert params.preset == "standard"
    config = params.train_config("cta", "lstm")
    # CTA keeps the book's data, loss and batch (Huber, 32); the standard preset's short budget swaps the
    # book's SGD with momentum (it needs 500 epochs) for Adam with its own lr and no momentum
    assert (config.loss, config.optimizer, config.lr, config.momentum, config.batch_size) == (
        "huber", "adam", params.budget("cta").lr, 0.0, 32)
    assert config.max_epochs == params.budget("cta").max_epochs  # the standard preset's CTA budget
    full = parse_params({**yaml.safe_load((project_root / "params.yaml").read_text()), "preset": "full"})
    book = full.train_config("cta", "lstm")
    assert (book.optimizer, book.lr, book.momentum) == ("sgd", 0.02, 0.9)  # the full preset: Geron's recipe
    # Shakespeare: Geron's Nadam at Keras' default lr in the book's budget, 4x that lr in the short one, and
    # char_gru's own budget (the model with the 0.55 target) on top: its lr and stride, the dataset's decay
    assert (full.train_config("shakespeare", "char_gru").lr, params.train_config("shakespeare", "char_lstm").lr) == (
        0.001, 0.004)
    gru, gru_budget = params.train_config("shakespeare", "char_gru"), params.budget("shakespeare", "char_gru")
    assert (gru.lr, gru.train_stride, gru.lr_decay) == (gru_budget.lr, gru_budget.train_stride, "linear")
    assert gru.train_stride < params.train_config("shakespeare", "char_lstm").train_stride
    assert params.train_config("imdb", "transformer").max_train_samples == 10_000  # a per-model cut
    assert params.train_config("imdb", "bow_bigram").max_train_samples is None
    assert params.train_config("etth1", "linear").tasks == ("h96", "h336", "l336_h96", "l336_h336")
    assert params.train_config("etth1", "gru").tasks == ("h96", "h336")  # a per-model cut of tasks
    assert params.model_settings("lstm").units == 16


def test_params_are_frozen(project_root):
    params = load_params(project_root / "params.yaml")
    with pytest.raises(pydantic.ValidationError):
        params.preset = "full"


def test_model_lr_and_epochs_override_the_protocol(params_dict):
    params_dict["models"]["gru"] = {"units": 8, "lr": 0.5, "max_epochs": 3}
    config = parse_params(params_dict).train_config("jena", "gru")
    assert (config.lr, config.max_epochs) == (0.5, 3)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(epochs=3), "epochs: Extra inputs are not permitted"),
        (lambda d: d["models"].update(lstm={"unit": 16}), "models.lstm.unit: Extra inputs are not permitted"),
        (lambda d: d["models"].update(lstm={"units": -4}), "models.lstm.units: Input should be greater than 0"),
        (lambda d: d["presets"]["smoke"].update(max_epochs=-1), "presets.smoke.max_epochs"),
        (lambda d: d["datasets"]["jena"].update(split=[0.5, 0.3, 0.3]), "must add up to 1"),
        (lambda d: d["datasets"]["cta"].update(lookback="many"), "datasets.cta.lookback"),
        (lambda d: d["jobs"]["text"]["models"].append("bert"), "'bert' is not a registered model"),
        (lambda d: d["jobs"]["forecast"]["datasets"].append("imbd"), "unknown dataset 'imbd'"),
        (lambda d: d["jobs"]["forecast"]["models"].append("sarima"), "model 'sarima' fits no task of dataset 'etth1'"),
        (lambda d: d["jobs"]["forecast"]["datasets"].append("imdb"), "list it under jobs.text"),
        (lambda d: d["jobs"]["statistical"]["models"].append("naive"), "[('cta', 'naive')] appear in two groups"),
        (lambda d: d.update(preset="fast"), "preset 'fast' is not defined"),
        (lambda d: d.update(seeds=[0, 0]), "seeds must be distinct"),
        (lambda d: d["presets"]["standard"]["budgets"]["etth1"].update(tasks=["h97"]), "unknown tasks ['h97']"),
        (lambda d: d["models"].update(lstmm={}), "'lstmm' is not a registered model"),
        (lambda d: d["datasets"]["etth1"].update(borders=[8640, 8000, 14400]), "borders must increase"),
        (lambda d: d["datasets"]["jena"].update(target="T (K)"), "is not a Jena column"),
        (lambda d: d["training"].update(device="gpu"), "device must be auto, cpu, cuda"),
        (lambda d: d["presets"]["smoke"]["budgets"].update(cta={"optimizer": "adam"}),
         "presets.smoke.budgets.cta: optimizer 'adam' needs its own lr"),
    ],
)
def test_bad_settings_fail_naming_the_key(params_dict, mutate, expected):
    mutate(params_dict)
    with pytest.raises(ParamsError) as error:
        parse_params(params_dict)
    assert expected in str(error.value)
    assert str(error.value).startswith("params.yaml is invalid")


def test_cli_reports_a_typo_without_traceback(project, params_dict):
    text = (project / "params.yaml").read_text().replace("preset: smoke", "presett: smoke")
    (project / "params.yaml").write_text(text)
    result = subprocess.run([sys.executable, "-m", "seqbench", "download", "--dataset", "synthetic"],
                            capture_output=True, text=True, cwd=project)
    assert result.returncode == 1
    assert "presett: Extra inputs are not permitted" in result.stderr
    assert "preset: Field required" in result.stderr
    assert "Traceback" not in result.stderr


def test_stage_params_resolve_to_existing_keys(project_root):
    """Every params key a job lists exists (DVC fails on a missing params key)."""
    params = load_params(project_root / "params.yaml")
    data = yaml.safe_load((project_root / "params.yaml").read_text())
    for job in stages.jobs(params):
        for key in stages.param_keys(params, job):
            node = data
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, (job.dvc_name, key)
                node = node[part]
    (download,) = [job for job in stages.jobs(params) if job.dvc_name == "download-etth1"]
    assert stages.param_values(params, download) == {"data": params.data.model_dump(mode="json")}


def test_workspace_params_take_the_presets_job_lists(params_dict):
    smoke = workspace_params(params_dict, "smoke")
    params = parse_params(smoke)
    assert params.preset == "smoke"
    assert params.seeds == params_dict["presets"]["smoke"]["seeds"]
    assert params.datasets_in_jobs() == ["synthetic"]
    # the standard preset has no job lists of its own: the top-level ones stay
    assert workspace_params(params_dict, "standard")["jobs"] == params_dict["jobs"]


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("preset: [standard\n")
    with pytest.raises(ParamsError, match="params.yaml: not valid YAML"):
        load_params(path)


def test_yaml_tags_that_build_python_objects_are_refused(tmp_path):
    """The loader is yaml.safe_load: a params file cannot make it construct arbitrary objects."""
    path = tmp_path / "params.yaml"
    path.write_text("preset: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ParamsError, match="params.yaml: not valid YAML"):
        load_params(path)
