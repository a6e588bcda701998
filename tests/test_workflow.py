"""Both orchestrators, for real, on the smoke workload in temporary project folders.

One Snakemake project and one DVC project are built once per module (a few minutes on 2 cores); the
tests then check what the issue asks: completion, nothing rerun, targeted reruns after a settings
change, a clean `dvc status`, and the same files and metrics from both tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from workflow_tools import BIN, copy_of, planned_outputs, sh, snakemake_plan, write_params

from seqbench.params import load_params

pytestmark = pytest.mark.slow

# fields that hold wall-clock measurements or per-run identifiers, not results
VOLATILE = {"train_seconds", "seconds_per_epoch", "peak_memory_mb", "mlflow_run_id", "cost", "tags"}


# each tool's own bookkeeping inside output folders, not outputs
BOOKKEEPING = {".snakemake_timestamp", ".gitignore"}


def outputs(folder: Path) -> set[str]:
    found = set()
    for top in ("data", "runs", "reports", "tuned", "config"):
        for path in (folder / top).rglob("*"):
            if path.is_file() and path.name not in BOOKKEEPING and "__pycache__" not in path.parts:
                found.add(str(path.relative_to(folder)))
    return found


def stable(metrics: dict) -> dict:
    """metrics.json without timings and identifiers."""
    if isinstance(metrics, dict):
        return {k: stable(v) for k, v in metrics.items() if k not in VOLATILE}
    return metrics


def test_snakemake_completes_every_job(snakemake_project):
    params = load_params(snakemake_project / "params.yaml")
    for _, dataset, model, seed, _ in params.train_jobs():
        metrics = json.loads((snakemake_project / f"runs/{dataset}/{model}/protocol/seed{seed}/metrics.json").read_text())
        assert metrics["status"] == "ok", (dataset, model, metrics)
    assert (snakemake_project / "reports/comparison.html").stat().st_size > 10_000


def test_report_on_the_smoke_results(snakemake_project):
    """The real template, executed by the report stage on real smoke runs: leaderboards equal summary.csv."""
    from test_report import check_leaderboards

    assert check_leaderboards(snakemake_project) == 5  # synthetic: next_step, h12; cta: next_day, multivariate, 14_day
    page = (snakemake_project / "reports/comparison.html").read_text()
    assert re.search(r"""id=["']dataset-synthetic["']""", page)
    assert re.search(r'<img [^>]*src="data:image/png;base64,', page) and 'class="jp-InputArea' not in page


def test_a_plain_snakemake_keeps_going_past_a_job_that_dies(snakemake_project, tmp_path):
    """The project's profile (profiles/default, where Snakemake looks for it) is used without being named:
    a job that dies (here: its process exits at once, as when it is killed) does not stop the others."""
    folder = copy_of(snakemake_project, tmp_path)
    code = folder / "src/seqbench/models/dense.py"  # among the smoke models, only linear's code
    text = code.read_text()
    assert "def build_linear(" in text
    code.write_text(text.replace("def build_linear(task", "def build_linear(task, *_, _exit=__import__('os')._exit):\n"
                                 "    _exit(3)\n\n\ndef _unused_linear(task"))
    dying, other = "runs/cta/linear/protocol/seed0/metrics.json", "runs/synthetic/naive/protocol/seed0/metrics.json"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(folder / "src"))
    env.pop("SEQBENCH_MIRROR", None)
    # one core, the dying job first: without keep-going the other job would never start after it
    result = subprocess.run(["snakemake", "--cores", "1", "--prioritize", dying, "--forcerun", other], cwd=folder,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode != 0
    assert "Using workflow specific profile profiles/default" in result.stdout + result.stderr
    assert not (folder / dying).exists()
    rerun = folder / other
    assert rerun.stat().st_mtime > (snakemake_project / other).stat().st_mtime
    assert json.loads(rerun.read_text())["status"] == "ok"


def test_second_snakemake_call_runs_nothing(snakemake_project):
    result = sh(["snakemake", "--cores", "2"], snakemake_project)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_deleted_leaderboard_is_made_again(snakemake_project, tmp_path):
    """leaderboard.md is committed and read by users, but no later job reads it after the report:
    deleting it must still bring back the aggregate (and the report, whose input it is)."""
    folder = copy_of(snakemake_project, tmp_path)
    (folder / "reports/leaderboard.md").unlink()
    assert {job.rule for job in snakemake_plan(folder)} == {"aggregate", "report", "all"}


def test_changing_one_model_reruns_only_its_jobs_and_the_report(snakemake_project, tmp_path):
    folder = copy_of(snakemake_project, tmp_path)
    data = yaml.safe_load((folder / "params.yaml").read_text())
    data["models"]["lstm"] = {"units": 7}
    write_params(folder, data)
    plan = snakemake_plan(folder)
    # the tuned regime's lstm jobs too: their searches start from the protocol's settings
    assert planned_outputs(plan, "train") == {f"runs/{d}/lstm/{r}/seed0/metrics.json" for d in ("synthetic", "cta")
                                              for r in ("protocol", "tuned")}
    assert planned_outputs(plan, "tune") == {"tuned/synthetic/lstm.yaml", "tuned/cta/lstm.yaml"}
    assert {job.rule for job in plan} == {"tune", "configure", "train", "aggregate", "report", "all"}


def test_changing_one_search_space_reruns_its_searches_its_tuned_jobs_and_the_report(snakemake_project, tmp_path):
    folder = copy_of(snakemake_project, tmp_path)
    data = yaml.safe_load((folder / "params.yaml").read_text())
    data["search_spaces"]["lstm"]["units"] = {"int": [8, 16]}
    write_params(folder, data)
    plan = snakemake_plan(folder)
    assert planned_outputs(plan, "tune") == {"tuned/synthetic/lstm.yaml", "tuned/cta/lstm.yaml"}
    assert planned_outputs(plan, "train") == {"runs/synthetic/lstm/tuned/seed0/metrics.json",
                                              "runs/cta/lstm/tuned/seed0/metrics.json"}
    assert {job.rule for job in plan} == {"tune", "configure", "train", "aggregate", "report", "all"}


def with_model_added(folder: Path, model: str) -> None:
    """One more model in the forecast job list: new jobs (tracking_init does not rerun for them)."""
    data = yaml.safe_load((folder / "params.yaml").read_text())
    data["jobs"]["forecast"]["models"].append(model)
    write_params(folder, data)


def test_a_model_added_to_the_job_list_trains_only_its_own_jobs_in_snakemake(snakemake_project, tmp_path):
    folder = copy_of(snakemake_project, tmp_path)
    with_model_added(folder, "mlp")
    plan = snakemake_plan(folder)
    assert planned_outputs(plan, "train") == {f"runs/{d}/mlp/{r}/seed0/metrics.json" for d in ("synthetic", "cta")
                                              for r in ("protocol", "tuned")}
    assert planned_outputs(plan, "tune") == {"tuned/synthetic/mlp.yaml", "tuned/cta/mlp.yaml"}
    assert {job.rule for job in plan} == {"tune", "configure", "train", "aggregate", "report", "all"}


def test_a_model_added_to_the_job_list_trains_only_its_own_jobs_in_dvc(dvc_project, tmp_path):
    folder = copy_of(dvc_project, tmp_path)  # nothing recorded may depend on the folder's path
    with_model_added(folder, "mlp")
    ran = re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], folder, timeout=1500).stdout)
    assert sorted(ran) == ["aggregate", "configure", "report", "train-cta-mlp-protocol-0", "train-cta-mlp-tuned-0",
                           "train-synthetic-mlp-protocol-0", "train-synthetic-mlp-tuned-0", "tune-cta-mlp",
                           "tune-synthetic-mlp"], ran


def test_dvc_repro_completes_and_status_is_clean(dvc_project):
    result = sh(["dvc", "status"], dvc_project)
    assert "Data and pipelines are up to date" in result.stdout
    shown = sh(["dvc", "metrics", "show", "--json"], dvc_project).stdout
    assert "runs/synthetic/lstm/protocol/seed0/metrics.json" in shown


def test_snakemake_and_dvc_agree(snakemake_project, dvc_project):
    smk, dvc = outputs(snakemake_project), outputs(dvc_project)
    assert smk == dvc
    searches = sorted((snakemake_project / "tuned").rglob("*.yaml"))
    assert [p.relative_to(snakemake_project) for p in searches] == [
        Path(f"tuned/{d}/{m}.yaml") for d in ("cta", "synthetic") for m in ("linear", "lstm", "seq2seq")]
    for path in searches:  # the same seeded searches: the same trials and choice
        a = yaml.safe_load(path.read_text())
        b = yaml.safe_load((dvc_project / path.relative_to(snakemake_project)).read_text())
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert (snakemake_project / "runs/tracking.json").read_text() == (dvc_project / "runs/tracking.json").read_text()
    params = load_params(snakemake_project / "params.yaml")
    for _, dataset, model, seed, _ in params.train_jobs():
        name = f"runs/{dataset}/{model}/protocol/seed{seed}/metrics.json"
        a = stable(json.loads((snakemake_project / name).read_text()))
        b = stable(json.loads((dvc_project / name).read_text()))
        assert a == b, name


def make_recipe(makefile: Path, target: str) -> list[str]:
    """The shell lines of one Makefile target."""
    lines = makefile.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().removeprefix("@"))  # @: make's "do not echo", not part of the command
    return recipe


def test_make_lock_records_a_snakemake_run_for_dvc_and_leaves_snakemake_nothing_to_do(project_root,
                                                                                       snakemake_project, tmp_path):
    """`make lock`: on the real data `dvc commit` rewrites the outputs it caches (fresh mtimes, in DVC's
    order), after which Snakemake would rerun every job whose inputs now look newer; the re-stamp after
    it must leave both tools up to date."""
    folder = copy_of(snakemake_project, tmp_path)
    sh(["dvc", "init", "--no-scm", "-q"], folder)
    recipe = make_recipe(project_root / "Makefile", "lock")
    guard, commit_and_touch = recipe[0], recipe[1:]
    assert "snakemake -n" in guard and commit_and_touch, recipe
    sh(["bash", "-c", guard], folder)  # the run is finished: lock goes ahead
    # At this size DVC leaves the features folder alone (and Snakemake checksums files under 1 MB), so
    # the out-of-order stamp that the real run gets from `dvc commit` is made here by hand.
    (folder / "data/features/synthetic/.snakemake_timestamp").touch()
    stale = sh(["snakemake", "-n", "--cores", "1"], folder)
    assert "Nothing to be done" not in stale.stdout + stale.stderr
    for command in commit_and_touch:
        sh(["bash", "-c", command], folder)
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], folder).stdout
    result = sh(["snakemake", "-n", "--cores", "1"], folder)
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]
    assert (folder / "dvc.lock").read_text().count("md5:") > 10


def test_make_lock_refuses_while_snakemake_has_jobs_left(project_root, snakemake_project, tmp_path):
    """Locking an unfinished run would record stale outputs in dvc.lock and stamp them newer than their
    fresh inputs, so the next run would redo everything downstream: `make lock` stops first."""
    folder = copy_of(snakemake_project, tmp_path)
    sh(["dvc", "init", "--no-scm", "-q"], folder)
    (folder / "reports/comparison.html").unlink()  # the report job has not run (e.g. a job before it failed)
    guard = make_recipe(project_root / "Makefile", "lock")[0]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", "-c", guard], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "make lock: Snakemake has jobs left (snakemake -n); finish them with make run first" in result.stderr
    assert not (folder / "dvc.lock").exists()
