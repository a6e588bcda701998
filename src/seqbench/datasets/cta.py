"""Chicago Transit Authority daily boardings, Geron's protocol (Hands-On ML 3rd ed., ch. 15).

Split rule: calendar date ranges, both ends inclusive; test end null = to the end of the file.
Features: values scaled to millions (the book's fixed scaling), then the one-hot day type of the NEXT
day (known in advance from the calendar, so not a leak), as in the book's multivariate model.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from seqbench.datasets.base import DatasetSettings, DatasetTraining, ForecastDataset, Range, RawFile
from seqbench.errors import DataError
from seqbench.tasks import ForecastTask

DAY_TYPES = ("A", "U", "W")  # Saturday, Sunday/holiday, weekday
SERIES_COLUMNS = ("bus", "rail", *(f"next_day_type_{t}" for t in DAY_TYPES))
FILE_NAME = "CTA_-_Ridership_-_Daily_Boarding_Totals.csv"
RAW_COLUMNS = ("service_date", "day_type", "bus", "rail_boardings", "total_rides")
COUNTS = ("bus", "rail_boardings", "total_rides")
DATE_FORMAT = "%m/%d/%Y"  # "01/31/2019"
# Boardings in a day are counts: never negative, and below 10 million, about 3.7 times Chicago's
# population (2.7 million); the published file's busiest day had 2.05 million rides in all.
RIDES = Range(0, 10_000_000, "boardings in a day")
RANGES = {c: RIDES for c in COUNTS}


class CtaSettings(DatasetSettings):
    train: tuple[dt.date, dt.date]
    val: tuple[dt.date, dt.date]
    test: tuple[dt.date, dt.date | None]
    scale: PositiveFloat
    lookback: PositiveInt
    long_horizon: int = Field(ge=2)
    season: PositiveInt
    training: DatasetTraining

    @model_validator(mode="after")
    def _ordered(self) -> "CtaSettings":
        bounds = [*self.train, *self.val, self.test[0]]
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError("train, val and test date ranges must be ordered and must not overlap")
        return self


class Cta(ForecastDataset):
    settings = CtaSettings
    primary_metric = "mae"
    baseline = "seasonal_naive"  # Geron's naive forecast is last week's value
    headline_split = "val"  # Geron's numbers are validation MAE
    metric_units = "original"  # riders

    def raw_files(self) -> list[RawFile]:
        return [RawFile(name=FILE_NAME,
                        url="https://data.cityofchicago.org/api/views/6iiy-9s97/rows.csv?accessType=DOWNLOAD")]

    def tasks(self, settings) -> list[ForecastTask]:
        common = dict(lookback=settings.lookback, season=settings.season, window_rule="all_in_split")
        return [
            ForecastTask("next_day", horizon=1, inputs=("rail",), targets=("rail",), **common),
            ForecastTask("multivariate", horizon=1, inputs=SERIES_COLUMNS, targets=("rail",), **common),
            ForecastTask(
                f"{settings.long_horizon}_day",
                horizon=settings.long_horizon,
                inputs=SERIES_COLUMNS,
                targets=("rail",),
                **common,
            ),
        ]

    def schema(self, settings=None) -> dict:
        import polars as pl

        return {"timestamp": pl.Datetime("us", "UTC"), "day_type": pl.String, "bus": pl.Int64, "rail": pl.Int64}

    def standardize(self, raw_dir, settings=None):
        """The portal's CSV -> one row per day, sorted by date, midnight UTC timestamps.

        Rules (Geron's): rows repeating another exactly are dropped (the 2022 snapshot repeats 62 days of
        2011-10/11); `rail_boardings` becomes `rail`; `total_rides` (= bus + rail) is dropped. A date
        that appears twice with different numbers is an error (which row is right cannot be told).
        """
        import polars as pl

        from seqbench.datasets import checks, rawcsv

        path = raw_dir / FILE_NAME
        table = rawcsv.read_csv_text(path, RAW_COLUMNS)
        day_type = table["day_type"].str.strip_chars()
        bad = (~day_type.is_in(DAY_TYPES) | day_type.is_null()).arg_true()
        if len(bad):
            row = int(bad[0])
            raise DataError(f"{path}, line {rawcsv.line_of(row)}: column 'day_type' value {day_type[row]!r} is not "
                            f"one of {', '.join(DAY_TYPES)} (W weekday, A Saturday, U Sunday/holiday).")
        frame = pl.DataFrame([
            rawcsv.parse_datetime(table, "service_date", DATE_FORMAT, path).alias("timestamp"),
            day_type.alias("day_type"),
            *rawcsv.parse_numbers(table, COUNTS, pl.Int64, path),
        ])
        checks.check_ranges(frame, RANGES, path)
        frame = checks.drop_duplicates(frame, ["timestamp"], path)
        return frame.drop("total_rides").rename({"rail_boardings": "rail"}).sort("timestamp", maintain_order=True)

    def split(self, table, settings, source):
        import polars as pl

        from seqbench.datasets.splitting import Splits, iso

        day = pl.col("timestamp").dt.date()
        ranges = {"train": settings.train, "val": settings.val, "test": settings.test}
        parts, boundaries = {}, {}
        for name, (first, last) in ranges.items():
            keep = day >= first if last is None else day.is_between(first, last, closed="both")
            parts[name] = table.filter(keep)
            days = parts[name]["timestamp"]
            boundaries[name] = {"from": iso(first), "to": iso(last), "first": iso(days.first()),
                                "last": iso(days.last())}
        return Splits(**parts, protocol="calendar date ranges, inclusive (Geron)", boundaries=boundaries)

    def series_columns(self, settings) -> tuple[str, ...]:
        return SERIES_COLUMNS

    def series(self, table, settings, source):
        """bus, rail + the one-hot type of the NEXT row's day (Geron's shift(-1); the last row: all 0)."""
        import polars as pl

        unknown = sorted(set(table["day_type"].drop_nulls().unique().to_list()) - set(DAY_TYPES))
        if unknown or table["day_type"].null_count():
            raise DataError(f"{source}: column 'day_type' holds {unknown or 'nulls'}; expected one of "
                            f"{list(DAY_TYPES)}")
        following = pl.col("day_type").shift(-1)
        return table.select(
            pl.col("bus").cast(pl.Float64),
            pl.col("rail").cast(pl.Float64),
            *((following == t).fill_null(False).cast(pl.Float64).alias(f"next_day_type_{t}") for t in DAY_TYPES),
        )

    def scaling(self, columns, settings):
        """The book's fixed scaling: riders in millions, day-type flags as they are."""
        import numpy as np

        return np.zeros(len(columns)), np.array([settings.scale if c in ("bus", "rail") else 1.0 for c in columns])


REGISTER = (Cta("cta"),)
