"""ETTh1 / ETTh2 (Zhou et al., Informer, AAAI 2021): the long-horizon forecasting protocol.

Split rule: rows [0, b0), [b0, b1), [b1, b2) from `borders`; rows from b2 on are unused.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt, field_validator

from seqbench.datasets.base import DatasetSettings, DatasetTraining, ForecastDataset, Range, RawFile
from seqbench.errors import DataError
from seqbench.tasks import ForecastTask

COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
FILES = {"etth1": "ETTh1.csv", "etth2": "ETTh2.csv"}
_SHA256 = {
    "ETTh1.csv": "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    "ETTh2.csv": "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
}
PUBLISHED_ROWS = 17_420
DATE_COLUMN = "date"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # "2016-07-01 00:00:00"; the file has no time zone: labelled UTC
# The six loads (high/middle/low useful and useless load of the transformer) stay within -31.5..107.9 in
# the published files, oil temperature within -4.1..58.9 degC. The bounds are ~5x the loads' widest
# value either way, and for oil the range a liquid-filled transformer can hold (oil below -50 degC
# does not flow; 150 degC is far past the ~105 degC top-oil limit of IEC 60076-7); -9999 falls outside.
LOAD = Range(-500.0, 500.0, "transformer load; the published files stay within -31.5..107.9")
RANGES = {**{c: LOAD for c in COLUMNS[:-1]},
          "OT": Range(-50.0, 150.0, "transformer oil temperature in degC")}


class EttSettings(DatasetSettings):
    borders: tuple[PositiveInt, PositiveInt, PositiveInt]
    lookback: PositiveInt
    horizons: list[PositiveInt] = Field(min_length=1)
    extra_lookbacks: list[PositiveInt] = []
    season: PositiveInt
    training: DatasetTraining

    @field_validator("borders")
    @classmethod
    def _increasing(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if not value[0] < value[1] < value[2]:
            raise ValueError(f"borders must increase (train end < validation end < test end), got {list(value)}")
        return value


def task_name(lookback: int, horizon: int, default_lookback: int) -> str:
    return f"h{horizon}" if lookback == default_lookback else f"l{lookback}_h{horizon}"


class Ett(ForecastDataset):
    settings = EttSettings
    primary_metric = "mse"  # the long-horizon literature ranks by MSE
    baseline = "naive"
    metric_units = "scaled"  # the literature reports MSE/MAE on train-standardized values

    @property
    def file_name(self) -> str:
        return FILES[self.name]

    def raw_files(self) -> list[RawFile]:
        return [
            RawFile(
                name=self.file_name,
                url=f"https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{self.file_name}",
                sha256=_SHA256[self.file_name],
            )
        ]

    def tasks(self, settings) -> list[ForecastTask]:
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

    def schema(self, settings=None) -> dict:
        import polars as pl

        return {"timestamp": pl.Datetime("us", "UTC"), **{c: pl.Float64 for c in COLUMNS}}

    def standardize(self, raw_dir, settings=None):
        """ETTh1.csv / ETTh2.csv -> timestamp + the 7 columns, rows kept in file order (the protocol's
        borders are row numbers; the published files are clean: hourly, no gaps or duplicates)."""
        import polars as pl

        from seqbench.datasets import checks, rawcsv

        path = raw_dir / self.file_name
        table = rawcsv.read_csv_text(path, (DATE_COLUMN, *COLUMNS))
        frame = pl.DataFrame([
            rawcsv.parse_datetime(table, DATE_COLUMN, DATE_FORMAT, path).alias("timestamp"),
            *rawcsv.parse_numbers(table, COLUMNS, pl.Float64, path),
        ])
        checks.check_ranges(frame, RANGES, path)
        return checks.drop_duplicates(frame, ["timestamp"], path)

    def split(self, table, settings, source):
        from seqbench.datasets.splitting import split_rows

        borders = settings.borders
        if table.height < borders[2]:
            raise DataError(f"{source}: {table.height} rows, but the protocol's borders {list(borders)} need at least "
                            f"{borders[2]}; check the raw file (ETTh1/ETTh2 have {PUBLISHED_ROWS:,} rows) or the "
                            "borders setting")
        return split_rows(table, [0, *borders],
                          f"row borders {list(borders)} (Informer); rows from {borders[2]} unused")


REGISTER = (Ett("etth1"), Ett("etth2"))
