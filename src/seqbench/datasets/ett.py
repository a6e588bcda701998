"""ETTh1 / ETTh2 (Zhou et al., Informer, AAAI 2021): the long-horizon forecasting protocol."""

from __future__ import annotations

from seqbench.datasets import RawFile
from seqbench.tasks import ForecastTask

METRIC_UNITS = "scaled"  # the literature reports MSE/MAE on train-standardized values
COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
_SHA256 = {
    "ETTh1.csv": "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    "ETTh2.csv": "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
}


def raw_files(name: str) -> list[RawFile]:
    file_name = {"etth1": "ETTh1.csv", "etth2": "ETTh2.csv"}[name]
    return [
        RawFile(
            name=file_name,
            url=f"https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{file_name}",
            sha256=_SHA256[file_name],
        )
    ]


def task_name(lookback: int, horizon: int, default_lookback: int) -> str:
    return f"h{horizon}" if lookback == default_lookback else f"l{lookback}_h{horizon}"


def tasks(name: str, settings) -> list[ForecastTask]:
    lookbacks = [settings.lookback, *settings.extra_lookbacks]
    return [
        ForecastTask(
            task_name(lookback, horizon, settings.lookback),
            lookback=lookback,
            horizon=horizon,
            inputs=COLUMNS,
            targets=COLUMNS,
            season=settings.season,
            window_rule="targets_in_split",
        )
        for lookback in lookbacks
        for horizon in settings.horizons
    ]


# --- standardize (data-raw) ----------------------------------------------------------------------------
DATE_COLUMN = "date"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # "2016-07-01 00:00:00"; the file has no time zone: labelled UTC


def schema(name: str, settings=None) -> dict:
    import polars as pl

    return {"timestamp": pl.Datetime("us", "UTC"), **{c: pl.Float64 for c in COLUMNS}}


def standardize(name: str, raw_dir, settings=None):
    """ETTh1.csv / ETTh2.csv -> timestamp + the 7 columns, rows kept in file order (the protocol's
    borders are row numbers; the published files are clean: hourly, no gaps or duplicates)."""
    import polars as pl

    from seqbench import standardize as std

    path = raw_dir / raw_files(name)[0].name
    table = std.read_csv_text(path, (DATE_COLUMN, *COLUMNS))
    return pl.DataFrame([
        std.parse_datetime(table, DATE_COLUMN, DATE_FORMAT, path).alias("timestamp"),
        *std.parse_numbers(table, COLUMNS, pl.Float64, path),
    ])
