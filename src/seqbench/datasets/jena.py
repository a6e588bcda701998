"""Jena climate 2009-2016 (Max Planck Institute for Biogeochemistry), Chollet's protocol.

Split rule: row fractions `split` in time order ([0.5, 0.25, 0.25], Chollet's) on the deduplicated rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import PositiveInt, field_validator

from seqbench.archives import ExtractLimits
from seqbench.datasets.base import DatasetSettings, DatasetTraining, ForecastDataset, Fractions, Range, RawFile
from seqbench.errors import DataError
from seqbench.tasks import ForecastTask

ROWS_PER_HOUR = 6  # one record every 10 minutes
COLUMNS = (
    "p (mbar)", "T (degC)", "Tpot (K)", "Tdew (degC)", "rh (%)", "VPmax (mbar)", "VPact (mbar)",
    "VPdef (mbar)", "sh (g/kg)", "H2OC (mmol/mol)", "rho (g/m**3)", "wv (m/s)", "max. wv (m/s)", "wd (deg)",
)
# Facts of the real file (no checksum of the zip is published; these pin the extracted CSV).
ZIP_NAME = "jena_climate_2009_2016.csv.zip"
CSV_NAME = "jena_climate_2009_2016.csv"
CSV_BYTES = 43_164_220
CSV_MD5 = "959915f05bfafef18e471a97ae679535"
ZIP_BYTES = 13_568_290
# The zip holds the one 43.2 MB CSV, deflated 3.2 times: 64 MiB and 20x leave room for a copy
# regenerated with other rounding, not for a decompression bomb.
EXTRACT_LIMITS = ExtractLimits(max_bytes=64 << 20, max_ratio=20)

DATE_COLUMN = "Date Time"
DATE_FORMAT = "%d.%m.%Y %H:%M:%S"  # "01.01.2009 00:10:00"
WIND_COLUMNS = ("wv (m/s)", "max. wv (m/s)")
SENTINEL = -9999.0  # the real file's dropped wind readings; the protocol reads them as calm (below)
# Physical bounds for a weather station 155 m above sea level in central Germany. The real file (as
# TensorFlow's time-series tutorial tabulates it) stays within p 913.6..1015.4 mbar, T -23.0..37.3
# degC, Tdew -25.0..23.1 degC, rh 13.0..100 %, wind 0..28.5 m/s besides the -9999 sentinels; the
# bounds below lie far beyond, and the derived columns' bounds follow from them (vapour pressure at
# 60 degC is 199 mbar, air at -60 degC and 1100 mbar weighs 1800 g/m**3), so only sentinels, unit
# mix-ups or shifted columns fall outside.
RANGES = {
    "p (mbar)": Range(800, 1100, "air pressure near sea level; world records 870..1084 mbar"),
    "T (degC)": Range(-60, 60, "air temperature in degC"),
    "Tpot (K)": Range(200, 350, "potential temperature in kelvin"),
    "Tdew (degC)": Range(-90, 60, "dew point in degC, never above the air temperature's range"),
    "rh (%)": Range(0, 110, "relative humidity in percent; sensors overshoot 100 slightly"),
    "VPmax (mbar)": Range(0, 200, "saturation vapour pressure in mbar"),
    "VPact (mbar)": Range(0, 200, "vapour pressure in mbar"),
    "VPdef (mbar)": Range(0, 200, "vapour pressure deficit in mbar"),
    "sh (g/kg)": Range(0, 200, "specific humidity in g/kg"),
    "H2OC (mmol/mol)": Range(0, 200, "water vapour concentration in mmol/mol"),
    "rho (g/m**3)": Range(500, 2000, "air density in g/m**3"),
    "wv (m/s)": Range(0, 120, "wind speed in m/s; the strongest gust measured was 113 m/s"),
    "max. wv (m/s)": Range(0, 120, "wind speed in m/s; the strongest gust measured was 113 m/s"),
    "wd (deg)": Range(0, 360, "wind direction in degrees"),
}


class JenaSettings(DatasetSettings):
    split: Fractions
    sampling: PositiveInt
    lookback: PositiveInt
    target: str
    target_delay_hours: PositiveInt
    season: PositiveInt
    training: DatasetTraining

    @field_validator("target")
    @classmethod
    def _known_column(cls, value: str) -> str:
        if value not in COLUMNS:
            raise ValueError(f"target {value!r} is not a Jena column; choose one of {list(COLUMNS)}")
        return value


def verify_extracted(folder: Path) -> None:
    """The zip has no published checksum: pin the extracted CSV by its known size and md5."""
    path = Path(folder) / CSV_NAME
    if not path.is_file():
        raise DataError(f"{ZIP_NAME} does not contain {CSV_NAME}; delete it and re-run the download.")
    size, digest = path.stat().st_size, hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if size != CSV_BYTES or digest.hexdigest() != CSV_MD5:
        raise DataError(f"{CSV_NAME} (extracted from {ZIP_NAME}): expected {CSV_BYTES:,} bytes "
                        f"with md5 {CSV_MD5}, got {size:,} bytes with md5 {digest.hexdigest()}. The download is "
                        "not the canonical file: delete it and re-run, or vouch for a copy with a mirror SHA256SUMS.")


class Jena(ForecastDataset):
    settings = JenaSettings
    primary_metric = "mae"
    baseline = "naive"
    metric_units = "original"  # degrees Celsius

    def raw_files(self) -> list[RawFile]:
        return [
            RawFile(
                name=ZIP_NAME,
                url=f"https://storage.googleapis.com/tensorflow/tf-keras-datasets/{ZIP_NAME}",
                size=ZIP_BYTES,
                archive=True,
                limits=EXTRACT_LIMITS,
            )
        ]

    def check_extracted(self, folder: Path) -> None:
        verify_extracted(folder)

    def tasks(self, settings) -> list[ForecastTask]:
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

    def schema(self, settings=None) -> dict:
        import polars as pl

        return {"timestamp": pl.Datetime("us", "UTC"), **{c: pl.Float64 for c in COLUMNS}}

    def standardize(self, raw_dir: Path, settings=None):
        """The extracted CSV -> timestamp + the 14 columns.

        Rules:
        - `Date Time` (dd.mm.yyyy hh:mm:ss) is the station's local standard time (no daylight saving);
          it is labelled UTC as is, without shifting, so every day has 144 ten-minute rows.
        - Wind speed (`wv`, `max. wv`) uses -9999 as a missing-value sentinel; it is set to 0.0, as in
          TensorFlow's time-series tutorial: the sentinel would otherwise dominate the column's mean/std
          and calm (0 m/s) is the physically plausible value for a dropped reading. Any other value
          outside a column's physical range (RANGES) is an error.
        - Rows repeating another exactly are dropped; a timestamp that appears again with different
          values (the real file has such repeats) keeps its first row in file order. Rows are sorted by time.
        """
        import polars as pl

        from seqbench.datasets import checks, rawcsv

        path = Path(raw_dir) / CSV_NAME
        table = rawcsv.read_csv_text(path, (DATE_COLUMN, *COLUMNS))
        frame = pl.DataFrame([
            rawcsv.parse_datetime(table, DATE_COLUMN, DATE_FORMAT, path).alias("timestamp"),
            *rawcsv.parse_numbers(table, COLUMNS, pl.Float64, path),
        ]).with_columns(pl.when(pl.col(c) == SENTINEL).then(0.0).otherwise(pl.col(c)).alias(c) for c in WIND_COLUMNS)
        checks.check_ranges(frame, RANGES, path)
        frame = checks.drop_duplicates(frame, ["timestamp"], path, keep_first=True)
        return frame.sort("timestamp", maintain_order=True)

    def split(self, table, settings, source):
        from seqbench.datasets.splitting import split_fractions

        return split_fractions(table, settings.split)


REGISTER = (Jena("jena"),)


# --- a generated file in the exact raw format (offline testing; no real Jena copy is mirrored) ----------
def _ar1(rng, n: int, phi: float, std: float):
    """A stationary AR(1) series with the given lag-1 correlation and standard deviation."""
    from scipy.signal import lfilter

    noise = rng.normal(0.0, std * (1 - phi**2) ** 0.5, n)
    noise[0] = rng.normal(0.0, std)
    return lfilter([1.0], [1.0, -phi], noise)


def jena_like_values(rows: int, seed: int = 0) -> dict:
    """{column: values} for `rows` 10-minute records from 01.01.2009 00:10, physically consistent:
    daily and yearly temperature cycles, humidity falling as it warms, vapour pressures from Magnus'
    formula, dew point, specific humidity, water concentration, potential temperature and air density
    derived from T, rh and p; log-normal wind with gusts, a wandering direction."""
    import numpy as np

    rng = np.random.default_rng(seed)
    days = (np.arange(rows) + 1) / 144.0
    year = np.cos(2 * np.pi * (days - 15) / 365.25)  # 1 in mid-January (coldest)
    day = np.cos(2 * np.pi * (days % 1.0 - 0.125))  # 1 at 03:00 (coldest), -1 at 15:00
    t = 9.4 - 9.0 * year - 4.0 * day + _ar1(rng, rows, 0.999, 3.0) + rng.normal(0, 0.1, rows)
    rh = np.clip(76 + 12 * day + 8 * year + _ar1(rng, rows, 0.995, 8.0), 15.0, 100.0)
    p = np.clip(989 + _ar1(rng, rows, 0.9995, 8.0) + rng.normal(0, 0.05, rows), 940.0, 1020.0)
    vp_max = 6.1078 * np.exp(17.27 * t / (t + 237.3))
    vp_act = vp_max * rh / 100
    gamma = np.log(vp_act / 6.1078)
    wv = 1.6 * np.exp(_ar1(rng, rows, 0.99, 0.6))
    return {
        "p (mbar)": p,
        "T (degC)": t,
        "Tpot (K)": (t + 273.15) * (1000 / p) ** 0.2857,
        "Tdew (degC)": 237.3 * gamma / (17.27 - gamma),
        "rh (%)": rh,
        "VPmax (mbar)": vp_max,
        "VPact (mbar)": vp_act,
        "VPdef (mbar)": vp_max * (1 - rh / 100),  # >= 0, never "-0.00"
        "sh (g/kg)": 622 * vp_act / (p - 0.378 * vp_act),
        "H2OC (mmol/mol)": 1000 * vp_act / p,
        "rho (g/m**3)": p * 1e5 / (287.05 * (t + 273.15)),
        "wv (m/s)": wv,
        "max. wv (m/s)": wv * (1.4 + 0.4 * rng.random(rows)) + 0.2 * rng.random(rows),
        "wd (deg)": np.mod(200 + np.cumsum(rng.normal(0, 6, rows)), 360.0),
    }


def jena_like_csv(rows: int, seed: int = 0) -> bytes:
    """The canonical CSV's exact format: quoted header, dd.mm.yyyy dates, 2 decimals, no final newline.
    `rows` data rows in all: one timestamp appears twice (the second copy slightly different), and a few
    wind speeds hold the -9999 sentinel, as in the real file."""
    import numpy as np
    import polars as pl

    if rows < 10:
        raise ValueError(f"rows must be >= 10, got {rows}")
    rng = np.random.default_rng([seed, 1])
    unique = rows - 1
    values = jena_like_values(unique, seed)
    stamps = np.datetime64("2009-01-01T00:10", "m") + 10 * np.arange(unique).astype("timedelta64[m]")
    duplicate = int(rng.integers(unique // 4, unique // 2))
    order = np.insert(np.arange(unique), duplicate + 1, duplicate)
    columns = {c: np.round(v[order], 2) for c, v in values.items()}
    columns["T (degC)"][duplicate + 1] += 0.3
    sentinels = rng.choice(np.setdiff1d(np.arange(1, rows), [duplicate, duplicate + 1]), max(3, rows // 100_000),
                           replace=False)
    columns["wv (m/s)"][sentinels] = SENTINEL
    columns["max. wv (m/s)"][sentinels[:1]] = SENTINEL
    frame = pl.DataFrame({
        DATE_COLUMN: pl.Series(stamps[order].astype("datetime64[us]")).dt.strftime(DATE_FORMAT),
        **columns,
    })
    header = ",".join(f'"{c}"' for c in (DATE_COLUMN, *COLUMNS))
    body = frame.write_csv(include_header=False, float_precision=2)
    return (header + "\n" + body.rstrip("\n")).encode("ascii")


def write_jena_like(out: Path, rows: int, seed: int = 0) -> Path:
    """Write OUT/jena_climate_2009_2016.csv.zip (deterministic bytes for a given rows/seed) and add its
    sha256 to OUT/SHA256SUMS, so the download stage accepts it from that mirror folder."""
    import zipfile

    from seqbench.datasets.mirror import SUMS_NAME, read_sums
    from seqbench.io import atomic_path, sha256_file, write_text

    out = Path(out)
    zip_name = ZIP_NAME
    final = out / zip_name
    info = zipfile.ZipInfo(CSV_NAME, date_time=(2017, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | 0o644) << 16  # a regular file, rw-r--r--
    with atomic_path(final) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(info, jena_like_csv(rows, seed), compresslevel=1)  # speed over size
    sums = read_sums(out) or {}
    sums[zip_name] = sha256_file(final)
    write_text(out / SUMS_NAME, "".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    print(f"wrote {final} ({rows:,} rows, sha256 {sums[zip_name]}) and {out / SUMS_NAME}")
    return final
