"""What a training job asks a cluster scheduler for: memory, wall time, CPUs and GPUs.

Memory and wall time come from what earlier runs measured (reports/costs.csv, written by the
aggregate stage; the committed one holds the standard run's measurements), CPUs and GPUs from
params.yaml. Snakemake reads them through `snakemake_train_resources` (the train rule's `resources:`);
the SLURM executor plugin turns them into `sbatch --mem --time --cpus-per-task --gpus`.

Memory: the highest peak measured for the job's (dataset, model); failing that the model on other
datasets of the same family (forecast, text, chars), then models of the same architecture (the module
that builds it: recurrent, dense, ...) on that family, then any model of the family. Only CPU rows
count: on CUDA the column holds GPU memory, not the host memory SLURM limits.
Wall time: only from jobs measured under the same preset on the same kind of device (a `standard`
measurement says nothing about `full`); otherwise DEFAULT_RUNTIME_MIN.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench import datasets as dataset_registry
from seqbench import models as model_registry
from seqbench.errors import SeqbenchError

# The highest peak over seeds x 1.5, in steps of 512 MB: one (dataset, model)'s peak ranges up to 1.9x
# between seeds in the committed costs (imdb bilstm_onehot 1174-2207 MB: the heap fragments differently),
# and a preset with more data (full: every window, every review) needs more than the standard run did.
MEMORY_MARGIN = 1.5
MEMORY_STEP_MB = 512
MIN_MEMORY_MB = 1024
DEFAULT_MEMORY_MB = 4096  # nothing measured for the model's family
# Wall time: 3x the measured training time plus 10 minutes for what train_seconds leaves out (Python and
# torch start-up, loading features, evaluation, MLflow), and the scheduler kills a job at its limit.
RUNTIME_MARGIN = 3.0
RUNTIME_ALLOWANCE_MIN = 10
DEFAULT_RUNTIME_MIN = 240  # no measurement under this preset and device kind
COST_COLUMNS = ("dataset", "model", "seed", "train_seconds", "peak_memory_mb", "device")
RESOURCE_KEYS = ("mem_mb", "runtime", "cpus_per_task", "gpu")


@dataclass(frozen=True)
class MeasuredJob:
    """One finished training job of an earlier run, from costs.csv (+ its preset from results.csv)."""

    dataset: str
    model: str
    seed: int
    device_kind: str  # "cpu" or "cuda"
    peak_memory_mb: float
    train_seconds: float  # summed over the job's tasks
    preset: str | None


def _number(value: str, path: Path, line: int, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SeqbenchError(f"{path}, line {line}: {column} is {value!r}, not a number; rerun "
                            "`python -m seqbench aggregate` to rewrite the file") from None
    if not math.isfinite(number) or number < 0:
        raise SeqbenchError(f"{path}, line {line}: {column} is {value!r}; rerun `python -m seqbench aggregate` "
                            "to rewrite the file")
    return number


def _read_csv(path: Path, required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise SeqbenchError(f"{path}: no column {', '.join(missing)}; rerun `python -m seqbench aggregate` "
                                "to rewrite the file")
        return [(number, row) for number, row in enumerate(reader, start=2)]


def _presets(results: Path) -> dict[tuple[str, str, int], str]:
    if not results.is_file():
        return {}
    return {(row["dataset"], row["model"], int(row["seed"])): row["preset"]
            for _, row in _read_csv(results, ("dataset", "model", "seed", "preset"))}


def load_measurements(reports: Path) -> list[MeasuredJob]:
    """Every measured training job of reports/costs.csv; none when the file does not exist yet."""
    costs = Path(reports) / "costs.csv"
    if not costs.is_file():
        return []
    jobs: dict[tuple[str, str, int], dict[str, Any]] = {}
    for line, row in _read_csv(costs, COST_COLUMNS):
        if not row["device"]:  # a placeholder row of an unavailable dataset: nothing was measured
            continue
        key = (row["dataset"], row["model"], int(_number(row["seed"], costs, line, "seed")))
        job = jobs.setdefault(key, {"peak": 0.0, "seconds": 0.0, "device": row["device"]})
        # one row per task: the peak is the job's (repeated), the training time is per task
        job["peak"] = max(job["peak"], _number(row["peak_memory_mb"], costs, line, "peak_memory_mb"))
        job["seconds"] += _number(row["train_seconds"] or "0", costs, line, "train_seconds")
    presets = _presets(Path(reports) / "results.csv")
    return [MeasuredJob(dataset, model, seed, job["device"].split(":")[0], job["peak"], job["seconds"],
                        presets.get((dataset, model, seed)))
            for (dataset, model, seed), job in jobs.items()]


def _architecture(model: str, family: str) -> str:
    """The module that builds the model for this family (recurrent, dense, conv, transformer, ...)."""
    builder = model_registry.get(model).builders.get(family, "")
    return builder.split(":")[0].rsplit(".", 1)[-1]


def _family(dataset: str) -> str:
    return dataset_registry.get(dataset).family


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def memory_mb(measured: list[MeasuredJob], dataset: str, model: str) -> int:
    """Host memory to request for one training job (see the module docstring for the fallbacks)."""
    family = _family(dataset)
    cpu = [m for m in measured if m.device_kind == "cpu" and _family(m.dataset) == family]
    architecture = _architecture(model, family)
    for matches in (
        lambda m: m.dataset == dataset and m.model == model,
        lambda m: m.model == model,
        lambda m: _architecture(m.model, family) == architecture,
        lambda m: True,
    ):
        peaks = [m.peak_memory_mb for m in cpu if matches(m)]
        if peaks:
            return max(MIN_MEMORY_MB, _round_up(max(peaks) * MEMORY_MARGIN, MEMORY_STEP_MB))
    return DEFAULT_MEMORY_MB


def runtime_min(measured: list[MeasuredJob], dataset: str, model: str, preset: str, device_kind: str) -> int:
    """Wall-time limit in minutes for one training job."""
    seconds = [m.train_seconds for m in measured
               if (m.dataset, m.model, m.preset, m.device_kind) == (dataset, model, preset, device_kind)]
    if not seconds:
        return DEFAULT_RUNTIME_MIN
    return int(math.ceil(RUNTIME_MARGIN * max(seconds) / 60)) + RUNTIME_ALLOWANCE_MIN


def device_kind(params) -> str:
    """`cuda` when params.yaml asks for CUDA (then every training job asks for one GPU), else `cpu`.
    `auto` counts as CPU: without a GPU request the scheduler gives the job none."""
    return "cuda" if params.training.device.startswith("cuda") else "cpu"


def _group(params, dataset: str, model: str) -> str:
    for job in params.train_jobs():
        if (job.dataset, job.model) == (dataset, model):
            return job.group
    raise SeqbenchError(f"params.yaml: no job list has dataset {dataset!r} with model {model!r}")


def train_resources(params, dataset: str, model: str, measured: list[MeasuredJob], attempt: int = 1) -> dict:
    """{mem_mb, runtime (minutes), cpus_per_task, gpu} for one training job; a retry (attempt 2, 3, ...)
    asks for that many times the memory and time, as a job killed at a limit resumes from its resume.pt."""
    kind = device_kind(params)
    return {
        "mem_mb": memory_mb(measured, dataset, model) * attempt,
        "runtime": runtime_min(measured, dataset, model, params.preset, kind) * attempt,
        "cpus_per_task": params.training.threads[_group(params, dataset, model)],
        "gpu": 1 if kind == "cuda" else 0,
    }


def snakemake_train_resources(params, reports: Path | str = "reports") -> dict[str, Callable[..., int]]:
    """The train rule's `resources:` as Snakemake callables of (wildcards, attempt); costs.csv is read once,
    when the workflow is parsed."""
    measured = load_measurements(Path(reports))

    def resource(key: str) -> Callable[..., int]:
        return lambda wildcards, attempt: train_resources(params, wildcards.dataset, wildcards.model, measured,
                                                          attempt)[key]

    return {key: resource(key) for key in RESOURCE_KEYS}
