"""What a run prints: a progress line per finished job with an ETA (fed Snakemake's own log events), the
report's path at the end, SARIMA's per-window progress; and a real Snakemake run's console."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess

import pytest
import torch
from snakemake_interface_logger_plugins.common import LogEvent

from seqbench import progress
from seqbench.models import settings as S
from seqbench.models import statistical
from seqbench.tasks import ForecastTask
from workflow_tools import BIN, copy_of, sh

LINE = re.compile(r"^\[ *(\d+)/(\d+) +(\d+)%\] (\S+)(?: (\S+))?  (\S+) \| elapsed (\S+)(?:, about (\S+) left|, done)$")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(event: LogEvent, **data) -> logging.LogRecord:
    """A log record as Snakemake's scheduler makes it (logger.info(msg, extra=dict(event=..., ...)))."""
    rec = logging.LogRecord("snakemake.logging", logging.INFO, __file__, 0, None, None, None)
    rec.__dict__.update(event=event, **data)
    return rec


def test_eta_weighs_remaining_jobs_by_their_rules_mean_and_the_observed_overlap():
    # 2 download jobs of 1 s and 1 train job of 10 s took 6 s of wall time: 12 job-seconds, overlap 2
    seconds = {"download": [1.0, 1.0], "train": [10.0]}
    assert progress.eta_seconds(6.0, seconds, {"train": 3, "download": 0}) == pytest.approx(30 / 2)
    # a rule with no finished job yet costs the mean of all finished jobs (12 / 3)
    assert progress.eta_seconds(6.0, seconds, {"report": 1}) == pytest.approx(4 / 2)
    assert progress.eta_seconds(0.0, {}, {"train": 3}) is None


def test_duration():
    assert [progress.duration(s) for s in (0.4, 59, 61, 3599, 3720)] == ["0s", "59s", "1m01s", "59m59s", "1h02m"]


def test_one_line_per_finished_job_with_progress_and_eta():
    clock, out = Clock(), io.StringIO()
    handler = progress.RunProgress({"download": 1, "train": 3, "total": 4}, stream=out, clock=clock)
    events = [
        (0, record(LogEvent.JOB_INFO, jobid=1, rule_name="download", wildcards={"dataset": "synthetic"})),
        (2, record(LogEvent.JOB_FINISHED, job_id=1)),
        (2, record(LogEvent.PROGRESS, done=1, total=4)),
        (2, record(LogEvent.JOB_INFO, jobid=2, rule_name="train",
                   wildcards={"dataset": "synthetic", "model": "lstm", "regime": "protocol", "seed": "1"})),
        (2, record(LogEvent.JOB_INFO, jobid=3, rule_name="train",
                   wildcards={"dataset": "synthetic", "model": "gru", "regime": "protocol", "seed": "0"})),
        (12, record(LogEvent.JOB_FINISHED, job_id=2)),
        (12, record(LogEvent.PROGRESS, done=2, total=4)),
    ]
    for at, rec in events:
        clock.now = at
        handler.handle(rec)
    lines = out.getvalue().splitlines()
    assert lines == [
        # no train job finished yet: 3 of them at the mean job time so far (2 s), one at a time so far
        "[1/4  25%] download synthetic  2s | elapsed 2s, about 6s left",
        # 2 train jobs left at the train mean (10 s); 12 job-seconds in 12 s of wall time: no overlap yet
        "[2/4  50%] train synthetic/lstm/protocol/seed1  10s | elapsed 12s, about 20s left",
    ]
    assert all(LINE.match(line) for line in lines)


def test_a_job_that_stops_without_a_result_is_named_with_its_log(tmp_path):
    log = tmp_path / "seed0.log"
    log.write_text("loading\n\nerror: the store is unreachable\n")
    clock, out = Clock(), io.StringIO()
    handler = progress.RunProgress({"train": 1}, stream=out, clock=clock)
    handler.handle(record(LogEvent.JOB_INFO, jobid=5, rule_name="train", wildcards={"model": "lstm", "seed": 0}))
    clock.now = 65
    handler.handle(record(LogEvent.JOB_ERROR, jobid=5, rule_name="train", log=[str(log)]))
    assert out.getvalue().splitlines() == [
        f"[FAILED] train lstm/seed0 after 1m05s, no result; log: {log}",
        "    loading",
        "    error: the store is unreachable",
    ]
    assert handler.failed == [("train lstm/seed0", [str(log)])]


def test_the_console_filter_keeps_errors_and_drops_the_per_job_blocks():
    keep = progress.ConsoleFilter().filter
    assert not keep(record(LogEvent.JOB_INFO, jobid=1))
    assert not keep(record(LogEvent.SHELLCMD))
    assert not keep(record(LogEvent.PROGRESS, done=1, total=2))
    plain = logging.LogRecord("snakemake.logging", logging.INFO, __file__, 0, "Select jobs to execute...", None, None)
    assert not keep(plain)
    error = logging.LogRecord("snakemake.logging", logging.ERROR, __file__, 0, "Exiting because a job failed", None,
                              None)
    assert keep(error)
    assert keep(record(LogEvent.RUN_INFO, msg="Job stats: ..."))


def test_the_end_of_a_run_names_the_reports(tmp_path):
    (tmp_path / "reports").mkdir()
    for name in ("comparison.html", "RESULTS.md", "leaderboard.md"):
        (tmp_path / "reports" / name).write_text("x")
    (tmp_path / "reports" / "did_not_finish.csv").write_text("dataset,model\nsynthetic,lstm\nsynthetic,gru\n")
    out = io.StringIO()
    progress.finished(root=tmp_path, stream=out)
    text = out.getvalue()
    for name in ("comparison.html", "RESULTS.md", "leaderboard.md"):
        assert f"  {tmp_path.resolve() / 'reports' / name}\n" in text
    assert "2 training job(s) did not finish" in text


def test_sarima_reports_its_windows_every_few_seconds(monkeypatch, capsys):
    task = ForecastTask(name="next", lookback=36, horizon=2, inputs=("x",), targets=("x",), season=12)
    model = statistical.Sarima(task, S.SarimaSettings())
    monkeypatch.setattr(statistical, "PROGRESS_SECONDS", 0.0)
    x = torch.sin(torch.arange(3 * 36, dtype=torch.float64) / 2).reshape(3, 36, 1)
    model(x)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"sarima \(.*\)x\(.*, 12\): 3 windows fitted in \d+ s \([\d.]+ s per window\), "
                        r"\d fell back to the seasonal naive forecast", lines[-1])


# --- a real Snakemake run --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_snakemake_run_prints_progress_lines_and_where_the_report_is(snakemake_project, tmp_path):
    folder = copy_of(snakemake_project, tmp_path)
    result = sh(["snakemake", "--cores", "2", "-R", "runs/synthetic/naive/protocol/seed0/metrics.json"], folder)
    console = result.stdout + result.stderr
    lines = [m for m in map(LINE.match, console.splitlines()) if m]
    # the training job, aggregate, report and the `all` target: one line each, counting up to the total
    assert [(int(m.group(1)), int(m.group(2))) for m in lines] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert lines[0].group(4, 5) == ("train", "synthetic/naive/protocol/seed0")
    assert lines[0].group(8) is not None and lines[-1].group(0).endswith(", done")
    assert "input:" not in console and "Shell command" not in console
    assert max(len(line) for line in console.splitlines()) < 200
    end = console[console.index("seqbench: the run is complete"):]
    assert str(folder.resolve() / "reports" / "comparison.html") in end
    assert str(folder.resolve() / "reports" / "RESULTS.md") in end


@pytest.mark.slow
def test_a_job_that_dies_is_named_and_the_end_says_what_to_do(snakemake_project, tmp_path):
    folder = copy_of(snakemake_project, tmp_path)
    builders = folder / "src" / "seqbench" / "models" / "baselines.py"
    text = builders.read_text()
    assert "def build_naive(" in text
    builders.write_text(text.replace("def build_naive(", "def build_naive(*_, _exit=__import__('os')._exit):\n"
                                     "    _exit(3)\n\n\ndef _unused_naive("))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(folder / "src"))
    env.pop("SEQBENCH_MIRROR", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(["snakemake", "--cores", "2"], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode != 0
    console = result.stdout + result.stderr
    for dataset in ("synthetic", "cta"):
        log = f"logs/train/{dataset}/naive/protocol/seed0.log"
        assert f"[FAILED] train {dataset}/naive/protocol/seed0 after " in console
        assert f"no result; log: {log}" in console
        assert f"  train {dataset}/naive/protocol/seed0: {log}" in console
    assert "seqbench: 2 job(s) stopped without a result" in console
    assert "run the same command again" in console
