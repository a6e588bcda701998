"""Tiny files in each dataset's REAL raw format, deterministic from a seed (shared by every test file).

    write_ett_csv(path, rows=14_600, seed=0)            ETTh1.csv / ETTh2.csv
    write_cta_csv(path, start, end, duplicate_from, seed) CTA_-_Ridership_-_Daily_Boarding_Totals.csv
    write_imdb_tar(path, n_per_class=20, seed=0, files=None)  aclImdb_v1.tar.gz
    write_shakespeare(path, chars=20_000, seed=0)       tinyshakespeare.txt
    make_mirror(folder, datasets=..., jena_rows=8_000)  all of them under their canonical names + SHA256SUMS
The Jena file comes from the project's own generator (`seqbench.datasets.jena.write_jena_like`).
Sizes respect the protocols' borders: ETT >= 14,400 rows, CTA covers 2016..2019 and a few later months,
Jena has enough rows for 50/25/25 splits with 120 x 6-row windows and a 144-row delay.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import polars as pl

ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
CTA_HEADER = "service_date,day_type,bus,rail_boardings,total_rides"
CTA_HOLIDAYS = {(1, 1), (7, 4), (12, 25)}  # month, day: day type U like a Sunday
POSITIVE = ("great", "wonderful", "excellent", "loved", "brilliant", "superb", "enjoyable", "masterpiece")
NEGATIVE = ("awful", "boring", "terrible", "waste", "worst", "dull", "poor", "hated")
NEUTRAL = ("the", "movie", "film", "plot", "actor", "scene", "story", "director", "was", "and", "it", "this",
           "a", "of", "with", "ending", "music", "cast", "camera", "script")
SPEAKERS = ("First Citizen", "MENENIUS", "CORIOLANUS", "ROMEO", "JULIET", "KING RICHARD III", "GLOUCESTER",
            "Second Citizen", "DUKE VINCENTIO", "ISABELLA")
VERSE = ("thou", "art", "my", "lord", "the", "king", "and", "i", "will", "not", "speak", "hear", "me", "good",
         "sir", "what", "is", "love", "death", "night", "sweet", "grace", "o", "heaven", "come", "fair", "noble")


def _mdy(day: dt.date) -> str:
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


# --- ETT ---------------------------------------------------------------------------------------------
def write_ett_csv(path: Path, rows: int = 14_600, seed: int = 0) -> Path:
    """`date,HUFL,...,OT`, hourly from 2016-07-01 00:00:00, float values printed at full precision."""
    rng = np.random.default_rng(seed)
    hours = np.arange(rows)
    daily = np.sin(2 * np.pi * hours / 24)
    yearly = np.sin(2 * np.pi * hours / (24 * 365.25))
    loads = {
        name: (base + amp * daily + 0.5 * yearly + rng.normal(0, 0.3, rows)).astype(np.float32).astype(np.float64)
        for name, base, amp in zip(ETT_COLUMNS[:-1], (6, 2, 2, 0.5, 4, 1.3), (1.5, 0.4, 1.0, 0.2, 0.8, 0.3))
    }
    oil = 15 + 10 * yearly + 3 * daily + np.cumsum(rng.normal(0, 0.05, rows))
    stamps = np.datetime64("2016-07-01T00:00", "us") + hours.astype("timedelta64[h]")
    frame = pl.DataFrame({
        "date": pl.Series(stamps).dt.strftime("%Y-%m-%d %H:%M:%S"),
        **loads,
        "OT": oil.astype(np.float32).astype(np.float64),
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


# --- CTA ---------------------------------------------------------------------------------------------
def cta_day_type(day: dt.date) -> str:
    if day.weekday() == 6 or (day.month, day.day) in CTA_HOLIDAYS:
        return "U"
    return "A" if day.weekday() == 5 else "W"


def write_cta_csv(path: Path, start="2015-12-01", end="2020-03-31", duplicate_from=None, seed: int = 0) -> Path:
    """The portal's CSV: `service_date,day_type,bus,rail_boardings,total_rides`, MM/DD/YYYY, a weekly
    pattern, bus + rail == total. As in the real file one row sits out of date order, and with
    `duplicate_from` the 31 days from that date appear twice (exact duplicate rows)."""
    rng = np.random.default_rng(seed)
    first, last = _as_date(start), _as_date(end)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    base = {"W": (800_000, 600_000), "A": (500_000, 350_000), "U": (350_000, 250_000)}
    lines = []
    for i, day in enumerate(days):
        kind = cta_day_type(day)
        trend = 1 - 0.00005 * i
        bus = int(base[kind][0] * trend * (1 + rng.normal(0, 0.03)))
        rail = int(base[kind][1] * trend * (1 + rng.normal(0, 0.03)))
        lines.append(f"{_mdy(day)},{kind},{bus},{rail},{bus + rail}")
    if duplicate_from is not None:
        at = (_as_date(duplicate_from) - first).days
        if not 0 <= at < len(lines):
            raise ValueError(f"duplicate_from {duplicate_from} is outside {first}..{last}")
        block = lines[at:at + 31]
        lines[at + len(block):at + len(block)] = block
    if len(lines) > 10:  # the real file lists 09/01/2017 among the 2011 rows
        moved = lines.pop(len(lines) * 3 // 5)
        lines.insert(len(lines) // 3, moved)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CTA_HEADER + "\n" + "\n".join(lines) + "\n", encoding="ascii")
    return path


# --- IMDB --------------------------------------------------------------------------------------------
def _review(rng: np.random.Generator, label: int | None) -> str:
    sentences = []
    for _ in range(int(rng.integers(2, 5))):
        words = list(rng.choice(NEUTRAL, int(rng.integers(5, 12))))
        if label is not None:
            words.insert(int(rng.integers(0, len(words))), str(rng.choice(POSITIVE if label else NEGATIVE)))
        sentences.append(" ".join(words).capitalize() + ".")
    return "<br /><br />".join(sentences)


def imdb_members(n_per_class: int = 20, seed: int = 0) -> dict[str, bytes]:
    """{archive path: content} of a tiny aclImdb tree (README, imdb.vocab, imdbEr.txt, urls, reviews)."""
    rng = np.random.default_rng(seed)
    files = {
        "aclImdb/README": b"Large Movie Review Dataset v1.0 (tiny test copy)\n",
        "aclImdb/imdb.vocab": "\n".join(NEUTRAL + POSITIVE + NEGATIVE).encode() + b"\n",
        "aclImdb/imdbEr.txt": b"\n".join(b"%.4f" % v for v in rng.normal(0, 1, 30)) + b"\n",
    }
    for split in ("train", "test"):
        for folder, label, ratings in (("neg", 0, (1, 2, 3, 4)), ("pos", 1, (7, 8, 9, 10))):
            for i in range(n_per_class):
                rating = int(rng.choice(ratings))
                files[f"aclImdb/{split}/{folder}/{i}_{rating}.txt"] = _review(rng, label).encode()
            files[f"aclImdb/{split}/urls_{folder}.txt"] = b"".join(
                b"http://www.imdb.com/title/tt%07d/usercomments\n" % i for i in range(n_per_class))
    for i in range(n_per_class):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = _review(rng, None).encode()
    files["aclImdb/train/urls_unsup.txt"] = b"http://www.imdb.com/title/tt0000000/usercomments\n" * n_per_class
    return files


def write_imdb_tar(path: Path, n_per_class: int = 20, seed: int = 0, files: dict[str, bytes] | None = None) -> Path:
    """aclImdb_v1.tar.gz: GNU tar + gzip with fixed metadata (byte-identical for the same arguments);
    `files` replaces imdb_members(n_per_class, seed), e.g. an altered copy of it."""
    files = imdb_members(n_per_class, seed) if files is None else files
    folders = sorted({str(Path(name).parent) for name in files} | {"aclImdb"})
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name in sorted(set(folders) | set(files)):
                info = tarfile.TarInfo(name)
                info.mtime = 1303862400  # 2011-04-27, as in the mirror's rebuilt archive
                if name in files:
                    info.size, info.mode = len(files[name]), 0o644
                    tar.addfile(info, io.BytesIO(files[name]))
                else:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


# --- Shakespeare -------------------------------------------------------------------------------------
def write_shakespeare(path: Path, chars: int = 20_000, seed: int = 0) -> Path:
    """Play-like ASCII text, exactly `chars` characters: `SPEAKER:` lines, verse, blank lines."""
    rng = np.random.default_rng(seed)
    parts, size = [], 0
    while size < chars:
        speech = [str(rng.choice(SPEAKERS)) + ":"]
        for _ in range(int(rng.integers(1, 4))):
            words = " ".join(rng.choice(VERSE, int(rng.integers(4, 10))))
            speech.append(words.capitalize() + str(rng.choice([",", ".", "!", "?", ";"])))
        block = "\n".join(speech) + "\n\n"
        parts.append(block)
        size += len(block)
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n" + "".join(parts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:chars], encoding="ascii")
    return path


# --- a whole mirror folder ---------------------------------------------------------------------------
MIRROR_NAMES = {
    "etth1": "ETTh1.csv",
    "etth2": "ETTh2.csv",
    "cta": "CTA_-_Ridership_-_Daily_Boarding_Totals.csv",
    "imdb": "aclImdb_v1.tar.gz",
    "shakespeare": "tinyshakespeare.txt",
    "jena": "jena_climate_2009_2016.csv.zip",
}


def make_mirror(folder: Path, datasets=("etth1", "etth2", "cta", "imdb", "shakespeare", "jena"),
                jena_rows: int = 8_000) -> Path:
    """Every raw file of `datasets` under its canonical name, plus a SHA256SUMS vouching for them."""
    from seqbench.datasets.jena import write_jena_like

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers = {
        "etth1": lambda p: write_ett_csv(p, seed=1),
        "etth2": lambda p: write_ett_csv(p, seed=2),
        "cta": lambda p: write_cta_csv(p, duplicate_from="2017-10-01"),
        "imdb": write_imdb_tar,
        "shakespeare": write_shakespeare,
        "jena": lambda p: write_jena_like(p.parent, rows=jena_rows, seed=0),
    }
    for name in datasets:
        writers[name](folder / MIRROR_NAMES[name])
    write_sums(folder, [MIRROR_NAMES[name] for name in datasets])
    return folder


def write_sums(folder: Path, names) -> Path:
    """(Re)write folder/SHA256SUMS for the given files, in sha256sum format."""
    lines = [f"{hashlib.sha256((Path(folder) / n).read_bytes()).hexdigest()}  {n}\n" for n in names]
    (Path(folder) / "SHA256SUMS").write_text("".join(lines))
    return Path(folder) / "SHA256SUMS"
