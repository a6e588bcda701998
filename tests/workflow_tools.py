"""Reading what the orchestrators plan: `snakemake -n -p` jobs and DVC's expanded stages."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BIN = str(Path(sys.executable).parent)


def sh(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command with the venv's tools first on PATH; fail with its output."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@dataclass
class PlannedJob:
    rule: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    shell: str = ""


def snakemake_plan(folder: Path, *targets: str) -> list[PlannedJob]:
    """Every job `snakemake -n -p` would run, with its inputs, outputs and shell command."""
    text = sh(["snakemake", "-n", "-p", "--cores", "2", *targets], folder).stdout
    jobs: list[PlannedJob] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            jobs.append(PlannedJob(stripped.split()[1].rstrip(":")))
        elif jobs and stripped.startswith(("input:", "output:")):
            key, _, value = stripped.partition(":")
            getattr(jobs[-1], key + "s").extend(v.strip() for v in value.split(","))
        elif jobs and stripped.startswith("Shell command:"):
            jobs[-1].shell = stripped.removeprefix("Shell command:").strip()
    return jobs


def planned_outputs(jobs: list[PlannedJob], rule: str) -> set[str]:
    """The first output of each planned job of a rule (a train job's metrics.json)."""
    return {job.outputs[0] for job in jobs if job.rule == rule}
