"""standardize stage: raw files -> data/standard/<ds>.parquet, typed and cleaned (polars).

Each dataset module's `standardize(name, raw_dir, settings)` returns the table and `schema(name,
settings)` its columns; the cleaning rules are documented there. A dataset that download marked
unavailable gets an empty table with the schema and the parquet metadata key `seqbench_unavailable`
holding the reason, so later stages can tell "no data" from "no rows" (`unavailable_reason`).

The CSV helpers below are shared by the dataset modules: they read every column as text first so a
bad value can be reported with its file, line number and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from seqbench.download import dataset_info, read_status
from seqbench.errors import DataError
from seqbench.io import atomic_path

UNAVAILABLE_KEY = "seqbench_unavailable"
UTC_US = pl.Datetime("us", "UTC")
_FIRST_DATA_LINE = 2  # line 1 is the header


# --- the stage ---------------------------------------------------------------------------------------
def run(params, layout, dataset: str) -> pl.DataFrame:
    module = dataset_info(dataset).module
    settings = params.dataset(dataset)
    raw_dir = layout.raw(dataset)
    status = read_status(raw_dir)
    if status is None and module.raw_files(dataset):
        raise DataError(f"{raw_dir / 'status.json'} not found: run `python -m seqbench download --dataset "
                        f"{dataset}` first.")
    reason = None if status is None or status.get("available") else status.get("reason") or "unavailable"
    if reason is None:
        table = module.standardize(dataset, raw_dir, settings)
    else:
        table = empty_table(module.schema(dataset, settings))
    check_schema(table, module.schema(dataset, settings), dataset)
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


# --- shared CSV helpers (used by the dataset modules) --------------------------------------------------
def read_csv_text(path: Path, expected: Sequence[str]) -> pl.DataFrame:
    """Read a CSV with every column as text, checking the header holds the expected columns."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; re-run the download stage "
                        f"(delete {path.parent / 'status.json'} first if it exists).")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header {','.join(expected)} and data rows. "
                        f"Delete {path.parent} and re-run the download stage.")
    try:
        table = pl.read_csv(path, infer_schema=False, raise_if_empty=True)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataError(f"{path}: cannot be read as CSV ({type(error).__name__}: {error}). "
                        f"Expected the header {','.join(expected)}.") from None
    missing = [c for c in expected if c not in table.columns]
    if missing:
        hint = ""
        if len(table.columns) == 1 and any(sep in table.columns[0] for sep in ";\t|"):
            hint = " The file seems to use another delimiter than ','."
        raise DataError(f"{path}: missing column(s) {missing}; expected the header {','.join(expected)}, "
                        f"found {','.join(table.columns)}.{hint}")
    if table.height == 0:
        raise DataError(f"{path}: the file has a header but no data rows.")
    return table


def _first_bad(raw: pl.Series, parsed: pl.Series) -> int | None:
    index = parsed.is_null().arg_true()  # an empty field reads as null too
    return int(index[0]) if len(index) else None


def _shown(value: str | None) -> str:
    return "(empty)" if value is None else repr(value)


def parse_datetime(table: pl.DataFrame, column: str, fmt: str, path: Path) -> pl.Series:
    """Text column -> Datetime(us, UTC); DataError naming the line and value of the first bad one."""
    raw = table[column]
    parsed = raw.str.strptime(pl.Datetime("us"), fmt, strict=False)
    bad = _first_bad(raw, parsed)
    if bad is not None:
        raise DataError(f"{path}, line {bad + _FIRST_DATA_LINE}: column {column!r} value {_shown(raw[bad])} "
                        f"is not a date in the format {fmt!r}. Fix or remove that row, or get a clean copy.")
    return parsed.dt.replace_time_zone("UTC")


def parse_numbers(table: pl.DataFrame, columns: Sequence[str], dtype: pl.DataType, path: Path) -> list[pl.Series]:
    """Text columns -> numeric; DataError naming the line, column and value of the first bad one."""
    out = []
    for column in columns:
        raw = table[column].str.strip_chars()
        parsed = raw.cast(dtype, strict=False)
        bad = _first_bad(raw, parsed)
        if bad is not None:
            kind = "an integer" if dtype.is_integer() else "a number"
            raise DataError(f"{path}, line {bad + _FIRST_DATA_LINE}: column {column!r} value {_shown(raw[bad])} "
                            f"is not {kind}. Fix or remove that row, or get a clean copy.")
        out.append(parsed.alias(column))
    return out
