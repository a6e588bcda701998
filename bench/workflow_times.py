"""Wall time of a whole Snakemake run, of each stage family and of the slowest jobs, from its log.

    python bench/workflow_times.py [LOG ...] [--top 5]

LOG defaults to the newest .snakemake/log/*.snakemake.log; several logs (a run stopped and resumed, or
invocations side by side on disjoint targets) add up: the wall time is the union of the invocations'
spans (time two of them ran at once counts once), and a job finished in more than one invocation counts
with its last run. Each job's start and end are the
timestamps Snakemake prints (one-second resolution) before "rule X:" and "Finished jobid: N". Per
family: jobs, the sum of job seconds (work) and the span from the first start to the last end (wall,
families overlap when jobs run side by side). Train jobs are grouped by the model's family (the
module that builds it: baselines, dense, conv, recurrent, transformer, bow, statistical). Writes
reports/run_times.json and reports/run_times.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
DATA_RULES = ("download", "standardize", "split", "features", "tracking_init")


def parse_jobs(lines: list[str]) -> list[dict]:
    """One dict per finished job: rule, wildcards, start, end (datetimes)."""
    jobs: dict[str, dict] = {}
    stamp, current = None, None
    for raw in lines:
        line = raw.strip()
        if match := STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := START.match(line):
            current = {"rule": match.group(1), "start": stamp, "wildcards": {}}
        elif current is not None and line.startswith("jobid: "):
            jobs[line.split()[1]] = current
        elif current is not None and line.startswith("wildcards: "):
            current["wildcards"] = dict(item.split("=", 1) for item in line[len("wildcards: "):].split(", "))
        elif match := FINISHED.match(line):
            if match.group(1) in jobs:
                jobs[match.group(1)]["end"] = stamp
    return [job for job in jobs.values() if "end" in job and job["rule"] != "all"]


def model_family(model: str) -> str:
    from seqbench.models import REGISTRY

    builder = next(iter(REGISTRY[model].builders.values()))
    return builder.split(":")[0].rsplit(".", 1)[-1].removeprefix("text_")


def family_of(job: dict) -> str:
    if job["rule"] in DATA_RULES:
        return "data"
    if job["rule"] == "train":
        return f"train: {model_family(job['wildcards']['model'])}"
    return "report" if job["rule"] in ("aggregate", "report") else job["rule"]


def union_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    """Seconds covered by at least one of the (start, end) intervals."""
    total, covered_until = 0.0, None
    for start, end in sorted(intervals):
        if covered_until is not None and start < covered_until:
            start = covered_until
        if end > start:
            total += (end - start).total_seconds()
        covered_until = end if covered_until is None else max(covered_until, end)
    return total


def summarize(invocations: list[list[dict]], top: int) -> dict:
    bounds = [(min(j["start"] for j in jobs), max(j["end"] for j in jobs)) for jobs in invocations]
    spans = [(end - start).total_seconds() for start, end in bounds]
    last_run = {(job["rule"], tuple(sorted(job["wildcards"].items()))): job for jobs in invocations for job in jobs}
    jobs = list(last_run.values())
    groups: dict[str, list[dict]] = defaultdict(list)
    for job in jobs:
        job["seconds"] = (job["end"] - job["start"]).total_seconds()
        groups[family_of(job)].append(job)
    families = [{"family": name, "jobs": len(members), "job_seconds": sum(j["seconds"] for j in members),
                 "span_seconds": (max(j["end"] for j in members) - min(j["start"] for j in members)).total_seconds()}
                for name, members in sorted(groups.items())]
    slowest = sorted(jobs, key=lambda j: -j["seconds"])[:top]
    return {"start": min(j["start"] for j in jobs).isoformat(), "end": max(j["end"] for j in jobs).isoformat(),
            "wall_seconds": union_seconds(bounds), "invocation_seconds": spans, "jobs": len(jobs), "families": families,
            "slowest": [{"rule": j["rule"], **j["wildcards"], "seconds": j["seconds"]} for j in slowest]}


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def markdown(summary: dict, log: str) -> str:
    parts = summary["invocation_seconds"]
    split = (f" (the union of {len(parts)} invocations' spans: {', '.join(minutes(s) for s in parts)})"
             if len(parts) > 1 else "")
    lines = ["# Wall time of the run, from its Snakemake log\n",
             f"`python bench/workflow_times.py {log}`: {summary['jobs']} jobs from {summary['start']} to "
             f"{summary['end']} (local time of the log): **{minutes(summary['wall_seconds'])}** wall{split}.\n",
             "| stage family | jobs | work (sum of job times) | span (first start to last end; across invocations it includes the pause) |",
             "|---|---:|---:|---:|"]
    lines += [f"| {f['family']} | {f['jobs']} | {minutes(f['job_seconds'])} | {minutes(f['span_seconds'])} |"
              for f in summary["families"]]
    lines += ["", "Slowest jobs:", "", "| job | time |", "|---|---:|"]
    for job in summary["slowest"]:
        name = " ".join(f"{k}={v}" for k, v in job.items() if k not in ("rule", "seconds"))
        lines.append(f"| {job['rule']} {name} | {minutes(job['seconds'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="*", type=Path)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    # without LOG: the newest log that ran jobs (`make lock` writes a later one that only re-stamps)
    logs = args.logs or sorted((ROOT / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True)
    missing = [str(log) for log in logs if not log.is_file()]
    if not logs or missing:
        sys.exit(f"Snakemake log not found {missing}: pass .snakemake/log/<date>.snakemake.log after `make run`")
    from seqbench.io import write_json, write_text

    if args.logs:
        invocations = [parse_jobs(log.read_text().splitlines()) for log in logs]
    else:
        invocations = []
        for log in logs:  # newest first: stop at the first that ran jobs
            jobs = parse_jobs(log.read_text().splitlines())
            if jobs:
                logs, invocations = [log], [jobs]
                break
    if not any(invocations):
        sys.exit(f"no finished jobs in {[str(log) for log in logs]}: pass the log of a `make run`")
    summary = summarize([jobs for jobs in invocations if jobs], args.top)
    shown = " ".join(str(log.relative_to(ROOT) if log.is_relative_to(ROOT) else log.name) for log in logs)
    write_json(ROOT / "reports" / "run_times.json", {"logs": shown, **summary})
    text = markdown(summary, shown)
    write_text(ROOT / "reports" / "run_times.md", text)
    print(text)


if __name__ == "__main__":
    main()
