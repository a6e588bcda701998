"""synthetic: noisy sines generated from a seed, no download: the smoke-test dataset."""

from __future__ import annotations

from seqbench.tasks import ForecastTask

METRIC_UNITS = "original"


def columns(settings) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(settings.variables))


def tasks(name: str, settings) -> list[ForecastTask]:
    cols = columns(settings)
    common = dict(lookback=settings.lookback, season=settings.season, window_rule="targets_in_split")
    return [
        ForecastTask("next_step", horizon=1, inputs=cols[:1], targets=cols[:1], **common),
        ForecastTask(f"h{settings.horizon}", horizon=settings.horizon, inputs=cols, targets=cols, **common),
    ]
