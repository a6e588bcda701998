"""Data checks the dataset modules declare and standardize applies, on rows still in file order.

  physical ranges  each numeric column has bounds no real reading can leave (generous: they catch
                   sentinels such as -9999 and unit or column mix-ups, not unusual weather); a value
                   outside is an error naming file, line, column and value. A dataset whose protocol
                   handles a sentinel (Jena's -9999 wind speeds) replaces it before this check.
  duplicates       rows repeating an earlier row exactly are dropped, with a count on stderr; rows
                   sharing a key (a timestamp) with different values are an error naming both lines,
                   unless the dataset's protocol keeps the first (counted on stderr too).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from seqbench.datasets.base import Range
from seqbench.datasets.rawcsv import FIX, line_of
from seqbench.errors import DataError

# Values publishers write for "no reading": named in the error when one is out of range.
COMMON_SENTINELS = (-99999.0, -9999.0, -999.0, 9999.0, 99999.0)
_ROW = "__seqbench_row"


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def check_ranges(frame: pl.DataFrame, ranges: Mapping[str, Range], path: Path) -> None:
    """DataError at the first value outside its column's range; `frame` rows in file order."""
    for column, bound in ranges.items():
        outside = _first_true(~frame[column].is_between(bound.low, bound.high))
        if outside is None:
            continue
        value = frame[column][outside]
        sentinel = " - a missing-value sentinel?" if float(value) in COMMON_SENTINELS else ""
        raise DataError(f"{path}, line {line_of(outside)}: column {column!r} value {value!r} is outside its "
                        f"physical range [{bound.low:g}, {bound.high:g}] ({bound.why}){sentinel}. {FIX}")


def drop_duplicates(frame: pl.DataFrame, key: Sequence[str], path: Path, *, keep_first: bool = False) -> pl.DataFrame:
    """Drop rows that repeat an earlier row exactly (counted on stderr). Rows that share `key` but differ
    elsewhere: DataError naming both lines, or with keep_first (a protocol's rule) the first one kept
    and the others counted on stderr. `frame` rows in file order; the order of the rest is kept."""
    key = list(key)
    indexed = frame.with_row_index(_ROW)
    distinct = indexed.unique(subset=frame.columns, keep="first", maintain_order=True)
    repeated = frame.height - distinct.height
    if repeated:
        note(f"{path.name}: dropped {repeated} row(s) that repeat an earlier row exactly")
    clashing = distinct.filter(pl.struct(key).is_duplicated())
    if clashing.height and not keep_first:
        first = clashing.row(0, named=True)
        other = clashing.filter(pl.all_horizontal(pl.col(k) == first[k] for k in key)).row(1, named=True)
        column = next(c for c in frame.columns if first[c] != other[c])
        shown = ", ".join(f"{k}={first[k]}" for k in key)
        raise DataError(f"{path}, lines {line_of(first[_ROW])} and {line_of(other[_ROW])}: two rows for {shown} "
                        f"with different values (column {column!r}: {first[column]!r} vs {other[column]!r}); "
                        f"which one is right cannot be told. {FIX}")
    kept = distinct.unique(subset=key, keep="first", maintain_order=True)
    if kept.height < distinct.height:
        note(f"{path.name}: {distinct.height - kept.height} {'/'.join(key)} value(s) appear again with different "
             "values; kept the first row of each (the protocol's rule)")
    return kept.drop(_ROW)


def _first_true(mask: pl.Series) -> int | None:
    index = mask.arg_true()
    return int(index[0]) if len(index) else None
