"""The stage graph, described once: both orchestrators are built from this table.

Snakemake defines one rule per stage from it (workflow/rules/stages.smk); dvc.yaml is generated from it
(`python -m seqbench dvc-yaml`, checked by a test to equal the committed file). For every job the
table gives the command, the data it reads and writes, the params.yaml keys it depends on and its code:
the import closure of the stage's module plus its own dataset's and model's plugin modules
(seqbench.codedeps), never a hand-written list.

Settings reach jobs as values. Data, aggregate and report jobs name params.yaml keys (DVC `params:`,
Snakemake's params rerun trigger). Training jobs depend on their resolved settings: DVC on the file the
configure stage writes, config/<dataset>/<model>/<regime>.json, Snakemake on the same values as params.
A default changed in code or a preset edit reruns exactly the jobs whose resolved settings change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seqbench import codedeps, paths
from seqbench.params import Params

REPORTS = "reports"
REFERENCES = f"{REPORTS}/references.yaml"
TEMPLATE = f"{REPORTS}/comparison.ipynb"
AGGREGATE_OUTPUTS, REPORT_OUTPUTS = paths.AGGREGATE_OUTPUTS, paths.REPORT_OUTPUTS
# written outside the pipeline and committed, read by the report: the wall time of the last run
# (bench/workflow_times.py) and the speed benchmarks (make bench, make bench-peers)
REPORT_EXTRAS = (f"{REPORTS}/run_times.json", f"{REPORTS}/bench/training.json", f"{REPORTS}/bench/peers.json")
RUN_DIR = "runs/{dataset}/{model}/{regime}/seed{seed}"
TRACKING_MARKER = "runs/tracking.json"
CONFIG = "config/{dataset}/{model}/{regime}.json"
TUNED = "tuned/{dataset}/{model}.yaml"


@dataclass(frozen=True)
class Output:
    path: str  # a template over the stage's wildcards
    directory: bool = False
    dvc: str = "outs"  # outs | metrics | plots: how dvc.yaml lists it
    cache: bool = True  # False: small files kept in git (the reports, the tuned settings), not in DVC's cache
    # not deleted before the job runs (Snakemake `update`, DVC `persist`): the job reads its last version
    keep: bool = False


@dataclass(frozen=True)
class Stage:
    name: str  # the Snakemake rule; DVC stages are <name with dashes>-<wildcard values>
    module: str  # the stage's entry module: its import closure is the stage's code
    command: str  # a template over the wildcards; `python -m seqbench ...`
    wildcards: tuple[str, ...]
    outputs: tuple[Output, ...]
    # data the job reads, given the params and the job's wildcard values
    inputs: Callable[[Params, dict[str, Any]], list[str]] = lambda params, job: []
    # a training job's resolved settings: a file DVC hashes, while Snakemake compares the same values as its
    # params rerun trigger. Snakemake takes no input edge from the configure job: once a job upstream must
    # rerun (configure, after any edit of params.yaml) it plans every job downstream without checking them
    settings_file: Callable[[dict[str, Any]], str] | None = None
    params: tuple[str, ...] = ()  # params.yaml keys, templates over the wildcards and `preset`
    threads: Callable[[Params, dict[str, Any]], int] = lambda params, job: 1
    resolves_settings: bool = False  # turns settings schemas into values (its code includes them)
    # DVC also hashes the settings schemas: a job whose resolved settings DVC has no file for (a search's
    # starting settings) reruns when a default changes, and a search already done skips at once
    schema_deps: bool = False

    def log(self) -> str:
        parts = [f"{{{w}}}" if w != "seed" else "seed{seed}" for w in self.wildcards]
        return "/".join(["logs", self.name, *parts]) + ".log"


def _run_files(params: Params, name: str) -> list[str]:
    return [f"runs/{j.dataset}/{j.model}/{j.regime}/seed{j.seed}/{name}" for j in params.train_jobs()]


def tuned_files(params: Params) -> list[str]:
    return [TUNED.format(dataset=d, model=m) for d, m in params.tune_jobs()]


def _group(params: Params, job: dict[str, Any]) -> str:
    return next(j.group for j in params.train_jobs() if (j.dataset, j.model) == (job["dataset"], job["model"]))


def _data_stage(name: str, output: Output, inputs: Callable[[Params, dict[str, Any]], list[str]],
                params: tuple[str, ...], help_name: str | None = None) -> Stage:
    return Stage(name, f"seqbench.{name}", f"python -m seqbench {help_name or name} --dataset {{dataset}}", ("dataset",),
                 (output,), inputs, params=params)


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    _data_stage("download", Output("data/raw/{dataset}", directory=True), lambda p, j: [], ("data",)),
    _data_stage("standardize", Output("data/standard/{dataset}.parquet"),
                lambda p, j: [f"data/raw/{j['dataset']}"], ("datasets.{dataset}",)),
    _data_stage("split", Output("data/split/{dataset}", directory=True),
                lambda p, j: [f"data/standard/{j['dataset']}.parquet"], ("datasets.{dataset}",)),
    _data_stage("features", Output("data/features/{dataset}", directory=True),
                lambda p, j: [f"data/split/{j['dataset']}"], ("datasets.{dataset}",)),
    # the settings a search chose for the tuned regime; a search whose inputs are those its file
    # records is not redone (seqbench.tune), so its file is kept when the job starts
    Stage("tune", "seqbench.tune", "python -m seqbench tune --dataset {dataset} --model {model} --threads {threads}",
          ("dataset", "model"), (Output(TUNED, cache=False, keep=True),),
          lambda p, j: [f"data/features/{j['dataset']}", TRACKING_MARKER],
          params=("search_spaces.{model}", "presets.{preset}", "datasets.{dataset}", "training", "models"),
          threads=lambda p, j: p.training.threads[_group(p, j)], schema_deps=True),
    Stage("configure", "seqbench.configure", "python -m seqbench configure", (),
          # one output per job; listed by `configure_outputs` (the job lists decide them)
          (), lambda p, j: ["params.yaml", *tuned_files(p)], resolves_settings=True),
    # the store only (experiments are made by the jobs that need them): it never reruns for a new job list
    Stage("tracking_init", "seqbench.tracking", "python -m seqbench tracking-init", (),
          (Output(TRACKING_MARKER),)),
    Stage("train", "seqbench.train",
          "python -m seqbench train --dataset {dataset} --model {model} --seed {seed} --regime {regime} "
          "--threads {threads}",
          ("dataset", "model", "regime", "seed"),
          # run outputs belong to DVC's cache (and its remotes), never to git
          (Output(f"{RUN_DIR}/metrics.json", dvc="metrics"),
           Output(f"{RUN_DIR}/history.csv", dvc="plots"),
           Output(f"{RUN_DIR}/predictions.parquet"),
           Output(f"{RUN_DIR}/checkpoint.pt")),
          # a tuned job also reads the settings its search chose
          lambda p, j: [f"data/features/{j['dataset']}", TRACKING_MARKER,
                        *([TUNED.format(**j)] if j["regime"] == "tuned" else [])],
          settings_file=lambda j: CONFIG.format(**j),
          threads=lambda p, j: p.training.threads[_group(p, j)]),
    Stage("aggregate", "seqbench.aggregate", "python -m seqbench aggregate", (),
          tuple(Output(path, cache=False) for path in AGGREGATE_OUTPUTS),
          lambda p, j: [*_run_files(p, "metrics.json"), *_run_files(p, "predictions.parquet"), REFERENCES,
                        TRACKING_MARKER],
          params=("preset", "seeds", "regimes", "jobs", "presets.{preset}", "datasets")),
    Stage("report", "seqbench.report", "python -m seqbench report", (),
          tuple(Output(path, cache=False) for path in REPORT_OUTPUTS),
          lambda p, j: [*AGGREGATE_OUTPUTS, *_run_files(p, "history.csv"), *_run_files(p, "metrics.json"),
                        *_run_files(p, "predictions.parquet"), REFERENCES, TEMPLATE, *REPORT_EXTRAS],
          params=("preset", "seeds", "regimes", "presets.{preset}", "datasets")),
)}


# --- jobs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    stage: Stage
    wildcards: dict[str, Any]

    @property
    def dvc_name(self) -> str:
        return "-".join([self.stage.name.replace("_", "-"), *(str(v) for v in self.wildcards.values())])


def stage_jobs(params: Params, name: str) -> list[Job]:
    """Every job of a stage the job lists define, in a stable order."""
    stage = STAGES[name]
    if stage.wildcards == ("dataset",):
        return [Job(stage, {"dataset": d}) for d in params.datasets_in_jobs()]
    if name == "train":
        return [Job(stage, {"dataset": j.dataset, "model": j.model, "regime": j.regime, "seed": j.seed})
                for j in params.train_jobs()]
    if name == "tune":
        return [Job(stage, {"dataset": d, "model": m}) for d, m in params.tune_jobs()]
    return [Job(stage, {})]


def jobs(params: Params) -> list[Job]:
    return [job for name in STAGES for job in stage_jobs(params, name)]


def configure_outputs(params: Params) -> list[str]:
    """The resolved settings file of every (dataset, model, regime) that trains."""
    pairs = dict.fromkeys((j.dataset, j.model, j.regime) for j in params.train_jobs())
    return [CONFIG.format(dataset=d, model=m, regime=r) for d, m, r in pairs]


def outputs(params: Params, job: Job) -> list[str]:
    if job.stage.name == "configure":
        return configure_outputs(params)
    return [output.path.format(**job.wildcards) for output in job.stage.outputs]


def code(job: Job) -> list[str]:
    """Source files whose change reruns the job: the stage module's closure and its own plugins'."""
    if job.stage.resolves_settings:  # every schema and default a job's settings come from
        return codedeps.relative(codedeps.closure(job.stage.module, follow_plugins=True, settings_by_value=False))
    return codedeps.relative(codedeps.job_code(job.stage.module, job.wildcards.get("dataset"), job.wildcards.get("model")))


def dvc_deps(params: Params, job: Job) -> list[str]:
    """What DVC hashes for a job: its code and data, and what Snakemake compares as values instead."""
    deps = [*code(job), *job.stage.inputs(params, job.wildcards)]
    if job.stage.settings_file is not None:
        deps.append(job.stage.settings_file(job.wildcards))
    if job.stage.schema_deps:
        deps += [d for d in codedeps.relative(codedeps.schemas()) if d not in deps]
    return deps


def param_keys(params: Params, job: Job) -> list[str]:
    return [key.format(preset=params.preset, **job.wildcards) for key in job.stage.params]


def param_values(params: Params, job: Job) -> dict[str, Any]:
    """{key: value} of a job's params.yaml keys, as plain data (what a rerun trigger compares)."""
    data = params.model_dump(mode="json")
    values = {}
    for key in param_keys(params, job):
        node = data
        for part in key.split("."):
            node = node[part]
        values[key] = node
    return values


def command(params: Params, job: Job) -> str:
    values = dict(job.wildcards)
    if "threads" in job.stage.command:
        values["threads"] = job.stage.threads(params, job.wildcards)
    return job.stage.command.format(**values)
