"""Snakefile and dvc.yaml may not drift apart: same stages, commands, outputs, settings and code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dvc.repo import Repo
from workflow_tools import sh, snakemake_plan

from seqbench.params import load_params
from seqbench.stages import STAGE_CODE, param_keys
from seqbench.workspace import create

LOG_REDIRECT = re.compile(r"\s*> logs/\S+ 2>&1$")
FAMILY_SUFFIX = re.compile(r"-(forecast|statistical|text|chars)$")


def code_files(stage: str, folder: Path) -> set[str]:
    files = set()
    for name in STAGE_CODE[stage]:
        path = folder / name
        files |= {str(p.relative_to(folder)) for p in path.glob("*.py")} if path.is_dir() else {name}
    return files


@pytest.fixture(scope="module")
def standard_project(project_root, tmp_path_factory) -> Path:
    """The standard preset: every dataset and every model family."""
    folder = create(project_root, tmp_path_factory.mktemp("consistency") / "project", "standard")
    sh(["dvc", "init", "--no-scm", "-q"], folder)
    return folder


def dvc_stages(folder: Path) -> dict[str, dict]:
    """command -> what DVC runs for it (name, outputs, params keys, other deps)."""
    stages = {}
    for stage in Repo(str(folder)).index.stages:
        params = [key for dep in stage.deps if hasattr(dep, "params") for key in dep.params]
        deps = {str(dep.def_path) for dep in stage.deps if not hasattr(dep, "params")}
        stages[stage.cmd] = {"name": stage.name, "outs": {str(o.def_path) for o in stage.outs},
                             "params": params, "deps": deps}
    return stages


def test_same_stages_commands_outputs_settings_and_code(standard_project):
    folder = standard_project
    dvc = dvc_stages(folder)
    jobs = [job for job in snakemake_plan(folder) if job.rule != "all"]
    assert {LOG_REDIRECT.sub("", job.shell) for job in jobs} == set(dvc)
    params = load_params(folder / "params.yaml")
    for job in jobs:
        stage = dvc[LOG_REDIRECT.sub("", job.shell)]
        # download-forecast@etth1 / train-text@imdb-transformer-0 / tracking-init -> the rule's name
        assert FAMILY_SUFFIX.sub("", stage["name"].split("@")[0]).replace("-", "_") == job.rule, stage["name"]
        assert stage["outs"] == set(job.outputs), job.rule
        wildcards = dict(re.findall(r"--(dataset|model) (\S+)", job.shell))
        assert stage["params"] == param_keys(job.rule, preset=params.preset, **wildcards), job.rule
        code = code_files(job.rule, folder)
        assert set(job.inputs) & code == code, job.rule
        # DVC lists code folders; Snakemake the .py files in them
        dvc_code = {d for d in stage["deps"] if d.startswith(("src/", "reports/"))} - {
            d for d in stage["deps"] if d.startswith("reports/") and d.endswith((".csv", ".md"))}
        assert dvc_code == set(STAGE_CODE[job.rule]), job.rule
        data_inputs = {i for i in job.inputs if i not in code}
        data_deps = stage["deps"] - dvc_code
        # DVC depends on the runs/ folder where Snakemake lists each run's files
        assert {("runs" if i.startswith("runs/") and job.rule in ("aggregate", "report") else i)
                for i in data_inputs} == data_deps, job.rule


def test_every_job_of_the_job_lists_is_planned(standard_project):
    params = load_params(standard_project / "params.yaml")
    planned = {job.outputs[0] for job in snakemake_plan(standard_project) if job.rule == "train"}
    assert planned == {f"runs/{j.dataset}/{j.model}/{j.regime}/seed{j.seed}/metrics.json" for j in params.train_jobs()}
    assert len(planned) == len(params.train_jobs())
