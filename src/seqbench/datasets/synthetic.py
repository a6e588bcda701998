"""synthetic: noisy sines generated from a seed, no download: the smoke-test dataset.

Split rule: row fractions `split` in time order (n_train = int(f0 n), n_val = int(f1 n), test the rest).
"""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt

from seqbench.datasets.base import DatasetSettings, DatasetTraining, ForecastDataset, Fractions
from seqbench.tasks import ForecastTask

START = "2020-01-01T00:00"  # hourly rows from here, labelled UTC


class SyntheticSettings(DatasetSettings):
    rows: int = Field(ge=200)
    variables: PositiveInt
    noise: float = Field(ge=0)
    generator_seed: NonNegativeInt
    split: Fractions
    lookback: PositiveInt
    horizon: PositiveInt
    season: PositiveInt
    training: DatasetTraining


def columns(settings) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(settings.variables))


def generate(settings):
    """(rows, variables) float64 values: variable i is a sine of period season*(i+1) (so x0 repeats every
    `season` rows), plus a slower sine of half the amplitude and ten times the period (variation without
    a trend), plus gaussian noise of std `noise`; phases and noise drawn from `generator_seed`."""
    import numpy as np

    rng = np.random.default_rng(settings.generator_seed)
    t = np.arange(settings.rows, dtype=np.float64)
    out = np.empty((settings.rows, settings.variables))
    for i in range(settings.variables):
        period = settings.season * (i + 1)
        phase, slow_phase = rng.uniform(0, 2 * np.pi, 2)
        out[:, i] = (np.sin(2 * np.pi * t / period + phase)
                     + 0.5 * np.sin(2 * np.pi * t / (10 * period) + slow_phase)
                     + rng.normal(0.0, settings.noise, settings.rows))
    return out


class Synthetic(ForecastDataset):
    settings = SyntheticSettings
    primary_metric = "mae"
    baseline = "naive"
    metric_units = "original"

    def tasks(self, settings) -> list[ForecastTask]:
        cols = columns(settings)
        common = dict(lookback=settings.lookback, season=settings.season, window_rule="targets_in_split")
        return [
            ForecastTask("next_step", horizon=1, inputs=cols[:1], targets=cols[:1], **common),
            ForecastTask(f"h{settings.horizon}", horizon=settings.horizon, inputs=cols, targets=cols, **common),
        ]

    def schema(self, settings) -> dict:
        import polars as pl

        return {"timestamp": pl.Datetime("us", "UTC"), **{c: pl.Float64 for c in columns(settings)}}

    def standardize(self, raw_dir, settings):
        """Generated, not read: nothing to validate."""
        import numpy as np
        import polars as pl

        stamps = np.datetime64(START, "us") + np.arange(settings.rows).astype("timedelta64[h]")
        values = generate(settings)
        return pl.DataFrame({
            "timestamp": pl.Series(stamps).dt.replace_time_zone("UTC"),
            **{c: values[:, i] for i, c in enumerate(columns(settings))},
        })

    def split(self, table, settings, source):
        from seqbench.datasets.splitting import split_fractions

        return split_fractions(table, settings.split)


REGISTER = (Synthetic("synthetic"),)
