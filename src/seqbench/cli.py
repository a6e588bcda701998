"""`python -m seqbench <stage>`: one sub-command per stage. Dispatch only: the work is in the modules.

Exit status: 0 done; 1 a settings, data or training error (the message names the file or value); 2 a
mistake in the command's arguments (seqbench.usage), found before anything is written or logged."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="seqbench: a reproducible benchmark of sequence-model architectures.")

DatasetOpt = typer.Option(..., "--dataset", "-d", help="dataset name, as in params.yaml")


def _version(value: bool) -> None:
    if value:
        from seqbench import __version__

        print(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print the version and exit")) -> None:
    """seqbench: a reproducible benchmark of sequence-model architectures."""


def _run(stage: Callable[..., object], check: Callable[..., None] | None = None, **kwargs) -> None:
    """Load params.yaml from the current folder, check the arguments, run a stage; user errors become one
    line on stderr (exit 2 for an argument, 1 for the rest)."""
    from seqbench.errors import SeqbenchError
    from seqbench.params import ParamsError, load_params
    from seqbench.paths import Layout
    from seqbench.usage import UsageError

    try:
        layout = Layout.from_cwd()
        params = load_params(layout.params)
        if check is not None:
            check(params)
        stage(params, layout, **kwargs)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (ParamsError, SeqbenchError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None


def _dataset_known(dataset: str) -> Callable[..., None]:
    from seqbench.usage import check_dataset

    return lambda params: check_dataset(dataset)


@app.command()
def download(dataset: str = DatasetOpt) -> None:
    """Fetch a dataset's raw files (mirror folder first, then the canonical URL), verified."""
    from seqbench import download as stage

    _run(stage.run, _dataset_known(dataset), dataset=dataset)


@app.command()
def standardize(dataset: str = DatasetOpt) -> None:
    """Raw files -> data/standard/<ds>.parquet (typed, cleaned)."""
    from seqbench import standardize as stage

    _run(stage.run, _dataset_known(dataset), dataset=dataset)


@app.command()
def split(dataset: str = DatasetOpt) -> None:
    """Standard table -> data/split/<ds>/{train,val,test}.parquet + split.json (protocol's splits)."""
    from seqbench import split as stage

    _run(stage.run, _dataset_known(dataset), dataset=dataset)


@app.command()
def features(dataset: str = DatasetOpt) -> None:
    """Splits -> data/features/<ds>/ (train-only scaler + window specs, or vocabularies + encodings)."""
    from seqbench import features as stage

    _run(stage.run, _dataset_known(dataset), dataset=dataset)


@app.command("tracking-init")
def tracking_init() -> None:
    """Create the MLflow store and one experiment per dataset, before any training job starts."""
    from seqbench import tracking as stage

    _run(stage.run_init)


@app.command()
def train(
    dataset: str = DatasetOpt,
    model: str = typer.Option(..., "--model", "-m", help="model name, as in params.yaml"),
    seed: int = typer.Option(..., "--seed", "-s", min=0),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: all cores)", min=0),
    regime: str = typer.Option("protocol", "--regime", help="protocol (the books' settings) or tuned"),
    allow_extra_seed: bool = typer.Option(False, "--allow-extra-seed",
                                          help="train a seed that params.yaml `seeds` does not list (its run "
                                               "joins the benchmark's results and MLflow experiments)"),
) -> None:
    """Train and evaluate one (dataset, model, seed): runs/<ds>/<model>/<regime>/seed<k>/ + one MLflow run."""
    from seqbench import train as stage
    from seqbench.usage import check_train

    _run(stage.run, lambda params: check_train(params, dataset, model, seed, regime, allow_extra_seed),
         dataset=dataset, model=model, seed=seed, threads=threads, regime=regime)


@app.command()
def aggregate() -> None:
    """Every runs/**/metrics.json -> reports/results.csv, summary.csv, costs.csv, leaderboard.md."""
    from seqbench import aggregate as stage

    _run(stage.run)


@app.command()
def report() -> None:
    """Execute reports/comparison.ipynb with papermill and render reports/comparison.html."""
    from seqbench import report as stage

    _run(stage.run)


@app.command("make-jena-like")
def make_jena_like(
    rows: int = typer.Option(..., "--rows", min=1000, help="data rows (the real file has 420,551)"),
    out: Path = typer.Option(..., "--out", help="folder to write the zip and a SHA256SUMS into"),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Write a generated file in the exact raw format of the Jena climate download (offline testing)."""
    from seqbench.datasets import jena

    jena.write_jena_like(out, rows=rows, seed=seed)


@app.command()
def workspace(
    folder: Path = typer.Argument(..., help="new project folder to create"),
    preset: str = typer.Option("smoke", "--preset", help="preset whose job lists and seeds to use"),
) -> None:
    """Copy the workflow into FOLDER with params.yaml switched to PRESET (e.g. the smoke workload)."""
    from seqbench import workspace as stage
    from seqbench.usage import check_preset

    _run(stage.run, lambda params: check_preset(params, preset), folder=folder, preset_name=preset)


@app.command()
def configure() -> None:
    """Write every training job's resolved settings to config/<dataset>/<model>/<regime>.json."""
    from seqbench import configure as stage

    _run(stage.run)


@app.command("dvc-yaml")
def dvc_yaml() -> None:
    """Write dvc.yaml from the stage table and params.yaml's job lists (run after editing the lists)."""
    from seqbench import dvcfile as stage

    _run(stage.run)


@app.command("models")
def list_models() -> None:
    """List every registered model: the task kinds it handles and its default settings."""
    import json

    from seqbench.models import REGISTRY

    for name, entry in REGISTRY.items():
        defaults = json.dumps(entry.settings().model_dump(mode="json"), separators=(", ", ": "))
        print(f"{name:18} {', '.join(entry.kinds):40} {defaults}")


@app.command()
def tune(
    dataset: str = DatasetOpt,
    model: str = typer.Option(..., "--model", "-m", help="model name, as in params.yaml"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: all cores)", min=0),
) -> None:
    """Search one (dataset, model)'s settings on validation -> tuned/<ds>/<model>.yaml (the tuned regime)."""
    from seqbench import tune as stage

    _run(stage.run, dataset=dataset, model=model, threads=threads)


@app.command("tracking-sync")
def tracking_sync() -> None:
    """Send the MLflow runs that jobs kept in their run folders while the store was away."""
    from seqbench import tracking as stage

    _run(stage.run_sync)
