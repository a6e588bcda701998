"""What the MLflow UI shows for a seqbench experiment: its kind, a note, and a saved runs view.

MLflow 3's UI has two workflows, "GenAI" (the default, which opens an experiment on a traces
"Overview") and "Model training" (the runs table). An experiment tagged `mlflow.experimentKind` =
`custom_model_development` is a training experiment to the UI's experiment-type selector; the 3.17
UI picks the workflow per browser (the toggle above the side bar, remembered once clicked) or from a
`workflowType=machine_learning` query parameter, which the links seqbench prints carry.

The saved view is an experiment tag `mlflow.sharedViewState.<id>` holding the JSON envelope the UI's
"Save view" writes ({name, createdAt, updatedAt, state}; `state` may be plain JSON): the seed runs
grouped by (model, regime) so the table and the chart view set one dataset's models side by side,
with the primary test metric of every task, training seconds, parameter count and peak memory as
columns, best first.
"""

from __future__ import annotations

import json
import time
from typing import Any

from seqbench import datasets as dataset_registry

KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"
VIEW_ID = "seqbench"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_ID}"
COST_METRICS = ("train_seconds", "params_count", "peak_memory_mb")
LOCAL_UI = "http://127.0.0.1:5000"  # `make ui` / `mlflow ui` on loopback


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"  # the UI's canonical column key


def primary_columns(dataset: str, settings: Any) -> list[str]:
    """`<task>/test_<primary metric>` for every task of the dataset's protocol."""
    metric = dataset_registry.get(dataset).primary_metric
    return [f"{task}/test_{metric}" for task in dataset_registry.task_names(dataset, settings)]


def view_state(dataset: str, settings: Any) -> dict[str, Any]:
    from seqbench import stats

    metrics = primary_columns(dataset, settings)
    metric = dataset_registry.get(dataset).primary_metric
    columns = ([_column("metrics", key) for key in (*metrics, *COST_METRICS)]
               + [_column("tags", key) for key in ("model", "regime", "seed")])
    return {
        "searchFilter": "tags.`seqbench.kind` = 'job'",
        "orderByKey": _column("metrics", metrics[0]),
        "orderByAsc": stats.lower_is_better(metric),
        "selectedColumns": columns,  # the 3.17 UI shows metric columns in name order
        "groupBy": {"aggregateFunction": "average",
                    "groupByKeys": [{"mode": "tag", "groupByData": "model"},
                                    {"mode": "tag", "groupByData": "regime"}]},
        "groupsExpanded": {},
    }


def experiment_tags(dataset: str, settings: Any) -> dict[str, str]:
    metric = dataset_registry.get(dataset).primary_metric
    now = int(time.time() * 1000)
    name = f"seqbench: test {metric} by model"
    envelope = {"name": name, "createdAt": now, "updatedAt": now,
                "state": json.dumps(view_state(dataset, settings), sort_keys=True)}
    note = (f"seqbench benchmark runs on **{dataset}**: one run per (model, regime, seed), named "
            f"`<model>-seed<k>` (`<model>-tuned-seed<k>` in the tuned regime); the aggregate stage adds a "
            f"`<model>-summary` run (mean and std across seeds) whose children are the seed runs. "
            f"The view *{name}* (Views menu of the Runs page) groups the seed runs by model and regime "
            f"with the primary metric ({metric}) of every task and the training cost as columns. "
            f"tracking-init rewrites that view: save your own under another name.")
    return {KIND_TAG: TRAINING_KIND, NOTE_TAG: note, VIEW_TAG: json.dumps(envelope, sort_keys=True)}


def ui_url(base: str, experiment_id: str) -> str:
    """The runs page of an experiment in the saved view, in the UI's model-training workflow."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={VIEW_ID}")
