"""Data validation in standardize, through the real stages on tiny files in each dataset's raw format:
physical ranges and sentinels, non-finite values, duplicates. Each error names file, line, column and
value, and nothing is written under data/standard/."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import polars as pl
import pytest
import yaml
from rawdata import imdb_members, write_cta_csv, write_ett_csv, write_imdb_tar, write_sums

from seqbench import download, standardize
from seqbench.datasets import jena
from seqbench.errors import DataError
from seqbench.params import load_params
from seqbench.paths import Layout

ROOT = Path(__file__).resolve().parents[1]
ETT = "ETTh1.csv"
CTA = "CTA_-_Ridership_-_Daily_Boarding_Totals.csv"
JENA_ZIP = "jena_climate_2009_2016.csv.zip"
ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")


def run_stages(tmp_path: Path, monkeypatch, dataset: str, mirror_file: Path) -> tuple[Layout, pl.DataFrame]:
    """download (from a mirror folder vouching for `mirror_file`) + standardize in a fresh project."""
    write_sums(mirror_file.parent, [mirror_file.name])
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror_file.parent))
    project = tmp_path / "project"
    project.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    params, layout = load_params(project / "params.yaml"), Layout(project)
    download.run(params, layout, dataset)
    return layout, standardize.run(params, layout, dataset)


def refused(tmp_path, monkeypatch, dataset: str, mirror_file: Path, pattern: str) -> str:
    with pytest.raises(DataError, match=pattern) as error:
        run_stages(tmp_path, monkeypatch, dataset, mirror_file)
    assert not (tmp_path / "project/data/standard" / f"{dataset}.parquet").exists()
    return str(error.value)


def set_field(path: Path, line: int, column: int, value: str) -> None:
    """Replace field `column` (0-based) of file line `line` (1-based) in a comma-separated file."""
    lines = path.read_text().split("\n")
    fields = lines[line - 1].split(",")
    fields[column] = value
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines))


def ett_file(tmp_path: Path) -> Path:
    return write_ett_csv(tmp_path / "mirror" / ETT, rows=60)


def jena_file(tmp_path: Path, line: int | None = None, column: str | None = None, value: str = "") -> Path:
    """The generator's exact raw format (1,000 rows), optionally one field changed, zipped."""
    text = jena.jena_like_csv(1_000, seed=3).decode()
    path = tmp_path / "mirror" / JENA_ZIP
    path.parent.mkdir(parents=True)
    if line is not None:
        lines = text.split("\n")
        fields = lines[line - 1].split(",")
        fields[1 + jena.COLUMNS.index(column)] = value
        lines[line - 1] = ",".join(fields)
        text = "\n".join(lines)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(jena.CSV_NAME, text)
    return path


# --- physical ranges and sentinels -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("OT", "-9999.0", r"column 'OT' value -9999\.0 is outside its physical range \[-50, 150\] \(transformer oil "
                          r"temperature in degC\) - a missing-value sentinel\?"),
        ("HUFL", "1234.5", r"column 'HUFL' value 1234\.5 is outside its physical range \[-500, 500\]"),
    ],
)
def test_ett_value_outside_its_physical_range(tmp_path, monkeypatch, column, value, expected):
    path = ett_file(tmp_path)
    set_field(path, 9, 1 + ETT_COLUMNS.index(column), value)
    message = refused(tmp_path, monkeypatch, "etth1", path, expected)
    assert message.startswith(f"{tmp_path}/project/data/raw/etth1/{ETT}, line 9: ")


def test_cta_negative_count(tmp_path, monkeypatch):
    path = write_cta_csv(tmp_path / "mirror" / CTA, start="2019-01-01", end="2019-02-28")
    set_field(path, 12, 3, "-3")  # rail_boardings
    refused(tmp_path, monkeypatch, "cta", path,
            rf"{CTA}, line 12: column 'rail_boardings' value -3 is outside its physical range \[0, 1e\+07\]")


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("T (degC)", "-9999.00", r"line 40: column 'T \(degC\)' value -9999\.0 is outside .* sentinel\?"),
        ("wv (m/s)", "-1.50", r"line 40: column 'wv \(m/s\)' value -1\.5 is outside its physical range \[0, 120\]"),
        ("rh (%)", "140.00", r"line 40: column 'rh \(%\)' value 140\.0 is outside its physical range \[0, 110\]"),
    ],
)
def test_jena_only_the_wind_sentinel_is_declared(tmp_path, monkeypatch, column, value, expected):
    refused(tmp_path, monkeypatch, "jena", jena_file(tmp_path, 40, column, value), f"{jena.CSV_NAME}, {expected}")


def test_jena_wind_sentinel_is_read_as_calm(tmp_path, monkeypatch):
    _, table = run_stages(tmp_path, monkeypatch, "jena", jena_file(tmp_path, 40, "max. wv (m/s)", "-9999.00"))
    assert table["max. wv (m/s)"][38] == 0.0 and table["max. wv (m/s)"].min() == 0.0


# --- non-finite values -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity"])
def test_non_finite_values_are_caught_where_they_enter(tmp_path, monkeypatch, value):
    path = ett_file(tmp_path)
    set_field(path, 31, 2, value)
    message = refused(tmp_path, monkeypatch, "etth1", path,
                      rf"line 31: column 'HULL' value '{value}' is not a finite number")
    assert f"the raw file {ETT}" in message and "rerun" not in message


def test_non_finite_jena_value(tmp_path, monkeypatch):
    refused(tmp_path, monkeypatch, "jena", jena_file(tmp_path, 7, "p (mbar)", "NaN"),
            r"line 7: column 'p \(mbar\)' value 'NaN' is not a finite number")


# --- duplicates --------------------------------------------------------------------------------------
def test_cta_identical_rows_are_dropped_and_counted(tmp_path, monkeypatch, capsys):
    path = write_cta_csv(tmp_path / "mirror" / CTA, start="2019-01-01", end="2019-03-31", duplicate_from="2019-02-01")
    _, table = run_stages(tmp_path, monkeypatch, "cta", path)
    assert table.height == 90 and table["timestamp"].n_unique() == 90
    assert f"note: {CTA}: dropped 31 row(s) that repeat an earlier row exactly" in capsys.readouterr().err


def test_cta_date_twice_with_different_values_is_an_error(tmp_path, monkeypatch):
    path = write_cta_csv(tmp_path / "mirror" / CTA, start="2019-01-01", end="2019-01-31")
    lines = path.read_text().splitlines()
    fields = lines[5].split(",")  # line 6
    changed = [*fields[:3], str(int(fields[3]) + 1), str(int(fields[4]) + 1)]
    path.write_text("\n".join([*lines, ",".join(changed)]) + "\n")  # line 33
    message = refused(tmp_path, monkeypatch, "cta", path, rf"{CTA}, lines 6 and 33: two rows for timestamp=")
    assert f"column 'rail_boardings': {int(fields[3])} vs {int(fields[3]) + 1}" in message


def test_ett_duplicates_identical_dropped_conflicting_refused(tmp_path, monkeypatch, capsys):
    path = ett_file(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:11], lines[10], *lines[11:]]) + "\n")  # line 11 again as line 12
    _, table = run_stages(tmp_path, monkeypatch, "etth1", path)
    assert table.height == 60 and "dropped 1 row(s)" in capsys.readouterr().err
    original = pl.read_csv(path, infer_schema=False)["OT"][9]  # line 11's OT
    set_field(path, 12, 7, "12.5")
    message = refused(tmp_path / "again", monkeypatch, "etth1", path, r"lines 11 and 12: two rows for timestamp=")
    assert f"column 'OT': {float(original)!r} vs 12.5" in message


def test_jena_repeated_timestamp_keeps_the_first_row_as_its_protocol_says(tmp_path, monkeypatch, capsys):
    _, table = run_stages(tmp_path, monkeypatch, "jena", jena_file(tmp_path))
    assert table.height == 999 and table["timestamp"].is_unique().all()
    assert "1 timestamp value(s) appear again with different values; kept the first row" in capsys.readouterr().err


# --- IMDB --------------------------------------------------------------------------------------------
def _second_copy(files: dict[str, bytes]) -> dict[str, bytes]:
    """train/neg review 4 once more, under another rating of its label."""
    [name] = [n for n in files if n.startswith("aclImdb/train/neg/4_")]
    rating = int(name.removesuffix(".txt").split("_")[1])
    return {f"aclImdb/train/neg/4_{1 if rating != 1 else 2}.txt": b"a second review 4"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (lambda files: {"aclImdb/train/pos/30_5.txt": b"so-so"},
         r"train/pos/30_5\.txt: rating 5 \(from the file name\) is outside 7\.\.10, the ratings of pos reviews"),
        (lambda files: {"aclImdb/test/neg/30_0.txt": b"zero"},
         r"test/neg/30_0\.txt: rating 0 \(from the file name\) is outside 1\.\.4"),
        (_second_copy, r"train/neg/4_\d\.txt and 4_\d\.txt: two reviews with id 4 in "),
    ],
)
def test_imdb_rating_outside_its_label_or_id_twice(tmp_path, monkeypatch, extra, expected):
    files = imdb_members(n_per_class=5)
    path = write_imdb_tar(tmp_path / "mirror" / "aclImdb_v1.tar.gz", files={**files, **extra(files)})
    refused(tmp_path, monkeypatch, "imdb", path, expected)
