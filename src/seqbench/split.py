"""split stage: standard table -> data/split/<ds>/{train,val,test}.parquet + split.json.

Each dataset follows its published protocol (DESIGN.md); every split keeps the standard schema and
time order, and no row lands in two splits:
  synthetic    row fractions `split` in time order (n_train = int(f0 n), n_val = int(f1 n), test the rest)
  jena         the same rule with [0.5, 0.25, 0.25] (Chollet), on the deduplicated rows
  etth1/etth2  rows [0, b0), [b0, b1), [b1, b2) from `borders`; rows from b2 on are unused
  cta          calendar date ranges, both ends inclusive (Geron); test end null = to the end of the file
  imdb         official test = test; official train -> validation gets int(val_fraction * n) reviews of
               EACH label. Rule: the label's reviews sorted by id, one numpy Generator seeded with
               `split_seed` permutes label 0 then label 1, the first int(val_fraction * n) of each
               permutation go to validation (so the draw never depends on file-system order)
  shakespeare  characters [0, int(f0 n)), [int(f0 n), int((f0 + f1) n)), the rest; one row per split
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from seqbench import datasets
from seqbench.errors import DataError
from seqbench.io import write_json
from seqbench.paths import Layout
from seqbench.standardize import unavailable_reason, write_table

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Splits:
    train: pl.DataFrame
    val: pl.DataFrame
    test: pl.DataFrame
    protocol: str
    boundaries: dict = field(default_factory=dict)
    count_unit: str = "rows"

    def tables(self) -> dict[str, pl.DataFrame]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def counts(self) -> dict[str, int]:
        if self.count_unit == "characters":
            return {name: sum(len(t) for t in table["text"].to_list()) for name, table in self.tables().items()}
        return {name: table.height for name, table in self.tables().items()}


# --- protocols (pure) ------------------------------------------------------------------------------
def _required_columns(name: str, settings) -> tuple[str, ...]:
    if name == "synthetic":
        return ("timestamp", *datasets.get(name).module.columns(settings))
    if name == "jena":
        return ("timestamp", *datasets.get(name).module.COLUMNS)
    if name in ("etth1", "etth2"):
        return ("timestamp", *datasets.get(name).module.COLUMNS)
    if name == "cta":
        return ("timestamp", "day_type", "bus", "rail")
    if name == "imdb":
        return ("split", "label", "id", "text")
    if name == "shakespeare":
        return ("text",)
    raise KeyError(f"unknown dataset {name!r}")


def check_columns(name: str, table: pl.DataFrame, settings, source: str) -> None:
    missing = [c for c in _required_columns(name, settings) if c not in table.columns]
    if missing:
        raise DataError(f"{source}: column(s) {missing} missing for dataset {name!r} (has {table.columns}); "
                        f"rerun `python -m seqbench standardize --dataset {name}`")
    if "timestamp" in table.columns and table.height > 1:
        ts = table["timestamp"]
        if ts.null_count() or not (ts.diff().drop_nulls() > dt.timedelta(0)).all():
            raise DataError(f"{source}: column 'timestamp' is not strictly increasing (or has nulls); "
                            f"rerun `python -m seqbench standardize --dataset {name}`")


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _row_boundaries(table: pl.DataFrame, edges: list[int]) -> dict:
    out = {}
    for name, a, b in zip(SPLITS, edges, edges[1:]):
        ts = table["timestamp"][a:b]
        out[name] = {"rows": [a, b], "first": _iso(ts.first()), "last": _iso(ts.last())}
    return out


def _by_rows(table: pl.DataFrame, edges: list[int], protocol: str) -> Splits:
    parts = [table[a:b] for a, b in zip(edges, edges[1:])]
    return Splits(*parts, protocol=protocol, boundaries=_row_boundaries(table, edges))


def split_fractions(table: pl.DataFrame, fractions) -> Splits:
    n = table.height
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    return _by_rows(table, [0, n_train, n_train + n_val, n], f"row fractions {list(fractions)} in time order")


def split_borders(table: pl.DataFrame, borders, source: str) -> Splits:
    if table.height < borders[2]:
        raise DataError(f"{source}: {table.height} rows, but the protocol's borders {list(borders)} need at least "
                        f"{borders[2]}; check the raw file (ETTh1/ETTh2 have 17,420 rows) or the borders setting")
    return _by_rows(table, [0, *borders], f"row borders {list(borders)} (Informer); rows from {borders[2]} unused")


def split_dates(table: pl.DataFrame, settings) -> Splits:
    day = pl.col("timestamp").dt.date()
    ranges = {"train": settings.train, "val": settings.val, "test": settings.test}
    parts, boundaries = {}, {}
    for name, (first, last) in ranges.items():
        keep = day >= first if last is None else day.is_between(first, last, closed="both")
        parts[name] = table.filter(keep)
        days = parts[name]["timestamp"]
        boundaries[name] = {"from": _iso(first), "to": _iso(last), "first": _iso(days.first()),
                            "last": _iso(days.last())}
    return Splits(**parts, protocol="calendar date ranges, inclusive (Geron)", boundaries=boundaries)


def split_imdb(table: pl.DataFrame, val_fraction: float, seed: int) -> Splits:
    official = table.filter(pl.col("split") == "train").sort(["label", "id"])
    rng = np.random.default_rng(seed)
    in_val = np.zeros(official.height, dtype=bool)
    labels = official["label"].to_numpy()
    per_label = {}
    for label in (0, 1):
        rows = np.flatnonzero(labels == label)  # sorted by id
        n_val = int(val_fraction * len(rows))
        in_val[rows[rng.permutation(len(rows))[:n_val]]] = True
        per_label[str(label)] = n_val
    mask = pl.Series(in_val)
    return Splits(
        train=official.filter(~mask),
        val=official.filter(mask),
        test=table.filter(pl.col("split") == "test").sort(["label", "id"]),
        protocol=f"official test; {val_fraction:g} of each train label to validation (seed {seed})",
        boundaries={"val_fraction": val_fraction, "split_seed": seed, "val_per_label": per_label},
        count_unit="reviews",
    )


def split_text(table: pl.DataFrame, fractions, source: str) -> Splits:
    if table.height != 1:
        raise DataError(f"{source}: expected one row holding the whole corpus, found {table.height}; "
                        "rerun `python -m seqbench standardize --dataset shakespeare`")
    corpus = table["text"][0] or ""
    n = len(corpus)
    a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
    offsets = {"train": [0, a], "val": [a, b], "test": [b, n]}
    parts = {name: pl.DataFrame({"text": [corpus[lo:hi]]}, schema=table.schema) for name, (lo, hi) in offsets.items()}
    return Splits(**parts, protocol=f"character fractions {list(fractions)} in text order",
                  boundaries={name: {"chars": span} for name, span in offsets.items()}, count_unit="characters")


def split_table(name: str, table: pl.DataFrame, settings, source: str = "standard table") -> Splits:
    """The protocol's train/val/test of a standard table (pure; `source` names the table in errors)."""
    check_columns(name, table, settings, source)
    if name in ("synthetic", "jena"):
        return split_fractions(table, settings.split)
    if name in ("etth1", "etth2"):
        return split_borders(table, settings.borders, source)
    if name == "cta":
        return split_dates(table, settings)
    if name == "imdb":
        return split_imdb(table, settings.val_fraction, settings.split_seed)
    if name == "shakespeare":
        return split_text(table, settings.split, source)
    raise KeyError(f"unknown dataset {name!r}")


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
    datasets.get(dataset)
    path = layout.standard(dataset)
    table = read_standard(layout, dataset)
    reason = unavailable_reason(path)
    if reason is not None:
        return write_splits(layout.split(dataset), dataset, None, empty=table.clear(), reason=reason)
    splits = split_table(dataset, table, params.dataset(dataset), source=str(path))
    return write_splits(layout.split(dataset), dataset, splits)
