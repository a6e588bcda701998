# Every run -> results tables, statistics across seeds, MLflow summary runs -> the HTML report.


rule aggregate:
    input:
        code("aggregate"),
        run_files("metrics.json"),
        run_files("predictions.parquet"),
        tracking="runs/tracking.json",
    output:
        AGGREGATE_OUTPUTS,
    params:
        settings=settings("aggregate"),
    log:
        "logs/aggregate.log",
    shell:
        "python -m seqbench aggregate > {log} 2>&1"


rule report:
    input:
        code("report"),
        AGGREGATE_OUTPUTS,
        run_files("history.csv"),
    output:
        REPORT_OUTPUTS,
    params:
        settings=settings("report"),
    log:
        "logs/report.log",
    shell:
        "python -m seqbench report > {log} 2>&1"
