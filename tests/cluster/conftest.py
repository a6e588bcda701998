"""Fixtures of the cluster test: the daemons (once per session) and the smoke workload run through them.

The figures the test measures (timings, sacct's listing, load figures) go to a JSON file,
$SEQBENCH_CLUSTER_REPORT (default: logs/cluster-test.json in the repository).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemons import RUN, Services, missing_tools

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)
ENABLED = os.environ.get("SEQBENCH_CLUSTER_TEST") == "1"
SKIP_REASON = ("cluster test: run `make test-cluster` (as root; installs Debian's SLURM, MariaDB and PostgreSQL "
               "and sets SEQBENCH_CLUSTER_TEST=1)")
SACCT_FORMAT = "JobID,JobName%40,Comment%90,State,ExitCode,Elapsed,ReqMem,Timelimit,ReqCPUS,Start,End"


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run a command with the venv's tools first on PATH; fail the test with its output."""
    env = dict(env, PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-5000:]}\n"
                                    f"{result.stderr[-5000:]}")
    return result


def sacct(services: Services, *args: str) -> list[dict[str, str]]:
    out = run(["sacct", "-a", "-X", "--parsable2", "--noconvert", "--starttime=2000-01-01",
               f"--format={SACCT_FORMAT}", *args], services.root, services.env())
    header, *rows = out.stdout.splitlines()
    return [dict(zip(header.split("|"), row.split("|"))) for row in rows]


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def describe(proc) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline()[:4])}"
    except Exception:
        return str(proc.pid)


@pytest.fixture(scope="session")
def report() -> dict:
    return {}


@pytest.fixture(scope="session")
def cluster(report: dict):
    """munge, MariaDB, slurmdbd, slurmctld, slurmd, PostgreSQL and an MLflow server, stopped whatever happens."""
    if os.geteuid() != 0:
        pytest.fail("the cluster test starts SLURM's daemons as root: run `make test-cluster` as root")
    missing = missing_tools()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run tests/cluster/install.sh (Debian packages) first")
    # a short path: a UNIX socket's path may not exceed 107 bytes
    services = Services(Path(tempfile.mkdtemp(prefix=f"{os.environ.get(RUN, 'seqbench-cluster')}-")))
    began = time.monotonic()
    # a CI time-out or `kill` sends TERM (HUP when a terminal closes): unwind, so the daemons stop below
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        services.start_all()
        report["start_s"] = round(time.monotonic() - began, 1)
        report["start_by_daemon_s"] = services.startup
        yield services
    finally:
        began = time.monotonic()
        try:
            services.cancel_jobs()
        finally:
            services.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        left = services.leftovers()
        report["left_behind"] = [describe(proc) for proc in left]
        for proc in left:  # started by this run's daemons: never left running
            proc.kill()
        report["teardown_s"] = round(time.monotonic() - began, 1)
        out = Path(os.environ.get("SEQBENCH_CLUSTER_REPORT", ROOT / "logs" / "cluster-test.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        if os.environ.get("SEQBENCH_CLUSTER_KEEP") != "1":
            shutil.rmtree(services.root, ignore_errors=True)
        assert not left, f"processes left behind by the harness's daemons: {report['left_behind']}"


@dataclass
class SmokeRun:
    project: Path
    planned: dict[str, int]  # rule -> jobs the cluster runs (the local target rule `all` excluded)
    jobs: list[dict[str, str]]  # sacct rows of the run
    seconds: float
    log: str


def peak_rss_by_rule(services: Services, jobs: list[dict[str, str]]) -> dict[str, float]:
    """The highest MaxRSS (MB) of any step of each rule's jobs, as SLURM's accounting measured it."""
    rule_of = {row["JobID"]: row["Comment"].removeprefix("rule_").split("_wildcards_")[0] for row in jobs}
    out = run(["sacct", "-a", "--parsable2", "--noheader", "--noconvert", "--format=JobID,MaxRSS",
               "-j", ",".join(rule_of)], services.root, services.env()).stdout
    peaks: dict[str, float] = {}
    scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}
    for line in out.splitlines():
        job_id, rss = line.split("|")
        if rss:  # a job step's peak, e.g. 523412K
            mb = float(rss[:-1]) * scale[rss[-1]] if rss[-1] in scale else float(rss) / 2**20
            rule = rule_of[job_id.split(".")[0]]
            peaks[rule] = round(max(peaks.get(rule, 0.0), mb), 1)
    return peaks


def planned_jobs(project: Path, env: dict[str, str]) -> dict[str, int]:
    """rule -> job count from `snakemake -n`'s job stats."""
    text = run(["snakemake", "-n", "--workflow-profile", "workflow/profiles/slurm"], project, env).stdout
    stats = text.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M))
    counts.pop("total", None)
    counts.pop("all", None)
    return {rule: int(n) for rule, n in counts.items()}


@pytest.fixture(scope="session")
def smoke(cluster: Services, report: dict) -> SmokeRun:
    """The smoke workload, every job through sbatch, training against the MLflow server."""
    project = cluster.root / "project"
    env = cluster.env(MLFLOW_TRACKING_URI=cluster.tracking_uri)
    run([sys.executable, "-m", "seqbench", "workspace", str(project), "--preset", "smoke"], ROOT, env)
    # the measured costs of the main project: training jobs ask for what they imply
    for name in ("reports/costs.csv", "reports/results.csv"):
        shutil.copy2(ROOT / name, project / name)
    planned = planned_jobs(project, env)
    began = time.monotonic()
    # status checks every few seconds instead of the plugin's default 40 (minutes-long jobs on a real cluster)
    result = run(["snakemake", "--workflow-profile", "workflow/profiles/slurm",
                  "--slurm-init-seconds-before-status-checks", "2"], project, env)
    seconds = round(time.monotonic() - began, 1)
    jobs = [row for row in sacct(cluster) if row["Comment"].startswith("rule_")]
    report["smoke_run_s"] = seconds
    report["load_average_after_smoke"] = [round(x, 1) for x in os.getloadavg()]
    report["smoke_peak_rss_mb_by_rule"] = peak_rss_by_rule(cluster, jobs)
    report["smoke_planned_jobs"] = planned
    report["sacct_smoke"] = [" ".join(row[k] for k in ("JobID", "Comment", "State", "ExitCode", "Elapsed"))
                             for row in jobs]
    return SmokeRun(project, planned, jobs, seconds, result.stdout + result.stderr)
