"""Jena climate 2009-2016 (Max Planck Institute for Biogeochemistry), Chollet's protocol."""

from __future__ import annotations

from seqbench.datasets import RawFile
from seqbench.tasks import ForecastTask

METRIC_UNITS = "original"  # degrees Celsius
ROWS_PER_HOUR = 6  # one record every 10 minutes
COLUMNS = (
    "p (mbar)", "T (degC)", "Tpot (K)", "Tdew (degC)", "rh (%)", "VPmax (mbar)", "VPact (mbar)",
    "VPdef (mbar)", "sh (g/kg)", "H2OC (mmol/mol)", "rho (g/m**3)", "wv (m/s)", "max. wv (m/s)", "wd (deg)",
)
# Facts of the real file (no checksum of the zip is published; these pin the extracted CSV).
CSV_NAME = "jena_climate_2009_2016.csv"
CSV_BYTES = 43_164_220
CSV_MD5 = "959915f05bfafef18e471a97ae679535"
CSV_ROWS = 420_551
ZIP_BYTES = 13_568_290


def raw_files(name: str) -> list[RawFile]:
    return [
        RawFile(
            name="jena_climate_2009_2016.csv.zip",
            url="https://storage.googleapis.com/tensorflow/tf-keras-datasets/jena_climate_2009_2016.csv.zip",
            size=ZIP_BYTES,
            archive=True,
        )
    ]


def tasks(name: str, settings) -> list[ForecastTask]:
    return [
        ForecastTask(
            f"temp_{settings.target_delay_hours}h",
            lookback=settings.lookback,
            horizon=1,
            inputs=COLUMNS,
            targets=(settings.target,),
            sampling=settings.sampling,
            delay=settings.target_delay_hours * ROWS_PER_HOUR,
            season=settings.season,
            window_rule="inputs_in_split",
        )
    ]
