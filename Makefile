# seqbench: `make run` and `make test` work on a fresh machine (they create .venv when missing).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
# The install step pins torch: a bare requirement would pull a multi-GB CUDA build on Linux.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.seqbench-installed
CORES ?= all
PYTEST_ARGS ?=

.PHONY: help setup constraints run run-dvc tune dvc-yaml lock test test-cluster bench bench-peers smoke smoke-dvc ui clean
.DEFAULT_GOAL := help

# Every target with a `## ` comment is listed by `make help` (a test checks that each phony target has one).
help:  ## list the targets
	@echo 'seqbench: make TARGET [CORES=N] [PYTEST_ARGS=...]   (the plain commands: README.md)'
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# constraints.txt pins every other package to the versions the published results were made with.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

setup: $(STAMP)  ## create .venv with the pinned dependencies (run, test and the others do it when needed)

# After changing dependencies in pyproject.toml: `.venv/bin/pip install -e '.[dev]'`, run the tests, then this.
constraints:  ## re-pin constraints.txt to the versions .venv holds now
	set -o pipefail; { sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -v '^torch=='; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

run: setup  ## the whole benchmark with the default preset (params.yaml)
	snakemake --cores $(CORES)

tune: setup  ## the searches of the tuned regime -> tuned/<dataset>/<model>.yaml (commit them; make run reads them)
	snakemake --cores $(CORES) searches

dvc-yaml: setup  ## regenerate dvc.yaml from the stage table and params.yaml's job lists
	python -m seqbench dvc-yaml

run-dvc: dvc-yaml  ## the whole benchmark through DVC (dvc repro)
	dvc repro --keep-going

# `dvc commit` rewrites the outputs it caches (fresh mtimes, in its own order), after which Snakemake would
# rerun every job whose inputs look newer; --touch re-stamps the finished outputs in dependency order.
# Only after a finished run: with a job left to do, dvc.lock would record stale outputs, and --touch would
# stamp them as newer than the job's fresh inputs, so the next run would redo everything downstream.
lock: setup  ## record a finished `make run` in dvc.lock, leaving both Snakemake and DVC up to date
	@snakemake -n --quiet 2>&1 | grep -q '^Nothing to be done' || { echo "make lock: Snakemake has jobs left (snakemake -n); finish them with make run first. Nothing was recorded." >&2; exit 1; }
	dvc commit --force --quiet
	snakemake --touch --cores 1 --quiet

test: setup  ## the test suite (CPU only; runs the real Snakemake, DVC, MLflow and papermill on tiny data)
	pytest $(PYTEST_ARGS)

# As root: installs Debian's SLURM, MUNGE, MariaDB and PostgreSQL, starts them from configs in a temporary
# folder, runs the smoke workload through sbatch against an MLflow server on PostgreSQL, loads that server
# with concurrent training jobs, round-trips the outputs through a DVC remote, and stops every daemon it
# started (a sweep after pytest ends whatever still carries the run's marker, should pytest be killed).
# Figures: logs/cluster-test.json. About 10-15 min on 2 cores.
test-cluster: setup  ## the cluster path on this machine: SLURM, a shared MLflow server, a DVC remote (root)
	tests/cluster/install.sh
	python -m pip install --quiet -c constraints.txt -e '.[dev,slurm]'
	@run=seqbench-cluster-$$(date +%s)-$$$$; \
	SEQBENCH_CLUSTER_TEST=1 SEQBENCH_CLUSTER_RUN=$$run pytest tests/cluster -p no:cacheprovider $(PYTEST_ARGS); \
	status=$$?; python tests/cluster/daemons.py sweep $$run || status=1; \
	[ "$$SEQBENCH_CLUSTER_KEEP" = 1 ] || rm -rf "$${TMPDIR:-/tmp}/$$run"-*; exit $$status

bench: setup  ## seconds per epoch and peak memory per architecture -> reports/bench/training.json
	python bench/training.py

# Keras/TensorFlow and darts live in their own environment: they never enter the benchmark's.
PEERS_VENV ?= .venv-peers
$(PEERS_VENV)/.seqbench-installed: pyproject.toml
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet $(TORCH_PIN)
	$(PEERS_VENV)/bin/python -m pip install --quiet $(TORCH_PIN) -e '.[peers]'
	@touch $@

bench-peers: $(PEERS_VENV)/.seqbench-installed  ## seqbench vs Keras and darts on the same windows -> reports/bench/peers.md
	$(PEERS_VENV)/bin/python bench/peers.py

smoke: setup  ## the smoke workload through Snakemake, from a clean state (.smoke/)
	rm -rf .smoke
	python -m seqbench workspace .smoke --preset smoke
	cd .smoke && snakemake --cores $(CORES)

smoke-dvc: setup  ## the smoke workload through DVC, from a clean state (.smoke-dvc/)
	rm -rf .smoke-dvc
	python -m seqbench workspace .smoke-dvc --preset smoke
	cd .smoke-dvc && dvc init --no-scm --quiet && dvc repro

ui: setup  ## MLflow UI on http://127.0.0.1:5000 (loopback only)
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:  ## remove outputs (data, runs, logs, store); keeps .venv and the committed reports
	rm -rf data runs logs config mlflow.db mlflow.db.lock mlartifacts .smoke .smoke-dvc .snakemake reports/comparison.executed.ipynb
