"""A dataset module written as docs/adding-a-dataset.md describes, for tests/test_dataset_interface.py:
a household electricity meter, one CSV of hourly readings. It lives in tests/ and is registered by the
test only; a real one goes to src/seqbench/datasets/ and into datasets.MODULES.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import PositiveInt

from seqbench.datasets.base import DatasetSettings, DatasetTraining, ForecastDataset, Fractions, Range, RawFile
from seqbench.tasks import ForecastTask

FILE_NAME = "meter.csv"
HEADER = ("time", "kwh", "outdoor_c")
TIME_FORMAT = "%Y-%m-%dT%H:%M"  # "2021-03-01T00:00", local time labelled UTC
# A household draws at most a few kW: 50 kWh in an hour would need a 50 kW connection. Outdoor air in
# the meter's climate lies well inside -60..60 degC.
RANGES = {"kwh": Range(0, 50, "energy drawn in one hour"), "outdoor_c": Range(-60, 60, "air temperature in degC")}


class MeterSettings(DatasetSettings):
    split: Fractions
    lookback: PositiveInt
    horizon: PositiveInt
    season: PositiveInt
    training: DatasetTraining


class Meter(ForecastDataset):
    settings = MeterSettings
    primary_metric = "mae"
    baseline = "naive"
    metric_units = "original"  # kWh

    def raw_files(self) -> list[RawFile]:
        return [RawFile(name=FILE_NAME, url=f"https://example.org/{FILE_NAME}")]

    def tasks(self, settings) -> list[ForecastTask]:
        common = dict(lookback=settings.lookback, season=settings.season, window_rule="targets_in_split")
        return [
            ForecastTask("next_hour", horizon=1, inputs=("kwh",), targets=("kwh",), **common),
            ForecastTask(f"h{settings.horizon}", horizon=settings.horizon, inputs=("kwh", "outdoor_c"),
                         targets=("kwh",), **common),
        ]

    def schema(self, settings=None) -> dict:
        import polars as pl

        return {"timestamp": pl.Datetime("us", "UTC"), "kwh": pl.Float64, "outdoor_c": pl.Float64}

    def standardize(self, raw_dir: Path, settings=None):
        import polars as pl

        from seqbench.datasets import checks, rawcsv

        path = Path(raw_dir) / FILE_NAME
        table = rawcsv.read_csv_text(path, HEADER)
        frame = pl.DataFrame([
            rawcsv.parse_datetime(table, "time", TIME_FORMAT, path).alias("timestamp"),
            *rawcsv.parse_numbers(table, HEADER[1:], pl.Float64, path),
        ])
        checks.check_ranges(frame, RANGES, path)
        return checks.drop_duplicates(frame, ["timestamp"], path).sort("timestamp", maintain_order=True)

    def split(self, table, settings, source):
        from seqbench.datasets.splitting import split_fractions

        return split_fractions(table, settings.split)


REGISTER = (Meter("meter"),)


def write_meter_csv(path: Path, rows: int = 1_000, seed: int = 0) -> Path:
    """Hourly readings from 2021-03-01: a daily load cycle, colder nights, noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    hours = np.arange(rows)
    daily = np.sin(2 * np.pi * (hours % 24 - 7) / 24)
    kwh = np.clip(0.6 + 0.4 * daily + rng.normal(0, 0.08, rows), 0.05, None)
    outdoor = 8 + 5 * daily + rng.normal(0, 0.5, rows)
    stamps = np.datetime64("2021-03-01T00:00") + hours.astype("timedelta64[h]")
    lines = [",".join(HEADER)] + [f"{str(t)[:16]},{k:.3f},{c:.1f}" for t, k, c in zip(stamps, kwh, outdoor)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
