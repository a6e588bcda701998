# seqbench: `snakemake --cores all` runs the whole benchmark from params.yaml. The stages, their
# commands, inputs, outputs and settings come from one table (seqbench.stages), as dvc.yaml does.
configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


# The aggregate tables are targets too: Snakemake would not remake a deleted leaderboard.md while the
# report that reads it is up to date (a missing intermediate file of a finished run counts as done).
# The resolved settings files are for DVC (Snakemake compares the same values as params), and for
# `make lock`, which records a Snakemake run in dvc.lock.
rule all:
    input:
        graph.AGGREGATE_OUTPUTS,
        graph.REPORT_OUTPUTS,
        graph.configure_outputs(PARAMS),
    default_target: True


# `make tune`: every search the tuned regime needs (the main run reads their committed results)
rule searches:
    input:
        graph.tuned_files(PARAMS),


# The console: one progress line per finished job with an ETA (Snakemake's own per-job blocks, with every
# input file, stay in .snakemake/log/), and at the end where the results are (seqbench.progress).
from seqbench import progress


onstart:
    progress.start(workflow)


onsuccess:
    progress.finished(workflow, log)


onerror:
    progress.failed(workflow, log)
