"""Shared fixtures: the project's own params.yaml, shrunk for tests (never a fake config)."""

from __future__ import annotations

import copy
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (pytest.mark.usefixtures): tiny tensors gain nothing from intra-op
    threads, and the test machine is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def params_dict() -> dict:
    """A fresh copy of the real params.yaml as a dict, to shrink or break in a test."""
    return copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp project folder holding a copy of params.yaml with `preset: smoke`; cwd is set to it."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preset"] = "smoke"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def copy_project_files(dest: Path, names=("params.yaml",)) -> None:
    for name in names:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)


@pytest.fixture(scope="session")
def smoke_mirror(tmp_path_factory) -> Path:
    """Tiny raw files, in their real formats, of the datasets the workflow projects use."""
    import rawdata

    return rawdata.make_mirror(tmp_path_factory.mktemp("smoke-mirror"), datasets=("cta",))


@pytest.fixture(scope="session")
def finished_projects(project_root, smoke_mirror, tmp_path_factory) -> dict[str, Path]:
    """The shrunk smoke workload finished twice, side by side: by a plain `snakemake` (the default profile
    applies) and by `dvc repro` in a git repository. DVC runs one stage at a time, so alone it would leave
    a core idle for minutes."""
    from workflow_tools import sh, smoke_project

    smk = smoke_project(project_root, tmp_path_factory.mktemp("smk") / "project", smoke_mirror)
    dvc = smoke_project(project_root, tmp_path_factory.mktemp("dvc") / "project", smoke_mirror)
    sh(["git", "init", "-q"], dvc)
    sh(["dvc", "init", "-q"], dvc)
    with ThreadPoolExecutor(2) as pool:
        # 4 parallel jobs against an empty store: first-time MLflow initialization must not race
        runs = [pool.submit(sh, ["snakemake", "--cores", "4"], smk), pool.submit(sh, ["dvc", "repro"], dvc, 1500)]
        for run in runs:
            run.result()
    return {"snakemake": smk, "dvc": dvc}


@pytest.fixture(scope="session")
def snakemake_project(finished_projects) -> Path:
    """The smoke workload finished by a plain `snakemake`."""
    return finished_projects["snakemake"]


@pytest.fixture(scope="session")
def dvc_project(finished_projects) -> Path:
    """The same workload finished by `dvc repro`."""
    return finished_projects["dvc"]
