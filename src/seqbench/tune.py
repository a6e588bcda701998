"""tune stage: `python -m seqbench tune --dataset D --model M` -> tuned/<D>/<M>.yaml, the settings the tuned
regime trains with.

An Optuna search (TPE seeded from the job, a median pruner for hopeless trials) over the model's space
(params.yaml `search_spaces.<model>`), with the budget of the preset (`presets.<preset>.tune`), the same
for every architecture of a dataset. A trial trains the budget's tasks from the training split and is
scored by their mean best validation loss; the test split is never read: its rows (those no validation
window touches) are blanked before the search starts, so a read would give a non-finite loss.

The study lives in an Optuna journal file (runs/<D>/<M>/search/<fingerprint>.journal, appended per
change, safe to kill): a rerun after a kill counts the trials that finished, runs a trial that was cut
off again with the same settings, and runs only the rest. The search is an MLflow run with one child run
per trial. A search whose settings, budget, data and code are those recorded in an existing tuned file
is not redone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seqbench import codedeps
from seqbench import datasets as dataset_registry
from seqbench.configure import resolve
from seqbench.errors import SeqbenchError, TrainingError
from seqbench.io import write_text
from seqbench.params import Params
from seqbench.paths import Layout
from seqbench.search_space import SearchDim, TuneBudget, as_dict

STARTUP_TRIALS = 4  # random trials before TPE models the space, and before the pruner compares


def search_inputs(params: Params, dataset: str, model: str) -> dict[str, Any]:
    """The settings a search's result depends on: its space and budget, and the protocol settings it starts
    from (Snakemake compares these as the job's params)."""
    return {"space": space_of(params, model), "budget": params.tune_budget(dataset).model_dump(mode="json"),
            "base": resolve(params, dataset, model, "protocol").to_dict()}


def fingerprint(params: Params, dataset: str, model: str, data_hash: str) -> str:
    """search_inputs, the data and the code of this search (its stage, dataset and model modules)."""
    code = codedeps.digest(codedeps.job_code(__name__, dataset, model))
    parts = {**search_inputs(params, dataset, model), "data": data_hash, "code": code}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def space_of(params: Params, model: str) -> dict[str, Any]:
    if model not in params.search_spaces:
        raise SeqbenchError(f"model {model!r} has no search space: add search_spaces.{model} to params.yaml "
                            "(or leave it out of the tuned regime)")
    return as_dict(params.search_spaces[model])


def family_space(space: dict[str, SearchDim], family: str) -> dict[str, SearchDim]:
    """The dimensions that matter for a dataset's family: `forecast.d_model` only for forecasts (a model
    with a block of settings per family, the transformer, keys them by family)."""
    families = ("forecast", "text", "chars")
    return {key: dim for key, dim in space.items() if key.split(".")[0] not in families or key.split(".")[0] == family}


def decoded(optuna_params: dict[str, Any], space: dict[str, SearchDim]) -> dict[str, Any]:
    """A trial's settings as the model takes them (Optuna stores a choice as its JSON text)."""
    return {key: json.loads(value) if key in space and space[key].choice is not None else value
            for key, value in optuna_params.items()}


def suggest(trial, space: dict[str, SearchDim]) -> dict[str, Any]:
    """One value per dimension; choices pass through Optuna as JSON (it takes only scalars)."""
    values = {}
    for key, dim in space.items():
        if dim.int_ is not None:
            values[key] = trial.suggest_int(key, *dim.int_, log=dim.log)
        elif dim.float_ is not None:
            values[key] = trial.suggest_float(key, *dim.float_, log=dim.log)
        else:
            values[key] = json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in dim.choice]))
    return values


# --- the test split, out of reach ------------------------------------------------------------------
def blind_test_split(features):
    """The features with every row, text or character that only the test split uses made unreadable."""
    from seqbench.features import CharFeatures, ForecastFeatures, TextFeatures

    if isinstance(features, ForecastFeatures):
        reach = max((max(features.windows(name, "val"), default=-1) + task.span for name, task in features.tasks.items()),
                    default=features.splits["val"][1])
        series = features.series.copy()
        series[max(reach, features.splits["val"][1]):] = np.nan
        return dataclasses.replace(features, series=series)
    if isinstance(features, TextFeatures):
        empty = {**features.sequences, "test": features.sequences["test"][:0]}
        return dataclasses.replace(features, sequences=empty, labels={**features.labels, "test": features.labels["test"][:0]})
    if isinstance(features, CharFeatures):
        ids = features.ids.copy()
        ids[features.splits["val"][1] + 1:] = -1  # an id the embedding cannot look up
        return dataclasses.replace(features, ids=ids)
    raise TypeError(f"unknown features {type(features).__name__}")


# --- one trial -------------------------------------------------------------------------------------
def trial_job(params: Params, dataset: str, model: str, features, values: dict[str, Any], budget: TuneBudget):
    """A training job with the trial's settings and the search budget (the seed is the search's)."""
    from seqbench.job import make_job
    from seqbench.search_space import with_values

    job = make_job(params, dataset, model, 0, features, threads=None)
    train = dataclasses.replace(job.config, **{k: v for k, v in {
        "max_epochs": budget.max_epochs, "patience": budget.patience, "train_stride": budget.train_stride,
        "max_train_samples": budget.max_train_samples, "max_eval_samples": budget.max_eval_samples,
        "lr_decay": "none"}.items() if v is not None}, tasks=None)
    settings = with_values(job.settings, values)
    if settings.lr is not None:
        train = dataclasses.replace(train, lr=settings.lr)
    job.resolved = dataclasses.replace(job.resolved, train=train, settings=settings)
    return job


def score_task(job, task, report) -> float:
    """Best validation loss of a task (training units); `report(epoch, loss)` may prune the trial."""
    from seqbench import loop

    run = loop.prepare(job, task, splits=("train", "val"))
    if run.closed_form:
        return loop.fit_closed_form(job, run)["best_loss"]
    if not run.params_count:  # evaluated only (SARIMA): its validation loss is the score
        return loop.predict(job, run.model, run.data, "val", run.ids["val"])[0]
    job.on_epoch = lambda _task, epoch, _train_loss, val_loss: report(epoch, val_loss)
    state, _ = loop.fit(job, task, run)
    return state["best_loss"]


def tuning_tasks(params: Params, dataset: str, model: str, features, budget: TuneBudget) -> list:
    """The tasks that score a trial: the budget's (or the preset's) that the model can do."""
    from seqbench.models import REGISTRY

    tasks = list(features.tasks.values()) if hasattr(features, "tasks") else [features.task]
    chosen = budget.tasks if budget.tasks is not None else params.budget(dataset).tasks
    unknown = sorted(set(chosen or []) - {t.name for t in tasks})
    if unknown:
        raise SeqbenchError(f"presets.{params.preset}.tune.{dataset}.tasks names {unknown}, which {dataset} does "
                            f"not have ({[t.name for t in tasks]})")
    kept = [t for t in tasks if (chosen is None or t.name in chosen) and REGISTRY[model].supports(t)]
    if not kept:
        raise SeqbenchError(f"{model} can do none of the tasks that score a search on {dataset} "
                            f"({chosen or [t.name for t in tasks]}); set presets.{params.preset}.tune.{dataset}.tasks "
                            "or drop its search space")
    return kept


def objective(params: Params, dataset: str, model: str, features, budget: TuneBudget, tasks: list):
    import optuna

    space = family_space(params.search_spaces[model], dataset_registry.get(dataset).family)
    epochs = budget.max_epochs or params.train_config(dataset, model).max_epochs

    def run(trial) -> float:
        values = suggest(trial, space)
        job = trial_job(params, dataset, model, features, values, budget)
        losses = []
        for index, task in enumerate(tasks):
            def report(epoch: int, loss: float, offset: int = index * epochs) -> None:
                trial.report(loss, offset + epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch} of {task.name}: validation loss {loss:.5g}")
            try:
                loss = score_task(job, task, report)
            except TrainingError as error:  # a diverging trial is a bad trial, not a failed search
                print(f"trial {trial.number}: {error}", file=sys.stderr)
                return math.inf
            if not math.isfinite(loss):
                return math.inf
            losses.append(loss)
        return float(np.mean(losses))

    return run


# --- the stage -------------------------------------------------------------------------------------
def _rerun_cut_off_trials(study) -> None:
    """A trial left RUNNING by a killed process is closed as failed and queued again with its settings."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})
        print(f"trial {trial.number} was cut off: running it again with the same settings", file=sys.stderr)


def _finished(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def tuned_file(params: Params, dataset: str, model: str, fp: str, study, values: dict[str, Any], tasks,
               seconds: float) -> str:
    space = params.search_spaces[model]
    trials = [{"number": t.number, "state": t.state.name.lower(),
               "value": None if t.value is None or not math.isfinite(t.value) else round(t.value, 6),
               "settings": decoded(t.params, space)} for t in _finished(study)]
    best = study.best_trial
    content = {
        "dataset": dataset, "model": model, "preset": params.preset,
        "objective": f"mean best validation loss over tasks {[t.name for t in tasks]} "
                     f"({params.dataset(dataset).training.loss})",
        "space": space_of(params, model), "budget": params.tune_budget(dataset).model_dump(mode="json", exclude_none=True),
        "fingerprint": fp, "best": {"trial": best.number, "value": round(best.value, 6)},
        "settings": values, "seconds": round(seconds, 1), "trials": trials,
    }
    header = (f"# Chosen on validation by `python -m seqbench tune --dataset {dataset} --model {model}` (make tune):\n"
              "# the tuned regime trains with `settings`. Written by the search; rerun it to change it.\n")
    return header + yaml.safe_dump(content, sort_keys=False, width=110)


def read_tuned(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


def run(params: Params, layout: Layout, dataset: str, model: str, threads: int = 0) -> dict:
    """`python -m seqbench tune`: the search of one (dataset, model), or nothing when it is up to date."""
    import optuna

    from seqbench import device as dev
    from seqbench import features as feature_loader
    from seqbench import tracking
    from seqbench.job import derived_seed

    space_of(params, model)  # a model without a space is a user error, before any work
    out = layout.tuned(dataset, model)
    reason = feature_loader.unavailable_reason(layout.features(dataset))
    if reason is not None:
        print(f"{dataset} is unavailable ({reason}): nothing to search", file=sys.stderr)
        write_text(out, f"# {dataset} was unavailable when searched: the tuned regime trains nothing\n"
                        + yaml.safe_dump({"dataset": dataset, "model": model, "status": "unavailable",
                                          "reason": reason, "settings": {}}, sort_keys=False))
        return {"status": "unavailable"}
    features = feature_loader.load_features(layout.features(dataset))
    fp = fingerprint(params, dataset, model, features.data_hash)
    previous = read_tuned(out)
    if previous.get("fingerprint") == fp:
        write_text(out, out.read_text(encoding="utf-8"))  # up to date: keep it (a fresh time stamp for Snakemake)
        print(f"{out}: the search with this space, budget, data and code is done; kept", file=sys.stderr)
        return previous
    dev.configure(dev.resolve_device(params.training.device), threads)
    budget = params.tune_budget(dataset)
    features = blind_test_split(features)
    tasks = tuning_tasks(params, dataset, model, features, budget)
    journal = layout.search(dataset, model) / f"{fp[:16]}.journal"
    journal.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=fp[:16], direction="minimize", load_if_exists=True,
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))),
        sampler=optuna.samplers.TPESampler(seed=derived_seed(dataset, model, "tune") % 2**32,
                                           n_startup_trials=STARTUP_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=1))
    _rerun_cut_off_trials(study)
    trials = budget.trials or 10
    began = time.perf_counter()
    with tracking.search_run(layout, dataset, model, preset=params.preset, space=space_of(params, model),
                             budget=budget.model_dump(mode="json", exclude_none=True),
                             settings=params.dataset(dataset)) as search:
        space = params.search_spaces[model]
        for trial in _finished(study):  # earlier trials of a resumed search
            search.log_trial(trial.number, decoded(trial.params, space), trial.value, trial.state.name)

        def log(_study, trial) -> None:
            settings = decoded(trial.params, space)
            search.log_trial(trial.number, settings, trial.value, trial.state.name)
            print(f"{dataset}/{model} trial {trial.number}: {trial.state.name.lower()} "
                  f"{'' if trial.value is None else f'{trial.value:.5g} '}{settings}", file=sys.stderr, flush=True)

        remaining = trials - len(_finished(study))
        if remaining > 0:
            study.optimize(objective(params, dataset, model, features, budget, tasks), n_trials=remaining,
                           callbacks=[log], catch=())
        completed = [t for t in _finished(study) if t.value is not None and math.isfinite(t.value)]
        if not completed:
            raise SeqbenchError(f"search of {dataset}/{model}: no trial finished with a finite validation loss; "
                                f"narrow search_spaces.{model} (e.g. its lr range)")
        space = family_space(params.search_spaces[model], dataset_registry.get(dataset).family)
        values = suggest(optuna.trial.FixedTrial(study.best_trial.params), space)
        search.finish(values, study.best_trial.value)
    write_text(out, tuned_file(params, dataset, model, fp, study, values, tasks, time.perf_counter() - began))
    print(f"{out}: trial {study.best_trial.number} of {len(_finished(study))}, validation loss "
          f"{study.best_trial.value:.5g}: {values}", file=sys.stderr)
    return read_tuned(out)
