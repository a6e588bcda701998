"""Chicago Transit Authority daily boardings, Geron's protocol (Hands-On ML 3rd ed., ch. 15)."""

from __future__ import annotations

from seqbench.datasets import RawFile
from seqbench.errors import DataError
from seqbench.tasks import ForecastTask

METRIC_UNITS = "original"  # riders
DAY_TYPES = ("A", "U", "W")  # Saturday, Sunday/holiday, weekday
# Series columns after features: values scaled to millions, then the one-hot day type of the NEXT day
# (known in advance from the calendar, so not a leak), as in the book's multivariate model.
SERIES_COLUMNS = ("bus", "rail", *(f"next_day_type_{t}" for t in DAY_TYPES))


def raw_files(name: str) -> list[RawFile]:
    return [
        RawFile(
            name="CTA_-_Ridership_-_Daily_Boarding_Totals.csv",
            url="https://data.cityofchicago.org/api/views/6iiy-9s97/rows.csv?accessType=DOWNLOAD",
        )
    ]


def tasks(name: str, settings) -> list[ForecastTask]:
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


# --- standardize (data-raw) ----------------------------------------------------------------------------
# polars is imported inside the functions: params validation imports this module for its tasks.
RAW_COLUMNS = ("service_date", "day_type", "bus", "rail_boardings", "total_rides")
DATE_FORMAT = "%m/%d/%Y"  # "01/31/2019"


def schema(name: str, settings=None) -> dict:
    import polars as pl

    return {"timestamp": pl.Datetime("us", "UTC"), "day_type": pl.String, "bus": pl.Int64, "rail": pl.Int64}


def standardize(name: str, raw_dir, settings=None):
    """The portal's CSV -> one row per day, sorted by date, midnight UTC timestamps.

    Rules (Geron's): exact duplicate rows are dropped (the 2022 snapshot repeats 62 days of
    2011-10/11); `rail_boardings` becomes `rail`; `total_rides` (= bus + rail) is dropped. Should a
    date still appear twice with different numbers (the live export gets corrections), the first row
    in file order is kept and a note says how many were dropped.
    """
    import sys

    import polars as pl

    from seqbench import standardize as std

    path = raw_dir / raw_files(name)[0].name
    table = std.read_csv_text(path, RAW_COLUMNS)
    day_type = table["day_type"].str.strip_chars()
    bad = (~day_type.is_in(DAY_TYPES) | day_type.is_null()).arg_true()
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{path}, line {row + 2}: column 'day_type' value {day_type[row]!r} is not one of "
                        f"{', '.join(DAY_TYPES)} (W weekday, A Saturday, U Sunday/holiday).")
    frame = pl.DataFrame([
        std.parse_datetime(table, "service_date", DATE_FORMAT, path).alias("timestamp"),
        day_type.alias("day_type"),
        *std.parse_numbers(table, ("bus", "rail_boardings", "total_rides"), pl.Int64, path),
    ])
    frame = frame.unique(maintain_order=True).drop("total_rides").rename({"rail_boardings": "rail"})
    unique = frame.unique(subset="timestamp", keep="first", maintain_order=True)
    if unique.height < frame.height:
        print(f"note: {path.name}: {frame.height - unique.height} dates appear twice with different values; "
              "kept the first row of each", file=sys.stderr)
    return unique.sort("timestamp", maintain_order=True)
