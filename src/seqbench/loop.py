"""Fit and evaluate one task of a job: a fresh model seeded from (seed, task), the epoch loop with early
stopping on the validation loss, then the final evaluation of the best epoch's weights.

A model without parameters (naive, seasonal_naive, sarima) is evaluated only. Each epoch's batches come
from their own generator seeded from (seed, task, epoch), and `fit` hands its state (weights, optimizer,
RNG) to a `save` callback, so a killed job resumed from that state ends with the same numbers
(seqbench.train keeps resume.pt). Character models also write a sample continuing `sample_prompt`,
drawn at temperature 1.0 from a generator seeded from the job's seed.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch.nn import functional as F

from seqbench import device as dev
from seqbench.batches import eval_samples, make_data
from seqbench.errors import TrainingError
from seqbench.job import Job, derived_seed
from seqbench.tasks import ForecastTask, Task


# --- losses and optimizers (names validated by params.py) -----------------------------------------
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": lambda out, y: F.huber_loss(out, y, delta=1.0),
    "bce": F.binary_cross_entropy_with_logits,
    "cross_entropy": lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)),  # (B*T, V)
}


def make_optimizer(parameters, config) -> torch.optim.Optimizer:
    common = {"lr": config.lr, "weight_decay": config.weight_decay}
    build = {
        "adam": lambda: torch.optim.Adam(parameters, **common),
        "adamw": lambda: torch.optim.AdamW(parameters, **common),
        "sgd": lambda: torch.optim.SGD(parameters, momentum=config.momentum, **common),
        # alpha 0.9 = Keras' rho: the books' RMSprop
        "rmsprop": lambda: torch.optim.RMSprop(parameters, alpha=0.9, momentum=config.momentum, **common),
        "nadam": lambda: torch.optim.NAdam(parameters, **common),
    }
    return build[config.optimizer]()


# --- one epoch, one evaluation pass ----------------------------------------------------------------
def _nan_error(job: Job, task: str, epoch: int, batch: int | str, value: float) -> TrainingError:
    return TrainingError(
        f"{job.dataset}/{job.model} seed {job.seed}: the loss of task {task!r} became {value} at epoch {epoch}, "
        f"batch {batch}. Try a lower learning rate (models.{job.model}.lr in params.yaml; now {job.config.lr}), "
        f"gradient clipping (training.clip_norm; now {job.config.clip_norm}), or check the inputs in "
        f"data/features/{job.dataset}/.")


def train_epoch(job: Job, task: Task, model, optimizer, data, train_ids: np.ndarray, epoch: int,
                progress=None) -> float:
    """One pass over the training windows in an order fixed by (seed, task, epoch); mean batch loss."""
    model.train()
    loss_fn, cfg = LOSSES[job.config.loss], job.config
    generator = torch.Generator().manual_seed(derived_seed(job.seed, task.name, epoch))
    total, count = 0.0, 0
    for batch, ids in enumerate(data.train_batches(train_ids, cfg.batch_size, generator), start=1):
        job.progress.update(task=task.name, epoch=epoch, batch=batch)
        x, y = data.batch("train", ids, train=True)
        with dev.autocast(job.device, cfg.mixed_precision):
            out = model(x)
        loss = loss_fn(out.float(), y)
        value = loss.item()
        if not math.isfinite(value):
            raise _nan_error(job, task.name, epoch, batch, value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        optimizer.step()
        total, count = total + value * len(ids), count + len(ids)
        if progress is not None:
            progress()
    return total / max(count, 1)


@torch.inference_mode()
def predict(job: Job, model, data, split: str, ids: np.ndarray) -> tuple[float, dict[str, torch.Tensor]]:
    """Evaluation pass -> (loss in training units, what the family's metrics need, on the CPU)."""
    model.eval()
    order = data.eval_order(split, ids)  # e.g. texts by length, so batches are cut short
    ordered = ids if order is None else ids[order]
    parts = []
    for start in range(0, len(ordered), job.config.batch_size):
        x, y = data.batch(split, ordered[start:start + job.config.batch_size])
        with dev.autocast(job.device, job.config.mixed_precision):
            parts.append(data.keep(model(x).float(), y))
    kept = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    if order is not None:  # back to the order of `ids`
        inverse = torch.as_tensor(np.argsort(order))
        kept = {key: value[inverse] for key, value in kept.items()}
    return data.eval_loss(kept, LOSSES[job.config.loss]), kept


@torch.inference_mode()
def generate(job: Job, model, prompt: str, length: int) -> str:
    """Continue `prompt` by `length` characters sampled at temperature 1.0 (fixed-seed generator)."""
    model.eval()
    f, window = job.features, job.features.task.window
    ids = [int(i) for i in f.encode(prompt)]
    generator = torch.Generator().manual_seed(derived_seed(job.seed, "sample"))
    for _ in range(length):
        x = torch.tensor([ids[-window:]], dtype=torch.int64, device=job.device)  # (1, T)
        logits = model(x)[0, -1].cpu().double()  # (V,); float64 on the CPU (MPS has none)
        logits[0] = -math.inf  # id 0 is out-of-vocabulary: no character to write
        probs = torch.softmax(logits, dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return prompt + f.decode(ids[len(f.encode(prompt)):])


# --- one task --------------------------------------------------------------------------------------
@dataclass
class TaskOutcome:
    result: dict  # the task's entry in metrics.json
    history: list[dict]
    best_state: dict
    predictions: pl.DataFrame


def _cpu_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _epoch_line(job: Job, task: str, row: dict) -> str:
    return (f"{job.dataset}/{job.model}/seed{job.seed} {task} epoch {row['epoch']}/{job.config.max_epochs}: "
            f"train_loss {row['train_loss']:.5g} val_loss {row['val_loss']:.5g} ({row['seconds']:.1f}s)")


# A save per epoch cost 12 ms of a 0.1-0.3 s CTA epoch; CTA's 500-epoch tasks save a few times a minute instead.
RESUME_SECONDS = 10.0


@dataclass
class Prepared:
    """A task's freshly built model, its data and the windows of each split the budget keeps."""

    model: torch.nn.Module
    data: object  # seqbench.batches.ForecastData | TextData | CharData
    ids: dict[str, np.ndarray]  # split -> sample ids
    params_count: int
    closed_form: bool = False  # fitted by least squares (linear_ls), not by gradient steps


def prepare(job: Job, task: Task, splits: tuple[str, ...] = ("train", "val", "test")) -> Prepared:
    """The task's fresh model, its data and the windows of `splits` the budget keeps (a search leaves out test)."""
    cfg = job.config
    torch.manual_seed(derived_seed(job.seed, task.name, "init"))
    model = job.entry.build(task, job.settings).to(job.device)
    closed_form = getattr(model, "closed_form", False)
    params_count = (sum(v.numel() for v in model.state_dict().values()) if closed_form
                    else sum(p.numel() for p in model.parameters() if p.requires_grad))
    data = make_data(job.features, task, job.entry, job.device)
    ids = {split: (data.samples("train", cfg.train_stride, cfg.max_train_samples) if split == "train"
                   else eval_samples(data, split, cfg.max_eval_samples)) for split in splits}
    empty = [split for split in splits if len(ids[split]) == 0 and (split != "train" or params_count)]
    if empty:
        counts = ", ".join(f"{split} {len(ids[split])}" for split in splits)
        raise TrainingError(f"{job.dataset}: task {task.name!r} has no windows in a split ({counts}); check "
                            f"datasets.{job.dataset} in params.yaml")
    return Prepared(model, data, ids, int(params_count), closed_form)


def fit(job: Job, task: Task, run: Prepared, resume: dict | None = None,
        save: Callable[[dict], None] | None = None) -> tuple[dict, dict | None]:
    """The epoch loop with early stopping on the validation loss -> (state, the best epoch's validation
    outputs when that epoch ran in this process). state["best_state"] holds the best weights; the
    model is left with the last epoch's."""
    if run.closed_form:
        return fit_closed_form(job, run), None
    cfg, model = job.config, run.model
    state = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "bad": 0, "history": [], "seconds": 0.0,
             "best_state": _cpu_copy(model)}
    optimizer = make_optimizer(model.parameters(), cfg) if run.params_count else None
    best_val_kept = None
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        dev.set_rng_state(job.device, resume["rng"])
        state = {k: resume[k] for k in state}
        for row in state["history"]:
            if job.on_epoch:
                job.on_epoch(task.name, row["epoch"], row["train_loss"], row["val_loss"])
    saved_at = -math.inf
    with _Progress(job, task.name, -(-len(run.ids["train"]) // cfg.batch_size)) as bar:
        # patience counts epochs without improvement (Keras); a resumed job re-checks the saved count
        while run.params_count and state["epoch"] < cfg.max_epochs and not 0 < state["bad"] >= cfg.patience:
            epoch, began = state["epoch"] + 1, time.perf_counter()
            if cfg.lr_decay == "linear":  # set from the epoch alone, so a resumed job continues the same schedule
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * (1 - (epoch - 1) / cfg.max_epochs)
            bar.start(epoch)
            train_loss = train_epoch(job, task, model, optimizer, run.data, run.ids["train"], epoch, bar.advance)
            job.progress.update(batch=None)  # validation
            val_loss, val_kept = predict(job, model, run.data, "val", run.ids["val"])
            if not math.isfinite(val_loss):
                raise _nan_error(job, task.name, epoch, "(validation)", val_loss)
            if val_loss < state["best_loss"] - cfg.min_delta:
                state.update(best_loss=val_loss, best_epoch=epoch, bad=0, best_state=_cpu_copy(model))
                best_val_kept = val_kept  # the best weights' validation outputs: not computed again
            else:
                state["bad"] += 1
            seconds = time.perf_counter() - began
            row = {"task": task.name, "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                   "seconds": seconds, "lr": optimizer.param_groups[0]["lr"]}
            state.update(epoch=epoch, seconds=state["seconds"] + seconds, history=[*state["history"], row])
            bar.log(_epoch_line(job, task.name, row))
            if job.on_epoch:
                job.on_epoch(task.name, epoch, train_loss, val_loss)
            if save is not None and time.monotonic() - saved_at >= RESUME_SECONDS:
                save({**state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "rng": dev.rng_state(job.device)})
                saved_at = time.monotonic()
    return state, best_val_kept


CLOSED_FORM_CHUNK = 4096  # training windows per pass into the normal equations


@torch.no_grad()
def fit_closed_form(job: Job, run: Prepared) -> dict:
    """Least squares on every training window, the ridge penalty chosen on the validation loss (the first
    of equal ones, in the settings' order)."""
    began = time.perf_counter()
    train_ids = run.ids["train"]
    for start in range(0, len(train_ids), CLOSED_FORM_CHUNK):
        run.model.closed_form_accumulate(*run.data.batch("train", train_ids[start:start + CLOSED_FORM_CHUNK]))
    losses = {}
    for ridge in job.settings.ridge:
        run.model.closed_form_solve(ridge)
        losses[ridge] = predict(job, run.model, run.data, "val", run.ids["val"])[0]
    best = min(losses, key=losses.get)
    run.model.closed_form_solve(best)
    return {"epoch": 0, "best_loss": losses[best], "best_epoch": 0, "bad": 0, "history": [],
            "seconds": time.perf_counter() - began, "best_state": _cpu_copy(run.model),
            "closed_form": {"ridge": best, "val_loss": {repr(r): loss for r, loss in losses.items()}}}


def final_evaluation(job: Job, task: Task, run: Prepared, state: dict, best_val_kept: dict | None) -> TaskOutcome:
    """Evaluate the best epoch's weights on validation and test (the test split is read here only)."""
    run.model.load_state_dict(state["best_state"])
    result = {"kind": task.kind, "status": "ok", "epochs": state["epoch"], "best_epoch": state["best_epoch"],
              "train_seconds": round(state["seconds"], 3),
              "seconds_per_epoch": round(state["seconds"] / state["epoch"], 3) if state["epoch"] else 0.0,
              "params_count": run.params_count}
    if isinstance(task, ForecastTask):  # look-back is a reported dimension (ETT: 96 and 336)
        result.update(lookback=task.lookback, horizon=task.horizon)
    if "closed_form" in state:
        result["closed_form"] = state["closed_form"]
    frames = []
    for split in ("val", "test"):
        if split == "val" and best_val_kept is not None:
            kept = best_val_kept
        else:
            _, kept = predict(job, run.model, run.data, split, run.ids[split])
        result[split], per_h, frame = run.data.evaluate(split, run.ids[split], kept)
        if per_h is not None:
            result[f"{split}_per_horizon_mae"] = per_h
        frames.append(frame)
    if job.sample is not None:
        result["sample"] = generate(job, run.model, *job.sample)
    return TaskOutcome(result, state["history"], state["best_state"], pl.concat(frames, how="vertical"))


def fit_task(job: Job, task: Task, resume: dict | None = None,
             save: Callable[[dict], None] | None = None) -> TaskOutcome:
    """Train (unless parameter-free) and evaluate one task.

    `save(state)` runs after the first epoch, then after an epoch once RESUME_SECONDS have passed since the
    last save: a killed job repeats at most that much training (the saved RNG state replays it exactly).
    """
    job.progress.update(task=task.name, epoch=None, batch=None)
    run = prepare(job, task)
    state, best_val_kept = fit(job, task, run, resume, save)
    job.progress.update(epoch=None, batch=None)  # the final evaluation
    return final_evaluation(job, task, run, state, best_val_kept)


class _Progress:
    """A rich bar of batches per epoch on a terminal; one plain line per epoch in orchestrator logs."""

    def __init__(self, job: Job, task: str, batches: int):
        self.tty, self.batches, self.label = sys.stderr.isatty(), batches, f"{job.model} {task}"
        self.bar = self.task_id = None

    def __enter__(self):
        if self.tty:
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.__enter__()
        return self

    def start(self, epoch: int) -> None:
        if self.bar is not None:
            if self.task_id is not None:
                self.bar.remove_task(self.task_id)
            self.task_id = self.bar.add_task(f"{self.label} epoch {epoch}", total=self.batches)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task_id)

    def log(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
