"""What a Snakemake run prints: one line per finished job with overall progress and an ETA, and at the end
where the results are.

The Snakefile calls `start` when a real run starts (its `onstart`: not for a dry run, `--touch` or a
cluster job's own process) and `finished` / `failed` at the end. `start` attaches a handler to
Snakemake's logger that prints

    [12/43  27%] train synthetic/lstm/protocol/seed1  14s | elapsed 2m05s, about 3m10s left

and a filter that keeps Snakemake's per-job blocks (every input file, the reason, the command) out of the
console; Snakemake still writes them to its log, .snakemake/log/<date>.snakemake.log. With `--verbose`
the console keeps Snakemake's blocks too; a `--quiet` that hides progress turns the lines off.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, TextIO

from seqbench.paths import AGGREGATE_OUTPUTS, REPORT_OUTPUTS, Layout

# Snakemake's events (snakemake_interface_logger_plugins.common.LogEvent, a StrEnum) by value
JOB_INFO, JOB_FINISHED, JOB_ERROR, PROGRESS = "job_info", "job_finished", "job_error", "progress"
# What the console no longer shows per job: the job block, its command, "Execute 1 jobs...", the
# "Finished jobid" and "N of M steps" lines (the progress line replaces them), the failed job's block
HIDDEN = {"job_info", "shellcmd", "job_started", "job_finished", "progress", "job_error"}
HIDDEN_MESSAGES = {"Select jobs to execute..."}
LOG_TAIL_LINES = 8  # of a failed job's log, in the console


def duration(seconds: float) -> str:
    """'45s', '3m05s', '1h02m'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def eta_seconds(elapsed: float, job_seconds: dict[str, list[float]], remaining: dict[str, int]) -> float | None:
    """Wall seconds left: each remaining job takes its rule's mean job time so far (the mean over every
    finished job for a rule none of whose jobs has finished), and jobs overlap as much as they have so
    far (the finished jobs' seconds per wall second)."""
    times = [s for per_rule in job_seconds.values() for s in per_rule]
    work = sum(times)
    if not times or work <= 0 or elapsed <= 0:
        return None
    overall = work / len(times)
    mean = {rule: sum(s) / len(s) for rule, s in job_seconds.items() if s}
    left = sum(count * mean.get(rule, overall) for rule, count in remaining.items() if count > 0)
    return left / (work / elapsed)


def job_label(rule: str, wildcards: dict[str, Any]) -> str:
    """'train synthetic/lstm/protocol/seed1' (the wildcards in the order of the run folder)."""
    values = [f"seed{v}" if k == "seed" else str(v) for k, v in (wildcards or {}).items()]
    return f"{rule} {'/'.join(values)}".strip()


def _event(record: logging.LogRecord) -> str | None:
    event = getattr(record, "event", None)
    return None if event is None else str(getattr(event, "value", event))


class ConsoleFilter(logging.Filter):
    """Drops Snakemake's per-job records from its console handler (the progress lines replace them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _event(record) in HIDDEN:
            return False
        return record.getMessage() not in HIDDEN_MESSAGES if _event(record) is None else True


class RunProgress(logging.Handler):
    """One line per finished job, and one per job that stopped without a result, on `stream`."""

    def __init__(self, totals: dict[str, int], stream: TextIO | None = None, clock=time.monotonic):
        super().__init__(level=logging.INFO)
        self.totals = Counter({rule: n for rule, n in totals.items() if rule != "total"})
        self.stream, self.clock = stream, clock
        self.started_at = clock()
        self.jobs: dict[int, tuple[str, dict, float]] = {}  # jobid -> rule, wildcards, start
        self.seconds: dict[str, list[float]] = defaultdict(list)  # rule -> finished jobs' seconds
        self.finished: list[tuple[str, float]] = []  # (label, seconds) not yet printed
        self.failed: list[tuple[str, list[str]]] = []  # (label, log files)

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._handle(_event(record), record.__dict__)
        except Exception:  # a progress line must never stop the run
            self.handleError(record)

    def _handle(self, event: str | None, data: dict) -> None:
        now = self.clock()
        if event == JOB_INFO:
            self.jobs[data["jobid"]] = (data["rule_name"], dict(data.get("wildcards") or {}), now)
        elif event == JOB_FINISHED and data.get("job_id") in self.jobs:
            rule, wildcards, start = self.jobs.pop(data["job_id"])
            self.seconds[rule].append(now - start)
            self.finished.append((job_label(rule, wildcards), now - start))
        elif event == PROGRESS:
            for label, seconds in self.finished:  # Snakemake logs each finished job, then the count
                self._write(self.line(data["done"], data["total"], label, seconds, now))
            self.finished.clear()
        elif event == JOB_ERROR:
            self._failed(data, now)

    def line(self, done: int, total: int, label: str, seconds: float, now: float) -> str:
        elapsed = now - self.started_at
        if done >= total:
            status = ", done"
        else:
            remaining = {rule: n - len(self.seconds.get(rule, [])) for rule, n in self.totals.items()}
            eta = eta_seconds(elapsed, self.seconds, remaining or {"?": total - done})
            status = "" if eta is None else f", about {duration(eta)} left"
        width = len(str(total))
        return (f"[{done:>{width}}/{total} {100 * done // max(total, 1):>3}%] {label}  {duration(seconds)} | "
                f"elapsed {duration(elapsed)}{status}")

    def _failed(self, data: dict, now: float) -> None:
        rule, wildcards = data.get("rule_name", "?"), {}
        start = now
        if data.get("jobid") in self.jobs:
            rule, wildcards, start = self.jobs.pop(data["jobid"])
        label = job_label(rule, wildcards)
        logs = [str(path) for path in data.get("log") or []]
        self.failed.append((label, logs))
        self._write(f"[FAILED] {label} after {duration(now - start)}, no result; log: {', '.join(logs) or '-'}")
        for path in logs[:1]:
            for line in tail(Path(path), LOG_TAIL_LINES):
                self._write(f"    {line}")


def tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


# --- the Snakefile's hooks -------------------------------------------------------------------------
_handler: RunProgress | None = None


def start(workflow) -> None:
    """onstart: print progress lines from now on (not under --touch or a --quiet that hides progress)."""
    global _handler
    settings = workflow.output_settings
    quiet = {str(getattr(q, "name", q)).lower() for q in (settings.quiet or ())}
    if workflow.touch or quiet & {"progress", "all"}:
        return
    try:
        totals = workflow.dag.stats()[1]  # {rule: jobs, "total": n}, as in Snakemake's "Job stats" table
    except Exception:  # noqa: BLE001 - the ETA then weighs every job alike
        totals = {}
    logger = logging.getLogger("snakemake.logging")
    if not settings.verbose:
        for handler in logger.handlers:
            if handler.name == "DefaultStreamHandler":
                handler.addFilter(ConsoleFilter())
    _handler = RunProgress(totals)
    logger.addHandler(_handler)


def _report_lines(root: Path) -> list[str]:
    names = [name for name in (*REPORT_OUTPUTS, *AGGREGATE_OUTPUTS) if name.endswith((".html", ".md"))]
    return [f"  {root / name}" for name in names if (root / name).is_file()]


def not_finished(root: Path) -> int:
    """Rows of reports/did_not_finish.csv (failed, missing or unreadable training jobs)."""
    path = root / "reports" / "did_not_finish.csv"
    if not path.is_file():
        return 0
    with path.open(newline="", encoding="utf-8") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


def mlflow_hint(root: Path) -> str:
    from seqbench.tracking import tracking_uri

    uri = tracking_uri(Layout(root))
    if uri.startswith(("http://", "https://")):
        return uri
    return f"`mlflow ui --backend-store-uri {uri} --host 127.0.0.1`" + (" (`make ui`)" if (root / "Makefile").is_file()
                                                                        else "")


def finished(workflow=None, log: list[str] | None = None, root: Path | None = None,
             stream: TextIO | None = None) -> None:
    """onsuccess: where the results are."""
    if workflow is not None and _handler is None:  # --touch, --quiet: nothing to say
        return
    root = (root or Path.cwd()).resolve()
    out = stream or sys.stderr
    lines = ["", "seqbench: the run is complete. Results:", *_report_lines(root)]
    count = not_finished(root)
    if count:
        lines.append(f"{count} training job(s) did not finish: RESULTS.md and the report list them with the reason "
                     f"(also {root / 'reports' / 'did_not_finish.csv'}; each job's log is under {root / 'logs'})")
    lines.append(f"Every run in MLflow: {mlflow_hint(root)}")
    out.write("\n".join(lines) + "\n")
    out.flush()


def failed(workflow=None, log: list[str] | None = None, root: Path | None = None,
           stream: TextIO | None = None) -> None:
    """onerror: which jobs stopped without a result, and where to look."""
    if workflow is not None and _handler is None:
        return
    root = (root or Path.cwd()).resolve()
    out = stream or sys.stderr
    stopped = _handler.failed if _handler is not None else []
    lines = ["", f"seqbench: {len(stopped) or 'some'} job(s) stopped without a result, so the jobs that need "
             "their outputs did not run:"]
    lines += [f"  {label}: {', '.join(logs) or 'no log'}" for label, logs in stopped]
    lines.append("Fix the cause and run the same command again: finished jobs are kept, and a killed training "
                 "job resumes.")
    reports = _report_lines(root)
    if reports:
        lines += ["Reports on disk (they may predate this run):", *reports]
    out.write("\n".join(lines) + "\n")
    out.flush()
