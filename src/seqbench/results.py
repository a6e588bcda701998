"""The results model: what every training job left behind, and the long-form tables built from it.

A job is `ok`, `unavailable` (its dataset could not be fetched), `failed` (train wrote a failure record:
metrics.json with status "failed", its reason and where it stopped), `missing` (no metrics.json: killed,
or skipped by a `--keep-going` run) or `unreadable` (metrics.json is not JSON). Nothing here stops at a
job that did not finish: the tables are built from what finished, and `did_not_finish` lists the rest
with the command that makes each. Only `ok` jobs give numbers; a failed job is never ranked.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from seqbench import datasets as dataset_registry
from seqbench.errors import DataError
from seqbench.io import read_json
from seqbench.models.settings import forecast_input
from seqbench.params import Params
from seqbench.paths import Layout

STATUSES = ("ok", "unavailable", "failed")  # what metrics.json may say
RESULT_COLUMNS = ["dataset", "task", "model", "regime", "seed", "preset", "split", "metric", "value"]
COST_COLUMNS = ["dataset", "task", "model", "regime", "seed", "params_count", "train_seconds", "seconds_per_epoch",
                "epochs", "peak_memory_mb", "device"]
DNF_COLUMNS = ["dataset", "model", "regime", "seed", "status", "reason", "error", "task", "epoch", "batch",
               "finished_tasks", "command"]
STATUS_COLUMNS = ["dataset", "task", "model", "regime", "status", "reason"]


@dataclass(frozen=True)
class Job:
    dataset: str
    model: str
    seed: int
    regime: str
    path: Path  # the run folder
    metrics: dict  # metrics.json; {} when missing or unreadable
    status: str  # ok | unavailable | failed | missing | unreadable


def primary_metric(dataset: str) -> str:
    return dataset_registry.get(dataset).primary_metric


def baseline_model(dataset: str) -> str | None:
    return dataset_registry.get(dataset).baseline


def headline_split(dataset: str) -> str:
    """The split a dataset's headline numbers are on: the books' validation numbers for some (CTA, Shakespeare)."""
    return getattr(dataset_registry.get(dataset), "headline_split", "test")


def is_baseline(model: str) -> bool:
    """A parameter-free reference forecast (seqbench.models.baselines: naive, seasonal_naive)."""
    from seqbench.models import REGISTRY

    entry = REGISTRY.get(model)
    return entry is not None and any(b.startswith("seqbench.models.baselines:") for b in entry.builders.values())


def split_name(split: str) -> str:
    return {"val": "validation", "test": "test"}.get(split, split)


def train_command(dataset: str, model: str, seed: int, regime: str) -> str:
    return f"python -m seqbench train --dataset {dataset} --model {model} --seed {seed} --regime {regime}"


def dataset_order(params: Params) -> list[str]:
    """The datasets the job lists name, in the registry's fixed order (report sections follow it)."""
    wanted = set(params.datasets_in_jobs())
    return [name for name in dataset_registry.DATASETS if name in wanted]


def task_order(params: Params, dataset: str, tasks) -> list[str]:
    """Tasks in the protocol's order (metrics.json keeps them alphabetical); unknown ones last."""
    protocol = dataset_registry.task_names(dataset, params.dataset(dataset))
    unique = list(dict.fromkeys(t for t in tasks if t))
    return sorted(unique, key=lambda t: (protocol.index(t) if t in protocol else len(protocol), t))


@dataclass(frozen=True)
class TaskMeta:
    lookback: int | None
    horizon: int | None
    group: str  # tasks that differ only in look-back share a group, named after the shortest look-back's task


def task_meta(params: Params, dataset: str) -> dict[str, TaskMeta]:
    """Look-back, horizon and look-back group of each protocol task (forecasts; other families: None)."""
    info = dataset_registry.get(dataset)
    if info.family != "forecast":
        return {t: TaskMeta(None, None, t) for t in dataset_registry.task_names(dataset, params.dataset(dataset))}
    specs = info.tasks(params.dataset(dataset))
    key = {s.name: (s.horizon, tuple(s.inputs), tuple(s.targets)) for s in specs}
    base = {}
    for spec in sorted(specs, key=lambda s: s.lookback):
        base.setdefault(key[spec.name], spec.name)
    return {s.name: TaskMeta(s.lookback, s.horizon, base[key[s.name]]) for s in specs}


# --- collect ---------------------------------------------------------------------------------------
def load_jobs(params: Params, layout: Layout) -> list[Job]:
    jobs = []
    for _group, dataset, model, seed, regime in params.train_jobs():
        folder = layout.run(dataset, model, seed, regime)
        path = folder / "metrics.json"
        if not path.is_file():
            jobs.append(Job(dataset, model, seed, regime, folder, {}, "missing"))
            continue
        try:
            metrics = read_json(path)
        except ValueError as error:
            unreadable = {"reason": f"not valid JSON ({error})"}
            jobs.append(Job(dataset, model, seed, regime, folder, unreadable, "unreadable"))
            continue
        if metrics.get("status") not in STATUSES:
            raise DataError(f"{path}: field 'status' is {metrics.get('status')!r}, expected one of "
                            f"{', '.join(repr(s) for s in STATUSES)}")
        jobs.append(Job(dataset, model, seed, regime, folder, metrics, metrics["status"]))
    return jobs


def ok_tasks(job: Job):
    if job.status != "ok":
        return
    for task, entry in job.metrics.get("tasks", {}).items():
        if entry.get("status", "ok") == "ok":
            yield task, entry


def results_table(jobs: list[Job], preset: str) -> pd.DataFrame:
    rows = []
    for job in jobs:
        for task, entry in ok_tasks(job):
            for split in ("val", "test"):
                for metric, value in (entry.get(split) or {}).items():
                    value = math.nan if value is None else float(value)  # JSON null: a metric that was undefined
                    rows.append((job.dataset, task, job.model, job.regime, job.seed, preset, split, metric.lower(),
                                 value))
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    duplicated = table.duplicated(["dataset", "task", "model", "regime", "seed", "split", "metric"])
    if duplicated.any():
        first = table[duplicated].iloc[0].to_dict()
        raise DataError(f"duplicate result {first}: two metrics.json files claim the same job")
    return table


def costs_table(jobs: list[Job]) -> pd.DataFrame:
    rows = []
    for job in jobs:
        cost = job.metrics.get("cost") or {}
        for task, entry in ok_tasks(job):
            rows.append((job.dataset, task, job.model, job.regime, job.seed, entry.get("params_count"),
                         entry.get("train_seconds"), entry.get("seconds_per_epoch"), entry.get("epochs"),
                         cost.get("peak_memory_mb"), cost.get("device")))
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def one_line(text) -> str:
    return " ".join(str(text or "").split())


def did_not_finish(jobs: list[Job]) -> pd.DataFrame:
    """Every failed, missing or unreadable job: why, where it stopped, and the command that makes it."""
    rows = []
    for job in jobs:
        if job.status in ("ok", "unavailable"):
            continue
        command = train_command(job.dataset, job.model, job.seed, job.regime)
        failure = job.metrics.get("failure") or {}
        if job.status == "missing":
            reason = "no metrics.json (the job was killed or never ran)"
        elif job.status == "unreadable":
            reason = f"metrics.json is {job.metrics['reason']}; delete it and rerun"
        else:
            reason = one_line(job.metrics.get("reason")) or one_line(failure.get("message")) or "no reason recorded"
        finished = ", ".join(t for t, e in (job.metrics.get("tasks") or {}).items() if e.get("status", "ok") == "ok")
        rows.append((job.dataset, job.model, job.regime, job.seed, job.status, portable(reason),
                     failure.get("error") or "", failure.get("task") or "", failure.get("epoch"),
                     failure.get("batch"), finished, command))
    table = pd.DataFrame(rows, columns=DNF_COLUMNS)
    return table.astype({"epoch": "Int64", "batch": "Int64"})


def portable(reason: str) -> str:
    """A reason as published: absolute paths (a mirror folder given as one) relative to the project,
    so committed reports name no particular machine's folders."""
    return re.sub(r"(?<![\w.:/])/[^\s,;:()'\"]+", lambda m: os.path.relpath(m.group(0), Path.cwd()), reason)


def status_table(params: Params, jobs: list[Job]) -> pd.DataFrame:
    """Unavailable datasets, (dataset, task, model) pairs a model skipped, and tasks the preset left out."""
    rows: dict[tuple, str] = {}
    for job in jobs:
        if job.status == "unavailable":
            rows.setdefault((job.dataset, "", "", "", "unavailable"),
                            portable(job.metrics.get("reason") or "dataset unavailable"))
            continue
        for task, entry in (job.metrics.get("tasks") or {}).items() if job.status == "ok" else ():
            if entry.get("status", "ok") != "ok":
                rows.setdefault((job.dataset, task, job.model, job.regime, entry["status"]), entry.get("reason") or "")
    for dataset in dataset_order(params):
        trained = params.budget(dataset).tasks
        if trained is None:
            continue
        for task in dataset_registry.task_names(dataset, params.dataset(dataset)):
            if task not in trained:
                rows[(dataset, task, "", "", "not_trained")] = (f"preset {params.preset!r} trains only "
                                                                f"{', '.join(trained)} of this protocol")
    return pd.DataFrame([(*key, reason) for key, reason in rows.items()], columns=STATUS_COLUMNS)


def input_handling(params: Params, jobs: list[Job]) -> dict[tuple[str, str, str], dict]:
    """(dataset, model, regime) -> instance_norm, channel_independent and the settings a job recorded
    (metrics.json "settings"; absent: the model's defaults)."""
    out: dict[tuple[str, str, str], dict] = {}
    for job in sorted(jobs, key=lambda j: j.seed):
        key = (job.dataset, job.model, job.regime)
        if job.status != "ok" or key in out:
            continue
        recorded = job.metrics.get("settings")
        handling = recorded_forecast_input(recorded) if recorded else None
        if handling is None:
            defaults = forecast_input(params.model_settings(job.model))
            handling = defaults.model_dump() if defaults is not None else {}
        norm = handling.get("instance_norm", "none")
        out[key] = {"instance_norm": bool(norm) and norm != "none",
                    "channel_independent": bool(handling.get("channel_independent", False)),
                    "settings": recorded}
    return out


def recorded_forecast_input(settings: dict) -> dict | None:
    """The input handling fields of a metrics.json "settings" dict: at its top level, or in its `forecast`
    block (the transformer's), as models.settings.forecast_input finds them; None where neither holds them."""
    for block in (settings, settings.get("forecast")):
        if isinstance(block, dict) and "instance_norm" in block:
            return block
    return None


def per_horizon(jobs: list[Job], dataset: str, task: str, split: str,
                regime: str = "protocol") -> dict[str, list[float]]:
    """model -> seed mean of metrics.json `<split>_per_horizon_mae` (one value per step ahead)."""
    curves: dict[str, list[list[float]]] = {}
    for job in jobs:
        if job.dataset != dataset or job.regime != regime:
            continue
        for t, entry in ok_tasks(job):
            if t == task and entry.get(f"{split}_per_horizon_mae"):
                curves.setdefault(job.model, []).append(entry[f"{split}_per_horizon_mae"])
    return {m: [sum(v) / len(v) for v in zip(*c)] for m, c in curves.items() if len({len(x) for x in c}) == 1}


def per_horizon_value(jobs: list[Job]):
    """(dataset, model, regime, task, split, step) -> our value at one step ahead (references with a `step`)."""
    def value(dataset: str, model: str, regime: str, task: str, split: str, step: int) -> float:
        curve = per_horizon(jobs, dataset, task, split, regime).get(model, [])
        return float(curve[step - 1]) if len(curve) >= step else float("nan")
    return value


def run_meta(jobs: list[Job]) -> dict:
    """Commit(s), device(s) and torch version(s) the finished jobs report, for the page headers."""
    commits, devices, torches = set(), set(), set()
    for job in jobs:
        if job.status != "ok":
            continue
        tags = job.metrics.get("tags") or {}
        commits.add(tags.get("git_commit") or "unknown")
        torches.add(tags.get("torch") or "unknown")
        devices.add((job.metrics.get("cost") or {}).get("device") or "unknown")
    return {"commits": sorted(commits), "devices": sorted(devices), "torch": sorted(torches)}


# --- tables as written -----------------------------------------------------------------------------
TEXT_COLUMNS = {"summary": ["task", "model", "regime", "selection", "test", "verdict", "no_test", "status", "reason"],
                "did_not_finish": ["task", "error", "finished_tasks", "reason"]}


def read_table(layout: Layout, name: str) -> pd.DataFrame:
    """reports/<name>.csv as the aggregate stage wrote it; tables from before regimes read as 'protocol'."""
    path = layout.reports / f"{name}.csv"
    if not path.is_file():
        raise DataError(f"{path}: missing; run `python -m seqbench aggregate` first")
    table = pd.read_csv(path)
    if "regime" not in table.columns and name in ("results", "costs", "summary"):
        table.insert(table.columns.get_loc("model") + 1, "regime", "protocol")
    text = [c for c in TEXT_COLUMNS.get(name, []) if c in table.columns]
    table[text] = table[text].astype(object).where(table[text].notna(), "")
    ints = {c: "Int64" for c in ("n", "rank", "lookback", "horizon", "epoch", "batch", "seed") if c in table.columns}
    return table.astype(ints)
