"""Reading what the orchestrators plan: `snakemake -n -p` jobs and DVC's expanded stages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BIN = str(Path(sys.executable).parent)


def sh(args: list[str], cwd: Path, timeout: int = 900, code_from: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command with the venv's tools first on PATH; fail with its output.

    code_from: run seqbench from that project's own src/ (an edited copy) instead of the installed one.
    SEQBENCH_MIRROR is dropped: workflow projects name their tiny raw files in data.mirrors."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SEQBENCH_MIRROR", None)
    if code_from is not None:
        env["PYTHONPATH"] = str(Path(code_from) / "src")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def set_keys(params_dict: dict, changes: dict) -> dict:
    """params_dict with each dotted key of `changes` (`training.threads.forecast`) set to its value."""
    for key, value in changes.items():
        node = params_dict
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return params_dict


def write_params(folder: Path, data: dict) -> None:
    """A project's new params.yaml, and its dvc.yaml regenerated for the new job lists (the CLI's way)."""
    (folder / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    sh([sys.executable, "-m", "seqbench", "dvc-yaml"], folder)


# The smoke workload shrunk to one seed and a few models of different kinds (parameter-free, dense,
# recurrent, every-step) on two datasets: the orchestration is under test; every model's training is
# tested in test_models.py / test_train.py, and `make smoke` runs the whole smoke workload.
SMOKE_MODELS = ["naive", "linear", "lstm", "seq2seq"]
SMOKE_DATASETS = ["synthetic", "cta"]


def smoke_project(root: Path, folder: Path, mirror: Path) -> Path:
    """A `seqbench workspace --preset smoke` folder with SMOKE_MODELS x SMOKE_DATASETS, one seed, the
    tiny raw files of `mirror`."""
    from seqbench.workspace import create

    create(root, folder, "smoke")
    data = yaml.safe_load((folder / "params.yaml").read_text())
    data["seeds"] = [0]
    data["jobs"]["forecast"] = {"datasets": SMOKE_DATASETS, "models": SMOKE_MODELS}
    data["jobs"]["statistical"] = {"datasets": [], "models": []}
    data["data"]["mirrors"] = [str(mirror)]
    write_params(folder, data)
    return folder


def copy_of(project: Path, tmp_path: Path) -> Path:
    """A copy of a finished project to change, in another place; copy2 keeps the mtimes Snakemake compares."""
    folder = tmp_path / "project"
    shutil.copytree(project, folder, symlinks=True)
    return folder


@dataclass
class PlannedJob:
    rule: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    shell: str = ""


def snakemake_plan(folder: Path, *targets: str, code_from: Path | None = None) -> list[PlannedJob]:
    """Every job `snakemake -n -p` would run, with its inputs, outputs and shell command."""
    text = sh(["snakemake", "-n", "-p", "--cores", "2", *targets], folder, code_from=code_from).stdout
    jobs: list[PlannedJob] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            jobs.append(PlannedJob(stripped.split()[1].rstrip(":")))
        elif jobs and stripped.startswith(("input:", "output:")):
            key, _, value = stripped.partition(":")
            # a flagged output is shown with its flag: "tuned/x.yaml (update)"
            getattr(jobs[-1], key + "s").extend(v.strip().removesuffix(" (update)") for v in value.split(","))
        elif jobs and stripped.startswith("Shell command:"):
            jobs[-1].shell = stripped.removeprefix("Shell command:").strip()
    return jobs


def planned_outputs(jobs: list[PlannedJob], rule: str) -> set[str]:
    """The first output of each planned job of a rule (a train job's metrics.json)."""
    return {job.outputs[0] for job in jobs if job.rule == rule}
