"""Numbers as the leaderboard, the report and RESULTS.md print them: rounded to what the seed spread supports."""

from __future__ import annotations

import math

MAX_DECIMALS = 6


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value) -> str:
    """A number without a known spread (published values, costs): large values as integers, else 4 digits."""
    if missing(value):
        return "–"
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def decimals(mean: float, std: float) -> int:
    """Decimal places that keep 2 significant digits of the seed std (negative: round to tens, thousands...);
    with no spread (a deterministic model) 4 significant digits of the mean."""
    if missing(mean) or math.isinf(float(mean)):
        return 0
    spread = 0.0 if missing(std) else abs(float(std))
    if spread <= 1e-9 * abs(float(mean)) or spread == 0:
        if mean == 0:
            return 0
        return min(MAX_DECIMALS, 3 - math.floor(math.log10(abs(float(mean)))))
    return min(MAX_DECIMALS, 1 - math.floor(math.log10(spread)))


def fixed(value, places: int) -> str:
    """value rounded to `places` decimals (negative: to 10^-places), thousands separated."""
    if missing(value):
        return "–"
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if places <= 0:
        return f"{round(value, places):,.0f}"
    return f"{value:,.{places}f}"


def mean_std(mean, std) -> str:
    """'0.4047 ± 0.0042'; a deterministic model: '0.5122 ± 0'."""
    places = decimals(mean, std)
    if missing(std) or abs(float(std)) <= 1e-9 * abs(float(mean)) or std == 0:
        return f"{fixed(mean, places)} ± 0"
    return f"{fixed(mean, places)} ± {fixed(std, places)}"


def mean_only(mean, std) -> str:
    return fixed(mean, decimals(mean, std))


def interval(low, high, mean, std) -> str:
    places = decimals(mean, std)
    return f"[{fixed(low, places)}, {fixed(high, places)}]"


def pvalue(p) -> str:
    if missing(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def seconds(value) -> str:
    """Training time: '0.4 s', '12 s', '3.1 min'."""
    if missing(value):
        return "–"
    value = float(value)
    if value < 10:
        return f"{value:.1f} s"
    if value < 600:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"
