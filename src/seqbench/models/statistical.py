"""Seasonal ARIMA (Geron ch. 15: statsmodels ARIMA refit for every forecast), as a torch module.

forward((B, T, 1)) fits SARIMAX(order, seasonal_order + (season,)) on each window's own input
series and forecasts `horizon` steps -> (B, H, 1). No parameters: the trainer evaluates it without
training. A fit that raises or forecasts a non-finite value falls back to the seasonal naive
forecast; `fits` and `fallbacks` count them (reset with `reset_counts()`).
Each fit starts from the previous window's estimates (warm start, as in rolling-origin evaluation):
consecutive windows share all but one value, so the optimizer needs ~3x fewer steps (0.05 s instead
of 0.15 s per CTA window here). The windows are always evaluated in the same order, so the
forecasts are deterministic.
A fit per window takes a while (minutes for a split), so progress goes to stderr (the job's log) every
PROGRESS_SECONDS: windows fitted, fallbacks, seconds per window.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch
from torch import Tensor, nn

from seqbench.errors import TrainingError
from seqbench.models import settings as S
from seqbench.models.baselines import SeasonalNaive
from seqbench.tasks import ForecastTask

PROGRESS_SECONDS = 10.0


class Sarima(nn.Module):
    def __init__(self, task: ForecastTask, settings: S.SarimaSettings):
        super().__init__()
        if task.season < 2:
            raise TrainingError(
                f"sarima needs a seasonal period >= 2 but task {task.name!r} has season {task.season}; "
                "set datasets.<dataset>.season in params.yaml or leave sarima out of that dataset's jobs")
        if task.sampling != 1 or task.delay != 1:
            raise TrainingError(
                f"sarima forecasts the steps right after its input, but task {task.name!r} has "
                f"sampling {task.sampling} and delay {task.delay}; leave sarima out of that dataset's jobs")
        self.order = tuple(settings.order)
        self.seasonal_order = (*settings.seasonal_order, task.season)
        self.horizon = task.horizon
        self.fallback = SeasonalNaive(task)
        self.reset_counts()

    def reset_counts(self) -> None:
        self.fits = 0
        self.fallbacks = 0
        self._start_params = None  # the last successful fit's estimates (warm start)
        self._started = self._reported = time.monotonic()

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._reported < PROGRESS_SECONDS:
            return
        self._reported = now
        print(f"sarima {self.order}x{self.seasonal_order}: {self.fits} windows fitted in {now - self._started:.0f} s "
              f"({(now - self._started) / self.fits:.2f} s per window), {self.fallbacks} fell back to "
              "the seasonal naive forecast", file=sys.stderr, flush=True)

    def _forecast(self, series: np.ndarray) -> np.ndarray | None:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence and start-parameter warnings, every window
                model = SARIMAX(series, order=self.order, seasonal_order=self.seasonal_order)
                # no parameter covariance: only the forecast is used
                fit = model.fit(disp=False, cov_type="none", start_params=self._start_params)
                forecast = np.asarray(fit.forecast(self.horizon), dtype=np.float64)
        except (ValueError, np.linalg.LinAlgError, IndexError):
            return None
        if forecast.shape != (self.horizon,) or not np.isfinite(forecast).all():
            return None
        self._start_params = fit.params
        return forecast

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:  # (B, T, 1) -> (B, H, 1)
        naive = self.fallback(x)
        series = x[..., 0].detach().cpu().double().numpy()
        out = naive.detach().cpu().double().numpy().copy()
        for b, window in enumerate(series):
            self.fits += 1
            forecast = self._forecast(window)
            if forecast is None:
                self.fallbacks += 1
            else:
                out[b, :, 0] = forecast
            self._report()
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


def build_sarima(task: ForecastTask, settings: S.SarimaSettings) -> nn.Module:
    return Sarima(task, settings)
