"""The stage graph is described once (seqbench.stages): dvc.yaml is generated from it, Snakemake builds its
rules from it, and a job's code is the import closure of its stage, dataset and model, never a list.

The rerun tests edit a source file in a copy of a finished smoke project (which holds its own src/) and
ask each tool what it would run: exactly the jobs that read the edited code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflow_tools import copy_of, planned_outputs, sh, snakemake_plan

from seqbench import codedeps, dvcfile, stages
from seqbench.params import load_params

RECURRENT = ("lstm", "seq2seq")  # the smoke projects' models that run through models/cells.cpp


def test_the_committed_dvc_yaml_is_the_generated_one(project_root):
    params = load_params(project_root / "params.yaml")
    assert (project_root / "dvc.yaml").read_text() == dvcfile.render(params), "run `make dvc-yaml` and commit"


def test_regenerating_dvc_yaml_through_the_cli_changes_nothing(project_root, tmp_path):
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_text((project_root / name).read_text())
    sh(["python", "-m", "seqbench", "dvc-yaml"], tmp_path)
    assert (tmp_path / "dvc.yaml").read_text() == (project_root / "dvc.yaml").read_text()


def job(params, name: str) -> stages.Job:
    (found,) = [j for j in stages.jobs(params) if j.dvc_name == name]
    return found


def test_a_jobs_code_is_its_stage_dataset_and_model(project_root):
    params = load_params(project_root / "params.yaml")
    gru, linear = job(params, "train-etth1-gru-protocol-0"), job(params, "train-etth1-linear-protocol-0")
    for code in (stages.code(gru), stages.code(linear)):
        # what every training job runs, including modules no hand list ever named
        assert {"src/seqbench/train.py", "src/seqbench/loop.py", "src/seqbench/windows.py", "src/seqbench/tasks.py",
                "src/seqbench/io.py", "src/seqbench/paths.py", "src/seqbench/datasets/ett.py"} <= set(code)
        assert "src/seqbench/datasets/cta.py" not in code
    assert {"src/seqbench/models/recurrent.py", "src/seqbench/models/cells.py",
            "src/seqbench/models/cells.cpp"} <= set(stages.code(gru))
    assert not {"src/seqbench/models/recurrent.py", "src/seqbench/models/cells.cpp"} & set(stages.code(linear))
    # a dataset's own module is code of that dataset's data stages only
    assert "src/seqbench/datasets/cta.py" in stages.code(job(params, "download-cta"))
    assert "src/seqbench/datasets/cta.py" not in stages.code(job(params, "download-etth1"))
    # settings schemas reach jobs as values; the configure stage, which makes those values, reads them
    assert "src/seqbench/models/settings.py" not in stages.code(gru)
    assert {"src/seqbench/models/settings.py", "src/seqbench/params.py"} <= set(stages.code(job(params, "configure")))


def test_the_plugin_rule_hides_only_plugin_modules():
    """Leaving other datasets' and models' modules out must not drop anything else they import."""
    for entry in ("seqbench.train", "seqbench.features", "seqbench.aggregate", "seqbench.report", "seqbench.download"):
        every = set(codedeps.closure(entry, follow_plugins=True))
        kept = set(codedeps.closure(entry))
        hidden = {codedeps.module_name(path) for path in every - kept if path.suffix == ".py"}
        assert all(codedeps.is_plugin(name) for name in hidden), (entry, hidden)


# --- what each tool reruns after an edit --------------------------------------------------------------
def edit(folder: Path, relative: str, old: str, new: str) -> None:
    path = folder / relative
    text = path.read_text()
    assert old in text, (relative, old)
    path.write_text(text.replace(old, new, 1))


TUNED = ("linear", "lstm", "seq2seq")  # the smoke projects' models with a search space
ALL = ("naive", "linear", "lstm", "seq2seq")


def train_outputs(models, datasets=("synthetic", "cta")) -> set[str]:
    """Each model's training jobs in both regimes (the tuned regime where the model has a search space)."""
    return {f"runs/{d}/{m}/{r}/seed0/metrics.json" for d in datasets for m in models
            for r in ("protocol", "tuned") if r == "protocol" or m in TUNED}


def train_stages(models, datasets=("synthetic", "cta")) -> set[str]:
    return {f"train-{d}-{m}-{r}-0" for d in datasets for m in models for r in ("protocol", "tuned")
            if r == "protocol" or m in TUNED}


def tunes(models, datasets=("synthetic", "cta"), dvc: bool = False) -> set[str]:
    return {(f"tune-{d}-{m}" if dvc else f"tuned/{d}/{m}.yaml") for d in datasets for m in models if m in TUNED}


def dvc_changed(folder: Path) -> set[str]:
    return set(json.loads(sh(["dvc", "status", "--json"], folder).stdout))


@pytest.mark.slow
def test_editing_the_recurrent_kernels_reruns_only_the_recurrent_models(snakemake_project, dvc_project, tmp_path):
    smk = copy_of(snakemake_project, tmp_path / "smk")
    edit(smk, "src/seqbench/models/cells.cpp", "#include", "// edited\n#include")
    plan = snakemake_plan(smk)
    assert planned_outputs(plan, "train") == train_outputs(RECURRENT)
    assert planned_outputs(plan, "tune") == tunes(RECURRENT)  # the searches of those models too
    assert {j.rule for j in plan} == {"tune", "configure", "train", "aggregate", "report", "all"}
    dvc = copy_of(dvc_project, tmp_path / "dvc")
    edit(dvc, "src/seqbench/models/cells.cpp", "#include", "// edited\n#include")
    assert dvc_changed(dvc) == train_stages(RECURRENT) | tunes(RECURRENT, dvc=True)


@pytest.mark.slow
def test_editing_the_window_code_reruns_features_and_every_forecast_job(snakemake_project, dvc_project, tmp_path):
    smk = copy_of(snakemake_project, tmp_path / "smk")
    edit(smk, "src/seqbench/windows.py", '"""', '"""Edited. ')
    plan = snakemake_plan(smk)
    assert planned_outputs(plan, "features") == {"data/features/synthetic", "data/features/cta"}
    assert planned_outputs(plan, "train") == train_outputs(ALL)
    assert {j.rule for j in plan} == {"features", "tune", "configure", "train", "aggregate", "report", "all"}
    dvc = copy_of(dvc_project, tmp_path / "dvc")
    edit(dvc, "src/seqbench/windows.py", '"""', '"""Edited. ')
    assert dvc_changed(dvc) == {"features-synthetic", "features-cta"} | train_stages(ALL) | tunes(ALL, dvc=True)


@pytest.mark.slow
def test_editing_one_datasets_module_reruns_only_that_datasets_stages(snakemake_project, dvc_project, tmp_path):
    smk = copy_of(snakemake_project, tmp_path / "smk")
    edit(smk, "src/seqbench/datasets/cta.py", '"""', '"""Edited. ')
    plan = snakemake_plan(smk)
    assert {j.rule for j in plan} == {"download", "standardize", "split", "features", "tune", "configure", "train",
                                      "aggregate", "report", "all"}
    for rule in ("download", "standardize", "split", "features", "tune", "train"):
        assert all("/cta" in out for out in planned_outputs(plan, rule)), rule
    assert planned_outputs(plan, "train") == train_outputs(ALL, ("cta",))
    dvc = copy_of(dvc_project, tmp_path / "dvc")
    edit(dvc, "src/seqbench/datasets/cta.py", '"""', '"""Edited. ')
    assert all("cta" in name for name in dvc_changed(dvc))


@pytest.mark.slow
def test_editing_one_models_default_in_code_reruns_only_that_models_jobs(snakemake_project, dvc_project, tmp_path):
    old, new = "units: PositiveInt = 16  # Chollet", "units: PositiveInt = 5  # Chollet"
    smk = copy_of(snakemake_project, tmp_path / "smk")
    edit(smk, "src/seqbench/models/settings.py", old, new)
    plan = snakemake_plan(smk, code_from=smk)  # the Snakefile resolves settings with the edited code
    assert planned_outputs(plan, "train") == train_outputs(("lstm",))
    assert planned_outputs(plan, "tune") == tunes(("lstm",))  # its searches start from the protocol's settings
    assert {j.rule for j in plan} == {"tune", "configure", "train", "aggregate", "report", "all"}
    dvc = copy_of(dvc_project, tmp_path / "dvc")
    edit(dvc, "src/seqbench/models/settings.py", old, new)
    # configure writes every job's resolved settings: only lstm's change, so only lstm's protocol jobs go stale
    # (its tuned jobs follow their searches' files), and every search, as DVC hashes the schemas (a search
    # whose inputs did not change keeps its file: test_tune)
    sh(["dvc", "repro", "--single-item", "configure"], dvc, code_from=dvc)
    assert json.loads((dvc / "config/cta/lstm/protocol.json").read_text())["model"]["units"] == 5
    unchanged = "config/cta/linear/protocol.json"
    assert (dvc / unchanged).read_bytes() == (dvc_project / unchanged).read_bytes()
    protocol_jobs = {stage for stage in train_stages(("lstm",)) if "-protocol-" in stage}
    assert dvc_changed(dvc) == protocol_jobs | tunes(TUNED, dvc=True)


@pytest.mark.parametrize("stage_name", list(stages.STAGES))
def test_every_stage_has_a_command_of_the_cli(stage_name):
    from seqbench.cli import app

    commands = {command.name or command.callback.__name__.replace("_", "-") for command in app.registered_commands}
    assert stages.STAGES[stage_name].command.split()[3] in commands
