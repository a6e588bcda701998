"""Task specifications: what a model sees and predicts. Torch-free (params validation imports it).

A dataset has one or more tasks (CTA: next_day, multivariate, 14_day; ETT: h96, h336, ...). The
features stage writes each task into `data/features/<ds>/meta.json` (`to_dict`), the train stage
reads it back (`task_from_dict`); models are built from a task and their settings.

Task kinds (what a model declares it supports):
  forecast_single  one target variable, one step ahead
  forecast_multi   several steps and/or several target variables
  text_binary      a document in, P(positive) out
  next_char        characters in, the next character at every position out
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

TaskKind = Literal["forecast_single", "forecast_multi", "text_binary", "next_char"]
Family = Literal["forecast", "text", "chars"]
FAMILY_KINDS: dict[str, tuple[str, ...]] = {
    "forecast": ("forecast_single", "forecast_multi"),
    "text": ("text_binary",),
    "chars": ("next_char",),
}
# Which rows of the series a window of a split may touch (the protocols differ):
#   targets_in_split  targets lie inside the split, inputs may look back into the previous one (ETT)
#   inputs_in_split   inputs lie inside the split, the target may lie after it (Keras start/end_index: Jena)
#   all_in_split      inputs and targets inside the split (Keras on per-split arrays: CTA)
WindowRule = Literal["targets_in_split", "inputs_in_split", "all_in_split"]
# RevIN-style instance normalization of a forecast model's input windows (seqbench.models.input_handling)
InstanceNorm = Literal["none", "revin", "revin_affine"]


@dataclass(frozen=True)
class ForecastTask:
    """A window starting at row s reads rows s + sampling*i (i < lookback) of `inputs`; with
    last = s + sampling*(lookback-1), its targets are rows last + delay + j (j < horizon) of `targets`."""

    name: str
    lookback: int
    horizon: int
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    sampling: int = 1
    delay: int = 1
    season: int = 1  # seasonal period in input steps (seasonal_naive, sarima)
    window_rule: WindowRule = "targets_in_split"

    @property
    def kind(self) -> TaskKind:
        return "forecast_single" if self.horizon == 1 and len(self.targets) == 1 else "forecast_multi"

    @property
    def family(self) -> Family:
        return "forecast"

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def univariate(self) -> bool:
        """One series in, the same series out (what SARIMA can do)."""
        return self.inputs == self.targets and len(self.inputs) == 1

    @property
    def target_positions(self) -> tuple[int, ...]:
        """Index of each target among the inputs (naive forecasts repeat these input columns)."""
        missing = [t for t in self.targets if t not in self.inputs]
        if missing:
            raise ValueError(f"task {self.name}: targets {missing} are not among its inputs")
        return tuple(self.inputs.index(t) for t in self.targets)

    @property
    def span(self) -> int:
        """Rows from a window's first input to its last target, inclusive."""
        return self.sampling * (self.lookback - 1) + self.delay + self.horizon


@dataclass(frozen=True)
class TextTask:
    name: str
    vocab_size: int  # ids 0 (padding) and 1 (out-of-vocabulary) included
    sequence_length: int
    bigram_vocab_size: int
    kind: TaskKind = field(default="text_binary")

    @property
    def family(self) -> Family:
        return "text"


@dataclass(frozen=True)
class CharTask:
    name: str
    vocab_size: int  # id 0 = out-of-vocabulary included
    window: int
    kind: TaskKind = field(default="next_char")

    @property
    def family(self) -> Family:
        return "chars"


Task = ForecastTask | TextTask | CharTask


def to_dict(task: Task) -> dict:
    out = asdict(task)
    out["family"] = task.family
    out["kind"] = task.kind
    return out


def task_from_dict(data: dict) -> Task:
    """Inverse of `to_dict`; extra keys (such as a feature file's window ranges) are ignored."""
    cls = {"forecast": ForecastTask, "text": TextTask, "chars": CharTask}.get(data.get("family"))
    if cls is None:
        raise ValueError(f"unknown task family {data.get('family')!r} in task {data.get('name')!r}")
    fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "kind"}
    if cls is ForecastTask:
        fields["inputs"], fields["targets"] = tuple(fields["inputs"]), tuple(fields["targets"])
    return cls(**fields)
