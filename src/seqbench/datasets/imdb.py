"""IMDB Large Movie Review dataset (Maas et al., ACL 2011), Chollet's protocol (ch. 11)."""

from __future__ import annotations

import re
from pathlib import Path

from seqbench.datasets import RawFile
from seqbench.errors import DataError

# The Stanford archive's published checksum; a mirror may hold a rebuilt archive vouched for by its
# own SHA256SUMS (e.g. the shared offline mirror, whose archive lacks the *.feat files).
ARCHIVE_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE_BYTES = 84_125_825
ARCHIVE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"


def raw_files(name: str) -> list[RawFile]:
    return [
        RawFile(
            name="aclImdb_v1.tar.gz",
            url="http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
            sha256=ARCHIVE_SHA256,
            size=ARCHIVE_BYTES,
            md5=ARCHIVE_MD5,
            archive=True,
        )
    ]


# --- standardize (data-raw) ----------------------------------------------------------------------------
# polars is imported inside the functions: params validation imports the dataset modules.
ROOT = "aclImdb"
SPLITS = ("train", "test")  # the official folders; validation is cut from train by the split stage
LABELS = (("neg", 0), ("pos", 1))
EXTRACT_SKIP = ("aclImdb/train/unsup/",)  # 50,000 unlabelled reviews nobody reads: not extracted
_NAME = re.compile(r"(\d+)_(\d+)\.txt")
_BREAK = r"(?i)<br\s*/?>"  # <br />, <br/>, <br>


def schema(name: str, settings=None) -> dict:
    import polars as pl

    return {"split": pl.String, "label": pl.Int8, "rating": pl.Int8, "id": pl.Int32, "text": pl.String}


def _read_reviews(folder: Path) -> tuple[list[int], list[int], list[str]]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; the IMDB archive is incomplete. Delete "
                        f"{folder.parents[2]} and re-run the download stage.")
    ids, ratings, texts = [], [], []
    for path in folder.iterdir():
        if path.suffix != ".txt":
            continue
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise DataError(f"{path}: review file names must look like <id>_<rating>.txt; remove or rename it.")
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({error}); replace it with a clean copy.") from None
        ids.append(int(match[1]))
        ratings.append(int(match[2]))
    return ids, ratings, texts


def standardize(name: str, raw_dir: Path, settings=None):
    """aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt -> one row per review.

    label 1 = pos, 0 = neg; id and rating come from the file name; HTML line breaks (`<br />`, `<br/>`,
    `<br>`) become a space; train/unsup is ignored. Sorted by split, label, id (so "test" rows first).
    """
    import polars as pl

    frames = []
    for split in SPLITS:
        for folder_name, label in LABELS:
            ids, ratings, texts = _read_reviews(Path(raw_dir) / ROOT / split / folder_name)
            frames.append(pl.DataFrame(
                {"split": split, "label": label, "rating": ratings, "id": ids, "text": texts},
                schema=schema(name),
            ))
    return (
        pl.concat(frames)
        .with_columns(pl.col("text").str.replace_all(_BREAK, " "))
        .sort("split", "label", "id")
    )
