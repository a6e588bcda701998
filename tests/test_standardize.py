"""standardize stage: schemas, cleaning rules, unavailable datasets, clear errors; the Jena-like generator."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from rawdata import CTA_HEADER, imdb_members, make_mirror, write_cta_csv, write_ett_csv

from seqbench import datasets, download, standardize
from seqbench.datasets import jena
from seqbench.errors import DataError
from seqbench.params import load_params
from seqbench.paths import Layout

ROOT = Path(__file__).resolve().parents[1]
UTC = pl.Datetime("us", "UTC")
ETT_COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
CTA = "CTA_-_Ridership_-_Daily_Boarding_Totals.csv"
JENA_ROWS = 8_000
ALL = ("synthetic", "etth1", "etth2", "cta", "imdb", "shakespeare", "jena")


def new_project(folder: Path) -> tuple[object, Layout]:
    folder.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preset"] = "smoke"
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return load_params(folder / "params.yaml"), Layout(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Layout, dict[str, pl.DataFrame]]:
    """Every dataset downloaded from a tiny generated mirror and standardized once for this module."""
    base = tmp_path_factory.mktemp("standardize")
    mirror = make_mirror(base / "mirror", jena_rows=JENA_ROWS)
    params, layout = new_project(base / "project")
    saved = os.environ.pop(download.MIRROR_ENV, None)
    os.environ[download.MIRROR_ENV] = str(mirror)
    try:
        for name in ALL:
            download.run(params, layout, name)
            standardize.run(params, layout, name)
    finally:
        os.environ.pop(download.MIRROR_ENV)
        if saved is not None:
            os.environ[download.MIRROR_ENV] = saved
    tables = {name: pl.read_parquet(layout.standard(name)) for name in ALL}
    return mirror, layout, tables


EXPECTED_SCHEMAS = {
    "synthetic": {"timestamp": UTC, "x0": pl.Float64, "x1": pl.Float64, "x2": pl.Float64},
    "etth1": {"timestamp": UTC, **{c: pl.Float64 for c in ETT_COLUMNS}},
    "etth2": {"timestamp": UTC, **{c: pl.Float64 for c in ETT_COLUMNS}},
    "cta": {"timestamp": UTC, "day_type": pl.String, "bus": pl.Int64, "rail": pl.Int64},
    "imdb": {"split": pl.String, "label": pl.Int8, "rating": pl.Int8, "id": pl.Int32, "text": pl.String},
    "shakespeare": {"text": pl.String},
    "jena": {"timestamp": UTC, **{c: pl.Float64 for c in jena.COLUMNS}},
}


@pytest.mark.parametrize("name", ALL)
def test_schema_is_the_published_contract(tiny, name):
    _, layout, tables = tiny
    assert dict(tables[name].schema) == EXPECTED_SCHEMAS[name]
    assert tables[name].height > 0
    assert standardize.unavailable_reason(layout.standard(name)) is None


def test_ett_values_and_timestamps(tiny):
    mirror, _, tables = tiny
    raw = pl.read_csv(mirror / "ETTh1.csv")
    table = tables["etth1"]
    assert table.height == raw.height == 14_600
    assert table["timestamp"][0].isoformat() == "2016-07-01T00:00:00+00:00"
    assert table["timestamp"].diff().drop_nulls().dt.total_hours().unique().to_list() == [1]
    np.testing.assert_array_equal(table["OT"].to_numpy(), raw["OT"].to_numpy())


def test_jena_duplicates_removed_sorted_and_sentinels_repaired(tiny):
    mirror, layout, tables = tiny
    csv = zipfile.ZipFile(mirror / "jena_climate_2009_2016.csv.zip").read(jena.CSV_NAME).decode()
    raw = pl.read_csv(io.StringIO(csv), infer_schema_length=None)
    table = tables["jena"]
    assert raw.height == JENA_ROWS and table.height == JENA_ROWS - 1  # the one duplicated timestamp
    stamps = table["timestamp"]
    assert stamps.is_sorted() and stamps.n_unique() == table.height
    assert stamps[0].isoformat() == "2009-01-01T00:10:00+00:00"
    assert (raw["wv (m/s)"] == -9999).sum() >= 3 and (raw["max. wv (m/s)"] == -9999).sum() >= 1
    for column in jena.WIND_COLUMNS:
        assert table[column].min() >= 0
        sentinel_rows = raw.filter(pl.col(column) == -9999)["Date Time"]
        repaired = table.filter(pl.col("timestamp").dt.strftime("%d.%m.%Y %H:%M:%S").is_in(sentinel_rows.implode()))
        assert repaired[column].to_list() == [0.0] * len(sentinel_rows)
    duplicated = raw.filter(pl.col("Date Time").is_duplicated())
    assert duplicated.height == 2 and duplicated["T (degC)"][0] != duplicated["T (degC)"][1]
    kept = table.filter(pl.col("timestamp").dt.strftime("%d.%m.%Y %H:%M:%S") == duplicated["Date Time"][0])
    assert kept["T (degC)"].to_list() == [duplicated["T (degC)"][0]]  # the first row in file order


def test_cta_duplicates_dropped_sorted_and_renamed(tiny):
    mirror, _, tables = tiny
    lines = (mirror / CTA).read_text().splitlines()
    days = (dt.date(2020, 3, 31) - dt.date(2015, 12, 1)).days + 1
    assert lines[0] == CTA_HEADER and len(lines) - 1 == days + 31  # 31 days from 2017-10-01 repeated
    table = tables["cta"]
    assert table.height == days
    assert table["timestamp"].is_sorted() and table["timestamp"].n_unique() == table.height
    assert table["timestamp"][0].isoformat() == "2015-12-01T00:00:00+00:00"
    assert (table["timestamp"].dt.hour() == 0).all()
    assert set(table["day_type"]) == {"W", "A", "U"}
    first = lines[1].split(",")
    assert table.row(0) == (table["timestamp"][0], first[1], int(first[2]), int(first[3]))
    sundays = table.filter(pl.col("timestamp").dt.weekday() == 7)
    assert set(sundays["day_type"]) == {"U"}


def test_imdb_labels_ratings_ids_and_breaks(tiny):
    _, _, tables = tiny
    table = tables["imdb"]
    members = imdb_members()
    assert table.height == 80  # 20 per class and split; train/unsup ignored
    assert table.group_by("split", "label").len().sort("split", "label")["len"].to_list() == [20] * 4
    keys = table.select("split", "label", "id")
    assert keys.equals(keys.sort("split", "label", "id"))
    row = table.filter((pl.col("split") == "train") & (pl.col("label") == 1) & (pl.col("id") == 3)).row(0, named=True)
    [(name, content)] = [(n, c) for n, c in members.items() if n.startswith("aclImdb/train/pos/3_")]
    assert row["rating"] == int(name.rsplit("_", 1)[1].removesuffix(".txt"))
    assert "<br />" in content.decode() and row["text"] == content.decode().replace("<br />", " ")
    assert not table["text"].str.contains("(?i)<br").any()
    assert set(table.filter(pl.col("label") == 1)["rating"]) <= {7, 8, 9, 10}
    assert set(table.filter(pl.col("label") == 0)["rating"]) <= {1, 2, 3, 4}


def test_imdb_reads_files_and_ignores_unsup(tmp_path):
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for folder in ("pos", "neg"):
            (root / split / folder).mkdir(parents=True)
    (root / "train/pos/12_9.txt").write_text("Great<br />film<br/>really<BR>.")
    (root / "train/pos/3_7.txt").write_text("good")
    (root / "test/neg/5_2.txt").write_text("bad")
    (root / "train/unsup").mkdir()
    (root / "train/unsup/0_0.txt").write_text("unlabelled")
    imdb = datasets.get("imdb")
    table = imdb.standardize(tmp_path)
    assert table.rows() == [("test", 0, 2, 5, "bad"), ("train", 1, 7, 3, "good"),
                            ("train", 1, 9, 12, "Great film really .")]
    (root / "test/neg/oops.txt").write_text("x")
    with pytest.raises(DataError, match=r"oops\.txt: review file names must look like <id>_<rating>\.txt"):
        imdb.standardize(tmp_path)


def test_shakespeare_is_one_row_with_the_whole_text(tiny):
    mirror, _, tables = tiny
    assert tables["shakespeare"]["text"].to_list() == [(mirror / "tinyshakespeare.txt").read_text()]
    assert len(tables["shakespeare"]["text"][0]) == 20_000


def test_synthetic_is_seeded_hourly_and_seasonal(tiny):
    _, layout, tables = tiny
    table = tables["synthetic"]
    params = load_params(layout.params)
    settings = params.dataset("synthetic")
    assert table.height == settings.rows
    assert table["timestamp"][0].isoformat() == "2020-01-01T00:00:00+00:00"
    assert table["timestamp"].diff().drop_nulls().dt.total_hours().unique().to_list() == [1]
    x0 = table["x0"].to_numpy()
    season = settings.season
    assert np.corrcoef(x0[:-season], x0[season:])[0, 1] > 0.8  # x0 repeats every season rows
    assert np.corrcoef(x0[:-season // 2], x0[season // 2:])[0, 1] < -0.5
    synthetic = datasets.get("synthetic")
    again = synthetic.standardize(None, settings)
    assert again.equals(table)
    other = synthetic.standardize(None, settings.model_copy(update={"generator_seed": 8}))
    assert not other.equals(table)


# --- unavailable datasets ----------------------------------------------------------------------------
def test_unavailable_dataset_gives_an_empty_table_with_the_reason(tmp_path):
    params, layout = new_project(tmp_path)
    reason = "jena_climate_2009_2016.csv.zip is in no mirror folder ... set SEQBENCH_MIRROR=<folder>"
    raw = layout.raw("jena")
    raw.mkdir(parents=True)
    (raw / "status.json").write_text(json.dumps({"dataset": "jena", "available": False, "reason": reason,
                                                 "files": {}}))
    standardize.run(params, layout, "jena")
    table = pl.read_parquet(layout.standard("jena"))
    assert table.height == 0 and dict(table.schema) == EXPECTED_SCHEMAS["jena"]
    assert standardize.unavailable_reason(layout.standard("jena")) == reason


def test_standardize_before_download_says_what_to_do(tmp_path):
    params, layout = new_project(tmp_path)
    with pytest.raises(DataError, match="python -m seqbench download --dataset cta"):
        standardize.run(params, layout, "cta")
    assert not layout.standard("cta").exists()


# --- bad raw files -----------------------------------------------------------------------------------
def ett_raw(tmp_path: Path, text: str | None = None) -> Path:
    path = write_ett_csv(tmp_path / "ETTh1.csv", rows=50)
    if text is not None:
        path.write_text(text)
    return path


def test_csv_missing_a_column(tmp_path):
    path = ett_raw(tmp_path)
    frame = pl.read_csv(path, infer_schema=False).drop("LULL")
    frame.write_csv(path)
    with pytest.raises(DataError) as error:
        datasets.get("etth1").standardize(tmp_path)
    message = str(error.value)
    assert str(path) in message and "['LULL']" in message and "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT" in message


def test_unparseable_date_names_line_and_value(tmp_path):
    path = ett_raw(tmp_path)
    lines = path.read_text().splitlines()
    lines[5] = "2016-07-01 4 o'clock" + lines[5][19:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 6: column 'date' value \"2016-07-01 4 o'clock\"") as error:
        datasets.get("etth1").standardize(tmp_path)
    assert str(path) in str(error.value)


def test_cta_bad_date_non_numeric_and_bad_day_type(tmp_path):
    path = write_cta_csv(tmp_path / CTA, start="2019-01-01", end="2019-01-20")
    lines = path.read_text().splitlines()
    broken = lines.copy()
    broken[3] = "2019-01-03" + broken[3][10:]
    path.write_text("\n".join(broken) + "\n")
    with pytest.raises(DataError, match=r"line 4: column 'service_date' value '2019-01-03'.*'%m/%d/%Y'"):
        datasets.get("cta").standardize(tmp_path)
    broken = lines.copy()
    fields = broken[7].split(",")
    broken[7] = ",".join([*fields[:2], "12k", *fields[3:]])
    path.write_text("\n".join(broken) + "\n")
    with pytest.raises(DataError, match=r"line 8: column 'bus' value '12k' is not an integer"):
        datasets.get("cta").standardize(tmp_path)
    broken = lines.copy()
    broken[2] = broken[2].replace(",W,", ",X,").replace(",A,", ",X,").replace(",U,", ",X,")
    path.write_text("\n".join(broken) + "\n")
    with pytest.raises(DataError, match=r"line 3: column 'day_type' value 'X'"):
        datasets.get("cta").standardize(tmp_path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the file is empty"),
        ("date;HUFL;HULL;MUFL;MULL;LUFL;LULL;OT\n2016-07-01 00:00:00;1;2;3;4;5;6;7\n", "another delimiter"),
        ("date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n", "no data rows"),
        ("date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n2016-07-01 00:00:00,1,2,3,4,5,6,7\n"
         "2016-07-01 01:00:00,1,n/a,3,4,5,6,7\n", r"line 3: column 'HULL' value 'n/a' is not a number"),
        ("date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n2016-07-01 00:00:00,1,,3,4,5,6,7\n",
         r"line 2: column 'HULL' value \(empty\)"),
    ],
)
def test_malformed_csv_files(tmp_path, content, expected):
    ett_raw(tmp_path, content)
    with pytest.raises(DataError, match=expected):
        datasets.get("etth1").standardize(tmp_path)


# --- the Jena-like generator -------------------------------------------------------------------------
def test_make_jena_like_writes_the_exact_raw_format(tmp_path):
    out = tmp_path / "mirror"
    result = subprocess.run([sys.executable, "-m", "seqbench", "make-jena-like", "--rows", "3000", "--out", str(out),
                             "--seed", "4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    archive = out / "jena_climate_2009_2016.csv.zip"
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == [jena.CSV_NAME]
        text = zf.read(jena.CSV_NAME).decode("ascii")
    lines = text.split("\n")
    assert lines[0] == ('"Date Time","p (mbar)","T (degC)","Tpot (K)","Tdew (degC)","rh (%)","VPmax (mbar)",'
                        '"VPact (mbar)","VPdef (mbar)","sh (g/kg)","H2OC (mmol/mol)","rho (g/m**3)","wv (m/s)",'
                        '"max. wv (m/s)","wd (deg)"')
    assert len(lines) == 3001 and not text.endswith("\n")
    assert lines[1].startswith("01.01.2009 00:10:00,") and lines[2].startswith("01.01.2009 00:20:00,")
    fields = lines[1].split(",")
    assert len(fields) == 15 and all(len(f.split(".")[1]) == 2 for f in fields[1:])
    sums = (out / "SHA256SUMS").read_text()
    assert sums == f"{download.sha256_file(archive)}  jena_climate_2009_2016.csv.zip\n"
    # deterministic for a seed, and SHA256SUMS keeps other files' lines
    (out / "SHA256SUMS").write_text(f"{'b' * 64}  other.csv\n")
    again = jena.write_jena_like(out, rows=3000, seed=4)
    assert download.read_sums(out) == {"other.csv": "b" * 64, archive.name: download.sha256_file(again)}
    assert sums.split()[0] == download.sha256_file(again)


def test_jena_like_values_are_physically_plausible():
    table = pl.read_csv(io.BytesIO(jena.jena_like_csv(6 * 24 * 400, seed=1)))
    t, tdew, rh = table["T (degC)"], table["Tdew (degC)"], table["rh (%)"]
    assert -30 < t.min() and t.max() < 40 and (tdew <= t + 0.011).all()
    assert rh.min() > 0 and rh.max() <= 100
    assert 900 < table["p (mbar)"].min() and table["p (mbar)"].max() < 1050
    assert 1000 < table["rho (g/m**3)"].min() and table["rho (g/m**3)"].max() < 1450
    summer = table.filter(pl.col("Date Time").str.slice(3, 2) == "07")["T (degC)"].mean()
    winter = table.filter(pl.col("Date Time").str.slice(3, 2) == "01")["T (degC)"].mean()
    assert summer - winter > 10
    hour = table["Date Time"].str.slice(11, 2).cast(pl.Int32)
    afternoon = table.filter(hour == 15)["T (degC)"].mean()
    night = table.filter(hour == 3)["T (degC)"].mean()
    assert afternoon - night > 4


# --- the shared offline mirror -----------------------------------------------------------------------
@pytest.mark.slow
def test_real_mirror_datasets(tmp_path, monkeypatch, capsys):
    """The published files pass every check standardize declares (ranges, duplicates, finite values)."""
    if not os.environ.get(download.MIRROR_ENV):
        pytest.skip(f"{download.MIRROR_ENV} is not set (CI sets it to the shared offline mirror)")
    params, layout = new_project(tmp_path)
    counts = {}
    for name in ("etth1", "etth2", "cta", "shakespeare", "imdb"):
        status = download.run(params, layout, name)
        assert status["available"], status["reason"]
        counts[name] = standardize.run(params, layout, name)
    assert counts["etth1"].height == counts["etth2"].height == 17_420
    assert counts["etth1"]["timestamp"][-1].isoformat() == "2018-06-26T19:00:00+00:00"
    assert counts["cta"].height == 7_639 and counts["cta"]["timestamp"].is_sorted()
    assert "CTA_-_Ridership_-_Daily_Boarding_Totals.csv: dropped 62 row(s) that repeat" in capsys.readouterr().err
    imdb = counts["imdb"]
    assert imdb.group_by("split").len().sort("split").rows() == [("test", 25_000), ("train", 25_000)]
    assert imdb.group_by("label").len().sort("label").rows() == [(0, 25_000), (1, 25_000)]
    assert not imdb["text"].str.contains("<br").any()
    assert len(counts["shakespeare"]["text"][0]) == 1_115_394
