"""standardize stage: raw files -> data/standard/<ds>.parquet, typed, validated and cleaned (polars).

Each dataset's `standardize(raw_dir, settings)` returns the table and `schema(settings)` its columns;
its module documents the cleaning rules and declares what it validates (seqbench.datasets.checks:
physical ranges, sentinels, duplicates; seqbench.datasets.rawcsv: unparseable or non-finite values).
A dataset that download marked unavailable gets an empty table with the schema and the parquet
metadata key `seqbench_unavailable` holding the reason, so later stages can tell "no data" from "no
rows" (`unavailable_reason`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqbench import datasets
from seqbench.download import read_status
from seqbench.errors import DataError
from seqbench.io import atomic_path

UNAVAILABLE_KEY = "seqbench_unavailable"


# --- the stage ---------------------------------------------------------------------------------------
def run(params, layout, dataset: str) -> pl.DataFrame:
    info = datasets.get(dataset)
    settings = params.dataset(dataset)
    raw_dir = layout.raw(dataset)
    status = read_status(raw_dir)
    if status is None and info.raw_files():
        raise DataError(f"{raw_dir / 'status.json'} not found: run `python -m seqbench download --dataset "
                        f"{dataset}` first.")
    reason = None if status is None or status.get("available") else status.get("reason") or "unavailable"
    if reason is None:
        table = info.standardize(raw_dir, settings)
    else:
        table = empty_table(info.schema(settings))
    check_schema(table, info.schema(settings), dataset)
    write_table(layout.standard(dataset), table, unavailable=reason)
    return table


def empty_table(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def check_schema(table: pl.DataFrame, schema: dict[str, pl.DataType], dataset: str) -> None:
    """The published schema is a contract with the split/features stages: fail loudly on drift."""
    actual = dict(table.schema)
    if list(actual) != list(schema) or any(actual[c] != t for c, t in schema.items()):
        raise DataError(f"{dataset}: standardized table has schema {actual}, expected {schema} "
                        "(a bug in the dataset module's standardize)")


def write_table(path: Path, table: pl.DataFrame, unavailable: str | None = None) -> None:
    metadata = {UNAVAILABLE_KEY: unavailable} if unavailable is not None else None
    with atomic_path(path) as tmp:
        table.write_parquet(tmp, metadata=metadata)


def unavailable_reason(path: Path) -> str | None:
    """The reason stored in a standard/split parquet file whose dataset is unavailable, else None."""
    return pl.read_parquet_metadata(path).get(UNAVAILABLE_KEY)
