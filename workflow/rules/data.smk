# download -> standardize -> split -> features, once per dataset named in the job lists.


rule download:
    input:
        code("download"),
    output:
        directory("data/raw/{dataset}"),
    params:
        settings=settings("download"),
    log:
        "logs/download/{dataset}.log",
    shell:
        "python -m seqbench download --dataset {wildcards.dataset} > {log} 2>&1"


rule standardize:
    input:
        code("standardize"),
        raw="data/raw/{dataset}",
    output:
        "data/standard/{dataset}.parquet",
    params:
        settings=settings("standardize"),
    log:
        "logs/standardize/{dataset}.log",
    shell:
        "python -m seqbench standardize --dataset {wildcards.dataset} > {log} 2>&1"


rule split:
    input:
        code("split"),
        table="data/standard/{dataset}.parquet",
    output:
        directory("data/split/{dataset}"),
    params:
        settings=settings("split"),
    log:
        "logs/split/{dataset}.log",
    shell:
        "python -m seqbench split --dataset {wildcards.dataset} > {log} 2>&1"


rule features:
    input:
        code("features"),
        splits="data/split/{dataset}",
    output:
        directory("data/features/{dataset}"),
    params:
        settings=settings("features"),
    log:
        "logs/features/{dataset}.log",
    shell:
        "python -m seqbench features --dataset {wildcards.dataset} > {log} 2>&1"
