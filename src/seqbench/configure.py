"""configure stage: every training job's resolved settings, one file per (dataset, model, regime).

`resolve` is the one place where the preset's budget, the dataset's protocol, the training defaults and
the model's settings (its defaults in code, params.yaml's `models.<name>`) meet; the train stage trains
with what it returns. `python -m seqbench configure` writes them to config/<dataset>/<model>/<regime>.json
so that DVC reruns a training job exactly when its own resolved settings change (Snakemake compares
the same values through its params trigger). A file is rewritten only when its content changes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import yaml

from seqbench import datasets as dataset_registry
from seqbench.errors import SeqbenchError
from seqbench.io import write_text
from seqbench.models.settings import ModelSettings, forecast_input, with_forecast_input
from seqbench.params import Params, TrainConfig
from seqbench.paths import Layout
from seqbench.search_space import as_dict, with_values


@dataclass(frozen=True)
class JobConfig:
    """What one training job trains with (the seed aside)."""

    regime: str
    train: TrainConfig
    settings: ModelSettings
    threads: int  # torch CPU threads: part of the result (the order of float sums depends on it)

    def to_dict(self) -> dict[str, Any]:
        return {"regime": self.regime, "train": dataclasses.asdict(self.train),
                "model": self.settings.model_dump(mode="json"), "threads": self.threads}


def group_of(params: Params, dataset: str, model: str) -> str:
    for job in params.train_jobs():
        if (job.dataset, job.model) == (dataset, model):
            return job.group
    return "forecast"  # an ad-hoc job outside the job lists


def resolve(params: Params, dataset: str, model: str, regime: str = "protocol", layout: Layout | None = None) -> JobConfig:
    """A job's settings: the protocol's, or in the tuned regime those with what the search chose
    (tuned/<dataset>/<model>.yaml under `layout`'s root)."""
    threads = params.training.threads[group_of(params, dataset, model)]
    train, settings = params.train_config(dataset, model), model_settings(params, dataset, model)
    if regime == "tuned":
        settings = with_values(settings, tuned_values(params, layout, dataset, model))
        if settings.lr is not None:
            train = dataclasses.replace(train, lr=settings.lr)
    elif regime != "protocol":
        raise SeqbenchError(f"unknown regime {regime!r}; choose protocol or tuned")
    return JobConfig(regime, train, settings, threads)


def tuned_values(params: Params, layout: Layout | None, dataset: str, model: str) -> dict[str, Any]:
    """The settings a search chose, checked to come from the search space and budget params.yaml holds now."""
    if layout is None:
        raise SeqbenchError("the tuned regime reads tuned/<dataset>/<model>.yaml: give the project's layout")
    path = layout.tuned(dataset, model)
    if not path.is_file():
        raise SeqbenchError(f"{path}: missing; run the search (`make tune`, or `python -m seqbench tune --dataset "
                            f"{dataset} --model {model}`), or drop `tuned` from regimes in params.yaml")
    tuned = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if tuned.get("status") == "unavailable":
        return {}
    current = {"space": as_dict(params.search_spaces.get(model, {})), "budget": params.tune_budget(dataset).model_dump(mode="json", exclude_none=True)}
    stale = [key for key, value in current.items() if tuned.get(key) != value]
    if stale:
        raise SeqbenchError(f"{path}: searched under another {' and '.join(stale)} than params.yaml's "
                            f"(search_spaces.{model}, presets.{params.preset}.tune); rerun the search: `make tune`")
    return dict(tuned.get("settings") or {})


def model_settings(params: Params, dataset: str, model: str) -> ModelSettings:
    """The model's settings with every choice left to the dataset's protocol made (forecast input handling)."""
    settings = params.model_settings(model)
    handling = forecast_input(settings)
    if handling is None or dataset_registry.get(dataset).family != "forecast":
        return settings
    protocol = params.dataset(dataset).training
    return with_forecast_input(
        settings,
        instance_norm=protocol.instance_norm if handling.instance_norm is None else handling.instance_norm,
        channel_independent=(protocol.channel_independent if handling.channel_independent is None
                             else handling.channel_independent))


def config_json(config: JobConfig) -> str:
    return json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n"


def run(params: Params, layout: Layout) -> list[str]:
    """Write every job's resolved settings; returns the files whose content changed."""
    changed = []
    for job in dict.fromkeys((j.dataset, j.model, j.regime) for j in params.train_jobs()):
        path = layout.config(*job)
        text = config_json(resolve(params, *job, layout=layout))
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text(path, text)
            changed.append(str(path.relative_to(layout.root)))
    print(f"resolved settings: {len(changed)} file(s) changed under {layout.root / 'config'}")
    return changed
