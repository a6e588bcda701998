"""split stage: each dataset's protocol on small standard tables (the schemas of COMMON.md)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from seqbench import split as split_stage
from seqbench.errors import DataError
from seqbench.io import read_json
from seqbench.params import load_params, parse_params
from seqbench.paths import Layout
from seqbench.standardize import unavailable_reason, write_table

UTC = pl.Datetime("us", "UTC")
ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")


def hourly(n: int, columns, start=dt.datetime(2016, 7, 1)) -> pl.DataFrame:
    stamps = pl.datetime_range(start, start + dt.timedelta(hours=n - 1), "1h", eager=True, time_zone="UTC")
    return pl.DataFrame({"timestamp": stamps.cast(UTC),
                         **{c: np.arange(n, dtype=np.float64) + i for i, c in enumerate(columns)}})


def daily_cta(first: dt.date, last: dt.date) -> pl.DataFrame:
    days = pl.date_range(first, last, "1d", eager=True)
    n = len(days)
    return pl.DataFrame({
        "timestamp": days.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "day_type": ["W"] * n,
        "bus": np.arange(n, dtype=np.int64),
        "rail": np.arange(n, dtype=np.int64),
    })


def imdb_table(per_label: int = 50, test_per_label: int = 5) -> pl.DataFrame:
    rows = [(split, label, rating, i, f"{split} review {label} {i}")
            for split, n in (("train", per_label), ("test", test_per_label))
            for label, rating in ((0, 2), (1, 9)) for i in range(n)]
    return pl.DataFrame(rows, schema={"split": pl.String, "label": pl.Int8, "rating": pl.Int8, "id": pl.Int32,
                                      "text": pl.String}, orient="row")


def assert_time_order_and_disjoint(splits: split_stage.Splits) -> None:
    stamps = [part["timestamp"] for part in splits.tables().values() if part.height]
    for earlier, later in zip(stamps, stamps[1:]):
        assert earlier.max() < later.min()
    joined = pl.concat(stamps)
    assert joined.n_unique() == len(joined)


def test_synthetic_and_jena_row_fractions(params_dict):
    params = parse_params(params_dict)
    table = hourly(1001, ("x0", "x1", "x2"))
    synthetic = split_stage.split_table("synthetic", table, params.dataset("synthetic"))
    assert synthetic.counts() == {"train": 700, "val": 150, "test": 151}  # int(0.7 n), int(0.15 n), rest
    assert_time_order_and_disjoint(synthetic)
    assert pl.concat(list(synthetic.tables().values())).equals(table)

    from seqbench.datasets.jena import COLUMNS
    jena = split_stage.split_table("jena", hourly(1001, COLUMNS), params.dataset("jena"))
    assert jena.counts() == {"train": 500, "val": 250, "test": 251}  # Chollet: int(0.5 n), int(0.25 n)
    assert jena.boundaries["val"]["rows"] == [500, 750]
    assert_time_order_and_disjoint(jena)


def test_ett_borders_leave_the_tail_unused(params_dict):
    params_dict["datasets"]["etth1"]["borders"] = [60, 80, 100]
    settings = parse_params(params_dict).dataset("etth1")
    splits = split_stage.split_table("etth1", hourly(130, ETT_COLUMNS), settings)
    assert splits.counts() == {"train": 60, "val": 20, "test": 20}
    assert splits.test["HUFL"].to_list() == list(range(80, 100))
    assert splits.boundaries["test"]["rows"] == [80, 100]
    assert_time_order_and_disjoint(splits)


def test_ett_short_file_names_counts(params_dict):
    settings = parse_params(params_dict).dataset("etth2")  # borders [8640, 11520, 14400]
    with pytest.raises(DataError, match=r"data/standard/etth2.parquet: 500 rows.*14400"):
        split_stage.split_table("etth2", hourly(500, ETT_COLUMNS), settings, source="data/standard/etth2.parquet")


def test_cta_inclusive_date_ranges(params_dict):
    settings = parse_params(params_dict).dataset("cta")
    splits = split_stage.split_table("cta", daily_cta(dt.date(2015, 12, 1), dt.date(2019, 7, 10)), settings)
    days = {name: part["timestamp"].dt.date() for name, part in splits.tables().items()}
    assert (days["train"].min(), days["train"].max()) == (dt.date(2016, 1, 1), dt.date(2018, 12, 31))
    assert (days["val"].min(), days["val"].max()) == (dt.date(2019, 1, 1), dt.date(2019, 5, 31))
    assert (days["test"].min(), days["test"].max()) == (dt.date(2019, 6, 1), dt.date(2019, 7, 10))
    assert splits.counts() == {"train": 366 + 365 + 365, "val": 151, "test": 40}
    assert_time_order_and_disjoint(splits)
    assert splits.boundaries["test"]["to"] is None


def test_imdb_holds_out_a_fifth_of_each_label(params_dict):
    settings = parse_params(params_dict).dataset("imdb")  # val_fraction 0.2, split_seed 1337
    table = imdb_table()
    splits = split_stage.split_table("imdb", table, settings)
    assert splits.counts() == {"train": 80, "val": 20, "test": 10}
    assert splits.val.group_by("label").len().sort("label")["len"].to_list() == [10, 10]
    assert set(splits.test["split"]) == {"test"} and set(splits.train["split"]) == {"train"}
    keys = {name: set(zip(part["label"], part["id"])) for name, part in splits.tables().items() if name != "test"}
    assert not keys["train"] & keys["val"]  # a review is (label, id): ids restart in each label folder
    assert len(keys["train"] | keys["val"]) == 100

    # the draw depends on the seed only, not on the order the files were read in
    shuffled = table.sample(fraction=1.0, shuffle=True, seed=3)
    assert split_stage.split_table("imdb", shuffled, settings).val.equals(splits.val)
    params_dict["datasets"]["imdb"]["split_seed"] = 7
    other = split_stage.split_table("imdb", table, parse_params(params_dict).dataset("imdb"))
    assert not other.val.equals(splits.val)


def test_shakespeare_character_fractions(params_dict):
    settings = parse_params(params_dict).dataset("shakespeare")
    corpus = "".join(chr(ord("a") + i % 26) for i in range(1000))
    splits = split_stage.split_table("shakespeare", pl.DataFrame({"text": [corpus]}), settings)
    assert splits.counts() == {"train": 900, "val": 50, "test": 50}
    assert "".join(part["text"][0] for part in splits.tables().values()) == corpus
    assert splits.boundaries["val"]["chars"] == [900, 950]


def test_bad_tables_raise_data_errors_naming_the_problem(params_dict):
    settings = parse_params(params_dict).dataset("etth1")
    with pytest.raises(DataError, match=r"column\(s\) \['OT'\] missing"):
        split_stage.split_table("etth1", hourly(20, ETT_COLUMNS[:-1]), settings)
    backwards = hourly(20, ETT_COLUMNS).reverse()
    with pytest.raises(DataError, match="'timestamp' is not strictly increasing"):
        split_stage.split_table("etth1", backwards, settings)


def test_run_writes_splits_and_summary(project):
    layout = Layout(project)
    params = load_params(layout.params)
    table = hourly(3000, ("x0", "x1", "x2"))
    write_table(layout.standard("synthetic"), table)
    summary = split_stage.run(params, layout, "synthetic")
    out = layout.split("synthetic")
    assert read_json(out / "split.json") == summary
    assert summary["status"] == "ok" and summary["counts"] == {"train": 2100, "val": 450, "test": 450}
    assert summary["boundaries"]["val"]["first"] == table["timestamp"][2100].isoformat()
    for name in ("train", "val", "test"):
        part = pl.read_parquet(out / f"{name}.parquet")
        assert part.schema == table.schema and part.height == summary["counts"][name]
    assert not list(out.glob("*.tmp"))


def test_run_on_unavailable_dataset_writes_empty_splits(project):
    layout = Layout(project)
    params = load_params(layout.params)
    from seqbench.datasets.jena import COLUMNS
    empty = hourly(0, COLUMNS)
    write_table(layout.standard("jena"), empty, unavailable="put jena_climate_2009_2016.csv.zip in the mirror")
    summary = split_stage.run(params, layout, "jena")
    assert summary["status"] == "unavailable"
    assert summary["reason"] == "put jena_climate_2009_2016.csv.zip in the mirror"
    assert summary["counts"] == {"train": 0, "val": 0, "test": 0}
    for name in ("train", "val", "test"):
        part = pl.read_parquet(layout.split("jena") / f"{name}.parquet")
        assert part.height == 0 and part.schema == empty.schema
        assert unavailable_reason(layout.split("jena") / f"{name}.parquet") == summary["reason"]


def test_run_without_standard_table_says_what_to_run(project):
    layout = Layout(project)
    with pytest.raises(DataError, match=r"cta.parquet: standard table not found; run `python -m seqbench "
                                        r"standardize --dataset cta`"):
        split_stage.run(load_params(layout.params), layout, "cta")
