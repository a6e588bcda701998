# One rule per stage of seqbench.stages.STAGES (dvc.yaml is generated from the same table).

for _stage in graph.STAGES.values():

    rule:
        name:
            _stage.name
        input:
            code=code_of(_stage),
            data=data_of(_stage),
        output:
            outputs_of(_stage),
        params:
            settings=settings_of(_stage),
            command=command_of(_stage),
        threads: threads_of(_stage)
        resources:
            **resources_of(_stage),
        log:
            _stage.log(),
        # a constant: a shell expression naming _stage would be read when the job runs, after the loop
        shell:
            "{params.command} > {log} 2>&1"
