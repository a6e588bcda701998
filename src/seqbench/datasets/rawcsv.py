"""Reading a raw CSV so that every bad value is reported with its file, line, column and value.

Every column is read as text first and parsed column by column: a value that does not parse, an empty
field, or a NaN / infinity (a missing reading written as a number) stops standardize on the line where
it enters, instead of surfacing later in features far from its cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from seqbench.errors import DataError

FIRST_DATA_LINE = 2  # line 1 is the header
FIX = "Fix or remove that row, or get a clean copy."


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


def line_of(row: int) -> int:
    """The file line of data row `row` (0-based, file order)."""
    return row + FIRST_DATA_LINE


def _first(mask: pl.Series) -> int | None:
    index = mask.arg_true()
    return int(index[0]) if len(index) else None


def _shown(value: str | None) -> str:
    return "(empty)" if value is None else repr(value)


def parse_datetime(table: pl.DataFrame, column: str, fmt: str, path: Path) -> pl.Series:
    """Text column -> Datetime(us, UTC); DataError naming the line and value of the first bad one."""
    raw = table[column]
    parsed = raw.str.strptime(pl.Datetime("us"), fmt, strict=False)
    bad = _first(parsed.is_null())  # an empty field reads as null too
    if bad is not None:
        raise DataError(f"{path}, line {line_of(bad)}: column {column!r} value {_shown(raw[bad])} "
                        f"is not a date in the format {fmt!r}. {FIX}")
    return parsed.dt.replace_time_zone("UTC")


def parse_numbers(table: pl.DataFrame, columns: Sequence[str], dtype: pl.DataType, path: Path) -> list[pl.Series]:
    """Text columns -> numeric; DataError naming the line, column and value of the first bad one
    (unparseable, empty, or for floats NaN / infinite)."""
    out = []
    for column in columns:
        raw = table[column].str.strip_chars()
        parsed = raw.cast(dtype, strict=False)
        bad = _first(parsed.is_null())
        if bad is not None:
            kind = "an integer" if dtype.is_integer() else "a number"
            raise DataError(f"{path}, line {line_of(bad)}: column {column!r} value {_shown(raw[bad])} "
                            f"is not {kind}. {FIX}")
        if dtype.is_float():
            bad = _first(~parsed.is_finite())
            if bad is not None:
                raise DataError(f"{path}, line {line_of(bad)}: column {column!r} value {_shown(raw[bad])} is not "
                                f"a finite number (NaN or infinity: a missing or failed reading in the raw file "
                                f"{path.name}). {FIX}")
        out.append(parsed.alias(column))
    return out
