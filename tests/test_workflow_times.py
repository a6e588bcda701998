"""bench/workflow_times.py: the wall time of a run made of several Snakemake invocations."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("workflow_times", ROOT / "bench" / "workflow_times.py")
workflow_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(workflow_times)

T0 = datetime(2026, 1, 1, 12, 0, 0)


def job(model: str, start_min: float, end_min: float) -> dict:
    return {"rule": "train", "wildcards": {"dataset": "etth1", "model": model, "seed": "0"},
            "start": T0 + timedelta(minutes=start_min), "end": T0 + timedelta(minutes=end_min)}


def test_invocations_side_by_side_count_once_and_a_pause_not_at_all():
    first = [job("naive", 0, 10), job("linear", 5, 30)]       # 0-30
    beside = [job("dlinear", 20, 50)]                          # 20-50, overlaps the first
    resumed = [job("mlp", 60, 70)]                             # after a 10-min pause
    summary = workflow_times.summarize([first, beside, resumed], top=3)
    assert summary["invocation_seconds"] == [1800.0, 1800.0, 600.0]
    assert summary["wall_seconds"] == (50 + 10) * 60.0
    assert summary["jobs"] == 4


def test_a_job_finished_in_two_invocations_counts_with_its_last_run():
    summary = workflow_times.summarize([[job("naive", 0, 10)], [job("naive", 20, 22)]], top=1)
    assert summary["jobs"] == 1 and summary["slowest"][0]["seconds"] == 120.0
    assert summary["wall_seconds"] == 12 * 60.0
