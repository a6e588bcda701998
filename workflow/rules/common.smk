# Settings go through seqbench's own loader (the one validation path the stages use too).
import json
import re
from pathlib import Path

from seqbench.datasets import DATASETS
from seqbench.models import REGISTRY
from seqbench.params import parse_params, read_params_yaml
from seqbench.stages import STAGE_CODE, param_values

# The stages read params.yaml themselves, so a `--config` override would reach Snakemake but not them.
if config != read_params_yaml(Path("params.yaml")):
    raise WorkflowError(
        "seqbench reads its settings from params.yaml only: edit params.yaml (or create a separate project "
        "folder with `python -m seqbench workspace DIR --preset NAME`) instead of passing --config/--configfile."
    )
PARAMS = parse_params(config)

TRAIN_JOBS = PARAMS.train_jobs()  # (group, dataset, model, seed, regime)
GROUP = {(job.dataset, job.model): job.group for job in TRAIN_JOBS}
RUN_DIR = "runs/{dataset}/{model}/{regime}/seed{seed}"
RUN_FILES = ("metrics.json", "history.csv", "predictions.parquet", "checkpoint.pt")
AGGREGATE_OUTPUTS = [f"reports/{name}" for name in ("results.csv", "summary.csv", "costs.csv", "leaderboard.md")]
REPORT_OUTPUTS = ["reports/comparison.executed.ipynb", "reports/comparison.html"]


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    model="|".join(map(re.escape, REGISTRY)),
    seed=r"\d+",
    regime="protocol|tuned",


def run_files(name):
    """One file of every training job, e.g. every metrics.json."""
    return [f"runs/{j.dataset}/{j.model}/{j.regime}/seed{j.seed}/{name}" for j in TRAIN_JOBS]


def code(stage):
    """A stage's source files as inputs, so changing the code reruns the stage (dvc.yaml: deps)."""
    files = []
    for path in map(Path, STAGE_CODE[stage]):
        files += sorted(str(p) for p in path.glob("*.py")) if path.is_dir() else [str(path)]
    return files


def settings(stage):
    """The params.yaml keys a stage reads (seqbench.stages), as a rerun trigger."""
    return lambda wildcards: json.dumps(
        param_values(PARAMS, stage, **dict(wildcards.items())), sort_keys=True
    )
