"""seqbench.resources: what each training job asks a scheduler for, from params.yaml and measured costs."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqbench.results import COST_COLUMNS, RESULT_COLUMNS
from seqbench.errors import SeqbenchError
from seqbench.params import parse_params
from seqbench.resources import (
    DEFAULT_MEMORY_MB,
    DEFAULT_RUNTIME_MIN,
    load_measurements,
    snakemake_train_resources,
    train_resources,
)
from seqbench.workspace import create

ROOT = Path(__file__).resolve().parents[1]


def write_costs(folder: Path, rows: list[tuple], preset: str = "standard") -> Path:
    """reports/costs.csv (+ results.csv naming each job's preset) with rows (dataset, task, model, seed,
    train_seconds, peak_memory_mb, device), in the columns the aggregate stage writes."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "costs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COST_COLUMNS)
        writer.writeheader()
        for dataset, task, model, seed, seconds, peak, device in rows:
            writer.writerow({"dataset": dataset, "task": task, "model": model, "seed": seed, "params_count": 10,
                             "train_seconds": seconds, "seconds_per_epoch": seconds / 4, "epochs": 4,
                             "peak_memory_mb": peak, "device": device})
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, RESULT_COLUMNS)
        writer.writeheader()
        for dataset, task, model, seed, *_ in rows:
            writer.writerow({"dataset": dataset, "task": task, "model": model, "seed": seed, "preset": preset,
                             "split": "test", "metric": "mae", "value": 0.5})
    return folder


def params_with(params_dict: dict, preset: str = "standard", device: str = "cpu", threads: int = 1):
    params_dict["preset"] = preset
    params_dict["training"]["device"] = device
    params_dict["training"]["threads"]["forecast"] = threads
    params_dict["jobs"]["forecast"]["datasets"].append("synthetic")
    return parse_params(params_dict)


def test_memory_is_the_highest_peak_over_seeds_with_a_margin(tmp_path, params_dict):
    measured = load_measurements(write_costs(tmp_path, [
        ("etth1", "h96", "lstm", 0, 10.0, 900.0, "cpu"), ("etth1", "h336", "lstm", 0, 20.0, 900.0, "cpu"),
        ("etth1", "h96", "lstm", 1, 10.0, 1100.0, "cpu"), ("etth1", "h96", "linear", 0, 1.0, 1000.0, "cpu")]))
    params = params_with(params_dict)
    assert train_resources(params, "etth1", "lstm", measured)["mem_mb"] == 2048  # 1100 x 1.5 = 1650 -> 2048
    assert train_resources(params, "etth1", "linear", measured)["mem_mb"] == 1536  # 1500 -> 1536


def test_memory_falls_back_to_the_model_then_its_architecture_then_its_family(tmp_path, params_dict):
    measured = load_measurements(write_costs(tmp_path, [
        ("etth1", "h96", "lstm", 0, 10.0, 2000.0, "cpu"), ("etth1", "h96", "linear", 0, 1.0, 3000.0, "cpu"),
        ("imdb", "sentiment", "textcnn", 0, 1.0, 9000.0, "cpu")]))
    params = params_with(params_dict)
    assert train_resources(params, "synthetic", "lstm", measured)["mem_mb"] == 3072  # lstm on etth1
    assert train_resources(params, "synthetic", "gru", measured)["mem_mb"] == 3072  # recurrent, like lstm
    # no conv model measured on a forecast dataset: any forecast model (text rows do not count)
    assert train_resources(params, "synthetic", "cnn1d", measured)["mem_mb"] == 4608
    assert train_resources(params, "shakespeare", "char_gru", measured)["mem_mb"] == DEFAULT_MEMORY_MB


def test_gpu_memory_rows_do_not_set_host_memory(tmp_path, params_dict):
    measured = load_measurements(write_costs(tmp_path, [
        ("etth1", "h96", "lstm", 0, 10.0, 1000.0, "cpu"), ("etth1", "h96", "lstm", 1, 10.0, 9000.0, "cuda:0")]))
    assert train_resources(params_with(params_dict), "etth1", "lstm", measured)["mem_mb"] == 1536


def test_runtime_comes_only_from_jobs_of_the_same_preset_and_device(tmp_path, params_dict):
    rows = [("etth1", "h96", "lstm", 0, 100.0, 1000.0, "cpu"), ("etth1", "h336", "lstm", 0, 140.0, 1000.0, "cpu"),
            ("etth1", "h96", "lstm", 1, 90.0, 1000.0, "cpu")]
    measured = load_measurements(write_costs(tmp_path, rows))
    # seed 0: 240 s of training over its two tasks -> 3 x 4 min + 10 min
    assert train_resources(params_with(params_dict), "etth1", "lstm", measured)["runtime"] == 22
    full = params_with(yaml.safe_load((ROOT / "params.yaml").read_text()), preset="full")
    assert train_resources(full, "etth1", "lstm", measured)["runtime"] == DEFAULT_RUNTIME_MIN
    on_gpu = params_with(yaml.safe_load((ROOT / "params.yaml").read_text()), device="cuda")
    assert train_resources(on_gpu, "etth1", "lstm", measured)["runtime"] == DEFAULT_RUNTIME_MIN


def test_cpus_and_gpus_come_from_params(params_dict):
    on_gpu = train_resources(params_with(params_dict, device="cuda", threads=3), "etth1", "gru", [])
    assert (on_gpu["cpus_per_task"], on_gpu["gpu"]) == (3, 1)
    auto = train_resources(params_with(yaml.safe_load((ROOT / "params.yaml").read_text()), device="auto"),
                           "etth1", "gru", [])
    assert (auto["cpus_per_task"], auto["gpu"]) == (1, 0)


def test_a_retry_asks_for_twice_the_memory_and_time(tmp_path, params_dict):
    measured = load_measurements(write_costs(tmp_path, [("etth1", "h96", "lstm", 0, 120.0, 1000.0, "cpu")]))
    params = params_with(params_dict)
    first, second = (train_resources(params, "etth1", "lstm", measured, attempt) for attempt in (1, 2))
    assert (second["mem_mb"], second["runtime"]) == (2 * first["mem_mb"], 2 * first["runtime"]) == (3072, 32)


def test_without_measurements_the_defaults_apply(tmp_path, params_dict):
    assert load_measurements(tmp_path) == []
    assert train_resources(params_with(params_dict), "etth1", "lstm", []) == {
        "mem_mb": DEFAULT_MEMORY_MB, "runtime": DEFAULT_RUNTIME_MIN, "cpus_per_task": 1, "gpu": 0}


def test_a_malformed_costs_file_is_named_with_what_to_do(tmp_path):
    write_costs(tmp_path, [("etth1", "h96", "lstm", 0, 10.0, 1000.0, "cpu")])
    text = (tmp_path / "costs.csv").read_text()
    (tmp_path / "costs.csv").write_text(text.replace(",1000.0,", ",lots,"))
    with pytest.raises(SeqbenchError, match=r"costs\.csv, line 2: peak_memory_mb is 'lots'.*seqbench aggregate"):
        load_measurements(tmp_path)
    (tmp_path / "costs.csv").write_text(text.replace("peak_memory_mb", "peak"))
    with pytest.raises(SeqbenchError, match=r"costs\.csv: no column peak_memory_mb"):
        load_measurements(tmp_path)


def test_a_job_outside_the_job_lists_is_refused(params_dict):
    with pytest.raises(SeqbenchError, match="no job list has dataset 'imdb' with model 'lstm'"):
        train_resources(params_with(params_dict), "imdb", "lstm", [])


def test_every_committed_measurement_fits_its_request(params_dict):
    """The committed standard run: each job's request covers its measured peak by the margin."""
    measured = load_measurements(ROOT / "reports")
    params = params_with(params_dict)
    assert measured
    for job in measured:
        requested = train_resources(params, job.dataset, job.model, measured)
        assert requested["mem_mb"] >= 1.5 * job.peak_memory_mb, job
        assert requested["runtime"] * 60 >= 3 * job.train_seconds, job


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_snakemake_gives_each_training_job_its_derived_resources(tmp_path, device):
    """The train rule's `resources:` hook: `snakemake -n` plans every job with train_resources' values."""
    project = create(ROOT, tmp_path / "project", "smoke")
    shutil.copytree(ROOT / "reports", project / "reports", dirs_exist_ok=True)
    data = yaml.safe_load((project / "params.yaml").read_text())
    data["training"]["device"] = device
    (project / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    params, measured = parse_params(data), load_measurements(project / "reports")
    out = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-n", "--cores", "2"], cwd=project,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    planned = re.findall(r"wildcards: dataset=(\w+), model=(\w+), regime=\w+, seed=\d+\n(?:\s+threads: \d+\n)?"
                         r"\s+resources: (.*)", out.stdout)
    assert len(planned) == len(params.train_jobs())
    for dataset, model, resources in planned:
        values = dict(item.split("=", 1) for item in resources.split(", "))
        expected = train_resources(params, dataset, model, measured)
        assert {key: int(values[key]) for key in expected} == expected, (dataset, model, resources)
    assert snakemake_train_resources(params, project / "reports").keys() == set(expected)
