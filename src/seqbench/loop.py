"""The training loop of one job: fit and evaluate every task of a (dataset, model, seed).

One job trains every task of the dataset that the preset keeps, one after the other, each from a fresh
model seeded from (seed, task). Early stopping on the validation loss restores the best weights; a
model without parameters (naive, seasonal_naive, sarima) is evaluated only. `resume.pt` is rewritten
atomically after every epoch, so a killed job restarted with the same settings, data and code ends with
the same metrics.json as an uninterrupted one: each epoch's batches come from their own generator seeded
from (seed, task, epoch), and the global RNG (dropout) is saved and restored with the weights.
Character models also write a sample continuing `sample_prompt`, drawn at temperature 1.0 from a
generator seeded from the job's seed. The stage's edge (outputs, MLflow) is seqbench.train.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch.nn import functional as F

from seqbench import datasets as dataset_registry
from seqbench import device as dev
from seqbench import evaluate as ev
from seqbench import models as model_registry
from seqbench.batches import eval_samples, make_data
from seqbench.errors import TrainingError
from seqbench.io import atomic_path
from seqbench.tasks import ForecastTask, Task, to_dict

FAMILY_LOSSES = {"forecast": ("mse", "mae", "huber"), "text": ("bce",), "chars": ("cross_entropy",)}
EpochHook = Callable[[str, int, float, float], None]


@dataclass
class Job:
    """Everything one training job needs, resolved once from params and the features."""

    dataset: str
    model: str
    seed: int
    preset: str
    family: str
    entry: model_registry.ModelEntry
    settings: object
    config: object  # params.TrainConfig
    device: torch.device
    features: object
    sample: tuple[str, int] | None = None  # chars: (prompt, length)
    on_epoch: EpochHook | None = None
    fingerprint: str = ""  # settings, data and code identity: a resume.pt saved under others is ignored


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


def make_job(params, dataset: str, model: str, seed: int, features, threads: int | None = 0,
             on_epoch: EpochHook | None = None) -> Job:
    config = params.train_config(dataset, model)
    settings = params.model_settings(model)
    family = dataset_registry.get(dataset).family
    if config.loss not in FAMILY_LOSSES[family]:
        raise TrainingError(f"datasets.{dataset}.training.loss is {config.loss!r}, which does not fit a {family} "
                            f"task; use one of {list(FAMILY_LOSSES[family])} in params.yaml")
    device = dev.resolve_device(config.device)
    dev.configure(device, threads)
    protocol = params.dataset(dataset)
    sample = (protocol.sample_prompt, protocol.sample_length) if family == "chars" else None
    fingerprint = hashlib.sha256(json.dumps(
        [dataclasses.asdict(config), settings.model_dump(mode="json"), features.data_hash, seed, device.type,
         code_hash()], sort_keys=True, default=str).encode()).hexdigest()
    return Job(dataset, model, seed, params.preset, family, model_registry.get(model), settings, config, device,
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


def fit_task(job: Job, task: Task, resume: dict | None = None,
             save: Callable[[dict], None] | None = None) -> TaskOutcome:
    """Train (unless parameter-free) and evaluate one task.

    `save(state)` runs after the first epoch, then after an epoch once RESUME_SECONDS have passed since the
    last save: a killed job repeats at most that much training (the saved RNG state replays it exactly).
    """
    cfg = job.config
    torch.manual_seed(derived_seed(job.seed, task.name, "init"))
    model = job.entry.build(task, job.settings).to(job.device)
    params_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    data = make_data(job.features, task, job.entry, job.device)
    train_ids = data.samples("train", cfg.train_stride, cfg.max_train_samples)
    val_ids, test_ids = (eval_samples(data, s, cfg.max_eval_samples) for s in ("val", "test"))
    if len(val_ids) == 0 or len(test_ids) == 0 or (params_count and len(train_ids) == 0):
        raise TrainingError(f"{job.dataset}: task {task.name!r} has no windows in a split (train {len(train_ids)}, "
                            f"val {len(val_ids)}, test {len(test_ids)}); check datasets.{job.dataset} in params.yaml")
    state = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "bad": 0, "history": [], "seconds": 0.0,
             "best_state": _cpu_copy(model)}
    optimizer = make_optimizer(model.parameters(), cfg) if params_count else None
    best_val_kept = None  # known only when the best epoch ran in this process (not before a resume)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        dev.set_rng_state(job.device, resume["rng"])
        state = {k: resume[k] for k in state}
        for row in state["history"]:
            if job.on_epoch:
                job.on_epoch(task.name, row["epoch"], row["train_loss"], row["val_loss"])
    saved_at = -math.inf
    with _Progress(job, task.name, -(-len(train_ids) // cfg.batch_size)) as bar:
        # patience counts epochs without improvement (Keras); a resumed job re-checks the saved count
        while params_count and state["epoch"] < cfg.max_epochs and not 0 < state["bad"] >= cfg.patience:
            epoch, began = state["epoch"] + 1, time.perf_counter()
            if cfg.lr_decay == "linear":  # set from the epoch alone, so a resumed job continues the same schedule
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * (1 - (epoch - 1) / cfg.max_epochs)
            bar.start(epoch)
            train_loss = train_epoch(job, task, model, optimizer, data, train_ids, epoch, bar.advance)
            val_loss, val_kept = predict(job, model, data, "val", val_ids)
            if not math.isfinite(val_loss):
                raise _nan_error(job, task.name, epoch, "(validation)", val_loss)
            if val_loss < state["best_loss"] - cfg.min_delta:
                state.update(best_loss=val_loss, best_epoch=epoch, bad=0, best_state=_cpu_copy(model))
                best_val_kept = val_kept  # the best weights' validation outputs: not computed again below
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
    model.load_state_dict(state["best_state"])
    result = {"kind": task.kind, "status": "ok", "epochs": state["epoch"], "best_epoch": state["best_epoch"],
              "train_seconds": round(state["seconds"], 3),
              "seconds_per_epoch": round(state["seconds"] / state["epoch"], 3) if state["epoch"] else 0.0,
              "params_count": int(params_count)}
    if isinstance(task, ForecastTask):  # look-back is a reported dimension (ETT: 96 and 336)
        result.update(lookback=task.lookback, horizon=task.horizon)
    frames = []
    for split, ids in (("val", val_ids), ("test", test_ids)):
        if split == "val" and best_val_kept is not None:
            kept = best_val_kept
        else:
            _, kept = predict(job, model, data, split, ids)
        result[split], per_h, frame = data.evaluate(split, ids, kept)
        if per_h is not None:
            result[f"{split}_per_horizon_mae"] = per_h
        frames.append(frame)
    if job.sample is not None:
        result["sample"] = generate(job, model, *job.sample)
    return TaskOutcome(result, state["history"], state["best_state"], pl.concat(frames, how="vertical"))


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


# --- one job: every task, resumable ----------------------------------------------------------------
def _skip_reason(job: Job, task: Task) -> str:
    if task.kind not in job.entry.kinds:
        return f"model {job.model!r} handles {', '.join(job.entry.kinds)} tasks, not {task.kind}"
    return f"model {job.model!r} needs a univariate task (one series in, the same series out)"


def _frame_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def _load_resume(path: Path, job: Job) -> dict | None:
    """The saved progress of this very job; None when absent or saved under other settings or data."""
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("fingerprint") != job.fingerprint:
        print(f"{path}: saved under other settings or data; starting over", file=sys.stderr)
        return None
    return saved


def _write_resume(path: Path, job: Job, done: dict, current: dict | None) -> None:
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": job.fingerprint, "done": done, "current": current}, tmp)


def train_job(job: Job, out_dir: Path) -> tuple[dict, list[dict], dict, pl.DataFrame]:
    """-> (tasks of metrics.json, history rows, best weights by task, predictions), resuming from resume.pt."""
    resume_path = out_dir / "resume.pt"
    saved = _load_resume(resume_path, job)
    done = saved["done"] if saved else {}
    results, history, states, frames = {}, [], {}, []
    for task in job_tasks(job):
        if not job.entry.supports(task):
            results[task.name] = {"kind": task.kind, "status": "skipped", "reason": _skip_reason(job, task)}
            continue
        if task.name in done:
            finished = done[task.name]
            for row in finished["history"]:
                if job.on_epoch:
                    job.on_epoch(task.name, row["epoch"], row["train_loss"], row["val_loss"])
            outcome = TaskOutcome(finished["result"], finished["history"], finished["best_state"],
                                  pl.read_parquet(io.BytesIO(finished["predictions"])))
        else:
            current = saved["current"] if saved and (saved["current"] or {}).get("task") == task.name else None
            outcome = fit_task(job, task, current,
                               lambda state, name=task.name: _write_resume(resume_path, job, done,
                                                                           {"task": name, **state}))
            done[task.name] = {"result": outcome.result, "history": outcome.history,
                               "best_state": outcome.best_state, "predictions": _frame_bytes(outcome.predictions)}
            _write_resume(resume_path, job, done, None)
        results[task.name] = outcome.result
        history += outcome.history
        states[task.name] = {"task": to_dict(task), "state_dict": outcome.best_state,
                             "best_epoch": outcome.result["best_epoch"]}
        frames.append(outcome.predictions)
    return results, history, states, ev.concat_predictions(job.family, frames)
