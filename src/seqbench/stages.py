"""What each stage reads: params.yaml keys and source files, one table for both orchestrators.

Snakemake turns these keys into each job's `params:` (so editing one model's settings reruns only that
model's jobs); dvc.yaml lists the same keys under each stage's `params:` (DVC cannot compute them), and
tests/test_workflow_consistency.py checks the two never drift apart.
"""

from __future__ import annotations

from typing import Any

from seqbench.params import Params

STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "download": ("data",),
    "standardize": ("datasets.{dataset}",),
    "split": ("datasets.{dataset}",),
    "features": ("datasets.{dataset}",),
    "tracking_init": ("jobs",),
    "train": (
        "preset",
        "presets.{preset}.max_epochs",
        "presets.{preset}.patience",
        "presets.{preset}.budgets.default",
        "presets.{preset}.budgets.{dataset}",
        "datasets.{dataset}",
        "training",
        "models.{model}",
    ),
    # the leaderboard and the report state each preset's budgets against the protocols (report.preset_notes)
    "aggregate": ("preset", "seeds", "regimes", "jobs", "presets.{preset}", "datasets"),
    "report": ("preset", "seeds", "presets.{preset}", "datasets"),
}


# Source files (or folders of .py files) each stage runs: a change reruns the stage in both tools.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "download": ("src/seqbench/download.py",),
    "standardize": ("src/seqbench/standardize.py", "src/seqbench/datasets"),
    "split": ("src/seqbench/split.py",),
    "features": ("src/seqbench/features.py", "src/seqbench/text.py"),
    "tracking_init": ("src/seqbench/tracking.py",),
    "train": ("src/seqbench/train.py", "src/seqbench/loop.py", "src/seqbench/batches.py",
              "src/seqbench/evaluate.py", "src/seqbench/device.py", "src/seqbench/tracking.py",
              "src/seqbench/models"),
    "aggregate": ("src/seqbench/aggregate.py", "src/seqbench/stats.py", "src/seqbench/report.py",
                  "reports/references.yaml"),
    "report": ("src/seqbench/report.py", "src/seqbench/figures.py", "reports/comparison.ipynb",
               "reports/references.yaml"),
}


def param_keys(stage: str, **wildcards: Any) -> list[str]:
    return [key.format(**wildcards) for key in STAGE_PARAMS[stage]]


def param_values(params: Params, stage: str, **wildcards: Any) -> dict[str, Any]:
    """{key: value} for a stage's keys, as plain data (what a rerun trigger compares)."""
    data = params.model_dump(mode="json")
    values = {}
    for key in param_keys(stage, preset=params.preset, **wildcards):
        node = data
        for part in key.split("."):
            node = node[part]
        values[key] = node
    return values
