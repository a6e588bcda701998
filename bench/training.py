"""Training benchmark: seconds per epoch and peak memory of every forecast architecture on the Jena
windows of the standard preset, through the train stage's own functions (make_job, make_data,
make_optimizer, train_epoch, predict).

    python bench/training.py [--threads N] [--batches B] [--rounds R] [--work DIR] [--models M ...]

(On a shared machine prefer 1 thread, the workflow's setting for forecast jobs: with 2 threads on 2 busy
cores, torch's spinning OpenMP threads made single batches 10-100x slower at random.)

A full-size generated Jena file (`seqbench make-jena-like --rows 420551`) goes through download,
standardize, split and features in a temporary project (kept in --work to reuse). Then:
  1. each architecture trains one epoch in its own process (peak memory is per process); with
     --batches B only the epoch's first B batches run;
  2. one process runs every architecture batch by batch in turn for R rounds: the median batch time x
     batches per epoch is the epoch estimate least disturbed by other work on a shared machine.
Parameter-free models (naive, seasonal_naive) are timed on inference instead of training. Two extra
variants price recurrent dropout: lstm_dropout against the same LSTM without any dropout and against
`lstm` with the same units (cells.LSTM: the same C++ loops without a mask); the brief asks for at most
2x. Writes reports/bench/training.json and reports/bench/training.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = "jena"
ROWS = 420_551
# (label, model, settings overrides): the recurrent-dropout comparison's extra variants
VARIANTS = [("lstm_dropout (no dropout)", "lstm_dropout", {"recurrent_dropout": 0.0, "dropout": 0.0}),
            ("lstm (units 32)", "lstm", {"units": 32})]


def prepare(work: Path) -> Path:
    """A standard-preset project whose Jena features come from a full-size generated file."""
    import yaml

    from seqbench import download, features, split, standardize
    from seqbench.params import load_params
    from seqbench.paths import Layout

    project, mirror = work / "project", work / "mirror"
    if (project / "data" / "features" / DATASET / "meta.json").is_file():
        return project
    project.mkdir(parents=True, exist_ok=True)
    if not (mirror / "SHA256SUMS").is_file():
        subprocess.run([sys.executable, "-m", "seqbench", "make-jena-like", "--rows", str(ROWS), "--out", str(mirror)],
                       check=True)
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["preset"] = "standard"
    data["data"]["mirrors"] = [str(mirror)]
    (project / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    params, layout = load_params(project / "params.yaml"), Layout(project)
    for stage in (download, standardize, split, features):
        stage.run(params, layout, DATASET)
    return project


class Runner:
    """One architecture on the Jena task, set up as loop.fit_task sets it up."""

    def __init__(self, project: Path, model: str, overrides: dict, threads: int):
        import torch

        import dataclasses

        from seqbench import features as feature_loader
        from seqbench import loop
        from seqbench.batches import make_data
        from seqbench.job import job_tasks, make_job
        from seqbench.params import load_params
        from seqbench.paths import Layout

        params = load_params(project / "params.yaml")
        feats = feature_loader.load_features(Layout(project).features(DATASET))
        self.job = job = make_job(params, DATASET, model, 0, feats, threads)
        if overrides:
            settings = job.entry.settings.model_validate({**job.settings.model_dump(), **overrides})
            job.resolved = dataclasses.replace(job.resolved, settings=settings)
        self.task = job_tasks(job)[0]
        torch.manual_seed(0)
        self.net = job.entry.build(self.task, job.settings).to(job.device)
        self.data = make_data(feats, self.task, job.entry, job.device)
        self.train_ids = self.data.samples("train", job.config.train_stride, job.config.max_train_samples)
        self.params_count = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        self.optimizer = loop.make_optimizer(self.net.parameters(), job.config) if self.params_count else None
        self.batch_size = job.config.batch_size
        self.batches_per_epoch = -(-len(self.train_ids) // self.batch_size)

    def batch_ids(self, i: int):
        return self.train_ids[i * self.batch_size:(i + 1) * self.batch_size]

    def run(self, ids, on_batch=lambda: None) -> None:
        """Train on these windows as one epoch does; parameter-free models run inference instead."""
        from seqbench import loop

        if self.params_count:
            loop.train_epoch(self.job, self.task, self.net, self.optimizer, self.data, ids, 1, on_batch)
            return
        for start in range(0, len(ids), self.batch_size):
            loop.predict(self.job, self.net, self.data, "train", ids[start:start + self.batch_size])
            on_batch()


def measure_one(project: Path, model: str, overrides: dict, threads: int, batches: int) -> dict:
    """Phase 1: one epoch (or its first `batches` batches) of one architecture, alone in this process."""
    import psutil  # an MLflow dependency
    import torch

    from seqbench import device as dev

    runner = Runner(project, model, overrides, threads)
    ids = runner.train_ids[: batches * runner.batch_size] if batches else runner.train_ids
    before = psutil.Process().memory_info().rss / 2**20
    stamps = [time.perf_counter()]
    runner.run(ids, lambda: stamps.append(time.perf_counter()))
    seconds = stamps[-1] - stamps[0]
    peak = dev.peak_memory_mb(runner.job.device)
    return {"model": model, "params_count": int(runner.params_count), "trained": bool(runner.params_count),
            "settings": runner.job.settings.model_dump(mode="json"), "train_windows": len(runner.train_ids),
            "batch_size": runner.batch_size, "batches_per_epoch": runner.batches_per_epoch,
            "batches_run": len(stamps) - 1, "seconds": round(seconds, 2),
            "seconds_per_epoch": round(seconds * runner.batches_per_epoch / (len(stamps) - 1), 2),
            "peak_memory_mb": peak, "training_memory_mb": round(max(0.0, peak - before), 1),
            "device": str(runner.job.device), "threads": torch.get_num_threads()}


def measure_interleaved(project: Path, plan: list, threads: int, rounds: int) -> dict:
    """Phase 2: every architecture, one batch each in turn, `rounds` times: medians under the same load."""
    runners = {label: Runner(project, model, overrides, threads) for label, model, overrides in plan}
    times = {label: [] for label in runners}
    for i in range(rounds):
        for label, runner in runners.items():
            began = time.perf_counter()
            runner.run(runner.batch_ids(i))
            times[label].append(time.perf_counter() - began)
    return {label: {"median_batch_seconds": round(statistics.median(t), 5),
                    "seconds_per_epoch": round(statistics.median(t) * runners[label].batches_per_epoch, 2)}
            for label, t in times.items()}


def subprocess_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    lines = ["| architecture | params | trained | s/epoch, interleaved | median s/batch | s/epoch, own process "
             "| peak RSS MB | training MB |", "|---|---:|:---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['params_count']} | {'yes' if r['trained'] else 'no (inference)'} | "
                     f"{r['interleaved']['seconds_per_epoch']:.1f} | {r['interleaved']['median_batch_seconds']:.4f} | "
                     f"{r['seconds_per_epoch']:.1f} | {r['peak_memory_mb']:.0f} | {r['training_memory_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: training.threads.forecast of params.yaml, what the workflow uses)")
    parser.add_argument("--batches", type=int, default=0, help="phase 1: run only the first B batches (0: one epoch)")
    parser.add_argument("--rounds", type=int, default=30, help="phase 2: batches per architecture, in turn")
    parser.add_argument("--work", type=Path, default=None, help="folder for the generated data (kept, reused)")
    parser.add_argument("--models", nargs="*", default=None, help="default: the forecast job list of params.yaml")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--interleaved", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.project, args.one, json.loads(args.settings), args.threads, args.batches)))
        return
    if args.interleaved:
        print(json.dumps(measure_interleaved(args.project, json.loads(args.interleaved), args.threads, args.rounds)))
        return

    import torch

    from seqbench.io import write_json, write_text
    from seqbench.params import load_params

    params = load_params(ROOT / "params.yaml")
    args.threads = args.threads or params.training.threads["forecast"]
    work = args.work or Path(tempfile.mkdtemp(prefix="seqbench-bench-"))
    project = prepare(work)
    models = args.models or params.jobs.forecast.models
    plan = [(m, m, {}) for m in models] + (VARIANTS if "lstm_dropout" in models else [])
    common = ["--project", str(project), "--threads", str(args.threads)]
    results = []
    for label, model, overrides in plan:
        result = {"label": label, **subprocess_json("--one", model, "--settings", json.dumps(overrides),
                                                    "--batches", str(args.batches), *common)}
        print(f"{label}: {result['seconds_per_epoch']:.1f} s/epoch alone, {result['peak_memory_mb']:.0f} MB",
              file=sys.stderr)
        results.append(result)
    interleaved = subprocess_json("--interleaved", json.dumps(plan), "--rounds", str(args.rounds), *common)
    for result in results:
        result["interleaved"] = interleaved[result["label"]]
    slowdown = {label: round(interleaved["lstm_dropout"]["median_batch_seconds"]
                             / interleaved[label]["median_batch_seconds"], 2)
                for label, *_ in VARIANTS if "lstm_dropout" in interleaved}
    first = results[0]
    report = {"dataset": DATASET, "rows": ROWS, "preset": "standard", "torch": torch.__version__,
              "threads": args.threads, "cpu_count": os.cpu_count(), "device": first["device"],
              "train_windows": first["train_windows"], "batch_size": first["batch_size"],
              "batches_per_epoch": first["batches_per_epoch"], "phase1_batches": args.batches or "one epoch",
              "phase2_rounds": args.rounds, "lstm_dropout_slowdown": slowdown, "results": results}
    ratio_lines = "\n".join(f"- lstm_dropout vs {k}: {v}x per training batch (limit 2x)" for k, v in slowdown.items())
    text = (f"# Training benchmark: Jena windows, standard preset\n\n"
            f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores, device {first['device']}; "
            f"{first['train_windows']} training windows (train_stride 4), batch {first['batch_size']}, "
            f"{first['batches_per_epoch']} batches per epoch. *Interleaved*: median of {args.rounds} batches per "
            f"architecture, all architectures in turn in one process, x batches per epoch. *Own process*: "
            f"{'one epoch' if not args.batches else f'the first {args.batches} batches, scaled to an epoch'} "
            f"alone in a fresh process, whose peak RSS is reported (*training MB*: the peak above the RSS "
            f"before the first batch). Parameter-free models are timed on inference.\n\n"
            f"{table(results)}\n\nRecurrent dropout cost (interleaved medians):\n{ratio_lines}\n")
    write_json(ROOT / "reports" / "bench" / "training.json", report)
    write_text(ROOT / "reports" / "bench" / "training.md", text)
    print(text)


if __name__ == "__main__":
    main()
