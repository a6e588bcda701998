"""split stage: standard table -> data/split/<ds>/{train,val,test}.parquet + split.json.

Each dataset's `split(table, settings, source)` applies its published protocol (its module documents
the rule; DESIGN.md the sources); this stage checks the table against the dataset's schema first and
writes the result. Every split keeps the standard schema and time order, and no row lands in two splits.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from seqbench import datasets
from seqbench.datasets.splitting import SPLITS, Splits
from seqbench.errors import DataError
from seqbench.io import write_json
from seqbench.paths import Layout
from seqbench.standardize import unavailable_reason, write_table

__all__ = ["SPLITS", "Splits", "check_columns", "read_standard", "run", "split_table", "write_splits"]


# --- protocols (pure) ------------------------------------------------------------------------------
def check_columns(name: str, table: pl.DataFrame, settings, source: str) -> None:
    missing = [c for c in datasets.get(name).schema(settings) if c not in table.columns]
    if missing:
        raise DataError(f"{source}: column(s) {missing} missing for dataset {name!r} (has {table.columns}); "
                        f"rerun `python -m seqbench standardize --dataset {name}`")
    if "timestamp" in table.columns and table.height > 1:
        ts = table["timestamp"]
        if ts.null_count() or not (ts.diff().drop_nulls() > dt.timedelta(0)).all():
            raise DataError(f"{source}: column 'timestamp' is not strictly increasing (or has nulls); "
                            f"rerun `python -m seqbench standardize --dataset {name}`")


def split_table(name: str, table: pl.DataFrame, settings, source: str = "standard table") -> Splits:
    """The protocol's train/val/test of a standard table (pure; `source` names the table in errors)."""
    check_columns(name, table, settings, source)
    return datasets.get(name).split(table, settings, source)


# --- stage -----------------------------------------------------------------------------------------
def read_standard(layout: Layout, name: str) -> pl.DataFrame:
    path = layout.standard(name)
    if not path.is_file():
        raise DataError(f"{path}: standard table not found; "
                        f"run `python -m seqbench standardize --dataset {name}` first")
    try:
        return pl.read_parquet(path)
    except Exception as error:  # a truncated or foreign file: say which and how to rebuild it
        raise DataError(f"{path}: cannot be read as parquet ({error}); rerun "
                        f"`python -m seqbench standardize --dataset {name}`") from None


def write_splits(out_dir: Path, name: str, splits: Splits | None, empty: pl.DataFrame | None = None,
                 reason: str | None = None) -> dict:
    """Write the three tables, then split.json last (its presence marks a complete split)."""
    (out_dir / "split.json").unlink(missing_ok=True)
    tables = splits.tables() if splits else {s: empty for s in SPLITS}
    for split_name, table in tables.items():
        write_table(out_dir / f"{split_name}.parquet", table, unavailable=reason)
    summary = {
        "dataset": name,
        "status": "ok" if splits else "unavailable",
        "reason": reason,
        "protocol": splits.protocol if splits else None,
        "boundaries": splits.boundaries if splits else {},
        "counts": splits.counts() if splits else {s: 0 for s in SPLITS},
        "count_unit": splits.count_unit if splits else None,
    }
    write_json(out_dir / "split.json", summary)
    return summary


def run(params, layout: Layout, dataset: str) -> dict:
    datasets.get(dataset)  # an unknown name fails before any file is read
    path = layout.standard(dataset)
    table = read_standard(layout, dataset)
    reason = unavailable_reason(path)
    if reason is not None:
        return write_splits(layout.split(dataset), dataset, None, empty=table.clear(), reason=reason)
    splits = split_table(dataset, table, params.dataset(dataset), source=str(path))
    return write_splits(layout.split(dataset), dataset, splits)
