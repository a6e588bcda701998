"""One training job, resolved: its settings (seqbench.configure), data, device and identity.

`make_job` turns (dataset, model, seed, regime) and the loaded features into a Job; the epoch loop
(seqbench.loop) and the stage's edge (seqbench.train) work from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqbench import datasets as dataset_registry
from seqbench import device as dev
from seqbench import models as model_registry
from seqbench.configure import JobConfig, resolve
from seqbench.errors import TrainingError
from seqbench.features import CharFeatures, ForecastFeatures, TextFeatures
from seqbench.models.settings import ModelSettings
from seqbench.params import Params, TrainConfig
from seqbench.paths import Layout
from seqbench.tasks import Task

FAMILY_LOSSES = {"forecast": ("mse", "mae", "huber"), "text": ("bce",), "chars": ("cross_entropy",)}
EpochHook = Callable[[str, int, float, float], None]

Features = ForecastFeatures | TextFeatures | CharFeatures


@dataclass
class Job:
    """Everything one training job needs, resolved once from params and the features."""

    dataset: str
    model: str
    seed: int
    preset: str
    family: str
    entry: model_registry.ModelEntry
    resolved: JobConfig  # what config/<dataset>/<model>/<regime>.json holds
    device: torch.device
    features: Features
    sample: tuple[str, int] | None = None  # chars: (prompt, length)
    on_epoch: EpochHook | None = None
    fingerprint: str = ""  # settings, data and code identity: a resume.pt saved under others is ignored
    # where training is (task, epoch, batch): what a failure record reports
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        return self.resolved.train

    @property
    def settings(self) -> ModelSettings:
        return self.resolved.settings

    @property
    def regime(self) -> str:
        return self.resolved.regime


def code_hash() -> str:
    """sha256 of seqbench's own source: a resume.pt written by other code is not resumed from."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def derived_seed(*parts) -> int:
    """A stable 63-bit seed from any parts (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


def make_job(params: Params, dataset: str, model: str, seed: int, features: Features, threads: int | None = 0,
             on_epoch: EpochHook | None = None, regime: str = "protocol", layout: Layout | None = None) -> Job:
    resolved = resolve(params, dataset, model, regime, layout)
    config = resolved.train
    family = dataset_registry.get(dataset).family
    if config.loss not in FAMILY_LOSSES[family]:
        raise TrainingError(f"datasets.{dataset}.training.loss is {config.loss!r}, which does not fit a {family} "
                            f"task; use one of {list(FAMILY_LOSSES[family])} in params.yaml")
    device = dev.resolve_device(config.device)
    dev.configure(device, threads)
    protocol = params.dataset(dataset)
    sample = (protocol.sample_prompt, protocol.sample_length) if family == "chars" else None
    fingerprint = hashlib.sha256(json.dumps(
        [dataclasses.asdict(config), resolved.settings.model_dump(mode="json"), features.data_hash, seed,
         device.type, code_hash()], sort_keys=True, default=str).encode()).hexdigest()
    return Job(dataset, model, seed, params.preset, family, model_registry.get(model), resolved, device,
               features, sample, on_epoch, fingerprint)


def job_tasks(job: Job) -> list[Task]:
    tasks = list(job.features.tasks.values()) if job.family == "forecast" else [job.features.task]
    if job.config.tasks is None:
        return tasks
    unknown = sorted(set(job.config.tasks) - {t.name for t in tasks})
    if unknown:
        raise TrainingError(f"presets.{job.preset}.budgets.{job.dataset}.tasks names {unknown}, which the features "
                            f"of {job.dataset} do not have ({[t.name for t in tasks]}); fix params.yaml or rerun "
                            f"`python -m seqbench features --dataset {job.dataset}`")
    return [t for t in tasks if t.name in job.config.tasks]
