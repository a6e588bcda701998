# seqbench: `snakemake --cores all` runs the whole benchmark from params.yaml (same stages as dvc.yaml).
configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        REPORT_OUTPUTS,
    default_target: True
