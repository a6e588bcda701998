"""Train/val/test splits: the result every split rule returns, and the rules several datasets share.

Every split keeps the standard schema and time order, and no row lands in two splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Splits:
    train: pl.DataFrame
    val: pl.DataFrame
    test: pl.DataFrame
    protocol: str  # one line for split.json and the report
    boundaries: dict = field(default_factory=dict)
    count_unit: str = "rows"

    def tables(self) -> dict[str, pl.DataFrame]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def counts(self) -> dict[str, int]:
        if self.count_unit == "characters":
            return {name: sum(len(t) for t in table["text"].to_list()) for name, table in self.tables().items()}
        return {name: table.height for name, table in self.tables().items()}


def iso(value) -> str | None:
    return None if value is None else value.isoformat()


def split_rows(table: pl.DataFrame, edges: list[int], protocol: str) -> Splits:
    """Rows [e0, e1), [e1, e2), [e2, e3) of a time-ordered table; boundaries name rows and timestamps."""
    parts = [table[a:b] for a, b in zip(edges, edges[1:])]
    boundaries = {}
    for name, a, b in zip(SPLITS, edges, edges[1:]):
        ts = table["timestamp"][a:b]
        boundaries[name] = {"rows": [a, b], "first": iso(ts.first()), "last": iso(ts.last())}
    return Splits(*parts, protocol=protocol, boundaries=boundaries)


def split_fractions(table: pl.DataFrame, fractions) -> Splits:
    """Row fractions in time order: n_train = int(f0 n), n_val = int(f1 n), test the rest."""
    n = table.height
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    return split_rows(table, [0, n_train, n_train + n_val, n], f"row fractions {list(fractions)} in time order")
