"""The cluster path, for real, on this machine: the smoke workload through SLURM (`sbatch` for every job,
`sacct` for their states) with the shipped workflow profile, training against an MLflow server on
PostgreSQL; that server under concurrent training jobs, beside the SQLite store; and the outputs
through a DVC remote into a fresh clone that neither tool wants to rerun.

`make test-cluster` runs it (root: it installs and starts the daemons, see tests/cluster/daemons.py).
The tests run in this order and share one smoke run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ENABLED, ROOT, SKIP_REASON, run, sacct
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from seqbench.params import load_params
from seqbench.resources import load_measurements, train_resources

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not ENABLED, reason=SKIP_REASON)]

LOAD_JOBS = int(os.environ.get("SEQBENCH_LOAD_JOBS", "8"))
LOAD_EPOCHS = 20
LOAD_MODEL = "linear"


def job_runs(client: MlflowClient, dataset: str = "synthetic") -> list:
    experiment = client.get_experiment_by_name(dataset)
    assert experiment is not None, f"no experiment {dataset!r} in {client.tracking_uri}"
    return client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.kind` = 'job'",
                              run_view_type=ViewType.ACTIVE_ONLY, max_results=5000)


def test_every_job_ran_through_slurm_and_completed(smoke):
    assert smoke.planned.get("train", 0) >= 30, smoke.planned
    by_rule: dict[str, int] = {}
    for row in smoke.jobs:
        rule = row["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        by_rule[rule] = by_rule.get(rule, 0) + 1
    assert by_rule == smoke.planned, f"sacct's jobs by rule {by_rule} != the planned jobs {smoke.planned}"
    not_completed = [(r["JobID"], r["Comment"], r["State"]) for r in smoke.jobs if r["State"] != "COMPLETED"]
    assert not not_completed
    assert "Nothing to be done" in run(["snakemake", "-n", "--workflow-profile", "workflow/profiles/slurm"],
                                       smoke.project, dict(os.environ)).stdout


def test_training_jobs_asked_for_the_derived_resources(smoke):
    """sbatch got what seqbench.resources derives from params.yaml and the main project's measured costs."""
    params = load_params(smoke.project / "params.yaml")
    measured = load_measurements(ROOT / "reports")
    train = {row["Comment"]: row for row in smoke.jobs if row["Comment"].startswith("rule_train_")}
    assert len(train) == smoke.planned["train"]
    for job in params.train_jobs():
        # the plugin's comment: the rule and the wildcard values (dataset, model, regime, seed) joined by _
        row = train[f"rule_train_wildcards_{job.dataset}_{job.model}_{job.regime}_{job.seed}"]
        expected = train_resources(params, job.dataset, job.model, measured)
        hours, minutes = divmod(expected["runtime"], 60)
        assert (row["ReqMem"], row["ReqCPUS"], row["Timelimit"]) == (
            f"{expected['mem_mb']}M", str(expected["cpus_per_task"]), f"{hours:02d}:{minutes:02d}:00"), row


def test_tracking_server_has_one_finished_run_per_training_job(smoke, cluster, report):
    params = load_params(smoke.project / "params.yaml")
    assert json.loads((smoke.project / "runs" / "tracking.json").read_text()) == {"store": cluster.tracking_uri}
    assert not (smoke.project / "mlflow.db").exists(), "a job wrote to an SQLite store instead of the server"
    runs = job_runs(MlflowClient(cluster.tracking_uri))
    keys = [(r.data.tags["model"], int(r.data.tags["seed"]), r.data.tags["regime"]) for r in runs]
    planned = [(j.model, j.seed, j.regime) for j in params.train_jobs()]
    report["mlflow_job_runs"] = len(runs)
    report["train_jobs"] = len(planned)
    assert sorted(keys) == sorted(planned)  # none lost, none twice
    assert {r.info.status for r in runs} == {"FINISHED"}
    recorded = {json.loads((smoke.project / "runs" / "synthetic" / m / g / f"seed{s}" / "metrics.json").read_text())
                ["mlflow_run_id"] for m, s, g in planned}
    assert recorded == {r.info.run_id for r in runs}


# --- the tracking store under concurrent training jobs ---------------------------------------------
def load_project(smoke, folder: Path) -> Path:
    """A project with the smoke run's features whose jobs train LOAD_EPOCHS epochs (patience as long)."""
    folder.mkdir()
    data = yaml.safe_load((smoke.project / "params.yaml").read_text())
    data["presets"]["smoke"].update(max_epochs=LOAD_EPOCHS, patience=LOAD_EPOCHS)
    (folder / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copytree(smoke.project / "data" / "features", folder / "data" / "features")
    return folder


def run_load(cluster, smoke, project: Path, uri: str | None, first_seed: int) -> dict:
    env = cluster.env(**({"MLFLOW_TRACKING_URI": uri} if uri else {}))
    run([sys.executable, "-m", "seqbench", "tracking-init"], project, env)
    params = load_params(project / "params.yaml")
    resources = train_resources(params, "synthetic", LOAD_MODEL, load_measurements(smoke.project / "reports"))
    out = project / f"load-{first_seed}"
    out.mkdir()
    script = Path(__file__).with_name("timed_train.py")
    job = run(["sbatch", "--parsable", f"--array=0-{LOAD_JOBS - 1}", "--oversubscribe", "--cpus-per-task=1",
               f"--mem={resources['mem_mb']}", "--time=30", f"--output={out}/%a.log",
               f"--wrap={sys.executable} {script} {project} synthetic {LOAD_MODEL} {first_seed} {out}"],
              project, env).stdout.strip()
    began = time.monotonic()
    while True:
        rows = [r for r in sacct(cluster, "-j", job) if "_" in r["JobID"] and "[" not in r["JobID"]]
        if len(rows) == LOAD_JOBS and all(r["State"] not in ("PENDING", "RUNNING") for r in rows):
            break
        assert time.monotonic() - began < 900, f"load jobs still running after 15 min: {rows}"
        time.sleep(3)
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    return {"job": job, "states": {r["JobID"]: r["State"] for r in rows}, "results": results,
            "wall_s": round(time.monotonic() - began, 1)}


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def check_runs(client: MlflowClient, project: Path, seeds: range, results: list[dict]) -> None:
    """One FINISHED run per seed, holding every epoch's losses of its metrics.json and its test metrics."""
    runs = [r for r in job_runs(client) if r.data.tags["model"] == LOAD_MODEL and int(r.data.tags["seed"]) in seeds]
    assert sorted(int(r.data.tags["seed"]) for r in runs) == list(seeds)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.info.run_id for r in runs} == {res["run_id"] for res in results}
    for r in runs:
        metrics = json.loads((project / "runs" / "synthetic" / LOAD_MODEL / "protocol" / f"seed{r.data.tags['seed']}"
                              / "metrics.json").read_text())
        for task, result in metrics["tasks"].items():
            for key in (f"{task}/train_loss", f"{task}/val_loss"):
                steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, key))
                assert steps == list(range(1, result["epochs"] + 1)), (r.info.run_id, key, steps)
            assert f"{task}/test_mae" in r.data.metrics


def summarize(load: dict) -> dict:
    results = load["results"]
    latencies = np.array([c["seconds"] for res in results for c in res["calls"] if c["kind"] == "metrics"]) * 1000
    return {
        "jobs": LOAD_JOBS, "concurrent": max_overlap([(r["first_call"], r["last_call"]) for r in results]),
        "runs_written": sum(r["run_id"] is not None for r in results),
        "errors": sum(len(r["errors"]) for r in results) + sum(r["status"] != "ok" for r in results),
        "log_metrics_calls": int(latencies.size), "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1), "max_ms": round(float(latencies.max()), 1),
        "wall_s": load["wall_s"], "slurm_states": sorted(set(load["states"].values())),
    }


@pytest.mark.parametrize("store", ["postgresql-server", "sqlite-file"])
def test_tracking_store_under_concurrent_training_jobs(smoke, cluster, report, store):
    project = cluster.root / f"load-{store}"
    if not project.exists():
        load_project(smoke, project)
    server = store == "postgresql-server"
    first_seed = 100 if server else 200
    load = run_load(cluster, smoke, project, cluster.tracking_uri if server else None, first_seed)
    figures = dict(summarize(load), load_average=[round(x, 1) for x in os.getloadavg()])
    report.setdefault("load", {})[store] = figures
    failed = [(r["seed"], r["status"][-500:], r["errors"][:3]) for r in load["results"] if r["status"] != "ok"]
    assert not failed and len(load["results"]) == LOAD_JOBS
    assert figures["errors"] == 0 and figures["slurm_states"] == ["COMPLETED"]
    assert figures["concurrent"] >= min(LOAD_JOBS, 8), figures
    assert (project / "mlflow.db").exists() != server, "the jobs wrote to the other store"
    client = MlflowClient(cluster.tracking_uri if server else f"sqlite:///{project / 'mlflow.db'}")
    check_runs(client, project, range(first_seed, first_seed + LOAD_JOBS), load["results"])


# --- DVC remote round trip -------------------------------------------------------------------------
# What git keeps: everything but DVC's cached outputs. The outputs dvc.yaml marks `cache: false` (each job's
# metrics.json and history.csv, runs/tracking.json, the reports) reach no DVC remote, so git must hold them.
GITIGNORE = """\
.snakemake/
__pycache__/
/logs/
/mlflow.db
/mlartifacts/
/data/
/runs/**/checkpoint.pt
/runs/**/predictions.parquet
"""


def digests(project: Path) -> dict[str, str]:
    files = [p for pattern in ("runs/**/*", "reports/*", "data/**/*") for p in project.glob(pattern) if p.is_file()]
    return {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def plan_summary(text: str) -> str:
    """The job stats table of `snakemake -n`, or its 'Nothing to be done' line."""
    if "Job stats:" in text:
        return text.split("Job stats:", 1)[1].split("\n\n", 1)[0].strip()
    return next((line for line in text.splitlines() if "Nothing to be done" in line), text[-500:])


def test_dvc_remote_round_trip_leaves_nothing_to_rerun(smoke, cluster, report):
    project, clone, remote = smoke.project, cluster.root / "clone", cluster.root / "dvc-remote"
    env = dict(cluster.env(), GIT_AUTHOR_NAME="seqbench", GIT_AUTHOR_EMAIL="seqbench@localhost",
               GIT_COMMITTER_NAME="seqbench", GIT_COMMITTER_EMAIL="seqbench@localhost")
    began = time.monotonic()
    (project / ".gitignore").write_text(GITIGNORE)
    run(["git", "init", "-q"], project, env)
    run(["dvc", "init", "-q"], project, env)
    # `make lock`: record the finished Snakemake run for DVC, then re-stamp the outputs in dependency order
    run(["dvc", "commit", "--force", "-q"], project, env)
    run(["snakemake", "--touch", "--cores", "1", "--quiet"], project, env)
    run(["dvc", "remote", "add", "-d", "storage", str(remote)], project, env)
    run(["dvc", "push", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "smoke run on the test cluster"], project, env)
    run(["git", "clone", "-q", str(project), str(clone)], cluster.root, env)
    run(["dvc", "pull", "-q"], clone, env)
    status = run(["dvc", "status"], clone, env).stdout
    before_touch = plan_summary(run(["snakemake", "-n"], clone, env).stdout)
    # the pulled files carry fresh times in checkout order: re-stamp them in dependency order
    run(["snakemake", "--touch", "--cores", "1", "--quiet"], clone, env)
    after_touch = plan_summary(run(["snakemake", "-n"], clone, env).stdout)
    status_after_touch = run(["dvc", "status"], clone, env).stdout
    report["dvc_round_trip_s"] = round(time.monotonic() - began, 1)
    report["dvc_status_after_pull"] = status.strip()
    report["snakemake_n_after_pull"] = before_touch
    report["snakemake_n_after_touch"] = after_touch
    assert "Data and pipelines are up to date" in status, status
    assert "Nothing to be done" in after_touch, after_touch
    assert "Data and pipelines are up to date" in status_after_touch, status_after_touch
    assert digests(clone) == digests(project)
