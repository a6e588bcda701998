# seqbench: `snakemake --cores all` runs the whole benchmark from params.yaml (same stages as dvc.yaml).
configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# The aggregate tables are targets too: Snakemake would not remake a deleted leaderboard.md while the
# report that reads it is up to date (a missing intermediate file of a finished run counts as done).
rule all:
    input:
        AGGREGATE_OUTPUTS,
        REPORT_OUTPUTS,
    default_target: True
