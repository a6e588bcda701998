# One job per (dataset, model, seed) of the job lists; the MLflow store exists before any of them starts.
from seqbench.resources import snakemake_train_resources


rule tracking_init:
    input:
        code("tracking_init"),
    output:
        "runs/tracking.json",
    params:
        settings=settings("tracking_init"),
    log:
        "logs/tracking_init.log",
    shell:
        "python -m seqbench tracking-init > {log} 2>&1"


rule train:
    input:
        code("train"),
        features="data/features/{dataset}",
        # ancient: the store must exist first, but tracking_init reruns whenever the job lists grow (a new
        # experiment), which must not retrain the jobs that exist
        tracking=ancient("runs/tracking.json"),
    output:
        **{name.split(".")[0]: f"{RUN_DIR}/{name}" for name in RUN_FILES},
    params:
        settings=settings("train"),
    threads: lambda wildcards: PARAMS.training.threads[GROUP[(wildcards.dataset, wildcards.model)]]
    resources:
        **snakemake_train_resources(PARAMS),  # memory, time, CPUs, GPU: params.yaml + reports/costs.csv
    log:
        "logs/train/{dataset}/{model}/{regime}/seed{seed}.log",
    shell:
        "python -m seqbench train --dataset {wildcards.dataset} --model {wildcards.model}"
        " --seed {wildcards.seed} --regime {wildcards.regime} --threads {threads} > {log} 2>&1"
