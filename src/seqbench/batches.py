"""One task's data in memory, per family: batches gathered by index (no per-sample Python, no
DataLoader) and what an evaluation pass keeps of each batch.

A sample is identified by an int64 id: a forecast window's start row, a text row of its split, or a
character window's start offset. `samples(split, ...)` lists a split's ids after the budget's thinning;
`batch(split, ids)` gathers the inputs and targets of those ids on the training device;
`keep(out, y)` reduces one evaluation batch to CPU tensors, `eval_loss` gives the loss in training
units, and `evaluate` the metrics (metric units) and predictions table of a split.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from seqbench import evaluate as ev
from seqbench import windows
from seqbench.tasks import CharTask, ForecastTask, Task, TextTask


def shuffled_batches(ids: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """The ids in a random order fixed by the generator, cut into batches."""
    order = ids[torch.randperm(len(ids), generator=generator).numpy()]
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


class SampleData:
    """What every family shares: random training batches, evaluation in the order given."""

    def train_batches(self, ids: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
        return shuffled_batches(ids, batch_size, generator)

    def eval_order(self, split: str, ids: np.ndarray) -> np.ndarray | None:
        return None


class ForecastData(SampleData):
    def __init__(self, features, task: ForecastTask, device: torch.device, every_step: bool = False):
        self.features, self.task, self.device, self.every_step = features, task, device, every_step
        self.series = torch.as_tensor(np.ascontiguousarray(features.series, dtype=np.float32), device=device)  # (N, C)
        self.input_index = list(features.column_index(task.inputs))
        self.target_index = list(features.column_index(task.targets))

    def samples(self, split: str, stride: int = 1, max_count: int | None = None) -> np.ndarray:
        return np.asarray(windows.subsample(self.features.windows(self.task.name, split), stride, max_count),
                          dtype=np.int64)

    def batch(self, split: str, ids: np.ndarray, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.as_tensor(ids, device=self.device)
        x = windows.gather_inputs(self.series, starts, self.task, self.input_index)  # (B, T, F_in)
        if train and self.every_step:
            return x, windows.gather_every_step_targets(self.series, starts, self.task, self.target_index)  # (B, T, H, F_out)
        return x, windows.gather_targets(self.series, starts, self.task, self.target_index)  # (B, H, F_out)

    def keep(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.every_step:
            # (B, T, H, F) -> the forecast made at the last input step (B, H, F), copied: a view would keep
            # every batch's T forecasts alive until the end of the pass (ETTh1 h336: 2.3 GB for validation)
            out = out[:, -1].clone()
        return {"out": out.cpu(), "y": y.cpu()}

    def eval_loss(self, kept: dict, loss_fn) -> float:
        return float(loss_fn(kept["out"], kept["y"]))

    def evaluate(self, split: str, ids: np.ndarray, kept: dict):
        """-> (metrics, per-horizon MAE for multi-step tasks else None, predictions) in metric units."""
        f, cols = self.features, self.target_index
        y_true, y_pred = (ev.to_metric_units(kept[k].numpy(), f.mean[cols], f.scale[cols], f.metric_units)
                          for k in ("y", "out"))
        first_target = f.timestamps[ids + windows.target_offsets(self.task)[0]]
        frame = ev.forecast_predictions(self.task.name, split, ids, first_target, y_true, y_pred)
        per_h = ev.per_horizon_mae(y_true, y_pred) if self.task.kind == "forecast_multi" else None
        # a percentage error of standardized values (ETT: targets near 0) means nothing: no MAPE there
        return ev.forecast_metrics(y_true, y_pred, with_mape=f.metric_units != "scaled"), per_h, frame


# Documents per length bucket, in batches: sorting 50 batches' worth of random documents by length and
# cutting each batch to its longest text spends ~2.5x less compute on IMDB padding (reviews average
# ~230 of 600 tokens) while batches stay random mixes of the corpus.
BUCKET_BATCHES = 50


class TextData(SampleData):
    def __init__(self, features, task: TextTask, device: torch.device, text_input: str = "sequence",
                 trim: bool = False, length_multiple: int = 1):
        self.features, self.task, self.device, self.text_input = features, task, device, text_input
        self.trim = trim and text_input == "sequence"  # only for models whose output ignores padding
        self.length_multiple = length_multiple
        self._bow = {}
        self._lengths = {}

    def lengths(self, split: str) -> np.ndarray:
        """(n,) real length of each post-padded sequence (at least 1)."""
        if split not in self._lengths:
            real = np.asarray(self.features.sequences[split]) != 0  # (n, L)
            last = real.shape[1] - np.argmax(real[:, ::-1], axis=1)
            self._lengths[split] = np.where(real.any(axis=1), last, 1)
        return self._lengths[split]

    def train_batches(self, ids: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
        if not self.trim:
            return super().train_batches(ids, batch_size, generator)
        order = ids[torch.randperm(len(ids), generator=generator).numpy()]
        lengths = self.lengths("train")
        batches = []
        for start in range(0, len(order), batch_size * BUCKET_BATCHES):
            bucket = order[start:start + batch_size * BUCKET_BATCHES]
            bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
            batches += [bucket[i:i + batch_size] for i in range(0, len(bucket), batch_size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def eval_order(self, split: str, ids: np.ndarray) -> np.ndarray | None:
        """Positions of `ids` sorted by length, so evaluation batches are cut short too (None: as given)."""
        return np.argsort(self.lengths(split)[ids], kind="stable") if self.trim else super().eval_order(split, ids)

    def samples(self, split: str, stride: int = 1, max_count: int | None = None) -> np.ndarray:
        n = len(self.features.labels[split])
        return np.asarray(windows.subsample(range(n), stride, max_count), dtype=np.int64)

    def labels(self, split: str, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.features.labels[split])[ids]

    def batch(self, split: str, ids: np.ndarray, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.as_tensor(self.labels(split, ids), dtype=torch.float32, device=self.device)  # (B,)
        if self.text_input == "sequence":
            rows = np.asarray(self.features.sequences[split])[ids]  # (B, L)
            if self.trim:
                # (B, the batch's longest text rounded up to length_multiple, at most L)
                longest = int(self.lengths(split)[ids].max())
                rows = rows[:, : -(-longest // self.length_multiple) * self.length_multiple]
            x = torch.as_tensor(rows, dtype=torch.int64, device=self.device)
        else:
            if split not in self._bow:
                self._bow[split] = self.features.bow(self.text_input, split)  # CSR (n, V)
            dense = self._bow[split][ids].toarray().astype(np.float32, copy=False)  # only this batch densified
            x = torch.as_tensor(dense, device=self.device)  # (B, V)
        return x, y

    def keep(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": out.cpu(), "y": y.cpu()}  # logits (B,), labels (B,)

    def eval_loss(self, kept: dict, loss_fn) -> float:
        return float(loss_fn(kept["out"], kept["y"]))

    def evaluate(self, split: str, ids: np.ndarray, kept: dict):
        probs = torch.sigmoid(kept["out"].double()).numpy()
        labels = self.labels(split, ids)
        return ev.text_metrics(labels, probs), None, ev.text_predictions(self.task.name, split, ids, labels, probs)


class CharData(SampleData):
    def __init__(self, features, task: CharTask, device: torch.device):
        self.features, self.task, self.device = features, task, device
        self.ids = torch.as_tensor(np.asarray(features.ids, dtype=np.int64), device=device)  # (N,)
        self.offsets = torch.arange(task.window, device=device)  # (W,)

    def samples(self, split: str, stride: int = 1, max_count: int | None = None,
                eval_split: bool = False) -> np.ndarray:
        # evaluation reads non-overlapping windows so every character of the split is scored once
        base = self.features.windows(split, self.task.window if eval_split else 1)
        return np.asarray(windows.subsample(base, stride, max_count), dtype=np.int64)

    def batch(self, split: str, ids: np.ndarray, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(ids, device=self.device)[:, None] + self.offsets[None, :]  # (B, W)
        return self.ids[rows], self.ids[rows + 1]

    def keep(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        nll = F.cross_entropy(out.transpose(1, 2), y, reduction="none")  # (B, V, W) -> (B, W) nats
        return {"nll": nll.cpu(), "correct": (out.argmax(dim=-1) == y).cpu()}

    def eval_loss(self, kept: dict, loss_fn) -> float:
        return float(kept["nll"].double().mean())  # = cross-entropy over every scored character

    def evaluate(self, split: str, ids: np.ndarray, kept: dict):
        nll, correct = kept["nll"].numpy(), kept["correct"].numpy()
        return ev.char_metrics(nll, correct), None, ev.char_predictions(self.task.name, split, ids, nll, correct)


def make_data(features, task: Task, entry, device: torch.device):
    if isinstance(task, ForecastTask):
        return ForecastData(features, task, device, every_step=entry.every_step)
    if isinstance(task, TextTask):
        return TextData(features, task, device, text_input=entry.text_input, trim=entry.masks_padding,
                        length_multiple=entry.length_multiple)
    if isinstance(task, CharTask):
        return CharData(features, task, device)
    raise TypeError(f"unknown task type {type(task).__name__}")


def eval_samples(data, split: str, max_count: int | None) -> np.ndarray:
    if isinstance(data, CharData):
        return data.samples(split, 1, max_count, eval_split=True)
    return data.samples(split, 1, max_count)
