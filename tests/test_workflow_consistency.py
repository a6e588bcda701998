"""Snakemake and DVC run the same graph: both read it from seqbench.stages, and this checks what each
tool actually makes of it on the standard preset (every dataset, every model family)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dvc.repo import Repo
from workflow_tools import sh, snakemake_plan

from seqbench import stages
from seqbench.params import load_params
from seqbench.workspace import create

LOG_REDIRECT = re.compile(r"\s*> logs/\S+ 2>&1$")


@pytest.fixture(scope="module")
def standard_project(project_root, tmp_path_factory) -> Path:
    folder = create(project_root, tmp_path_factory.mktemp("consistency") / "project", "standard")
    sh(["dvc", "init", "--no-scm", "-q"], folder)
    return folder


def dvc_stages(folder: Path) -> dict[str, dict]:
    """command -> what DVC runs for it (name, outputs, params keys, other deps)."""
    found = {}
    for stage in Repo(str(folder)).index.stages:
        params = [key for dep in stage.deps if hasattr(dep, "params") for key in dep.params]
        deps = {str(dep.def_path) for dep in stage.deps if not hasattr(dep, "params")}
        found[stage.cmd] = {"name": stage.name, "outs": {str(o.def_path) for o in stage.outs},
                            "params": params, "deps": deps}
    return found


def test_both_tools_run_the_tables_jobs(standard_project):
    params = load_params(standard_project / "params.yaml")
    table = {stages.command(params, job): job for job in stages.jobs(params)}
    dvc = dvc_stages(standard_project)
    planned = [job for job in snakemake_plan(standard_project) if job.rule != "all"]
    assert {LOG_REDIRECT.sub("", job.shell) for job in planned} == set(dvc) == set(table)
    for smk in planned:
        command = LOG_REDIRECT.sub("", smk.shell)
        job, theirs = table[command], dvc[command]
        assert smk.rule == job.stage.name and theirs["name"] == job.dvc_name
        assert set(smk.outputs) == theirs["outs"] == set(stages.outputs(params, job)), command
        inputs = {*stages.code(job), *job.stage.inputs(params, job.wildcards)}
        assert set(smk.inputs) == inputs, command
        # DVC also hashes what Snakemake compares as params (a training job's resolved settings)
        assert theirs["deps"] == set(stages.dvc_deps(params, job)) >= inputs, command
        assert theirs["params"] == stages.param_keys(params, job), command


def test_every_job_of_the_job_lists_is_planned(standard_project):
    params = load_params(standard_project / "params.yaml")
    planned = {job.outputs[0] for job in snakemake_plan(standard_project) if job.rule == "train"}
    assert planned == {f"runs/{j.dataset}/{j.model}/{j.regime}/seed{j.seed}/metrics.json" for j in params.train_jobs()}
    assert len(planned) == len(params.train_jobs())
