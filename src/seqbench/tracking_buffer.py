"""A training job's MLflow logging that never stops training: a background sender, a bounded buffer while
the store is away, and a local file holding what could not be sent when the job ends.

The job's outputs on disk are its result; the MLflow run is a copy. So a store that goes away during a
job (a server killed, a network cut, a SQLite file that cannot be written) costs the job nothing: the
epoch metrics wait in memory (at most MAX_PENDING points, the oldest dropped first) and go out as soon
as a send succeeds again (tries back off from FLUSH_SECONDS to RETRY_MAX_SECONDS). What is still unsent
when the job ends - metrics, the failure tags, the artifacts, the run's final status - is written to
`mlflow-unsynced.json` in the run folder, with a one-line warning, and `python -m seqbench
tracking-sync` sends it once the store is back (the MLflow run stays RUNNING until then).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from seqbench.io import read_json, write_json
from seqbench.tracking_server import reason

T = TypeVar("T")
SPOOL_NAME = "mlflow-unsynced.json"
SYNC_HINT = "run `python -m seqbench tracking-sync` once it is back"
RETRIES = 8


# --- MLflow calls ----------------------------------------------------------------------------------
def locked(error: BaseException) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database table is locked" in text


def retry(call: Callable[..., T], *args, **kwargs) -> T:
    """Call an MLflow function, retrying while SQLite reports a lock held by another process."""
    for attempt in range(RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not locked(error) or attempt == RETRIES - 1:
                raise
            time.sleep(min(8.0, 0.2 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def send_batch(client, run_id: str, metrics=(), params=(), tags=()) -> None:
    """log_batch in chunks MLflow accepts, each retried while SQLite is locked."""
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    metrics, params, tags = list(metrics), list(params), list(tags)
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        retry(client.log_batch, run_id, metrics=metrics[i:i + MAX_METRICS_PER_BATCH], synchronous=True)
    for i in range(0, max(len(params), len(tags)), MAX_PARAMS_TAGS_PER_BATCH):
        retry(client.log_batch, run_id, params=params[i:i + MAX_PARAMS_TAGS_PER_BATCH],
               tags=tags[i:i + MAX_PARAMS_TAGS_PER_BATCH], synchronous=True)


def metric_list(values: Mapping[str, float | None], step: int = 0, ts: int | None = None) -> list:
    from mlflow.entities import Metric

    ts = ts if ts is not None else int(time.time() * 1000)
    return [Metric(key, float(value), ts, step) for key, value in values.items() if value is not None]


def tag_list(values: Mapping[str, str]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(key, str(value)) for key, value in values.items()]


def param_list(values: Mapping[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(key, value) for key, value in values.items()]


def results_metrics(metrics_json: Mapping[str, Any]) -> list:
    """metrics.json -> MLflow metrics (see JobRun.log_results)."""
    now = int(time.time() * 1000)
    values: dict[str, float | None] = {}
    steps = []
    tasks = {name: result for name, result in metrics_json.get("tasks", {}).items() if isinstance(result, Mapping)}
    for task, result in tasks.items():
        for split in ("val", "test"):
            for name, value in (result.get(split) or {}).items():
                values[f"{task}/{split}_{name}"] = value
            for h, value in enumerate(result.get(f"{split}_per_horizon_mae") or [], start=1):
                steps += metric_list({f"{task}/{split}_per_horizon_mae": value}, step=h, ts=now)
        for name in ("train_seconds", "params_count", "epochs", "best_epoch"):
            values[f"{task}/{name}"] = result.get(name)
    seconds = [r["train_seconds"] for r in tasks.values() if r.get("train_seconds") is not None]
    counts = [r["params_count"] for r in tasks.values() if r.get("params_count") is not None]
    values["train_seconds"] = round(sum(seconds), 3) if seconds else None
    values["params_count"] = max(counts) if counts else None
    values["peak_memory_mb"] = (metrics_json.get("cost") or {}).get("peak_memory_mb")
    return metric_list(values, ts=now) + steps


# --- the job's run ---------------------------------------------------------------------------------
class JobRun:
    """The MLflow run of one training job, fed by the training loop (see `seqbench.tracking.job_run`)."""

    # Epoch curves reach the store at most this often (and when the job ends): a CTA epoch takes 0.1-0.3 s,
    # and a commit per epoch would hold the SQLite lock the other jobs write through.
    FLUSH_SECONDS = 5.0
    RETRY_MAX_SECONDS = 60.0
    MAX_PENDING = 200_000  # metric points kept while the store is away (~15 MB)

    def __init__(self, client, run_id: str, *, uri: str, spool: Path, identity: dict[str, Any],
                 params: list | None = None):
        self.client, self.run_id, self.uri, self.spool = client, run_id, uri, Path(spool)
        self._identity = identity
        self._lock = threading.Lock()  # guards the pending lists
        self._sending = threading.Lock()  # one send at a time (sender thread or flush)
        self._params: list = list(params or [])  # the run's settings, sent before anything else
        self._metrics: list = []
        self._tags: dict[str, str] = {}
        self._artifacts: list[Path] = []
        self._failure: BaseException | None = None
        self.dropped = 0
        self.away_since: float | None = None
        self.last_problem: str | None = None
        self._failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sender, name="seqbench-mlflow", daemon=True)

    # --- fed by the job ----------------------------------------------------------------------------
    def log_epoch(self, task: str, epoch: int, train_loss: float, val_loss: float) -> None:
        self._add(metric_list({f"{task}/train_loss": train_loss, f"{task}/val_loss": val_loss}, step=epoch))

    def log_results(self, metrics_json: dict[str, Any]) -> None:
        """Final metrics `<task>/<split>_<metric>`, per-horizon MAE as steps 1..H, and the cost of training:
        `<task>/train_seconds|params_count|epochs|best_epoch`, and per run `train_seconds` (all tasks),
        `params_count` (the largest task model) and `peak_memory_mb`."""
        self._add(results_metrics(metrics_json))

    def log_artifacts(self, paths: list[Path]) -> None:
        with self._lock:
            self._artifacts += [Path(p) for p in paths]

    def fail(self, error: BaseException) -> None:
        """Mark the run FAILED with the error as tags when the job ends, without raising (a failure the job
        records itself); an exception leaving the `job_run` block does the same."""
        self._failure = error

    def flush(self) -> bool:
        """Send what was logged so far now; False if the store could not take it (it stays pending)."""
        return self._send_metrics()

    # --- sending -----------------------------------------------------------------------------------
    def _add(self, metrics: list) -> None:
        with self._lock:
            self._metrics += metrics
            excess = len(self._metrics) - self.MAX_PENDING
            if excess > 0:
                del self._metrics[:excess]
                self.dropped += excess

    def _interval(self) -> float:
        if self.away_since is None:
            return self.FLUSH_SECONDS
        return min(self.RETRY_MAX_SECONDS, self.FLUSH_SECONDS * 2 ** min(self._failures, 10))

    def _sender(self) -> None:
        while not self._stop.wait(self._interval()):
            self._send_metrics()

    def _away(self, error: BaseException) -> bool:
        self.last_problem = reason(error)
        self._failures += 1
        if self.away_since is None:
            self.away_since = time.time()
            print(f"warning: MLflow store {self.uri} not available ({self.last_problem}); metrics wait in memory",
                  file=sys.stderr, flush=True)
        return False

    def _send_metrics(self) -> bool:
        """Send the pending params, then the pending metrics; what fails stays pending."""
        with self._sending:
            with self._lock:
                params, batch, self._params, self._metrics = self._params, self._metrics, [], []
            try:
                if params:
                    send_batch(self.client, self.run_id, params=params)
                    params = []
                if batch:
                    send_batch(self.client, self.run_id, metrics=batch)
            except Exception as error:
                with self._lock:
                    self._params[:0] = params
                    self._metrics[:0] = batch  # oldest first, ahead of what came meanwhile
                return self._away(error)
            if self.away_since is not None:
                print(f"MLflow store {self.uri} is back: buffered metrics sent", file=sys.stderr, flush=True)
            self.away_since, self._failures = None, 0
            return True

    def _send_rest(self, status: str) -> bool:
        """Tags, artifacts and the final status, in that order; stops at the first failure."""
        try:
            if self._tags:
                send_batch(self.client, self.run_id, tags=tag_list(self._tags))
                self._tags = {}
            while self._artifacts:
                retry(self.client.log_artifact, self.run_id, str(self._artifacts[0]))
                self._artifacts.pop(0)
            retry(self.client.set_terminated, self.run_id, status)
        except Exception as error:
            return self._away(error)
        return True

    # --- life cycle ----------------------------------------------------------------------------------
    def start(self) -> "JobRun":
        self.spool.unlink(missing_ok=True)  # an earlier attempt's leftovers belong to a run now replaced
        self._thread.start()
        return self

    def close(self, error: BaseException | None) -> str:
        """Stop the sender, send everything left and the final status; keep locally what cannot be sent.
        Returns the run's status; never raises (the job's outcome must not depend on the store)."""
        error = error or self._failure
        status = "FINISHED" if error is None else "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        if error is not None:
            self._tags.update(failure_tags(error))
        self._stop.set()
        self._thread.join()
        if self._send_metrics() and self._send_rest(status):
            return status
        self._write_spool(status)
        return status

    def _write_spool(self, status: str) -> None:
        folder = self.spool.parent
        artifacts = [str(p.relative_to(folder)) if p.is_relative_to(folder) else str(p) for p in self._artifacts]
        since = time.localtime(self.away_since or time.time())
        try:
            write_json(self.spool, {**self._identity, "uri": self.uri, "run_id": self.run_id, "status": status,
                                    "params": {p.key: p.value for p in self._params},
                                    "metrics": [[m.key, m.value, m.timestamp, m.step] for m in self._metrics],
                                    "tags": self._tags, "artifacts": artifacts, "dropped": self.dropped,
                                    "problem": self.last_problem, "since": time.strftime("%Y-%m-%dT%H:%M:%S", since)})
        except OSError as error:
            print(f"warning: MLflow store {self.uri} not available ({self.last_problem}) and {self.spool} cannot be "
                  f"written ({error}): run {self.run_id} stays RUNNING in MLflow", file=sys.stderr, flush=True)
            return
        outputs = "the job's outputs are complete; " if status == "FINISHED" else ""
        print(f"warning: MLflow store {self.uri} not available ({self.last_problem}): {outputs}"
              f"run {self.run_id} ({status}, {len(self._metrics)} metric values, "
              f"{len(artifacts)} artifacts) is kept in {self.spool}: {SYNC_HINT}", file=sys.stderr, flush=True)


def failure_tags(error: BaseException) -> dict[str, str]:
    message = str(error).strip() or type(error).__name__
    return {"seqbench.error_class": type(error).__name__, "seqbench.error": message[:4000]}


def replay(client, spool: Path) -> dict[str, Any]:
    """Send what a spool file holds to its run and delete the file; raises on the first failure (the file
    then keeps everything not yet confirmed, so a later replay resumes)."""
    from mlflow.entities import Metric, Param

    data = read_json(spool)
    run_id = data["run_id"]
    if data.get("params"):
        send_batch(client, run_id, params=[Param(k, v) for k, v in data["params"].items()])
        data["params"] = {}
        write_json(spool, data)
    metrics = [Metric(key, float(value), int(ts), int(step)) for key, value, ts, step in data["metrics"]]
    if metrics:
        send_batch(client, run_id, metrics=metrics)
        data["metrics"] = []
        write_json(spool, data)
    if data["tags"]:
        send_batch(client, run_id, tags=tag_list(data["tags"]))
        data["tags"] = {}
        write_json(spool, data)
    while data["artifacts"]:
        path = Path(data["artifacts"][0])
        path = path if path.is_absolute() else spool.parent / path
        if path.is_file():  # a file deleted since cannot be sent; the rest of the run can
            retry(client.log_artifact, run_id, str(path))
        data["artifacts"].pop(0)
        write_json(spool, data)
    retry(client.set_terminated, run_id, data["status"])
    spool.unlink()
    return {"run_id": run_id, "status": data["status"], "metrics": len(metrics), "dropped": data["dropped"]}
