"""Chicago Transit Authority daily boardings, Geron's protocol (Hands-On ML 3rd ed., ch. 15)."""

from __future__ import annotations

from seqbench.datasets import RawFile
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
