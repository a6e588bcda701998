"""One job of the tracking-store load test: seqbench's train stage with every MLflow `log_batch` timed.

Runs as a SLURM array task: `python timed_train.py PROJECT DATASET MODEL FIRST_SEED OUT_DIR` trains
seed FIRST_SEED + $SLURM_ARRAY_TASK_ID through `seqbench.train.run` (what `python -m seqbench train`
calls), against the store MLFLOW_TRACKING_URI names (or the project's SQLite file), and writes
OUT_DIR/<seed>.json: the run id, each call's kind and seconds, the errors, and when logging began and
ended (to tell how many jobs wrote at once).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from mlflow.tracking import MlflowClient

from seqbench import tracking, train
from seqbench.io import write_json
from seqbench.params import load_params
from seqbench.paths import Layout


def main(project: Path, dataset: str, model: str, first_seed: int, out_dir: Path) -> int:
    seed = first_seed + int(os.environ["SLURM_ARRAY_TASK_ID"])
    calls: list[dict] = []
    errors: list[str] = []
    original = MlflowClient.log_batch

    def timed(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        began, wall = time.perf_counter(), time.time()
        try:
            return original(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}"[:500])
            raise
        finally:
            calls.append({"kind": "metrics" if metrics else "params", "seconds": time.perf_counter() - began,
                          "at": wall})

    MlflowClient.log_batch = timed
    # every epoch's losses reach the store at once (the job's default batches them every 5 s): the
    # heaviest traffic a training job can make
    tracking.JobRun.FLUSH_SECONDS = 0.0
    os.chdir(project)
    status, run_id = "ok", None
    try:
        metrics = train.run(load_params(project / "params.yaml"), Layout(project), dataset, model, seed, threads=1)
        run_id = metrics["mlflow_run_id"]
    except Exception:
        status = traceback.format_exc()[-2000:]
    write_json(out_dir / f"{seed}.json", {
        "seed": seed, "status": status, "run_id": run_id, "errors": errors, "calls": calls,
        "first_call": min((c["at"] for c in calls), default=None),
        "last_call": max((c["at"] + c["seconds"] for c in calls), default=None)})
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(Path(args[0]), args[1], args[2], int(args[3]), Path(args[4])))
