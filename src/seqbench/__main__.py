from seqbench.cli import app

app(prog_name="seqbench")
