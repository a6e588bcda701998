# Settings go through seqbench's own loader (the one validation path the stages use too); the stage graph
# comes from seqbench.stages, the table dvc.yaml is generated from.
import json
import re
from pathlib import Path

from seqbench import configure, tune
from seqbench import stages as graph
from seqbench.datasets import DATASETS
from seqbench.errors import SeqbenchError
from seqbench.models import REGISTRY
from seqbench.params import REGIMES, parse_params, read_params_yaml
from seqbench.paths import Layout
from seqbench.resources import snakemake_train_resources

# The stages read params.yaml themselves, so a `--config` override would reach Snakemake but not them.
if config != read_params_yaml(Path("params.yaml")):
    raise WorkflowError(
        "seqbench reads its settings from params.yaml only: edit params.yaml (or create a separate project "
        "folder with `python -m seqbench workspace DIR --preset NAME`) instead of passing --config/--configfile."
    )
PARAMS = parse_params(config)
LAYOUT = Layout(Path.cwd())
# memory, runtime, CPUs and GPUs of a training job or search, from params.yaml and reports/costs.csv
JOB_RESOURCES = snakemake_train_resources(PARAMS)


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    model="|".join(map(re.escape, REGISTRY)),
    regime="|".join(REGIMES),
    seed=r"\d+",


def job_of(stage, wildcards):
    return graph.Job(stage, {name: wildcards[name] if name != "seed" else int(wildcards[name])
                             for name in stage.wildcards})


# Input, params and shell functions per stage (a factory each: rules are defined in a loop).
def code_of(stage):
    return lambda wildcards: graph.code(job_of(stage, wildcards))


def data_of(stage):
    return lambda wildcards: stage.inputs(PARAMS, job_of(stage, wildcards).wildcards)


def settings_of(stage):
    """The values a job depends on, as Snakemake's params rerun trigger: a training job's resolved
    settings (what config/<dataset>/<model>/<regime>.json holds), a search's inputs, else its params.yaml
    keys (DVC names the same keys; it reruns by content, so a wider list does no harm there)."""
    def settings(wildcards):
        w = job_of(stage, wildcards).wildcards
        if stage.name == "train":
            try:
                return configure.config_json(configure.resolve(PARAMS, w["dataset"], w["model"], w["regime"], LAYOUT))
            except SeqbenchError as error:  # a tuned job whose search is missing or stale: it runs after the
                return f"search pending ({error})"  # search (its input), and resolves its settings then
        if stage.name == "tune":  # exactly what the search depends on: a wider trigger would rerun tuned jobs
            return json.dumps(tune.search_inputs(PARAMS, w["dataset"], w["model"]), sort_keys=True)
        return json.dumps(graph.param_values(PARAMS, job_of(stage, wildcards)), sort_keys=True)
    return settings


def threads_of(stage):
    return lambda wildcards: stage.threads(PARAMS, job_of(stage, wildcards).wildcards)


def outputs_of(stage):
    if stage.name == "configure":
        return graph.configure_outputs(PARAMS)
    return [directory(o.path) if o.directory else update(o.path) if o.keep else o.path for o in stage.outputs]


def command_of(stage):
    """The job's command line (the stage table's command with the job's wildcards and threads)."""
    return lambda wildcards, threads: graph.command(PARAMS, job_of(stage, wildcards))


def resources_of(stage):
    return JOB_RESOURCES if stage.name in ("train", "tune") else {}
